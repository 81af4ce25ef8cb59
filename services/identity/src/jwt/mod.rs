//! Session bearers: self-issued EdDSA JWTs and external OIDC access tokens.

pub mod external;
pub mod keyring;
pub mod session;

use std::sync::Arc;

use external::{ExternalIdentity, ExternalIssuers};
use keyring::KeyRing;
use session::{SessionTokens, VerifiedSession};

use crate::error::Error;

/// Tokens longer than this are refused before any base64 or JSON parsing.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
const MAX_KID_LEN: usize = 128;

pub enum VerifiedBearer {
    Session(VerifiedSession),
    External(ExternalIdentity),
}

pub struct BearerVerifier {
    pub ring: Arc<KeyRing>,
    pub sessions: SessionTokens,
    pub external: ExternalIssuers,
}

#[derive(serde::Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: Option<String>,
}

impl BearerVerifier {
    pub async fn verify(&self, token: &str) -> Result<VerifiedBearer, Error> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(Error::InvalidToken("token too long"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| Error::InvalidToken("malformed header"))?;
        // jsonwebtoken does not understand any critical extension, so none is acceptable.
        if header.crit.is_some() {
            return Err(Error::InvalidToken("critical header extension"));
        }
        if header.kid.as_ref().is_some_and(|k| k.len() > MAX_KID_LEN) {
            return Err(Error::InvalidToken("kid too long"));
        }
        // `jku`, `x5u` and an embedded `jwk` are ignored: keys come only from our ring or
        // the configured JWKS URL. The unverified `iss` only picks which keys to try.
        let issuer = jsonwebtoken::dangerous::insecure_decode_claims::<IssuerOnly>(token)
            .map_err(|_| Error::InvalidToken("malformed claims"))?
            .iss
            .ok_or(Error::InvalidToken("no issuer"))?;
        if issuer == self.sessions.issuer() {
            return self.sessions.verify(&self.ring, token, &header).await.map(VerifiedBearer::Session);
        }
        if self.external.knows(&issuer) {
            return self.external.verify(token, &header, &issuer).await.map(VerifiedBearer::External);
        }
        Err(Error::InvalidToken("unknown issuer"))
    }
}
