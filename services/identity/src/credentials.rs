//! Identity's side of the hot path for API keys and MCP tokens: the local cache, then
//! Redis, then `keys.LookupByHash`, with the record written back to Redis.

use std::{sync::Arc, time::Duration};

use keyplane_common::{
    cache::Cache,
    credential::{KeyFormat, SecretHash},
    credential_cache::{Expiring, LocalCredentialCache, record_key},
    error::clone_status,
    grpc::Outbound,
    principal::Principal,
};
use keyplane_proto::keys::v1::{
    CredentialRecord, LookupByHashRequest, LookupByHashResponse, keys_service_client::KeysServiceClient,
};
use prost::Message;
use tonic::{Status, transport::Channel};

use crate::{domain::credential::evaluate, error::Error};

/// How long Redis keeps a record; changes overwrite it sooner.
const FOUND_TTL: Duration = Duration::from_secs(300);
/// How long Redis remembers that a hash is unknown: random valid-CRC keys cost one
/// database query each per window.
const UNKNOWN_TTL: Duration = Duration::from_secs(60);
/// How long this replica keeps a record without hearing of a change.
const LOCAL_TTL: Duration = Duration::from_secs(30);

#[derive(Clone)]
pub struct CachedRecord(Option<Arc<CredentialRecord>>);

impl Expiring for CachedRecord {
    fn ttl(&self) -> Duration {
        LOCAL_TTL
    }
}

pub struct KeyAuthenticator {
    pub format: KeyFormat,
    pub local: Arc<LocalCredentialCache<CachedRecord>>,
    pub cache: Cache,
    pub keys: KeysServiceClient<Channel>,
    pub outbound: Outbound,
}

impl KeyAuthenticator {
    pub async fn authenticate(&self, raw: &str) -> Result<Principal, Error> {
        let parsed = self.format.parse(raw).map_err(|_| {
            // The shape check needs no lookup; tell keys and tokens apart by their tag.
            if raw.starts_with(&format!("{}_mcp_", self.format.prefix())) {
                Error::InvalidMcpToken
            } else {
                Error::InvalidApiKey
            }
        })?;
        let hash = parsed.secret.hash();
        let record = self
            .local
            .get_or_fetch(hash, self.fetch(hash))
            .await
            .map_err(|status| Error::from(clone_status(&status)))?;
        evaluate(parsed.credential_type, record.0.as_deref(), keyplane_common::time::now())
    }

    async fn fetch(&self, hash: SecretHash) -> Result<CachedRecord, Status> {
        let key = record_key(&hash);
        match self.cache.get(&key).await {
            Ok(Some(bytes)) => {
                if let Ok(found) = LookupByHashResponse::decode(bytes.as_slice()) {
                    return Ok(CachedRecord(found.record.map(Arc::new)));
                }
            }
            Ok(None) => {}
            // Redis is an optimisation: without it, the database answers.
            Err(e) => tracing::debug!(error = %e, "credential cache read failed"),
        }
        let request = self.outbound.request(LookupByHashRequest { hash: hash.as_bytes().to_vec() }, None);
        let found = self.keys.clone().lookup_by_hash(request).await?.into_inner();
        let ttl = if found.record.is_some() { FOUND_TTL } else { UNKNOWN_TTL };
        // Only if absent: a change written meanwhile by the keys service wins.
        if let Err(e) = self.cache.set_if_absent(&key, &found.encode_to_vec(), ttl).await {
            tracing::debug!(error = %e, "credential cache write failed");
        }
        Ok(CachedRecord(found.record.map(Arc::new)))
    }

    /// Whether a bearer claims to be one of our keys or tokens.
    pub fn claims(&self, raw: &str) -> bool {
        self.format.claims(raw)
    }
}
