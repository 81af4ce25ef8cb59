//! Rate limits that hold across gateway replicas without a Redis round trip per request.
//!
//! Each replica decides locally, on fixed windows aligned to the clock (`unix time / window`,
//! the same on every replica): a request is admitted while the window's count, as last
//! learned from Redis, plus what this replica admitted since, is under the limit. Every
//! `sync` interval (100 ms by default) the replica adds what it admitted to the window's
//! Redis counter (`INCRBY`, one pipelined round trip for all of them) and learns the total
//! of every replica. This is the shape of Unkey's and Envoy's global limiters; governor's
//! GCRA state cannot take another replica's counts, hence this small piece by hand.
//!
//! The bound: between two syncs every replica admits against the total it saw last, so
//! with N replicas a key can pass its limit by what the other N-1 replicas admit for it in
//! one sync interval, and never by more than (N-1) × its limit in a window. (A replica
//! refreshes the totals of the keys it used since its last sync, so after an idle spell
//! its first interval of use counts as that one interval.) With Redis
//! unreachable each replica keeps limiting on its own (said in a log and the mode), never
//! refusing everything, and adds what it admitted once Redis is back.

use std::{
    collections::HashMap,
    hash::{BuildHasher, RandomState},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use keyplane_common::{cache::Cache, rate_limit::RateLimit, time::Clock};
use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How long a sync woken by a new bucket waits for others to join it.
const NEW_BUCKETS_GATHER: Duration = Duration::from_millis(5);

/// The least time between two syncs when new buckets wake them: a stream of new source
/// addresses must not turn the sync into a loop against Redis.
const NEW_BUCKETS_GAP: Duration = Duration::from_millis(25);

/// Shards of the window table: requests for different buckets rarely share a lock.
const SHARDS: usize = 16;

/// What one check decided, for the `RateLimit-*` headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the window ends.
    pub reset: u64,
}

/// One bucket's current window.
struct Window {
    index: u64,
    rate: RateLimit,
    /// The window's total over every replica, as Redis last said (ours included).
    global: u64,
    /// Admitted here since the last sync.
    pending: u64,
    /// Checked since the last sync: worth learning the other replicas' count for.
    seen: bool,
}

pub struct Limiter {
    clock: Clock,
    /// None: one process (the embedded default), nothing to reconcile with.
    cache: Option<Cache>,
    shards: Vec<Mutex<HashMap<String, Window>>>,
    /// SipHash, like the shards' maps: a bucket's name carries the client's address, which
    /// a caller with many addresses partly chooses.
    hasher: RandomState,
    /// Redis answered the last sync (limits hold across replicas).
    global: AtomicBool,
    /// A bucket new to this replica wakes the sync: learning the other replicas' count
    /// then takes one Redis round trip, not up to a whole interval.
    new_bucket: Notify,
    /// The mode, for `/metrics`.
    global_gauge: Gauge,
}

impl Limiter {
    pub fn new(clock: Clock, cache: &Cache, global_gauge: Gauge) -> Self {
        Self {
            clock,
            cache: cache.is_redis().then(|| cache.clone()),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            global: AtomicBool::new(true),
            new_bucket: Notify::new(),
            global_gauge,
        }
    }

    /// Counts a request against `bucket` at `rate`, unless the window is full.
    pub fn check(&self, bucket: String, rate: RateLimit) -> Decision {
        let now = self.clock.unix_seconds();
        let per = u64::from(rate.per_seconds);
        let index = now / per;
        let reset = (index + 1) * per - now;
        let mut shard = self.shard(&bucket).lock().expect("limiter lock");
        let window = shard.entry(bucket).or_insert_with(|| {
            if self.cache.is_some() {
                self.new_bucket.notify_one();
            }
            Window { index, rate, global: 0, pending: 0, seen: false }
        });
        if window.index != index || window.rate.per_seconds != rate.per_seconds {
            *window = Window { index, rate, global: 0, pending: 0, seen: false };
        }
        window.rate = rate;
        window.seen = true;
        let used = window.global + window.pending;
        let limit = u64::from(rate.requests);
        if used >= limit {
            return Decision { allowed: false, limit: rate.requests, remaining: 0, reset };
        }
        window.pending += 1;
        let remaining = u32::try_from(limit - used - 1).unwrap_or(0);
        Decision { allowed: true, limit: rate.requests, remaining, reset }
    }

    fn shard(&self, bucket: &str) -> &Mutex<HashMap<String, Window>> {
        let index = usize::try_from(self.hasher.hash_one(bucket) % SHARDS as u64).unwrap_or(0);
        &self.shards[index]
    }

    /// Whether limits currently hold across replicas (Redis answers), or each replica
    /// limits on its own.
    pub fn is_global(&self) -> bool {
        self.cache.is_none() || self.global.load(Ordering::Relaxed)
    }

    /// Adds what this replica admitted to Redis and learns every replica's totals; drops
    /// windows that ended.
    async fn sync(&self) {
        let now = u64::try_from(self.clock.now().timestamp()).unwrap_or(0);
        // (bucket, counter key, delta) of every window worth a word with Redis.
        let mut batch: Vec<(String, u64, u64, u64)> = Vec::new();
        for shard in &self.shards {
            let mut windows = shard.lock().expect("limiter lock");
            windows.retain(|_, w| w.index == now / u64::from(w.rate.per_seconds));
            if self.cache.is_none() {
                continue;
            }
            for (bucket, w) in windows.iter_mut() {
                if w.pending > 0 || w.seen {
                    batch.push((bucket.clone(), w.index, u64::from(w.rate.per_seconds), w.pending));
                    w.seen = false;
                }
            }
        }
        // One process (the embedded default): windows that ended were dropped; that is all.
        let Some(cache) = &self.cache else { return };
        if batch.is_empty() {
            // Nothing to add: a ping keeps the mode true all the same.
            self.set_global(cache.ping().await.map_err(|e| e.to_string()));
            return;
        }
        let deltas: Vec<(String, u64)> = batch
            .iter()
            .map(|(bucket, index, per, pending)| (format!("rl:{bucket}:{per}:{index}"), *pending))
            .collect();
        let longest = batch.iter().map(|(_, _, per, _)| *per).max().unwrap_or(1);
        match cache.add_to_counters(&deltas, Duration::from_secs(longest * 2)).await {
            Ok(totals) => {
                self.set_global(Ok(()));
                for ((bucket, index, _, sent), total) in batch.into_iter().zip(totals) {
                    let mut windows = self.shard(&bucket).lock().expect("limiter lock");
                    if let Some(w) = windows.get_mut(&bucket).filter(|w| w.index == index) {
                        w.pending = w.pending.saturating_sub(sent);
                        w.global = total;
                    }
                }
            }
            Err(e) => self.set_global(Err(e.to_string())),
        }
    }

    /// Records whether Redis answered, and says so when that changes.
    fn set_global(&self, answered: Result<(), String>) {
        self.global_gauge.set(i64::from(answered.is_ok()));
        match answered {
            Ok(()) => {
                if !self.global.swap(true, Ordering::Relaxed) {
                    tracing::info!("redis is back: rate limits hold across gateway replicas again");
                }
            }
            Err(error) => {
                if self.global.swap(false, Ordering::Relaxed) {
                    tracing::warn!(%error, "redis unreachable: each gateway replica now limits on its own");
                }
            }
        }
    }

    /// Syncs every `every` until `shutdown` (without Redis, only drops ended windows).
    pub fn spawn_sync(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let limiter = Arc::clone(self);
        let gap = NEW_BUCKETS_GAP.min(every);
        tokio::spawn(async move {
            let mut last = tokio::time::Instant::now();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                    () = limiter.new_bucket.notified() => {
                        // New buckets come in bursts (a client's first calls, many
                        // addresses at once): one round trip a moment later learns them all.
                        let gathered = tokio::time::Instant::now() + NEW_BUCKETS_GATHER;
                        tokio::time::sleep_until(gathered.max(last + gap)).await;
                    }
                }
                last = tokio::time::Instant::now();
                limiter.sync().await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rate(requests: u32, per_seconds: u32) -> RateLimit {
        RateLimit { requests, per_seconds }
    }

    #[test]
    fn a_window_admits_its_limit_then_refuses_until_it_ends() {
        let clock = Clock::adjustable();
        let limiter = Limiter::new(clock.clone(), &Cache::memory("t:"), Gauge::default());
        let decisions: Vec<Decision> = (0..4).map(|_| limiter.check("key:a".into(), rate(3, 60))).collect();
        assert_eq!(decisions.iter().map(|d| d.allowed).collect::<Vec<_>>(), [true, true, true, false]);
        assert_eq!(decisions.iter().map(|d| d.remaining).collect::<Vec<_>>(), [2, 1, 0, 0]);
        assert!(decisions.iter().all(|d| d.limit == 3 && (1..=60).contains(&d.reset)));
        assert!(limiter.check("key:b".into(), rate(3, 60)).allowed, "buckets are apart");
        clock.advance(Duration::from_secs(60));
        assert!(limiter.check("key:a".into(), rate(3, 60)).allowed, "a new window");
    }

    #[test]
    fn the_counts_of_other_replicas_count() {
        let limiter = Limiter::new(Clock::system(), &Cache::memory("t:"), Gauge::default());
        assert!(limiter.check("key:a".into(), rate(10, 60)).allowed);
        {
            let mut windows = limiter.shard("key:a").lock().unwrap();
            let window = windows.get_mut("key:a").unwrap();
            window.global = 9;
            window.pending = 0;
        }
        assert!(limiter.check("key:a".into(), rate(10, 60)).allowed, "the tenth");
        assert!(!limiter.check("key:a".into(), rate(10, 60)).allowed, "the others used nine");
    }
}
