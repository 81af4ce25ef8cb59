//! The verified identity the gateway hands to data-plane backends: plain headers, bound
//! to the request by an HMAC-SHA256 that the backend checks with the shared secret.
//!
//! Signed string (lines joined by LF): `v1`, timestamp, method, path and query, org id,
//! key id, environment, scopes (space-separated), resource ids (comma-separated),
//! SHA-256 of the body (hex). `X-Keyplane-Signature: v1=<hex>`.

use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue};
use sha2::{Digest, Sha256};

pub const ORG_ID: HeaderName = HeaderName::from_static("x-keyplane-org-id");
pub const KEY_ID: HeaderName = HeaderName::from_static("x-keyplane-key-id");
pub const ENVIRONMENT: HeaderName = HeaderName::from_static("x-keyplane-environment");
pub const SCOPES: HeaderName = HeaderName::from_static("x-keyplane-scopes");
pub const RESOURCE_IDS: HeaderName = HeaderName::from_static("x-keyplane-resource-ids");
pub const TIMESTAMP: HeaderName = HeaderName::from_static("x-keyplane-timestamp");
pub const SIGNATURE: HeaderName = HeaderName::from_static("x-keyplane-signature");

/// Every identity header, for stripping what a client sent itself.
pub const ALL: [HeaderName; 7] = [ORG_ID, KEY_ID, ENVIRONMENT, SCOPES, RESOURCE_IDS, TIMESTAMP, SIGNATURE];

/// How far a signature's timestamp may be from the backend's clock.
pub const MAX_SKEW_SECS: i64 = 300;

/// `KEYPLANE_DATAPLANE_SECRET`, shared by the gateway and its data-plane backends: the
/// first signs, all verify (rotation: add the new one first everywhere, then drop the old).
pub fn secrets(env: &mut crate::config::Env, mode: crate::config::Mode) -> Vec<Vec<u8>> {
    env.secret("KEYPLANE_DATAPLANE_SECRET", mode, "the gateway and its data-plane backends")
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub org_id: String,
    pub key_id: String,
    pub environment: String,
    pub scopes: Vec<String>,
    pub resource_ids: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the request carries no verified identity")]
    Missing,
    #[error("the identity signature is stale")]
    Stale,
    #[error("the identity signature does not match")]
    Mismatch,
}

/// Feeds the signed string (see the module's comment) to `mac` piece by piece: the same
/// bytes as one formatted string, without building it on every forwarded request.
fn feed(mac: &mut Hmac<Sha256>, timestamp: i64, method: &str, path_and_query: &str, identity: &Identity, body: &[u8]) {
    let mut line = |bytes: &[u8]| {
        mac.update(bytes);
        mac.update(b"\n");
    };
    line(b"v1");
    line(timestamp.to_string().as_bytes());
    line(method.as_bytes());
    line(path_and_query.as_bytes());
    line(identity.org_id.as_bytes());
    line(identity.key_id.as_bytes());
    line(identity.environment.as_bytes());
    let mut joined = |items: &[String], separator: &[u8]| {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                mac.update(separator);
            }
            mac.update(item.as_bytes());
        }
        mac.update(b"\n");
    };
    joined(&identity.scopes, b" ");
    joined(&identity.resource_ids, b",");
    if body.is_empty() {
        // Most forwarded calls are reads without a body: their digest is a constant.
        mac.update(EMPTY_BODY_SHA256);
    } else {
        let mut digest = [0u8; 64];
        hex::encode_to_slice(Sha256::digest(body), &mut digest).expect("64 hex digits for 32 bytes");
        mac.update(&digest);
    }
}

/// SHA-256 of no bytes, in hex.
const EMPTY_BODY_SHA256: &[u8; 64] = b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

fn keyed(secret: &[u8]) -> Hmac<Sha256> {
    Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length")
}

/// Signs identities with one secret, keyed once: each signature then starts from the
/// keyed state instead of hashing the key again.
#[derive(Clone)]
pub struct Signer {
    keyed: Hmac<Sha256>,
}

impl Signer {
    pub fn new(secret: &[u8]) -> Self {
        Self { keyed: keyed(secret) }
    }

    /// The headers that carry `identity` for this request: its own, written once, and the
    /// timestamp and signature of this one.
    pub fn sign(
        &self,
        timestamp: i64,
        method: &str,
        path_and_query: &str,
        identity: &PreparedIdentity,
        body: &[u8],
    ) -> [(HeaderName, HeaderValue); 7] {
        let mut mac = self.keyed.clone();
        feed(&mut mac, timestamp, method, path_and_query, &identity.identity, body);
        let mut signature = *b"v1=0000000000000000000000000000000000000000000000000000000000000000";
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut signature[3..]).expect("64 hex digits for 32 bytes");
        let [org, key, environment, scopes, resources] = identity.values.clone();
        [
            (ORG_ID, org),
            (KEY_ID, key),
            (ENVIRONMENT, environment),
            (SCOPES, scopes),
            (RESOURCE_IDS, resources),
            (TIMESTAMP, HeaderValue::from(timestamp)),
            (SIGNATURE, HeaderValue::from_bytes(&signature).expect("ASCII")),
        ]
    }
}

/// An identity with its header values written out: the same for every request of a key,
/// so the gateway writes them once and keeps them with the key's cached grant.
#[derive(Clone, Debug)]
pub struct PreparedIdentity {
    identity: Identity,
    /// Org id, key id, environment, scopes (space-separated), resource ids (comma-separated).
    values: [HeaderValue; 5],
}

impl PreparedIdentity {
    pub fn new(identity: Identity) -> Self {
        let value = |s: &str| HeaderValue::from_str(s).unwrap_or_else(|_| HeaderValue::from_static(""));
        let values = [
            value(&identity.org_id),
            value(&identity.key_id),
            value(&identity.environment),
            value(&identity.scopes.join(" ")),
            value(&identity.resource_ids.join(",")),
        ];
        Self { identity, values }
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// The bytes the header values hold, for a cache that weighs what it keeps.
    pub fn value_bytes(&self) -> usize {
        self.values.iter().map(HeaderValue::len).sum()
    }
}

/// The identity in a request's headers, if the gateway signed it recently with one of
/// `secrets`.
pub fn verify(
    secrets: &[Vec<u8>],
    headers: &HeaderMap,
    method: &str,
    path_and_query: &str,
    body: &[u8],
    now: i64,
) -> Result<Identity, VerifyError> {
    let text = |name: &HeaderName| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let signature = text(&SIGNATURE).ok_or(VerifyError::Missing)?;
    let timestamp: i64 = text(&TIMESTAMP).and_then(|t| t.parse().ok()).ok_or(VerifyError::Missing)?;
    if (now - timestamp).abs() > MAX_SKEW_SECS {
        return Err(VerifyError::Stale);
    }
    let list = |name: &HeaderName, separator: char| {
        text(name)
            .map(|v| v.split(separator).filter(|s| !s.is_empty()).map(str::to_owned).collect())
            .unwrap_or_default()
    };
    let identity = Identity {
        org_id: text(&ORG_ID).ok_or(VerifyError::Missing)?,
        key_id: text(&KEY_ID).ok_or(VerifyError::Missing)?,
        environment: text(&ENVIRONMENT).ok_or(VerifyError::Missing)?,
        scopes: list(&SCOPES, ' '),
        resource_ids: list(&RESOURCE_IDS, ','),
    };
    let expected = signature.strip_prefix("v1=").and_then(|h| hex::decode(h).ok()).ok_or(VerifyError::Mismatch)?;
    // verify_slice compares in constant time.
    let matches = |secret: &Vec<u8>| {
        let mut mac = keyed(secret);
        feed(&mut mac, timestamp, method, path_and_query, &identity, body);
        mac.verify_slice(&expected).is_ok()
    };
    if secrets.iter().any(matches) { Ok(identity) } else { Err(VerifyError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            org_id: "o".into(),
            key_id: "k".into(),
            environment: "test".into(),
            scopes: vec!["read:families".into()],
            resource_ids: vec!["a".into(), "b".into()],
        }
    }

    fn headers(pairs: [(HeaderName, HeaderValue); 7]) -> HeaderMap {
        pairs.into_iter().collect()
    }

    fn prepared() -> PreparedIdentity {
        PreparedIdentity::new(identity())
    }

    #[test]
    fn signed_identity_verifies_and_tampering_fails() {
        let ours = [b"secret".to_vec()];
        let signed = headers(Signer::new(b"secret").sign(1000, "GET", "/x?y=1", &prepared(), b"{}"));
        assert_eq!(verify(&ours, &signed, "GET", "/x?y=1", b"{}", 1000).unwrap(), identity());
        let rotating = [b"new secret".to_vec(), b"secret".to_vec()];
        assert_eq!(verify(&rotating, &signed, "GET", "/x?y=1", b"{}", 1000).unwrap(), identity());
        assert_eq!(verify(&[b"other".to_vec()], &signed, "GET", "/x?y=1", b"{}", 1000), Err(VerifyError::Mismatch));
        assert_eq!(verify(&ours, &signed, "POST", "/x?y=1", b"{}", 1000), Err(VerifyError::Mismatch));
        assert_eq!(verify(&ours, &signed, "GET", "/x?y=1", b"{ }", 1000), Err(VerifyError::Mismatch));
        assert_eq!(verify(&ours, &signed, "GET", "/x?y=1", b"{}", 1000 + MAX_SKEW_SECS + 1), Err(VerifyError::Stale));
        let mut forged = signed.clone();
        forged.insert(ORG_ID, HeaderValue::from_static("another"));
        assert_eq!(verify(&ours, &forged, "GET", "/x?y=1", b"{}", 1000), Err(VerifyError::Mismatch));
        assert_eq!(verify(&ours, &HeaderMap::new(), "GET", "/", b"", 1000), Err(VerifyError::Missing));
    }

    /// A backend in another language signs the string the module's comment documents:
    /// the signature is that string's HMAC, byte for byte.
    #[test]
    fn the_signature_is_the_hmac_of_the_documented_string() {
        let body_digest = hex::encode(Sha256::digest(b"{}"));
        let documented = format!("v1\n1000\nGET\n/x?y=1\no\nk\ntest\nread:families\na,b\n{body_digest}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"secret").unwrap();
        mac.update(documented.as_bytes());
        let expected = format!("v1={}", hex::encode(mac.finalize().into_bytes()));
        let signed = headers(Signer::new(b"secret").sign(1000, "GET", "/x?y=1", &prepared(), b"{}"));
        assert_eq!(signed.get(SIGNATURE).unwrap(), expected.as_str());
        assert_eq!(signed.get(TIMESTAMP).unwrap(), "1000");
        assert_eq!(signed.get(SCOPES).unwrap(), "read:families");
        assert_eq!(signed.get(RESOURCE_IDS).unwrap(), "a,b");
    }

    #[test]
    fn the_empty_body_digest_is_sha256_of_nothing() {
        assert_eq!(hex::encode(Sha256::digest(b"")).as_bytes(), EMPTY_BODY_SHA256);
        let signed = headers(Signer::new(b"secret").sign(1000, "GET", "/x", &prepared(), b""));
        assert_eq!(verify(&[b"secret".to_vec()], &signed, "GET", "/x", b"", 1000).unwrap(), identity());
    }
}
