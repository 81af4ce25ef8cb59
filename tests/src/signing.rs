//! Requests signed as an advisor signs them (RFC 9421, Ed25519), with every way to get a
//! signature wrong that a test wants to try.

use base64::Engine;
use ed25519_dalek::SigningKey;
use keyplane_common::httpsig::{self, Message, SignatureParams, digest};
use serde_json::Value;

use crate::{Api, Reply};

/// An Ed25519 key of an advisor, with its `kid`.
pub struct AdvisorKey {
    pub kid: String,
    pub key: SigningKey,
}

impl AdvisorKey {
    pub fn new(kid: &str) -> Self {
        use rand::{TryRng, rngs::SysRng};
        let mut seed = [0u8; 32];
        SysRng.try_fill_bytes(&mut seed).expect("random");
        Self { kid: kid.to_owned(), key: SigningKey::from_bytes(&seed) }
    }

    /// The public key as JWK `x`.
    pub fn x(&self) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.key.verifying_key().to_bytes())
    }
}

/// How to sign: what to cover, when, with which nonce; and what to spoil after signing.
pub struct Signing<'a> {
    pub covered: &'a [&'a str],
    pub created: i64,
    pub nonce: Option<String>,
    /// Signed over this body, sent with the real one: a digest that does not match.
    pub signed_body: Option<Vec<u8>>,
}

impl Default for Signing<'_> {
    fn default() -> Self {
        Self {
            covered: &["@method", "@path", "@authority", "content-digest"],
            created: chrono::Utc::now().timestamp(),
            nonce: Some(uuid::Uuid::now_v7().to_string()),
            signed_body: None,
        }
    }
}

/// POSTs `body` to `path`, signed with `key` as `signing` says (and with `bearer`).
pub async fn signed_post(
    api: &Api,
    path: &str,
    bearer: Option<&str>,
    body: &Value,
    key: &AdvisorKey,
    signing: &Signing<'_>,
) -> Reply {
    let body = serde_json::to_vec(body).unwrap();
    let url = reqwest::Url::parse(&api.url(path)).unwrap();
    let authority = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let digest_of = signing.signed_body.as_deref().unwrap_or(&body);
    let mut message = Message {
        method: "POST".into(),
        scheme: "http".into(),
        authority,
        path: url.path().into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("content-digest".into(), digest::content_digest(digest_of)),
        ],
        body: digest_of.to_vec(),
    };
    let params = SignatureParams {
        label: "sig1",
        covered: signing.covered,
        created: signing.created,
        keyid: &key.kid,
        nonce: signing.nonce.as_deref(),
    };
    let (input, signature) = httpsig::sign(&message, &params, &key.key).unwrap();
    message.headers.push(("signature-input".into(), input));
    message.headers.push(("signature".into(), signature));
    let mut request = api.http.post(url).body(body);
    for (name, value) in &message.headers {
        request = request.header(name, value);
    }
    if let Some(bearer) = bearer {
        request = request.bearer_auth(bearer);
    }
    api.send(request).await
}
