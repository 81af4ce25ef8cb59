//! Key use, counted in memory and flushed to `keys.RecordUse` about once a second (and on
//! shutdown): `last_used_at`, and every use of a rotated key's previous secret, one entry
//! per source (address and user agent). Never a database write per request.
//!
//! Delivery is exact, bounded and idempotent:
//! - a flush is cut into chunks far under gRPC's 4 MiB message limit;
//! - each chunk has an id chosen here, applied once by the keys service, and its audit
//!   events have ids chosen here: a chunk sent again after a lost answer changes nothing;
//! - chunks that cannot be delivered wait for the next flush, oldest first, up to a bound;
//!   what falls past a bound is counted and logged, never silently lost.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, Utc};
use keyplane_common::{internal_auth::Caller, principal::KeyPrincipal, time};
use keyplane_proto::keys::v1::{KeyUse, RecordUseRequest, RotatedUse};
use prost::Message;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::upstream::Upstream;

const FLUSH_EVERY: Duration = Duration::from_secs(1);

/// How much the meter holds, and how big one message may be.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Distinct keys counted between flushes; uses of further keys are dropped (counted).
    pub keys: usize,
    /// Distinct sources of previous-secret use between flushes, all keys together; past
    /// it, a key's further sources fold into one entry (counts stay exact).
    pub sources: usize,
    /// Encoded bytes of one `RecordUse` message.
    pub chunk_bytes: usize,
    /// Encoded bytes of chunks waiting for a keys service that is away.
    pub unsent_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { keys: 200_000, sources: 100_000, chunk_bytes: 512 * 1024, unsent_bytes: 64 * 1024 * 1024 }
    }
}

#[derive(Default)]
pub struct UseMeter {
    bounds: Bounds,
    counting: Mutex<Counting>,
    unsent: Mutex<Unsent>,
    /// Uses not counted since the last report, for the log.
    dropped: AtomicU64,
}

#[derive(Default)]
struct Counting {
    /// foldhash: looked up on every keyed request, by ids the platform issued.
    keys: foldhash::HashMap<Uuid, Pending>,
    sources: usize,
}

struct Pending {
    last_used_at: DateTime<Utc>,
    rotated: HashMap<(String, String), RotatedUse>,
}

#[derive(Default)]
struct Unsent {
    chunks: VecDeque<RecordUseRequest>,
    bytes: usize,
}

/// The entry that uses past the source bound fold into.
const OTHER_SOURCES: &str = "(other sources)";

impl UseMeter {
    pub fn new(bounds: Bounds) -> Self {
        Self { bounds, ..Self::default() }
    }

    pub fn record(&self, key: &KeyPrincipal, origin: &Caller) {
        let now = time::now();
        let mut counting = self.counting.lock().expect("meter lock");
        let Counting { keys, sources } = &mut *counting;
        if !keys.contains_key(&key.key_id) && keys.len() >= self.bounds.keys {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let entry = keys.entry(key.key_id).or_insert_with(|| Pending { last_used_at: now, rotated: HashMap::new() });
        entry.last_used_at = entry.last_used_at.max(now);
        if key.grace_ends_at.is_none() {
            return;
        }
        let mut source = (origin.client_ip.clone(), origin.user_agent.clone());
        if !entry.rotated.contains_key(&source) {
            if *sources >= self.bounds.sources {
                source = (String::new(), OTHER_SOURCES.to_owned());
            } else {
                *sources += 1;
            }
        }
        let used = entry.rotated.entry(source.clone()).or_insert_with(|| RotatedUse {
            org_id: key.org_id.to_string(),
            first_at: Some(time::to_proto(now)),
            ip: source.0,
            user_agent: source.1,
            event_id: Uuid::now_v7().to_string(),
            ..RotatedUse::default()
        });
        used.count += 1;
        used.last_at = Some(time::to_proto(now));
        used.request_id.clone_from(&origin.request_id);
    }

    /// What was counted since the last take, in chunks that each fit one message.
    fn take(&self) -> Vec<RecordUseRequest> {
        let pending = std::mem::take(&mut *self.counting.lock().expect("meter lock")).keys;
        let mut chunks = Vec::new();
        let mut chunk = RecordUseRequest::default();
        let mut size = 0;
        for (key_id, p) in pending {
            let mut rotated: Vec<RotatedUse> = p.rotated.into_values().collect();
            // A key with very many sources is split over several chunks.
            loop {
                let mut part = KeyUse {
                    key_id: key_id.to_string(),
                    last_used_at: Some(time::to_proto(p.last_used_at)),
                    rotated_uses: Vec::new(),
                };
                let mut part_size = part.encoded_len() + 8;
                while let Some(used) = rotated.pop() {
                    let used_size = used.encoded_len() + 8;
                    if part_size + used_size > self.bounds.chunk_bytes / 2 && !part.rotated_uses.is_empty() {
                        rotated.push(used);
                        break;
                    }
                    part_size += used_size;
                    part.rotated_uses.push(used);
                }
                if size + part_size > self.bounds.chunk_bytes && !chunk.uses.is_empty() {
                    chunks.push(sealed(std::mem::take(&mut chunk)));
                    size = 0;
                }
                size += part_size;
                chunk.uses.push(part);
                if rotated.is_empty() {
                    break;
                }
            }
        }
        if !chunk.uses.is_empty() {
            chunks.push(sealed(chunk));
        }
        chunks
    }

    /// Queues chunks behind the ones already waiting; past the bound, the oldest go.
    fn enqueue(&self, chunks: Vec<RecordUseRequest>) {
        let mut unsent = self.unsent.lock().expect("meter lock");
        for chunk in chunks {
            unsent.bytes += chunk.encoded_len();
            unsent.chunks.push_back(chunk);
        }
        while unsent.bytes > self.bounds.unsent_bytes {
            let Some(oldest) = unsent.chunks.pop_front() else { break };
            unsent.bytes -= oldest.encoded_len();
            let lost: u64 = oldest.uses.iter().map(|u| 1 + u.rotated_uses.iter().map(|r| r.count).sum::<u64>()).sum();
            self.dropped.fetch_add(lost, Ordering::Relaxed);
        }
    }

    /// Delivers what was counted, oldest chunk first; what fails waits for the next flush.
    pub async fn flush(&self, upstream: &Upstream) {
        self.enqueue(self.take());
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(dropped, "key uses not recorded: the meter was full");
        }
        let origin = Caller { service: "gateway".into(), ..Caller::default() };
        loop {
            let Some(chunk) = self.unsent.lock().expect("meter lock").chunks.front().cloned() else { return };
            if let Err(e) = upstream.record_use(&origin, chunk.clone()).await {
                let waiting = self.unsent.lock().expect("meter lock").chunks.len();
                tracing::warn!(code = %e.code, waiting, "key use not recorded yet; will retry");
                return;
            }
            let mut unsent = self.unsent.lock().expect("meter lock");
            if unsent.chunks.front().is_some_and(|front| front.batch_id == chunk.batch_id) {
                unsent.bytes -= chunk.encoded_len();
                unsent.chunks.pop_front();
            }
        }
    }

    /// Flushes every second until `shutdown`, then once more.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        upstream: Upstream,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let meter = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(FLUSH_EVERY) => meter.flush(&upstream).await,
                }
            }
            meter.flush(&upstream).await;
        })
    }
}

/// A chunk with its id: the keys service applies each id once.
fn sealed(mut chunk: RecordUseRequest) -> RecordUseRequest {
    chunk.batch_id = Uuid::now_v7().to_string();
    chunk
}

#[cfg(test)]
mod tests {
    use keyplane_common::{credential::Environment, scope::Scopes};

    use super::*;

    fn key(in_grace: bool) -> KeyPrincipal {
        KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes: Scopes::Full,
            resource_ids: vec![],
            expires_at: None,
            grace_ends_at: in_grace.then(Utc::now),
            revision: 1,
            rate_limit: None,
            created_by: None,
        }
    }

    fn from(ip: &str) -> Caller {
        Caller { client_ip: ip.into(), user_agent: "curl".into(), ..Caller::default() }
    }

    fn rotated_count(chunks: &[RecordUseRequest]) -> u64 {
        chunks.iter().flat_map(|c| &c.uses).flat_map(|u| &u.rotated_uses).map(|r| r.count).sum()
    }

    #[test]
    fn uses_are_folded_per_key_and_source() {
        let meter = UseMeter::default();
        let (fresh, rotated) = (key(false), key(true));
        for _ in 0..3 {
            meter.record(&fresh, &from("203.0.113.1"));
            meter.record(&rotated, &from("203.0.113.1"));
        }
        let chunks = meter.take();
        assert_eq!(chunks.len(), 1);
        let uses = &chunks[0].uses;
        assert_eq!(uses.len(), 2);
        let rotated_use = uses.iter().find(|u| u.key_id == rotated.key_id.to_string()).unwrap();
        assert_eq!((rotated_use.rotated_uses.len(), rotated_use.rotated_uses[0].count), (1, 3));
        assert!(Uuid::parse_str(&rotated_use.rotated_uses[0].event_id).is_ok(), "the event id is ours");
        assert!(Uuid::parse_str(&chunks[0].batch_id).is_ok());
    }

    #[test]
    fn a_flush_past_the_message_limit_is_cut_into_chunks() {
        let meter = UseMeter::default();
        let leaked = key(true);
        let long_agent = "a".repeat(256);
        for i in 0..20_000u32 {
            let origin = Caller {
                client_ip: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                user_agent: long_agent.clone(),
                ..Caller::default()
            };
            meter.record(&leaked, &origin);
            meter.record(&key(false), &origin);
        }
        let chunks = meter.take();
        assert!(chunks.len() > 1);
        assert!(chunks.iter().all(|c| c.encoded_len() <= Bounds::default().chunk_bytes), "every chunk fits");
        assert_eq!(rotated_count(&chunks), 20_000, "every use is in some chunk");
        let sources: usize = chunks.iter().flat_map(|c| &c.uses).map(|u| u.rotated_uses.len()).sum();
        assert_eq!(sources, 20_000, "every source keeps its address");
        let ids: std::collections::HashSet<_> = chunks.iter().map(|c| c.batch_id.clone()).collect();
        assert_eq!(ids.len(), chunks.len(), "one id per chunk");
    }

    #[test]
    fn past_the_bounds_uses_are_counted_as_dropped_and_sources_fold() {
        let meter = UseMeter::new(Bounds { keys: 2, sources: 2, ..Bounds::default() });
        let leaked = key(true);
        for ip in ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"] {
            meter.record(&leaked, &from(ip));
        }
        meter.record(&key(false), &from("192.0.2.9"));
        meter.record(&key(false), &from("192.0.2.9"));
        assert_eq!(meter.dropped.load(Ordering::Relaxed), 1, "the third key was not counted");
        let chunks = meter.take();
        let entries: Vec<&RotatedUse> = chunks.iter().flat_map(|c| &c.uses).flat_map(|u| &u.rotated_uses).collect();
        assert_eq!(entries.len(), 3, "two sources and the fold");
        assert_eq!(rotated_count(&chunks), 4, "counts stay exact");
        assert!(entries.iter().any(|r| r.user_agent == OTHER_SOURCES && r.count == 2));
    }

    #[test]
    fn waiting_chunks_are_bounded_oldest_first() {
        let meter = UseMeter::new(Bounds { unsent_bytes: 400, ..Bounds::default() });
        for _ in 0..10 {
            meter.record(&key(false), &from("192.0.2.1"));
            meter.enqueue(meter.take());
        }
        let unsent = meter.unsent.lock().unwrap();
        assert!(unsent.bytes <= 400 && unsent.chunks.len() < 10);
        assert_eq!(meter.dropped.load(Ordering::Relaxed), 10 - unsent.chunks.len() as u64, "each loss is counted");
    }
}
