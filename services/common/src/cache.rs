//! The shared cache and broadcast bus: Redis in production, in-process for the embedded
//! default. Every key and channel is namespaced by the deployment's prefix, so tests (and
//! deployments) can share one Redis.
//!
//! The cache is an optimisation, never the truth: every error here is for the caller to
//! fall back to the database on, and no operation waits long on a Redis that is down.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::StreamExt;
use redis::{AsyncCommands, aio::ConnectionManager};

use crate::redis_link::{REDIS_TIMEOUT, RedisLink};
use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("redis is unavailable")]
    Unavailable,
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
}

/// What a subscriber learns from the bus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BusEvent {
    /// Subscribed (again): messages from now on arrive; any sent while away were missed.
    Connected,
    Message(Vec<u8>),
    /// The subscription is gone; messages may be missed until the next `Connected`.
    Lost,
}

#[derive(Clone)]
pub struct Cache {
    inner: Arc<Inner>,
}

struct Inner {
    prefix: String,
    backend: Backend,
}

enum Backend {
    Redis(RedisBackend),
    Memory(MemoryBackend),
}

struct RedisBackend {
    /// The server: one address, or the master Sentinel names.
    link: Arc<RedisLink>,
    /// After a connection failure, skip Redis until then (ms since `epoch`), so that a
    /// Redis outage costs one timeout per second rather than one per request.
    down_until_ms: AtomicU64,
    epoch: Instant,
}

/// How often a subscription under Sentinel asks whether the master moved.
const SENTINEL_CHECK: Duration = Duration::from_secs(2);
/// How long to leave Redis alone after it failed.
const BREAKER_OPEN: Duration = Duration::from_secs(1);

struct MemoryBackend {
    store: moka::sync::Cache<String, MemoryEntry>,
    channels: Mutex<HashMap<String, broadcast::Sender<Vec<u8>>>>,
}

#[derive(Clone)]
struct MemoryEntry {
    value: Arc<[u8]>,
    ttl: Duration,
}

struct PerEntryTtl;

impl moka::Expiry<String, MemoryEntry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, value: &MemoryEntry, _: Instant) -> Option<Duration> {
        Some(value.ttl)
    }

    fn expire_after_update(
        &self,
        _: &String,
        value: &MemoryEntry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

impl Cache {
    /// A Redis-backed cache. It connects lazily: a Redis that is down at start-up
    /// degrades the platform rather than stopping it.
    pub fn redis(url: &str, prefix: &str) -> Result<Self, CacheError> {
        let link = RedisLink::open(url)?;
        Ok(Self::with_backend(
            prefix,
            Backend::Redis(RedisBackend { link, down_until_ms: AtomicU64::new(0), epoch: Instant::now() }),
        ))
    }

    /// The in-process cache and bus of the embedded default.
    pub fn memory(prefix: &str) -> Self {
        let store = moka::sync::Cache::builder().max_capacity(100_000).expire_after(PerEntryTtl).build();
        Self::with_backend(prefix, Backend::Memory(MemoryBackend { store, channels: Mutex::default() }))
    }

    fn with_backend(prefix: &str, backend: Backend) -> Self {
        Self { inner: Arc::new(Inner { prefix: prefix.to_owned(), backend }) }
    }

    pub fn is_redis(&self) -> bool {
        matches!(self.inner.backend, Backend::Redis(_))
    }

    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.inner.prefix)
    }

    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let key = self.key(key);
        match &self.inner.backend {
            Backend::Memory(m) => Ok(m.store.get(&key).map(|e| e.value.to_vec())),
            Backend::Redis(r) => r.run("GET", |mut c| async move { c.get(key).await }).await,
        }
    }

    pub async fn set(&self, key: &str, value: &[u8], ttl: Duration) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.inner.backend {
            Backend::Memory(m) => {
                m.store.insert(key, MemoryEntry { value: value.into(), ttl });
                Ok(())
            }
            Backend::Redis(r) => {
                let value = value.to_vec();
                r.run("SET", |mut c| async move { c.set_ex(key, value, ttl.as_secs().max(1)).await }).await
            }
        }
    }

    /// Writes only if nothing is there: read-through caches use this, so a record they
    /// read before a concurrent change never overwrites what that change wrote.
    pub async fn set_if_absent(&self, key: &str, value: &[u8], ttl: Duration) -> Result<bool, CacheError> {
        let key = self.key(key);
        match &self.inner.backend {
            Backend::Memory(m) => {
                let entry = m.store.entry(key).or_insert_with(|| MemoryEntry { value: value.into(), ttl });
                Ok(entry.is_fresh())
            }
            Backend::Redis(r) => {
                let value = value.to_vec();
                r.run("SET", |mut c| async move {
                    let options = redis::SetOptions::default()
                        .conditional_set(redis::ExistenceCheck::NX)
                        .with_expiration(redis::SetExpiry::EX(ttl.as_secs().max(1)));
                    let set: Option<String> = c.set_options(key, value, options).await?;
                    Ok(set.is_some())
                })
                .await
            }
        }
    }

    /// A value written by [`set_unless_newer`](Self::set_unless_newer), with its revision.
    pub async fn get_versioned(&self, key: &str) -> Result<Option<(u64, Vec<u8>)>, CacheError> {
        Ok(self.get(key).await?.and_then(|stored| split_revision(&stored).map(|(r, v)| (r, v.to_vec()))))
    }

    /// Writes `value` at `revision` unless the stored value has a newer revision: a write
    /// that arrives late (a retry, or a read-through that raced a change) never replaces
    /// what a newer change wrote. Answers whether it wrote.
    pub async fn set_unless_newer(
        &self,
        key: &str,
        revision: u64,
        value: &[u8],
        ttl: Duration,
    ) -> Result<bool, CacheError> {
        let key = self.key(key);
        let mut stored = format!("{revision}:").into_bytes();
        stored.extend_from_slice(value);
        match &self.inner.backend {
            Backend::Memory(m) => {
                let result = m.store.entry(key).and_compute_with(|current| match current {
                    Some(entry) if split_revision(&entry.value().value).is_some_and(|(r, _)| r > revision) => {
                        moka::ops::compute::Op::Nop
                    }
                    _ => moka::ops::compute::Op::Put(MemoryEntry { value: stored.into(), ttl }),
                });
                Ok(!matches!(result, moka::ops::compute::CompResult::Unchanged(_)))
            }
            Backend::Redis(r) => {
                let ttl = ttl.as_secs().max(1);
                r.run("EVALSHA", |mut c| async move {
                    let written: i32 =
                        SET_UNLESS_NEWER.key(key).arg(revision).arg(stored).arg(ttl).invoke_async(&mut c).await?;
                    Ok(written == 1)
                })
                .await
            }
        }
    }

    pub async fn delete(&self, key: &str) -> Result<(), CacheError> {
        let key = self.key(key);
        match &self.inner.backend {
            Backend::Memory(m) => {
                m.store.invalidate(&key);
                Ok(())
            }
            Backend::Redis(r) => r.run("DEL", |mut c| async move { c.del::<_, ()>(key).await }).await,
        }
    }

    pub async fn publish(&self, channel: &str, message: &[u8]) -> Result<(), CacheError> {
        let channel = self.key(channel);
        match &self.inner.backend {
            Backend::Memory(m) => {
                // Nobody listening is fine: there is nothing to invalidate then.
                let _ = m.sender(&channel).send(message.to_vec());
                Ok(())
            }
            Backend::Redis(r) => {
                let message = message.to_vec();
                r.run("PUBLISH", |mut c| async move { c.publish::<_, _, ()>(channel, message).await }).await
            }
        }
    }

    /// Adds each delta to its counter (made at 0, kept for `ttl` after its last add) and
    /// answers the new totals, in one round trip: the rate limiter's reconciliation.
    pub async fn add_to_counters(&self, deltas: &[(String, u64)], ttl: Duration) -> Result<Vec<u64>, CacheError> {
        let keys: Vec<String> = deltas.iter().map(|(k, _)| self.key(k)).collect();
        match &self.inner.backend {
            Backend::Memory(m) => Ok(keys
                .into_iter()
                .zip(deltas)
                .map(|(key, (_, delta))| {
                    let entry = m.store.entry(key).and_upsert_with(|current| {
                        let total = current.map_or(0, |e| counter_value(&e.into_value().value)) + delta;
                        MemoryEntry { value: total.to_string().into_bytes().into(), ttl }
                    });
                    counter_value(&entry.into_value().value)
                })
                .collect()),
            Backend::Redis(r) => {
                let deltas: Vec<u64> = deltas.iter().map(|(_, d)| *d).collect();
                let ttl = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
                r.run("PIPELINE", |mut c| async move {
                    let mut pipe = redis::pipe();
                    for (key, delta) in keys.iter().zip(&deltas) {
                        pipe.incr(key, *delta).cmd("EXPIRE").arg(key).arg(ttl).ignore();
                    }
                    pipe.query_async(&mut c).await
                })
                .await
            }
        }
    }

    /// Whether the cache answers, for readiness.
    pub async fn ping(&self) -> Result<(), CacheError> {
        match &self.inner.backend {
            Backend::Memory(_) => Ok(()),
            Backend::Redis(r) => {
                r.run("PING", |mut c| async move { redis::cmd("PING").query_async::<()>(&mut c).await }).await
            }
        }
    }

    /// Follows a channel until `shutdown`, re-subscribing after every loss.
    pub fn subscribe(&self, channel: &str, shutdown: CancellationToken) -> mpsc::Receiver<BusEvent> {
        let (tx, rx) = mpsc::channel(1024);
        let channel = self.key(channel);
        let cache = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = cache.follow(channel, tx) => {}
            }
        });
        rx
    }

    async fn follow(&self, channel: String, tx: mpsc::Sender<BusEvent>) {
        match &self.inner.backend {
            Backend::Memory(m) => {
                let mut rx = m.sender(&channel).subscribe();
                if tx.send(BusEvent::Connected).await.is_err() {
                    return;
                }
                loop {
                    let event = match rx.recv().await {
                        Ok(message) => BusEvent::Message(message),
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            // Missed messages: make the subscriber start afresh.
                            if tx.send(BusEvent::Lost).await.is_err() {
                                return;
                            }
                            BusEvent::Connected
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if tx.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Backend::Redis(r) => {
                let mut backoff = Duration::from_millis(50);
                loop {
                    let Some(link) = r.link.current() else {
                        r.link.refresh();
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(2));
                        continue;
                    };
                    match link.client.get_async_pubsub().await {
                        Ok(mut pubsub) => match pubsub.subscribe(&channel).await {
                            Ok(()) => {
                                backoff = Duration::from_millis(50);
                                if tx.send(BusEvent::Connected).await.is_err() {
                                    return;
                                }
                                let mut messages = pubsub.into_on_message();
                                // Under Sentinel, ask every few seconds whether the master
                                // moved, and follow it.
                                let mut check = tokio::time::interval(SENTINEL_CHECK);
                                check.tick().await;
                                loop {
                                    tokio::select! {
                                        message = messages.next() => {
                                            let Some(message) = message else { break };
                                            let payload: Vec<u8> = message.get_payload_bytes().to_vec();
                                            if tx.send(BusEvent::Message(payload)).await.is_err() {
                                                return;
                                            }
                                        }
                                        _ = check.tick(), if r.link.follows_sentinel() => {
                                            r.link.refresh();
                                            if r.link.current().is_some_and(|now| now.addr != link.addr) {
                                                break;
                                            }
                                        }
                                    }
                                }
                                tracing::warn!(channel = %channel, "redis subscription lost");
                            }
                            Err(e) => tracing::warn!(error = %e, "redis subscribe failed"),
                        },
                        Err(e) => tracing::debug!(error = %e, "redis pubsub connection failed"),
                    }
                    if tx.send(BusEvent::Lost).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
    }
}

/// Compare-and-set by revision, atomically in Redis. Values are `<revision>:<bytes>`.
static SET_UNLESS_NEWER: std::sync::LazyLock<redis::Script> = std::sync::LazyLock::new(|| {
    redis::Script::new(
        r"
        local current = redis.call('GET', KEYS[1])
        if current then
            local revision = tonumber(string.match(current, '^(%d+):'))
            if revision and revision > tonumber(ARGV[1]) then return 0 end
        end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        return 1
        ",
    )
});

/// A counter's value as the memory backend keeps it (decimal text, as Redis does).
fn counter_value(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
}

/// `<revision>:<bytes>` split in two.
fn split_revision(stored: &[u8]) -> Option<(u64, &[u8])> {
    let colon = stored.iter().position(|b| *b == b':')?;
    let revision = std::str::from_utf8(&stored[..colon]).ok()?.parse().ok()?;
    Some((revision, &stored[colon + 1..]))
}

impl MemoryBackend {
    fn sender(&self, channel: &str) -> broadcast::Sender<Vec<u8>> {
        let mut channels = self.channels.lock().expect("bus lock poisoned");
        channels.entry(channel.to_owned()).or_insert_with(|| broadcast::channel(4096).0).clone()
    }
}

impl RedisBackend {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Runs one command (`operation` names it in traces) unless the breaker is open.
    async fn run<T, F, Fut>(&self, operation: &'static str, op: F) -> Result<T, CacheError>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if self.now_ms() < self.down_until_ms.load(Ordering::Relaxed) {
            return Err(CacheError::Unavailable);
        }
        let Some(link) = self.link.current() else {
            // No master named yet: open the breaker (which asks the sentinels again) rather
            // than ask on every command of every request.
            self.trip();
            return Err(CacheError::Unavailable);
        };
        // A client span named by the OpenTelemetry database conventions, for the exporter.
        let span = if crate::telemetry::exporting() {
            tracing::info_span!(
                "redis",
                otel.name = operation,
                otel.kind = "client",
                db.system.name = "redis",
                db.operation.name = operation,
            )
        } else {
            tracing::Span::none()
        };
        let command = tokio::time::timeout(REDIS_TIMEOUT, op(link.manager.clone()));
        match tracing::Instrument::instrument(command, span).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() || e.is_timeout() {
                    self.trip();
                } else if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) {
                    // A failover made our master a replica: ask Sentinel where it went.
                    self.link.refresh();
                }
                Err(e.into())
            }
            Err(_) => {
                self.trip();
                Err(CacheError::Unavailable)
            }
        }
    }

    fn trip(&self) {
        let until = self.now_ms() + u64::try_from(BREAKER_OPEN.as_millis()).unwrap_or(1000);
        self.down_until_ms.store(until, Ordering::Relaxed);
        self.link.refresh();
    }
}
