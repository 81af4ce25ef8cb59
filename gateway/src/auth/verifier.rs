//! The gateway's side of the hot path: the shape check (no I/O), then the small local
//! cache of verdicts, then `identity.Authenticate`.

use std::{sync::Arc, time::Duration};

use axum::http::StatusCode;
use keyplane_common::{
    credential::Secret,
    credential_cache::{Expiring, LocalCredentialCache},
    internal_auth::Caller,
    principal::Principal,
};
use keyplane_proto::identity::v1::AuthenticateRequest;

use crate::{error::ApiError, upstream::Upstream};

/// How long a verdict is kept without hearing of a change to its key.
const VERDICT_TTL: Duration = Duration::from_secs(30);

/// What identity answered for a secret: who it is, or why not.
#[derive(Clone)]
pub enum Verdict {
    Valid(Arc<Principal>),
    Refused(Arc<ApiError>),
}

impl Expiring for Verdict {
    fn ttl(&self) -> Duration {
        VERDICT_TTL
    }
}

pub struct Verifier {
    local: Arc<LocalCredentialCache<Verdict>>,
    upstream: Upstream,
}

impl Verifier {
    pub fn new(local: Arc<LocalCredentialCache<Verdict>>, upstream: Upstream) -> Self {
        Self { local, upstream }
    }

    /// An API key or MCP token whose shape is already checked.
    pub async fn verify_secret(&self, secret: &Secret, origin: &Caller) -> Result<Arc<Principal>, ApiError> {
        let verdict = self
            .local
            .get_or_fetch(secret.hash(), self.fetch(secret.expose(), origin))
            .await
            .map_err(|e| (*e).clone())?;
        match verdict {
            Verdict::Valid(principal) => still_valid(principal),
            Verdict::Refused(error) => Err((*error).clone()),
        }
    }

    async fn fetch(&self, credential: &str, origin: &Caller) -> Result<Verdict, ApiError> {
        match self.authenticate(credential, origin).await {
            Ok(principal) => Ok(Verdict::Valid(Arc::new(principal))),
            // A refusal is an answer worth keeping; an outage is not.
            Err(e) if e.status == StatusCode::UNAUTHORIZED => Ok(Verdict::Refused(Arc::new(e))),
            Err(e) => Err(e),
        }
    }

    /// A session bearer: not cached here (identity caches session liveness).
    pub async fn verify_session(&self, token: &str, origin: &Caller) -> Result<Arc<Principal>, ApiError> {
        self.authenticate(token, origin).await.map(Arc::new)
    }

    async fn authenticate(&self, credential: &str, origin: &Caller) -> Result<Principal, ApiError> {
        let answer =
            self.upstream.authenticate(origin, AuthenticateRequest { credential: credential.to_owned() }).await?;
        let principal = answer.principal.ok_or_else(ApiError::internal)?;
        Principal::try_from(principal).map_err(|e| {
            tracing::error!(error = %e, "identity answered a malformed principal");
            ApiError::internal()
        })
    }
}

/// A cached principal is checked against the clock at every use: expiry and the end of
/// a grace period need no message to take effect.
fn still_valid(principal: Arc<Principal>) -> Result<Arc<Principal>, ApiError> {
    let now = keyplane_common::time::now();
    let (expires_at, grace_ends_at) = match principal.as_ref() {
        Principal::ApiKey(key) => (key.expires_at, key.grace_ends_at),
        Principal::McpToken(token) => (token.expires_at, None),
        _ => (None, None),
    };
    if grace_ends_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized("key_revoked", "the API key has been revoked"));
    }
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized("key_expired", "the API key has expired"));
    }
    Ok(principal)
}
