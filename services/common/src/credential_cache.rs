//! The small in-process cache of credential verdicts that gateway and identity replicas
//! keep in front of Redis, with the revocation protocol of ARCHITECTURE.md:
//!
//! - every change of a credential gives its record a new, larger revision, and publishes
//!   the secret's hash with that revision; every replica drops the entry and remembers the
//!   revision as the hash's floor;
//! - a value that grants access is never served or kept below its hash's floor, wherever
//!   it came from (another replica's cache that has not heard of the change yet, a read
//!   that raced the change): the order in which caches hear of a change is irrelevant;
//! - a refusal is final (a revoked, expired or unknown secret never becomes valid again),
//!   so it has no revision to be stale by;
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
    metrics::CacheStats,
};

/// The bus channel on which changed secrets are published: `<hash hex>:<revision>`.
pub const REVOCATIONS_CHANNEL: &str = "revocations";

/// How long a hash's floor is remembered: longer than any cache keeps a record (Redis
/// keeps one five minutes), so no cache can still hold a record older than the floor.
const FLOOR_TTL: Duration = Duration::from_secs(600);
/// Fetches in one lookup before a value that is still too old is given up on.
const MAX_FETCHES: usize = 3;
/// Hashes whose floor is remembered: announcements are few (one per change of a
/// credential), so this outlasts `FLOOR_TTL` at any plausible rate of change.
const MAX_FLOORS: u64 = 100_000;

/// The shared-cache key of the credential record behind a secret's hash.
pub fn record_key(hash: &SecretHash) -> String {
    format!("cred:{}", hash.to_hex())
}

/// A cached value knows how long it may be kept, and the revision of a grant.
pub trait Expiring: Clone + Send + Sync + 'static {
    fn ttl(&self) -> Duration;

    /// How much of the cache's capacity the value takes: one entry unless a value says
    /// otherwise (the gateway's verdicts count their bytes, which vary a hundredfold).
    fn weight(&self) -> u32 {
        1
    }

    /// The revision of the record behind a value that grants access; None for a refusal,
    /// which is final and so never stale.
    fn grants_at(&self) -> Option<u64>;
}

/// The weight at which `entries` values fill `budget`: what a value anyone can cause (the
/// verdict on an unknown secret) is charged, so that such values never crowd out more
/// than that many entries, however few bytes each holds.
pub const fn share_of(budget: u64, entries: u64) -> u32 {
    let weight = budget.div_ceil(entries);
    if weight > u32::MAX as u64 { u32::MAX } else { weight as u32 }
}

/// A secret's record changed: it now has this revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub hash: SecretHash,
    pub revision: u64,
}

impl Change {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.hash.to_hex(), self.revision)
    }

    pub fn decode(payload: &[u8]) -> Option<Self> {
        let (hash, revision) = std::str::from_utf8(payload).ok()?.split_once(':')?;
        Some(Self { hash: SecretHash::from_hex(hash)?, revision: revision.parse().ok()? })
    }
}

/// Why a lookup found no value it may use.
#[derive(Debug)]
pub enum LookupError<E> {
    /// The fetch failed; failures are never cached.
    Failed(Arc<E>),
    /// Every source answered a grant older than a change already announced.
    Stale,
}

/// The caches' hasher: foldhash, seeded per process. Their keys are SHA-256 digests, which
/// no caller can steer into one bucket, so SipHash's resistance would buy nothing for what
/// it costs on every lookup.
type Hasher = foldhash::fast::RandomState;

pub struct LocalCredentialCache<V: Expiring> {
    entries: moka::future::Cache<SecretHash, V, Hasher>,
    /// The newest revision announced for each hash.
    floors: moka::sync::Cache<SecretHash, u64, Hasher>,
    generation: AtomicU64,
    trusted: AtomicBool,
    stats: CacheStats,
}

struct TtlOf;

impl<V: Expiring> moka::Expiry<SecretHash, V> for TtlOf {
    fn expire_after_create(&self, _: &SecretHash, value: &V, _: Instant) -> Option<Duration> {
        Some(value.ttl())
    }
}

impl<V: Expiring> LocalCredentialCache<V> {
    /// An untrusted cache: it serves nothing until [`follow`](Self::follow) has subscribed.
    /// `capacity` bounds the sum of the values' [`weight`](Expiring::weight)s.
    pub fn new(capacity: u64, stats: CacheStats) -> Arc<Self> {
        Arc::new(Self {
            entries: moka::future::Cache::builder()
                .max_capacity(capacity)
                .weigher(|_, value: &V| value.weight())
                .expire_after(TtlOf)
                .build_with_hasher(Hasher::default()),
            floors: moka::sync::Cache::builder()
                .max_capacity(MAX_FLOORS)
                .time_to_live(FLOOR_TTL)
                .build_with_hasher(Hasher::default()),
            generation: AtomicU64::new(0),
            trusted: AtomicBool::new(false),
            stats,
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
            this.set_trusted(false);
        });
    }

    async fn apply(&self, event: BusEvent) {
        match event {
            BusEvent::Message(payload) => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                match Change::decode(&payload) {
                    Some(change) => self.learn(change).await,
                    None => self.entries.invalidate_all(),
                }
            }
            BusEvent::Lost => {
                self.set_trusted(false);
                tracing::warn!("revocation feed lost: local credential cache bypassed until it is back");
            }
            BusEvent::Connected => {
                self.generation.fetch_add(1, Ordering::SeqCst);
                self.entries.invalidate_all();
                self.set_trusted(true);
            }
        }
    }

    fn set_trusted(&self, trusted: bool) {
        self.trusted.store(trusted, Ordering::SeqCst);
        self.stats.feed_up.set(i64::from(trusted));
    }

    /// Takes a change into account: the floor rises first, so that a fetch racing the
    /// invalidation cannot put the old value back.
    pub async fn learn(&self, change: Change) {
        self.floors.entry(change.hash).and_compute_with(|current| match current {
            Some(floor) if *floor.value() >= change.revision => moka::ops::compute::Op::Nop,
            _ => moka::ops::compute::Op::Put(change.revision),
        });
        self.entries.invalidate(&change.hash).await;
    }

    pub fn is_trusted(&self) -> bool {
        self.trusted.load(Ordering::SeqCst)
    }

    /// The newest revision announced for `hash` (0 when none was).
    pub fn floor(&self, hash: &SecretHash) -> u64 {
        self.floors.get(hash).unwrap_or(0)
    }

    /// The cached value, or `fetch`'s. `fetch` is told the least revision a grant must
    /// have (the announced floor, or `at_least` if the caller knows a newer one), and asked
    /// again when it answers an older grant. Concurrent misses for one hash share one
    /// fetch; failures are never cached.
    pub async fn get_or_fetch<E, F, Fut>(&self, hash: SecretHash, at_least: u64, fetch: F) -> Result<V, LookupError<E>>
    where
        E: Send + Sync + 'static,
        F: Fn(u64) -> Fut,
        Fut: Future<Output = Result<V, E>>,
    {
        self.stats.lookups.inc();
        // Counted when a fetch runs, not when its future is made (a hit never polls it).
        let fetch = |floor| {
            let fetching = fetch(floor);
            async move {
                self.stats.misses.inc();
                fetching.await
            }
        };
        let floor = || self.floor(&hash).max(at_least);
        let stale = |value: &V, floor: u64| value.grants_at().is_some_and(|revision| revision < floor);
        for _ in 0..MAX_FETCHES {
            let value = if self.is_trusted() {
                let cached = self.entries.get(&hash).await;
                // The floor is read after the entry: `learn` raises it before it
                // invalidates, so a change announced between the two is seen here.
                let wanted = floor();
                match cached {
                    // A hit no announced change outdates: one lookup, the hot path.
                    Some(cached) if !stale(&cached, wanted) => return Ok(cached),
                    Some(_) => self.entries.invalidate(&hash).await,
                    None => {}
                }
                let generation = self.generation.load(Ordering::SeqCst);
                let value = self.entries.try_get_with(hash, fetch(wanted)).await.map_err(LookupError::Failed)?;
                if self.generation.load(Ordering::SeqCst) != generation {
                    // The feed moved while we fetched: keep nothing that may predate it.
                    self.entries.invalidate(&hash).await;
                }
                value
            } else {
                fetch(floor()).await.map_err(|e| LookupError::Failed(Arc::new(e)))?
            };
            if !stale(&value, floor()) {
                return Ok(value);
            }
            self.entries.invalidate(&hash).await;
        }
        Err(LookupError::Stale)
    }
}

/// Tells every replica that a secret's record changed.
pub async fn publish_change(cache: &Cache, change: Change) -> Result<(), crate::cache::CacheError> {
    cache.publish(REVOCATIONS_CHANNEL, change.encode().as_bytes()).await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A grant at a revision (`Some`), or a refusal.
    #[derive(Clone, Debug, PartialEq)]
    struct V(Option<u64>);

    impl Expiring for V {
        fn ttl(&self) -> Duration {
            Duration::from_secs(60)
        }

        fn grants_at(&self) -> Option<u64> {
            self.0
        }
    }

    async fn trusted() -> Arc<LocalCredentialCache<V>> {
        let cache = LocalCredentialCache::<V>::new(100, CacheStats::default());
        cache.apply(BusEvent::Connected).await;
        cache
    }

    fn ok(v: V) -> impl Fn(u64) -> std::future::Ready<Result<V, ()>> {
        move |_| std::future::ready(Ok(v.clone()))
    }

    #[tokio::test]
    async fn a_published_change_drops_the_entry_everywhere() {
        let bus = Cache::memory("t:");
        let shutdown = CancellationToken::new();
        let a = LocalCredentialCache::<V>::new(100, CacheStats::default());
        let b = LocalCredentialCache::<V>::new(100, CacheStats::default());
        a.follow(&bus, shutdown.clone());
        b.follow(&bus, shutdown.clone());
        while !(a.is_trusted() && b.is_trusted()) {
            tokio::task::yield_now().await;
        }
        let hash = SecretHash::of("k");
        for cache in [&a, &b] {
            assert_eq!(cache.get_or_fetch(hash, 0, ok(V(Some(1)))).await.unwrap(), V(Some(1)));
            let cached = cache.get_or_fetch(hash, 0, ok(V(Some(9)))).await.unwrap();
            assert_eq!(cached, V(Some(1)), "served from the cache");
        }
        publish_change(&bus, Change { hash, revision: 2 }).await.unwrap();
        for cache in [&a, &b] {
            let mut value = V(Some(1));
            for _ in 0..1000 {
                value = cache.get_or_fetch(hash, 0, ok(V(None))).await.unwrap();
                if value == V(None) {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert_eq!(value, V(None), "the revoked entry was fetched again");
        }
        shutdown.cancel();
    }

    /// The window inside `learn`: the floor is raised and the entry not yet dropped. A
    /// hit is held to the floor as it stands after the entry was read, so the old grant is
    /// not served from the cache; the source is asked, with the new floor.
    #[tokio::test]
    async fn a_cached_grant_under_a_raised_floor_is_not_served_before_its_invalidation() {
        let cache = trusted().await;
        let hash = SecretHash::of("k");
        cache.get_or_fetch(hash, 0, ok(V(Some(1)))).await.unwrap();
        cache.floors.insert(hash, 2);
        let asked_with = std::sync::Mutex::new(Vec::new());
        let source = |floor: u64| {
            asked_with.lock().unwrap().push(floor);
            std::future::ready(Ok::<_, ()>(V(None)))
        };
        assert_eq!(cache.get_or_fetch(hash, 0, source).await.unwrap(), V(None), "the revocation, not the cache");
        assert_eq!(*asked_with.lock().unwrap(), [2], "asked once, with the raised floor");
    }

    /// The race of the security review: this replica hears of the revocation first, and
    /// the replica it asks (identity) still answers the old grant from its own cache.
    #[tokio::test]
    async fn a_grant_older_than_an_announced_change_is_never_kept() {
        let cache = trusted().await;
        let hash = SecretHash::of("k");
        cache.get_or_fetch(hash, 0, ok(V(Some(1)))).await.unwrap();
        cache.learn(Change { hash, revision: 2 }).await;

        // The peer ignores the floor and keeps answering revision 1: refused, not cached.
        let asked = AtomicUsize::new(0);
        let stubborn = |_floor: u64| {
            asked.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<_, ()>(V(Some(1))))
        };
        assert!(matches!(cache.get_or_fetch(hash, 0, stubborn).await, Err(LookupError::Stale)));
        assert_eq!(asked.load(Ordering::SeqCst), MAX_FETCHES, "asked again, with the floor");

        // A peer that honours the floor reads the truth (here: revoked), which is kept.
        let honest = |floor: u64| std::future::ready(Ok::<_, ()>(if floor >= 2 { V(None) } else { V(Some(1)) }));
        assert_eq!(cache.get_or_fetch(hash, 0, honest).await.unwrap(), V(None));
        assert_eq!(cache.get_or_fetch(hash, 0, ok(V(Some(1)))).await.unwrap(), V(None), "the refusal is cached");
    }

    #[tokio::test]
    async fn a_caller_that_knows_a_newer_revision_bypasses_an_older_entry() {
        let cache = trusted().await;
        let hash = SecretHash::of("k");
        cache.get_or_fetch(hash, 0, ok(V(Some(3)))).await.unwrap();
        let fresh = cache.get_or_fetch(hash, 5, ok(V(Some(5)))).await.unwrap();
        assert_eq!(fresh, V(Some(5)));
    }

    #[tokio::test]
    async fn floors_only_rise() {
        let cache = trusted().await;
        let hash = SecretHash::of("k");
        cache.learn(Change { hash, revision: 7 }).await;
        cache.learn(Change { hash, revision: 4 }).await;
        assert_eq!(cache.floor(&hash), 7);
        assert_eq!(
            Change::decode(Change { hash, revision: 7 }.encode().as_bytes()),
            Some(Change { hash, revision: 7 })
        );
        assert_eq!(Change::decode(b"not a change"), None);
    }

    #[tokio::test]
    async fn a_lost_feed_means_no_trust_until_it_is_back() {
        let cache = trusted().await;
        let hash = SecretHash::of("k");
        cache.get_or_fetch(hash, 0, ok(V(Some(1)))).await.unwrap();
        cache.apply(BusEvent::Lost).await;
        assert!(!cache.is_trusted());
        let fetched = cache.get_or_fetch(hash, 0, ok(V(Some(2)))).await.unwrap();
        assert_eq!(fetched, V(Some(2)), "not served from a cache that may have missed a revocation");
        cache.apply(BusEvent::Connected).await;
        let after = cache.get_or_fetch(hash, 0, ok(V(Some(3)))).await.unwrap();
        assert_eq!(after, V(Some(3)), "back in service with an empty cache");
    }
}
