//! The gateway's side of the hot path: the shape check (no I/O), then the small local
//! cache of verdicts, then `identity.Authenticate`.
//!
//! Only real verdicts on a credential are cached (unknown, revoked, expired): anything
//! else identity answers (an outage, an internal-auth refusal between services) says
//! nothing about the customer's key and is a 503, never kept. A grant carries its
//! record's revision and is never kept below the floor the revocation feed announced
//! (see `keyplane_common::credential_cache`).

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use axum::http::StatusCode;
use bytes::Bytes;
use keyplane_common::{
    credential::Secret,
    credential_cache::{Expiring, LocalCredentialCache, LookupError, share_of},
    dataplane,
    internal_auth::Caller,
    principal::{KeyPrincipal, Principal},
    time::Clock,
};
use keyplane_proto::identity::v1::AuthenticateRequest;

use crate::{error::ApiError, upstream::Upstream};

/// How long a verdict is kept without hearing of a change to its key.
const VERDICT_TTL: Duration = Duration::from_secs(30);

/// The cache's budget, in bytes as [`Grant::estimate_bytes`] counts them (on the high
/// side): some 110,000 full-permission keys with all their answers kept (3 KB each so
/// counted; the bench's 100,000 such keys added 28 MiB to the gateway's RSS), or some
/// 3,800 keys pinned to a hundred 128-byte ids.
pub const CACHE_BYTES: u64 = 320 * 1024 * 1024;

/// Refusals (anyone can present shape-valid unknown secrets) crowd out no more than the
/// 100,000 entries the cache held before it counted bytes.
const REFUSAL_WEIGHT: u32 = share_of(CACHE_BYTES, 100_000);

/// Identity's refusals that are verdicts on the credential itself, and final.
const VERDICTS: &[&str] = &["invalid_api_key", "invalid_mcp_token", "key_revoked", "key_expired"];

/// What identity answered for a secret: who it is (at which revision of its record), or
/// why not.
#[derive(Clone)]
pub enum Verdict {
    Valid { grant: Arc<Grant>, revision: u64 },
    Refused(Arc<ApiError>),
}

/// A valid credential as cached: who it is, and what is derived from its record alone,
/// each built on first use and kept with the record (writing the answers on every request
/// was a tenth of a verify's instructions, and more of `keys/self`'s). The builders are
/// plain `fn`s, so they can capture nothing of a request: what they build is every
/// request's.
pub struct Grant {
    principal: Arc<Principal>,
    weight: u32,
    verify_answer: OnceLock<Bytes>,
    self_answer: OnceLock<Bytes>,
    identity: OnceLock<dataplane::PreparedIdentity>,
}

/// The JSON answers a grant keeps.
#[derive(Clone, Copy, Debug)]
pub enum Kept {
    /// `POST /keys/verify`'s, when the key passes the request's checks.
    Verify,
    /// `GET /keys/self`'s.
    KeySelf,
}

impl Grant {
    fn new(principal: Principal) -> Self {
        Self {
            weight: Self::estimate_bytes(&principal),
            verify_answer: OnceLock::new(),
            self_answer: OnceLock::new(),
            identity: OnceLock::new(),
            principal: Arc::new(principal),
        }
    }

    /// An estimate, on the high side, of the bytes a cached grant holds: the entry and its
    /// structs (a kilobyte), and each of the key's strings about six times its length plus
    /// two allocations (the principal's copy and the identity's, each a `String` of its
    /// own; the two JSON answers, which repeat them escaped and quoted). Scopes and pins
    /// are in the identity's header values once more, with a separator and a share of the
    /// values' allocations.
    fn estimate_bytes(principal: &Principal) -> u32 {
        const ENTRY: usize = 1024;
        let string = |s: &str| 6 * s.len() + 112;
        let listed = |s: &str| 7 * s.len() + 118;
        let strings: usize = match principal {
            Principal::ApiKey(key) => {
                let scopes: usize = key.scopes.effective_names().into_iter().map(listed).sum();
                let pins: usize = key.resource_ids.iter().map(|r| listed(r)).sum();
                string(&key.name) + string(&key.prefix) + scopes + pins
            }
            Principal::McpToken(token) => {
                token.scopes.effective_names().into_iter().map(string).sum::<usize>()
                    + string(&token.name)
                    + string(&token.prefix)
            }
            _ => 0,
        };
        u32::try_from(ENTRY + strings).unwrap_or(u32::MAX)
    }

    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// The answer `which`, serialised from the key by `write` on first use; None when the
    /// grant is not an API key's.
    pub fn answer(
        &self,
        which: Kept,
        write: fn(&KeyPrincipal) -> serde_json::Result<Vec<u8>>,
    ) -> Option<Result<Bytes, ApiError>> {
        let Principal::ApiKey(key) = self.principal.as_ref() else { return None };
        let slot = match which {
            Kept::Verify => &self.verify_answer,
            Kept::KeySelf => &self.self_answer,
        };
        if let Some(body) = slot.get() {
            return Some(Ok(body.clone()));
        }
        Some(match write(key) {
            // Kept without the serialiser's spare capacity (up to as much again).
            Ok(body) => Ok(slot.get_or_init(|| Bytes::copy_from_slice(&body)).clone()),
            Err(_) => Err(ApiError::internal()),
        })
    }

    /// The identity a forwarded request carries to its backend, built by `build` on first
    /// use; None when the grant is not an API key's.
    pub fn identity(&self, build: fn(&KeyPrincipal) -> dataplane::Identity) -> Option<&dataplane::PreparedIdentity> {
        let Principal::ApiKey(key) = self.principal.as_ref() else { return None };
        Some(self.identity.get_or_init(|| dataplane::PreparedIdentity::new(build(key))))
    }
}

impl Expiring for Verdict {
    fn ttl(&self) -> Duration {
        VERDICT_TTL
    }

    fn weight(&self) -> u32 {
        match self {
            Self::Valid { grant, .. } => grant.weight,
            Self::Refused(_) => REFUSAL_WEIGHT,
        }
    }

    fn grants_at(&self) -> Option<u64> {
        match self {
            Self::Valid { revision, .. } => Some(*revision),
            Self::Refused(_) => None,
        }
    }
}

pub struct Verifier {
    local: Arc<LocalCredentialCache<Verdict>>,
    upstream: Upstream,
    /// The time expiry and grace periods are decided at.
    clock: Clock,
}

impl Verifier {
    pub fn new(local: Arc<LocalCredentialCache<Verdict>>, upstream: Upstream, clock: Clock) -> Self {
        Self { local, upstream, clock }
    }

    /// An API key or MCP token whose shape is already checked: its grant, as cached.
    pub async fn verify_grant(&self, secret: &Secret, origin: &Caller) -> Result<Arc<Grant>, ApiError> {
        let verdict = self
            .local
            // The fetch (a gRPC call) is boxed: unboxed, its state would sit in every
            // request's future, cache hits included, each layer allocating and copying it.
            .get_or_fetch(secret.hash(), 0, |floor| Box::pin(self.fetch(secret.expose(), floor, origin)))
            .await
            .map_err(|e| match e {
                LookupError::Failed(error) => (*error).clone(),
                LookupError::Stale => ApiError::unavailable(),
            })?;
        match verdict {
            Verdict::Valid { grant, .. } => still_valid(grant.principal(), self.clock.now()).map(|()| grant),
            Verdict::Refused(error) => Err((*error).clone()),
        }
    }

    /// Asks identity, telling it the newest revision this replica has heard of.
    async fn fetch(&self, credential: &str, floor: u64, origin: &Caller) -> Result<Verdict, ApiError> {
        match self.authenticate(credential, floor, origin).await {
            Ok((principal, revision)) => Ok(Verdict::Valid { grant: Arc::new(Grant::new(principal)), revision }),
            Err(e) if e.status == StatusCode::UNAUTHORIZED && VERDICTS.contains(&e.code.as_str()) => {
                Ok(Verdict::Refused(Arc::new(e)))
            }
            Err(e) if e.status == StatusCode::UNAUTHORIZED => {
                tracing::warn!(code = %e.code, "identity refused without a verdict on the credential");
                Err(ApiError::unavailable())
            }
            Err(e) => Err(e),
        }
    }

    /// A session bearer: not cached here (identity caches session liveness).
    pub async fn verify_session(&self, token: &str, origin: &Caller) -> Result<Arc<Principal>, ApiError> {
        Box::pin(self.authenticate(token, 0, origin)).await.map(|(principal, _)| Arc::new(principal))
    }

    async fn authenticate(
        &self,
        credential: &str,
        min_revision: u64,
        origin: &Caller,
    ) -> Result<(Principal, u64), ApiError> {
        let request = AuthenticateRequest { credential: credential.to_owned(), min_revision };
        let answer = self.upstream.authenticate(origin, request).await?;
        let principal = answer.principal.ok_or_else(ApiError::internal)?;
        let principal = Principal::try_from(principal).map_err(|e| {
            tracing::error!(error = %e, "identity answered a malformed principal");
            ApiError::internal()
        })?;
        Ok((principal, answer.revision))
    }
}

/// A cached principal is checked against the clock at every use: expiry and the end of
/// a grace period need no message to take effect.
fn still_valid(principal: &Principal, now: chrono::DateTime<chrono::Utc>) -> Result<(), ApiError> {
    let (expires_at, grace_ends_at) = match principal {
        Principal::ApiKey(key) => (key.expires_at, key.grace_ends_at),
        Principal::McpToken(token) => (token.expires_at, None),
        _ => (None, None),
    };
    if grace_ends_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized("key_revoked", "the key or token has been revoked"));
    }
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::unauthorized("key_expired", "the key or token has expired"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use keyplane_common::{credential::Environment, scope::Scopes};
    use uuid::Uuid;

    use super::*;

    fn key(scopes: Scopes, pins: Vec<String>) -> Principal {
        Principal::ApiKey(KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "a key of a usual name".into(),
            prefix: "phosra_test_abcd1234".into(),
            environment: Environment::Test,
            scopes,
            resource_ids: pins,
            expires_at: None,
            grace_ends_at: None,
            created_by: None,
            revision: 1,
            rate_limit: None,
        })
    }

    /// What a grant holds once all three of its answers are written, counted generously:
    /// every string of the principal and of the identity with an allocation's overhead,
    /// and the answers' bytes.
    fn held(grant: &Grant) -> usize {
        let string = |s: &str| s.len().max(16) + 24 + 16;
        let Principal::ApiKey(key) = grant.principal().as_ref() else { unreachable!() };
        let verify = grant.answer(Kept::Verify, serde_json::to_vec).unwrap().unwrap();
        let key_self = grant.answer(Kept::KeySelf, serde_json::to_vec).unwrap().unwrap();
        let identity = grant.identity(|k| dataplane::Identity {
            org_id: k.org_id.to_string(),
            key_id: k.key_id.to_string(),
            environment: "test".into(),
            scopes: k.scopes.effective(),
            resource_ids: k.resource_ids.clone(),
        });
        let prepared = identity.unwrap();
        // Each header value: its bytes, and its `Bytes` and the allocation's overhead (the
        // `Bytes` is in `size_of::<Grant>()` too: counted twice, on the safe side).
        let values = prepared.value_bytes() + 5 * (32 + 16 + 16);
        let identity = prepared.identity();
        let principal: usize = [&key.name, &key.prefix].into_iter().chain(&key.resource_ids).map(|s| string(s)).sum();
        let identity: usize = [&identity.org_id, &identity.key_id, &identity.environment]
            .into_iter()
            .chain(&identity.scopes)
            .chain(&identity.resource_ids)
            .map(|s| string(s))
            .sum();
        std::mem::size_of::<Grant>()
            + std::mem::size_of::<Principal>()
            + principal
            + identity
            + values
            + verify.len()
            + key_self.len()
    }

    /// A grant weighs at least what it comes to hold, for short pins and long ones alike,
    /// and a refusal cannot crowd out more than 100,000 entries.
    #[test]
    fn a_grant_weighs_at_least_what_it_comes_to_hold() {
        for pins in
            [vec![], (0..100).map(|i| format!("{i}")).collect(), (0..100).map(|i| format!("{i:0>128}")).collect()]
        {
            let scopes = if pins.is_empty() { Scopes::Full } else { Scopes::parse(&["read:families"]).unwrap() };
            let grant = Grant::new(key(scopes, pins));
            let (weight, held) = (grant.weight as usize, held(&grant));
            assert!(weight >= held, "weighs {weight} bytes, holds {held}");
        }
        let full = Grant::new(key(Scopes::Full, vec![])).weight;
        assert!(CACHE_BYTES / u64::from(full) >= 100_000, "{full} bytes a full-permission key");
        assert!(CACHE_BYTES / u64::from(REFUSAL_WEIGHT) <= 100_000);
    }
}
