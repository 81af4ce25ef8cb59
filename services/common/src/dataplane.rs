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

fn signed_string(timestamp: i64, method: &str, path_and_query: &str, identity: &Identity, body: &[u8]) -> String {
    format!(
        "v1\n{timestamp}\n{method}\n{path_and_query}\n{}\n{}\n{}\n{}\n{}\n{}",
        identity.org_id,
        identity.key_id,
        identity.environment,
        identity.scopes.join(" "),
        identity.resource_ids.join(","),
        hex::encode(Sha256::digest(body)),
    )
}

fn mac(secret: &[u8], message: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(message.as_bytes());
    mac
}

/// The headers that carry `identity` for this request.
pub fn sign(
    secret: &[u8],
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    identity: &Identity,
    body: &[u8],
) -> Vec<(HeaderName, HeaderValue)> {
    let signature = hex::encode(
        mac(secret, &signed_string(timestamp, method, path_and_query, identity, body)).finalize().into_bytes(),
    );
    let value = |s: String| HeaderValue::from_str(&s).unwrap_or_else(|_| HeaderValue::from_static(""));
    vec![
        (ORG_ID, value(identity.org_id.clone())),
        (KEY_ID, value(identity.key_id.clone())),
        (ENVIRONMENT, value(identity.environment.clone())),
        (SCOPES, value(identity.scopes.join(" "))),
        (RESOURCE_IDS, value(identity.resource_ids.join(","))),
        (TIMESTAMP, value(timestamp.to_string())),
        (SIGNATURE, value(format!("v1={signature}"))),
    ]
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
    let signed = signed_string(timestamp, method, path_and_query, &identity, body);
    // verify_slice compares in constant time.
    if secrets.iter().any(|secret| mac(secret, &signed).verify_slice(&expected).is_ok()) {
        Ok(identity)
    } else {
        Err(VerifyError::Mismatch)
    }
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

    fn headers(pairs: Vec<(HeaderName, HeaderValue)>) -> HeaderMap {
        pairs.into_iter().collect()
    }

    #[test]
    fn signed_identity_verifies_and_tampering_fails() {
        let ours = [b"secret".to_vec()];
        let signed = headers(sign(b"secret", 1000, "GET", "/x?y=1", &identity(), b"{}"));
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
}
