//! Identity's side of the hot path for API keys and MCP tokens: the local cache, then
//! Redis, then `keys.LookupByHash`, with the record written back to Redis.
//!
//! Every record carries its revision. A record older than the newest change this replica
//! was told about (or than the caller says it was told about) is skipped wherever it sits,
//! and the database is read instead: the order in which caches hear of a change does not
//! matter. A failure to reach the keys service is an outage (503), never a verdict on the
//! credential.

use std::{sync::Arc, time::Duration};

use keyplane_common::{
    cache::Cache,
    credential::{KeyFormat, SecretHash},
    credential_cache::{Expiring, LocalCredentialCache, LookupError, record_key, share_of},
    error::Failure,
    grpc::Outbound,
    key_record::KeyRecord,
    metrics::CacheStats,
    principal::Principal,
    scope::Scopes,
    time::Clock,
};
use keyplane_proto::keys::v1::{LookupByHashRequest, LookupByHashResponse, keys_service_client::KeysServiceClient};
use prost::Message;
use tonic::{Status, transport::Channel};

use crate::{domain::verdict::evaluate, error::Error};

/// How long Redis keeps a record; changes overwrite it sooner.
const FOUND_TTL: Duration = Duration::from_secs(300);
/// How long Redis remembers that a hash is unknown: random valid-CRC keys cost one
/// database query each per window.
const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// How long this replica keeps a record without hearing of a change.
const LOCAL_TTL: Duration = Duration::from_secs(30);

/// The local cache's budget, in bytes as [`CachedRecord::weight`] counts them (on the high
/// side): some 140,000 records of keys with a few scopes and pins (more than the 100,000
/// entries it held before it counted bytes), or some 7,000 of keys pinned to a hundred
/// 128-byte ids.
pub const LOCAL_CACHE_BYTES: u64 = 128 * 1024 * 1024;

/// Unknown secrets crowd out no more than the 100,000 entries the cache held before it
/// counted bytes.
const UNKNOWN_WEIGHT: u32 = share_of(LOCAL_CACHE_BYTES, 100_000);

/// The record behind a hash (None: no credential has it) and its revision.
#[derive(Clone)]
pub struct CachedRecord {
    record: Option<Arc<KeyRecord>>,
    revision: u64,
}

impl CachedRecord {
    /// The keys service's answer; a record this replica cannot read is a failure, never
    /// taken for "unknown".
    fn from_lookup(found: &LookupByHashResponse) -> Result<Self, Status> {
        let record = found
            .record
            .as_ref()
            .map(KeyRecord::from_proto)
            .transpose()
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Self { revision: record.as_ref().map_or(0, |r| r.revision), record: record.map(Arc::new) })
    }
}

impl Expiring for CachedRecord {
    fn ttl(&self) -> Duration {
        LOCAL_TTL
    }

    /// Half a kilobyte for the entry and the record, and each string with its allocation.
    fn weight(&self) -> u32 {
        let Some(record) = &self.record else { return UNKNOWN_WEIGHT };
        let string = |s: &String| s.len() + 64;
        let scopes: usize = match &record.scopes {
            Scopes::Full => 0,
            Scopes::Only(set) => set.iter().map(string).sum(),
        };
        let bytes = 512 + string(&record.name) + string(&record.prefix) + scopes;
        u32::try_from(bytes + record.resource_ids.iter().map(string).sum::<usize>()).unwrap_or(u32::MAX)
    }

    /// An unknown or revoked credential never becomes valid again: only a live record
    /// can be stale.
    fn grants_at(&self) -> Option<u64> {
        self.record.as_ref().filter(|r| r.revoked_at.is_none()).map(|_| self.revision)
    }
}

pub struct KeyLookup {
    pub format: KeyFormat,
    pub local: Arc<LocalCredentialCache<CachedRecord>>,
    pub cache: Cache,
    /// How often Redis had the record, and how often the keys service was asked.
    pub cache_stats: CacheStats,
    pub keys: KeysServiceClient<Channel>,
    pub outbound: Outbound,
    /// The time expiry and grace periods are decided at.
    pub clock: Clock,
}

impl KeyLookup {
    /// The principal of a key or token, and the revision of the record it was decided on.
    pub async fn authenticate(&self, raw: &str, min_revision: u64) -> Result<(Principal, u64), Error> {
        let parsed = self.format.parse(raw).map_err(|_| {
            // The shape check needs no lookup; tell keys and tokens apart by their tag.
            if raw.starts_with(&format!("{}_mcp_", self.format.prefix())) {
                Error::InvalidMcpToken
            } else {
                Error::InvalidApiKey
            }
        })?;
        let hash = parsed.secret.hash();
        let record = self.local.get_or_fetch(hash, min_revision, |floor| self.fetch(hash, floor)).await.map_err(
            |e| match e {
                LookupError::Failed(status) => keys_unavailable(&status),
                LookupError::Stale => {
                    tracing::warn!("credential record still older than an announced change after re-reading");
                    Error::Failure(Failure::Unavailable("an up-to-date credential record"))
                }
            },
        )?;
        let principal = evaluate(parsed.credential_type, record.record.as_deref(), self.clock.now())?;
        Ok((principal, record.revision))
    }

    /// Redis, unless what it holds is older than `floor`; then the keys service.
    async fn fetch(&self, hash: SecretHash, floor: u64) -> Result<CachedRecord, Status> {
        let key = record_key(&hash);
        self.cache_stats.lookups.inc();
        match self.cache.get_versioned(&key).await {
            Ok(Some((_, bytes))) => {
                if let Some(cached) =
                    LookupByHashResponse::decode(bytes.as_slice()).ok().and_then(|f| CachedRecord::from_lookup(&f).ok())
                    && cached.grants_at().is_none_or(|revision| revision >= floor)
                {
                    return Ok(cached);
                }
            }
            Ok(None) => {}
            // Redis is an optimisation: without it, the database answers.
            Err(e) => tracing::debug!(error = %e, "credential cache read failed"),
        }
        self.cache_stats.misses.inc();
        let request = self.outbound.request(LookupByHashRequest { hash: hash.as_bytes().to_vec() }, None);
        let found = self.keys.clone().lookup_by_hash(request).await?.into_inner();
        let ttl = if found.record.is_some() { FOUND_TTL } else { UNKNOWN_TTL };
        let revision = found.record.as_ref().map_or(0, |r| r.revision);
        // Never over a newer record: a change written meanwhile by the keys service wins.
        if let Err(e) = self.cache.set_unless_newer(&key, revision, &found.encode_to_vec(), ttl).await {
            tracing::debug!(error = %e, "credential cache write failed");
        }
        CachedRecord::from_lookup(&found)
    }

    /// Whether a bearer claims to be one of our keys or tokens.
    pub fn claims(&self, raw: &str) -> bool {
        self.format.claims(raw)
    }
}

/// The keys service did not answer usefully: an outage, whatever status it sent (an
/// internal-auth refusal is a misconfiguration, not a verdict on the customer's key).
fn keys_unavailable(status: &Status) -> Error {
    tracing::warn!(grpc_code = ?status.code(), message = status.message(), "credential lookup failed");
    Error::Failure(Failure::Unavailable("the keys service"))
}

#[cfg(test)]
mod weight_tests {
    use keyplane_common::credential::{CredentialType, Environment};
    use uuid::Uuid;

    use super::*;

    fn cached(pins: Vec<String>) -> CachedRecord {
        let record = KeyRecord {
            credential_type: CredentialType::ApiKey(Environment::Test),
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "a key of a usual name".into(),
            prefix: "phosra_test_abcd1234".into(),
            scopes: Scopes::parse(&["read:families", "write:families"]).unwrap(),
            resource_ids: pins,
            expires_at: None,
            revoked_at: None,
            previous_secret_until: None,
            is_previous_secret: false,
            created_by: None,
            revision: 1,
            rate_limit: None,
        };
        CachedRecord { revision: 1, record: Some(Arc::new(record)) }
    }

    /// A record weighs at least its strings with their allocations, so records pinned to
    /// many long ids cannot grow the cache past its budget; unknown secrets, which anyone
    /// can present, take no more room than the 100,000 entries of before.
    #[test]
    fn a_record_weighs_at_least_what_it_holds() {
        let pins: Vec<String> = (0..100).map(|i| format!("{i:0>128}")).collect();
        let held: usize = pins.iter().map(|p| p.len() + 24 + 16).sum();
        let heavy = cached(pins).weight();
        assert!(heavy as usize >= held + std::mem::size_of::<KeyRecord>(), "{heavy} for {held}");
        assert!(LOCAL_CACHE_BYTES / u64::from(heavy) < 10_000);
        assert!(LOCAL_CACHE_BYTES / u64::from(cached(vec!["fam_1".into()]).weight()) >= 100_000);
        let unknown = CachedRecord { revision: 0, record: None }.weight();
        assert!(LOCAL_CACHE_BYTES / u64::from(unknown) <= 100_000);
    }
}
