//! Telling every replica that a secret changed: the new record overwrites the cached one
//! in Redis (read-through writers only fill empty slots, so they cannot undo this), and
//! the hash is published so local caches drop it. What Redis refuses is retried until
//! it is back; PostgreSQL holds the truth meanwhile.

use std::{collections::HashMap, time::Duration};

use keyplane_common::{
    cache::Cache,
    credential::SecretHash,
    credential_cache::{publish_revocation, record_key},
};
use keyplane_proto::keys::v1::{CredentialRecord, LookupByHashResponse};
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// How long a written record lives in Redis (as the read-through path's).
const RECORD_TTL: Duration = Duration::from_secs(300);

pub struct Change {
    pub hash: SecretHash,
    pub record: Option<CredentialRecord>,
}

#[derive(Clone)]
pub struct Propagator {
    cache: Cache,
    retry: mpsc::UnboundedSender<Change>,
}

impl Propagator {
    pub fn start(cache: Cache, shutdown: CancellationToken) -> Self {
        let (retry, queue) = mpsc::unbounded_channel();
        tokio::spawn(retry_until_written(cache.clone(), queue, shutdown));
        Self { cache, retry }
    }

    pub async fn publish(&self, changes: Vec<Change>) {
        for change in changes {
            if let Err(e) = write(&self.cache, &change).await {
                tracing::warn!(error = %e, "credential change not yet in the cache; retrying");
                let _ = self.retry.send(change);
            }
        }
    }
}

async fn write(cache: &Cache, change: &Change) -> Result<(), keyplane_common::cache::CacheError> {
    let value = LookupByHashResponse { record: change.record.clone() }.encode_to_vec();
    cache.set(&record_key(&change.hash), &value, RECORD_TTL).await?;
    publish_revocation(cache, &change.hash).await
}

async fn retry_until_written(cache: Cache, mut queue: mpsc::UnboundedReceiver<Change>, shutdown: CancellationToken) {
    let mut pending: HashMap<[u8; 32], Change> = HashMap::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            change = queue.recv() => match change {
                // The newest change of a hash is the one that matters.
                Some(change) => { pending.insert(*change.hash.as_bytes(), change); continue; }
                None => return,
            },
            () = tokio::time::sleep(Duration::from_secs(1)), if !pending.is_empty() => {}
        }
        let mut still = HashMap::new();
        for (key, change) in pending.drain() {
            if write(&cache, &change).await.is_err() {
                still.insert(key, change);
            }
        }
        pending = still;
    }
}
