//! External OIDC issuers (WorkOS AuthKit style): their access tokens are sessions.
//!
//! Only access tokens: an ID token is proof of a sign-in meant for one client, and must not
//! open an API even when its `aud` matches. Each issuer says how its access tokens are
//! marked (RFC 9068's `typ: at+jwt` by default, or a claim such as `token_use: access`),
//! and a token with an ID token's claims (`nonce`, `at_hash`, `c_hash`) is refused always.
//!
//! Keys come from each issuer's JWKS URL: refreshed every ten minutes, at most every
//! thirty seconds however many unknown `kid`s arrive, used while younger than the
//! configured max age when the issuer is unreachable, and never used past it.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use jsonwebtoken::{
    Algorithm, DecodingKey, Header, Validation,
    errors::ErrorKind,
    jwk::{AlgorithmParameters, EllipticCurve, JwkSet},
};
use tokio::sync::Mutex;

use crate::{
    config::{AccessTokenMark, ExternalIssuer},
    error::Error,
};

/// Claims only ID tokens carry (OpenID Connect Core 1.0, 2 and 3.1.3.6).
const ID_TOKEN_CLAIMS: &[&str] = &["nonce", "at_hash", "c_hash"];

const REFRESH_EVERY: Duration = Duration::from_secs(600);
const MIN_FETCH_INTERVAL: Duration = Duration::from_secs(30);
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// What a verified external token says about its user.
pub struct ExternalIdentity {
    pub issuer: String,
    pub subject: String,
    pub email: String,
    pub name: String,
    /// Only the issuer's `email_verified: true` makes the address verified here.
    pub email_verified: bool,
}

#[derive(serde::Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    email_verified: Option<bool>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    first_name: Option<String>,
    #[serde(default)]
    last_name: Option<String>,
    /// Every claim, to check the issuer's access-token mark and ID-token claims.
    #[serde(flatten)]
    all: serde_json::Map<String, serde_json::Value>,
}

struct KeySet {
    fetched_at: Instant,
    keys: HashMap<String, (DecodingKey, Algorithm)>,
}

struct Issuer {
    config: ExternalIssuer,
    keys: RwLock<Option<Arc<KeySet>>>,
    last_fetch: Mutex<Option<Instant>>,
}

pub struct ExternalIssuers {
    issuers: Vec<Issuer>,
    http: reqwest::Client,
    max_age: Duration,
    leeway: Duration,
}

impl ExternalIssuers {
    pub fn new(configs: Vec<ExternalIssuer>, max_age: Duration, leeway: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(3))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        let issuers = configs
            .into_iter()
            .map(|config| Issuer { config, keys: RwLock::new(None), last_fetch: Mutex::new(None) })
            .collect();
        Self { issuers, http, max_age, leeway }
    }

    pub fn knows(&self, issuer: &str) -> bool {
        self.issuers.iter().any(|i| i.config.issuer == issuer)
    }

    pub async fn verify(&self, token: &str, header: &Header, issuer: &str) -> Result<ExternalIdentity, Error> {
        let state =
            self.issuers.iter().find(|i| i.config.issuer == issuer).ok_or(Error::InvalidToken("unknown issuer"))?;
        let kid = header.kid.as_deref().ok_or(Error::InvalidToken("no kid"))?;
        let (key, algorithm) = self.key(state, kid).await?;
        // The key decides the algorithm: a header naming another one (HS256 signed with
        // the public key, say) is refused before any verification.
        if header.alg != algorithm {
            return Err(Error::InvalidToken("algorithm does not match the key"));
        }
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&state.config.issuer]);
        validation.set_audience(&[&state.config.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = self.leeway.as_secs();
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => Error::TokenExpired,
            _ => Error::InvalidToken("external token failed verification"),
        })?;
        let claims = data.claims;
        if ID_TOKEN_CLAIMS.iter().any(|c| claims.all.contains_key(*c)) {
            return Err(Error::InvalidToken("an ID token is not a session"));
        }
        let marked = match &state.config.access_token {
            AccessTokenMark::Typ(typ) => header.typ.as_deref().is_some_and(|t| t.eq_ignore_ascii_case(typ)),
            AccessTokenMark::Claim { name, value } => {
                claims.all.get(name).and_then(serde_json::Value::as_str) == Some(value.as_str())
            }
        };
        if !marked {
            return Err(Error::InvalidToken("not an access token of this issuer"));
        }
        let name = claims.name.unwrap_or_else(|| {
            [claims.first_name, claims.last_name].into_iter().flatten().collect::<Vec<_>>().join(" ")
        });
        Ok(ExternalIdentity {
            issuer: state.config.issuer.clone(),
            subject: claims.sub,
            email: claims.email.unwrap_or_default().to_lowercase(),
            name,
            email_verified: claims.email_verified == Some(true),
        })
    }

    async fn key(&self, issuer: &Issuer, kid: &str) -> Result<(DecodingKey, Algorithm), Error> {
        let mut current = issuer.keys.read().expect("jwks lock").clone();
        let fresh = current.as_ref().is_some_and(|k| k.fetched_at.elapsed() < REFRESH_EVERY);
        if fresh && let Some(key) = current.as_ref().and_then(|k| k.keys.get(kid)) {
            return Ok(key.clone());
        }
        if let Some(fetched) = self.refresh(issuer).await {
            current = Some(fetched);
        }
        match current {
            Some(set) if set.fetched_at.elapsed() <= self.max_age => {
                set.keys.get(kid).cloned().ok_or(Error::InvalidToken("unknown kid"))
            }
            // No keys, or keys too old to trust: never accept a token we cannot verify.
            _ => Err(Error::IssuerUnavailable),
        }
    }

    /// Fetches the issuer's JWKS unless it was tried within the minimum interval.
    async fn refresh(&self, issuer: &Issuer) -> Option<Arc<KeySet>> {
        let mut last = issuer.last_fetch.lock().await;
        if last.is_some_and(|t| t.elapsed() < MIN_FETCH_INTERVAL) {
            return None;
        }
        *last = Some(Instant::now());
        match self.fetch(&issuer.config.jwks_url).await {
            Ok(keys) => {
                let set = Arc::new(KeySet { fetched_at: Instant::now(), keys });
                *issuer.keys.write().expect("jwks lock") = Some(Arc::clone(&set));
                Some(set)
            }
            Err(e) => {
                tracing::warn!(issuer = %issuer.config.issuer, error = %e, "jwks fetch failed");
                None
            }
        }
    }

    async fn fetch(&self, url: &str) -> Result<HashMap<String, (DecodingKey, Algorithm)>, String> {
        let response = self.http.get(url).send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("status {}", response.status()));
        }
        if response.content_length().is_some_and(|n| n > MAX_JWKS_BYTES as u64) {
            return Err("jwks too large".into());
        }
        let body = response.bytes().await.map_err(|e| e.to_string())?;
        if body.len() > MAX_JWKS_BYTES {
            return Err("jwks too large".into());
        }
        let set: JwkSet = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let (Some(kid), Some(algorithm)) = (jwk.common.key_id.clone(), asymmetric_algorithm(jwk)) else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, (key, algorithm));
            }
        }
        Ok(keys)
    }
}

/// The algorithm a public key verifies; None for symmetric or unknown keys.
fn asymmetric_algorithm(jwk: &jsonwebtoken::jwk::Jwk) -> Option<Algorithm> {
    let by_params = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(_) => Algorithm::EdDSA,
        _ => return None,
    };
    let algorithm = match jwk.common.key_algorithm {
        Some(declared) => Algorithm::try_from(declared).ok()?,
        None => by_params,
    };
    let family_matches = matches!(
        (&jwk.algorithm, algorithm),
        (
            AlgorithmParameters::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (AlgorithmParameters::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (AlgorithmParameters::OctetKeyPair(_), Algorithm::EdDSA)
    );
    family_matches.then_some(algorithm)
}
