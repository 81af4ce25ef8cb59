//! Telling every replica that a secret changed. The changed record, with its new revision,
//! goes to Redis unless Redis already holds a newer one (a compare-and-set), and the hash
//! and revision are published so local caches drop the entry and refuse any older grant.
//!
//! What Redis refuses is retried until it is back. A retry writes the credential's state
//! *at the time of the retry*, read again from the database, never the snapshot that
//! failed: a revocation that succeeded in between can't be undone by an old write.

use std::{collections::HashSet, time::Duration};

use keyplane_common::{
    cache::Cache,
    credential::SecretHash,
    credential_cache::{Change, publish_change, record_key},
};
use keyplane_proto::keys::v1::LookupByHashResponse;
use prost::Message;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{domain::key::Credential, store::Store};

/// How long a written record lives in Redis (as the read-through path's).
const RECORD_TTL: Duration = Duration::from_secs(300);
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// A secret whose change has not reached Redis yet.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct Unsent {
    credential: Uuid,
    hash: [u8; 32],
}

#[derive(Clone)]
pub struct Propagator {
    cache: Cache,
    retry: mpsc::UnboundedSender<Unsent>,
}

impl Propagator {
    pub fn start(cache: Cache, store: Store, shutdown: CancellationToken) -> Self {
        let (retry, queue) = mpsc::unbounded_channel();
        tokio::spawn(retry_until_written(cache.clone(), store, queue, shutdown));
        Self { cache, retry }
    }

    /// Publishes the state of `credential` for each of `hashes`: the secrets it holds or
    /// held before this change.
    pub async fn publish(&self, credential: &Credential, hashes: Vec<SecretHash>) {
        for hash in hashes {
            if let Err(e) = write(&self.cache, credential, hash).await {
                tracing::warn!(error = %e, "credential change not yet in the cache; retrying");
                let _ = self.retry.send(Unsent { credential: credential.id, hash: *hash.as_bytes() });
            }
        }
    }
}

/// Writes the record `credential` now gives `hash`, then announces the change. The
/// announcement goes out even when the write failed: replicas then skip the stale Redis
/// record by its revision and read the database.
async fn write(
    cache: &Cache,
    credential: &Credential,
    hash: SecretHash,
) -> Result<(), keyplane_common::cache::CacheError> {
    let revision = credential.revision;
    let record = credential.record_for(&hash).map(|r| r.to_proto());
    let value = LookupByHashResponse { record }.encode_to_vec();
    let written = cache.set_unless_newer(&record_key(&hash), revision, &value, RECORD_TTL).await;
    let announced = publish_change(cache, Change { hash, revision }).await;
    written.and(announced)
}

async fn retry_until_written(
    cache: Cache,
    store: Store,
    mut queue: mpsc::UnboundedReceiver<Unsent>,
    shutdown: CancellationToken,
) {
    let mut pending: HashSet<Unsent> = HashSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            unsent = queue.recv() => match unsent {
                Some(unsent) => { pending.insert(unsent); continue; }
                None => return,
            },
            () = tokio::time::sleep(RETRY_EVERY), if !pending.is_empty() => {}
        }
        let mut still = HashSet::new();
        for unsent in pending.drain() {
            // The state now, not the state that failed to arrive.
            let delivered = match store.get(unsent.credential).await {
                Ok(Some(credential)) => {
                    let hash = SecretHash::from_bytes(&unsent.hash).expect("32 bytes");
                    write(&cache, &credential, hash).await.is_ok()
                }
                Ok(None) => true,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read a credential to retry its cache write");
                    false
                }
            };
            if !delivered {
                still.insert(unsent);
            }
        }
        pending = still;
    }
}
