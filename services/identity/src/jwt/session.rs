//! Self-issued session bearers: EdDSA JWTs with `kid`, checked strictly.

use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation, errors::ErrorKind};
use uuid::Uuid;

use super::keyring::KeyRing;
use crate::error::Error;

/// `typ` of our access tokens' header (RFC 9068), and the `use` claim inside them: a
/// token minted for anything else is never a session.
const TOKEN_TYPE: &str = "at+jwt";
const ACCESS: &str = "access";

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub iat: u64,
    pub nbf: u64,
    pub sid: String,
    #[serde(rename = "use")]
    pub token_use: String,
    #[serde(default)]
    pub email: String,
    #[serde(default)]
    pub name: String,
}

pub struct SessionTokens {
    issuer: String,
    audience: String,
    ttl: Duration,
    validation: Validation,
}

/// A verified session bearer.
pub struct VerifiedSession {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub email: String,
    pub name: String,
}

impl SessionTokens {
    pub fn new(issuer: &str, audience: &str, ttl: Duration, leeway: Duration) -> Self {
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iat", "nbf", "iss", "aud", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = leeway.as_secs();
        Self { issuer: issuer.to_owned(), audience: audience.to_owned(), ttl, validation }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(
        &self,
        ring: &KeyRing,
        user_id: Uuid,
        session_id: Uuid,
        email: &str,
        name: &str,
    ) -> Result<String, Error> {
        let (kid, key) = ring.signer()?;
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: user_id.to_string(),
            aud: self.audience.clone(),
            exp: now + self.ttl.as_secs(),
            iat: now,
            nbf: now,
            sid: session_id.to_string(),
            token_use: ACCESS.to_owned(),
            email: email.to_owned(),
            name: name.to_owned(),
        };
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(kid);
        header.typ = Some(TOKEN_TYPE.to_owned());
        jsonwebtoken::encode(&header, &claims, &key).map_err(|e| Error::internal(format!("sign session: {e}")))
    }

    /// Verifies a bearer whose header names one of our keys.
    pub async fn verify(&self, ring: &KeyRing, token: &str, header: &Header) -> Result<VerifiedSession, Error> {
        if header.alg != Algorithm::EdDSA {
            return Err(Error::InvalidToken("self-issued token with another algorithm"));
        }
        if header.typ.as_deref() != Some(TOKEN_TYPE) {
            return Err(Error::InvalidToken("not an access token"));
        }
        let kid = header.kid.as_deref().ok_or(Error::InvalidToken("no kid"))?;
        let key = ring.verifier(kid).await.ok_or(Error::InvalidToken("unknown kid"))?;
        let data = jsonwebtoken::decode::<Claims>(token, &key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::ExpiredSignature => Error::TokenExpired,
            ErrorKind::ImmatureSignature => Error::InvalidToken("not valid yet"),
            ErrorKind::InvalidIssuer => Error::InvalidToken("wrong issuer"),
            ErrorKind::InvalidAudience => Error::InvalidToken("wrong audience"),
            ErrorKind::MissingRequiredClaim(_) => Error::InvalidToken("missing claim"),
            _ => Error::InvalidToken("bad signature or claims"),
        })?;
        let claims = data.claims;
        if claims.token_use != ACCESS {
            return Err(Error::InvalidToken("not an access token"));
        }
        Ok(VerifiedSession {
            user_id: Uuid::parse_str(&claims.sub).map_err(|_| Error::InvalidToken("bad sub"))?,
            session_id: Uuid::parse_str(&claims.sid).map_err(|_| Error::InvalidToken("bad sid"))?,
            email: claims.email,
            name: claims.name,
        })
    }
}
