//! The small in-process cache of credential verdicts that gateway and identity replicas
//! keep in front of Redis, with the revocation protocol of ARCHITECTURE.md:
//!
//! - a revocation publishes the secret's hash; every replica drops that entry;
//! - a fetch that raced a revocation is not kept (a generation counter tells);
//! - while the subscription is lost, the cache is not trusted: every lookup goes through,
//!   and the cache starts empty once the subscription is back.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use tokio_util::sync::CancellationToken;

use crate::{
    cache::{BusEvent, Cache},
    credential::SecretHash,
};

/// The bus channel on which revoked (or changed) secrets' hashes are published, hex.
pub const REVOCATIONS_CHANNEL: &str = "revocations";

/// The shared-cache key of the credential record behind a secret's hash.
pub fn record_key(hash: &SecretHash) -> String {
    format!("cred:{}", hash.to_hex())
}

/// A cached value knows how long it may be kept.
pub trait Expiring: Clone + Send + Sync + 'static {
    fn ttl(&self) -> Duration;
}

pub struct LocalCredentialCache<V: Expiring> {
    entries: moka::future::Cache<SecretHash, V>,
    generation: AtomicU64,
    trusted: AtomicBool,
}

struct TtlOf;

impl<V: Expiring> moka::Expiry<SecretHash, V> for TtlOf {
    fn expire_after_create(&self, _: &SecretHash, value: &V, _: Instant) -> Option<Duration> {
        Some(value.ttl())
    }
}

impl<V: Expiring> LocalCredentialCache<V> {
    /// An untrusted cache: it serves nothing until [`follow`](Self::follow) has subscribed.
    pub fn new(capacity: u64) -> Arc<Self> {
        Arc::new(Self {
            entries: moka::future::Cache::builder().max_capacity(capacity).expire_after(TtlOf).build(),
            generation: AtomicU64::new(0),
            trusted: AtomicBool::new(false),
        })
    }

    /// Follows the revocation channel until `shutdown`.
    pub fn follow(self: &Arc<Self>, cache: &Cache, shutdown: CancellationToken) {
        let mut events = cache.subscribe(REVOCATIONS_CHANNEL, shutdown);
        let this = Arc::clone(self);
        tokio::spawn(async move {
            while let Some(event) = events.recv().await {
                this.apply(event).await;
            }
            this.trusted.store(false, Ordering::SeqCst);
        });
    }

    async fn apply(&self, event: BusEvent) {
        match event {
            BusEvent::Message(payload) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                match std::str::from_utf8(&payload).ok().and_then(SecretHash::from_hex) {
                    Some(hash) => self.entries.invalidate(&hash).await,
                    None => self.entries.invalidate_all(),
                }
            }
            BusEvent::Lost => {
                self.trusted.store(false, Ordering::SeqCst);
                tracing::warn!("revocation feed lost: local credential cache bypassed until it is back");
            }
            BusEvent::Connected => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.entries.invalidate_all();
                self.trusted.store(true, Ordering::SeqCst);
            }
        }
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    /// The cached value, or `fetch`'s. Concurrent misses for one hash share one fetch;
    /// errors are never cached.
    pub async fn get_or_fetch<E, F>(&self, hash: SecretHash, fetch: F) -> Result<V, Arc<E>>
    where
        E: Send + Sync + 'static,
        F: Future<Output = Result<V, E>>,
    {
        if !self.is_trusted() {
            return fetch.await.map_err(Arc::new);
        }
        let generation = self.generation.load(Ordering::SeqCst);
        let result = self.entries.try_get_with(hash, fetch).await;
        if self.generation.load(Ordering::SeqCst) != generation {
            // A revocation arrived while we fetched: what we fetched may predate it.
            self.entries.invalidate(&hash).await;
        }
        result
    }

    pub async fn invalidate(&self, hash: &SecretHash) {
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.entries.invalidate(hash).await;
    }
}

/// Tells every replica that a secret changed: the hash, hex, on the revocation channel.
pub async fn publish_revocation(cache: &Cache, hash: &SecretHash) -> Result<(), crate::cache::CacheError> {
    cache.publish(REVOCATIONS_CHANNEL, hash.to_hex().as_bytes()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone)]
    struct V(u32);

    impl Expiring for V {
        fn ttl(&self) -> Duration {
            Duration::from_secs(60)
        }
    }

    #[tokio::test]
    async fn a_published_revocation_drops_the_entry_everywhere() {
        let bus = Cache::memory("t:");
        let shutdown = CancellationToken::new();
        let a = LocalCredentialCache::<V>::new(100);
        let b = LocalCredentialCache::<V>::new(100);
        a.follow(&bus, shutdown.clone());
        b.follow(&bus, shutdown.clone());
        while !(a.is_trusted() && b.is_trusted()) {
            tokio::task::yield_now().await;
        }
        let hash = SecretHash::of("k");
        for cache in [&a, &b] {
            let v = cache.get_or_fetch(hash, async { Ok::<_, ()>(V(1)) }).await.unwrap();
            assert_eq!(v.0, 1);
            let cached = cache.get_or_fetch(hash, async { Ok::<_, ()>(V(2)) }).await.unwrap();
            assert_eq!(cached.0, 1, "served from the cache");
        }
        publish_revocation(&bus, &hash).await.unwrap();
        for cache in [&a, &b] {
            let mut value = 1;
            for _ in 0..1000 {
                value = cache.get_or_fetch(hash, async { Ok::<_, ()>(V(3)) }).await.unwrap().0;
                if value == 3 {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(value, 3, "the revoked entry was fetched again");
        }
        shutdown.cancel();
    }

    #[tokio::test]
    async fn a_lost_feed_means_no_trust_until_it_is_back() {
        let cache = LocalCredentialCache::<V>::new(100);
        let hash = SecretHash::of("k");
        cache.apply(BusEvent::Connected).await;
        cache.get_or_fetch(hash, async { Ok::<_, ()>(V(1)) }).await.unwrap();
        cache.apply(BusEvent::Lost).await;
        assert!(!cache.is_trusted());
        let fetched = cache.get_or_fetch(hash, async { Ok::<_, ()>(V(2)) }).await.unwrap();
        assert_eq!(fetched.0, 2, "not served from a cache that may have missed a revocation");
        cache.apply(BusEvent::Connected).await;
        let after = cache.get_or_fetch(hash, async { Ok::<_, ()>(V(3)) }).await.unwrap();
        assert_eq!(after.0, 3, "back in service with an empty cache");
    }
}
