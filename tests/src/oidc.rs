//! A stand-in for an external OIDC issuer (WorkOS AuthKit style): a JWKS endpoint and
//! EdDSA-signed access tokens.

use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicUsize, Ordering},
};

use axum::{Json, Router, http::StatusCode, response::IntoResponse, routing::get};
use base64::Engine;
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub struct FakeIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    pub kid: String,
    key: EncodingKey,
    /// How many times the JWKS was fetched.
    pub fetches: Arc<AtomicUsize>,
    /// While set, the JWKS endpoint answers 503.
    pub down: Arc<AtomicBool>,
}

impl FakeIssuer {
    pub async fn start() -> Self {
        let signing = SigningKey::from_bytes(&[7u8; 32]);
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
        let kid = "fake-kid-1".to_owned();
        let fetches = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let jwks =
            json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": x, "alg": "EdDSA", "use": "sig"}]});
        let (counter, switch) = (Arc::clone(&fetches), Arc::clone(&down));
        let app = Router::new().route(
            "/jwks",
            get(move || {
                let (jwks, counter, switch) = (jwks.clone(), Arc::clone(&counter), Arc::clone(&switch));
                async move {
                    counter.fetch_add(1, Ordering::SeqCst);
                    if switch.load(Ordering::SeqCst) {
                        return StatusCode::SERVICE_UNAVAILABLE.into_response();
                    }
                    Json(jwks).into_response()
                }
            }),
        );
        let listener = keyplane_common::testsuite::listener().await;
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        let der = signing.to_pkcs8_der().expect("pkcs8");
        Self {
            issuer: format!("http://{addr}"),
            jwks_url: format!("http://{addr}/jwks"),
            audience: "client_test".into(),
            kid,
            key: EncodingKey::from_ed_der(der.as_bytes()),
            fetches,
            down,
        }
    }

    /// The `KEYPLANE_OIDC_ISSUERS` setting naming this issuer.
    pub fn setting(&self) -> (&'static str, String) {
        ("KEYPLANE_OIDC_ISSUERS", json!([self.config()]).to_string())
    }

    /// This issuer's entry in `KEYPLANE_OIDC_ISSUERS`.
    pub fn config(&self) -> Value {
        json!({"issuer": self.issuer, "jwks_url": self.jwks_url, "audience": self.audience})
    }

    /// An access token (RFC 9068's `typ: at+jwt`) with these claims merged over sane defaults.
    pub fn token(&self, claims: Value) -> String {
        self.token_with_kid(claims, &self.kid)
    }

    pub fn token_with_kid(&self, claims: Value, kid: &str) -> String {
        self.sign(claims, kid, Some("at+jwt"))
    }

    /// An ID token for the same client: `typ: JWT` and a `nonce`, as OpenID Connect has it.
    pub fn id_token(&self, claims: Value) -> String {
        let mut claims = claims;
        if let Some(c) = claims.as_object_mut() {
            c.entry("nonce").or_insert(json!("n-0S6_WzA2Mj"));
        }
        self.sign(claims, &self.kid, Some("JWT"))
    }

    /// A token with the header type `typ` (None: no `typ` at all).
    pub fn sign(&self, claims: Value, kid: &str, typ: Option<&str>) -> String {
        let now = chrono::Utc::now().timestamp();
        let mut all = json!({"iss": self.issuer, "aud": self.audience, "sub": "user_01", "exp": now + 300, "iat": now, "email": "ext@example.com", "first_name": "Ext", "last_name": "User"});
        if let (Some(base), Some(extra)) = (all.as_object_mut(), claims.as_object()) {
            for (k, v) in extra {
                base.insert(k.clone(), v.clone());
            }
        }
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, &all, &self.key).expect("sign")
    }
}
