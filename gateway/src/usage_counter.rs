//! Requests counted per (org, key, hour, status class) in memory, and added to the usage
//! service's hourly rollups about once a second and on shutdown. Counting is a hash-map
//! increment under a lock: no I/O on the request's path.
//!
//! Delivery is exact:
//! - each batch carries an id chosen here, and the usage service adds an id once, so a
//!   batch sent again after a lost answer is not counted twice;
//! - a batch that failed is "in doubt" and is sent again as it is, same id, before anything
//!   new; meanwhile new counts keep adding up in memory (counts add, so an outage costs
//!   memory per distinct row, not per second);
//! - past the bound on distinct rows, further rows are not counted: they are counted as
//!   dropped and logged, never silently lost.

use std::{
    collections::VecDeque,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use chrono::{DateTime, TimeZone, Utc};
use keyplane_common::{internal_auth::Caller, time, time::Clock};
use keyplane_proto::usage::v1::{RecordRequest, UsageCount};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use keyplane_common::metrics::Metrics;

use crate::upstream::Upstream;

/// How much the counter holds.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Distinct (org, key, hour, class) rows held before delivery (≈ 100 bytes each).
    pub rows: usize,
    /// Counts in one `Record` message (≈ 100 bytes each, far under gRPC's 4 MiB).
    pub batch: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Self { rows: 500_000, batch: 5_000 }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Row {
    org_id: Uuid,
    key_id: Option<Uuid>,
    /// Hours since the epoch.
    hour: i64,
    class: u8,
}

pub struct UsageCounter {
    bounds: Bounds,
    clock: Clock,
    /// foldhash: counted into on every keyed request, by ids the platform issued.
    pending: Mutex<foldhash::HashMap<Row, u64>>,
    /// Batches sent and not acknowledged, oldest first: sent again, as they are.
    in_doubt: tokio::sync::Mutex<VecDeque<RecordRequest>>,
    /// Requests not counted since the last report.
    dropped: AtomicU64,
    metrics: Arc<Metrics>,
}

/// What a flush left behind.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    pub requests: u64,
    pub rows: usize,
}

impl UsageCounter {
    pub fn new(bounds: Bounds, clock: Clock, metrics: Arc<Metrics>) -> Self {
        Self {
            bounds,
            clock,
            pending: Mutex::default(),
            in_doubt: tokio::sync::Mutex::default(),
            dropped: AtomicU64::new(0),
            metrics,
        }
    }

    /// Counts one request of `org_id`, made with `key_id` (None: a session), answered
    /// `status`.
    pub fn count(&self, org_id: Uuid, key_id: Option<Uuid>, status: u16) {
        let row = Row {
            org_id,
            key_id,
            hour: self.clock.now().timestamp().div_euclid(3600),
            class: u8::try_from(status / 100).unwrap_or(5).clamp(1, 5),
        };
        let mut pending = self.pending.lock().expect("usage lock");
        if let Some(requests) = pending.get_mut(&row) {
            *requests += 1;
        } else if pending.len() < self.bounds.rows {
            pending.insert(row, 1);
        } else {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// What was counted since the last take, in batches of at most `bounds.batch` rows.
    fn take(&self) -> Vec<RecordRequest> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("usage lock"));
        let counts: Vec<UsageCount> = pending.into_iter().map(|(row, count)| usage_count(row, count)).collect();
        counts
            .chunks(self.bounds.batch.max(1))
            .map(|chunk| RecordRequest { batch_id: Uuid::now_v7().to_string(), counts: chunk.to_vec() })
            .collect()
    }

    /// Sends what is in doubt, then what was counted since; stops at the first failure
    /// (what failed stays in doubt for the next flush). Answers what is left.
    pub async fn flush(&self, upstream: &Upstream) -> Backlog {
        let mut in_doubt = self.in_doubt.lock().await;
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            self.metrics.usage_dropped.inc_by(dropped);
            tracing::warn!(dropped, rows = self.bounds.rows, "requests not counted: the usage counter was full");
        }
        let origin = Caller { service: "gateway".into(), ..Caller::default() };
        let mut took = false;
        loop {
            if in_doubt.is_empty() && !took {
                in_doubt.extend(self.take());
                took = true;
            }
            let Some(batch) = in_doubt.front() else { break };
            match upstream.record_usage(&origin, batch.clone()).await {
                Ok(_) => {
                    in_doubt.pop_front();
                }
                Err(e) if e.status == axum::http::StatusCode::BAD_REQUEST => {
                    // A batch the usage service will never take: sending it again would
                    // block every count behind it.
                    let lost: u64 = batch.counts.iter().map(|c| c.count).sum();
                    tracing::error!(code = %e.code, lost, "usage batch refused; its requests are not counted");
                    in_doubt.pop_front();
                }
                Err(e) => {
                    tracing::warn!(code = %e.code, batches = in_doubt.len(), "usage not recorded yet; will retry");
                    break;
                }
            }
        }
        let pending = self.pending.lock().expect("usage lock");
        let in_doubt_requests: u64 = in_doubt.iter().flat_map(|b| &b.counts).map(|c| c.count).sum();
        let backlog = Backlog {
            requests: in_doubt_requests + pending.values().sum::<u64>(),
            rows: in_doubt.iter().map(|b| b.counts.len()).sum::<usize>() + pending.len(),
        };
        self.metrics.usage_backlog.set(i64::try_from(backlog.requests).unwrap_or(i64::MAX));
        backlog
    }
}

impl UsageCounter {
    /// Flushes every `every` until `shutdown`, then once more; what cannot be delivered
    /// then is lost with the process, and said so.
    pub fn spawn_flusher(
        self: &Arc<Self>,
        upstream: Upstream,
        every: Duration,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let counter = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(every) => { counter.flush(&upstream).await; }
                }
            }
            let left = counter.flush(&upstream).await;
            if left.requests > 0 {
                tracing::error!(requests = left.requests, rows = left.rows, "usage not delivered at shutdown is lost");
            }
        })
    }
}

fn usage_count(row: Row, count: u64) -> UsageCount {
    let hour: DateTime<Utc> = Utc.timestamp_opt(row.hour * 3600, 0).single().unwrap_or_default();
    UsageCount {
        org_id: row.org_id.to_string(),
        key_id: row.key_id.map(|k| k.to_string()).unwrap_or_default(),
        hour: Some(time::to_proto(hour)),
        status_class: u32::from(row.class),
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn total(batches: &[RecordRequest]) -> u64 {
        batches.iter().flat_map(|b| &b.counts).map(|c| c.count).sum()
    }

    #[test]
    fn requests_fold_into_rows_per_key_hour_and_class() {
        let counter = UsageCounter::new(Bounds::default(), Clock::system(), Arc::default());
        let (org, key) = (Uuid::now_v7(), Uuid::now_v7());
        for status in [200, 201, 204, 404, 500, 503] {
            counter.count(org, Some(key), status);
        }
        counter.count(org, None, 200);
        let batches = counter.take();
        assert_eq!(batches.len(), 1);
        let mut rows: Vec<(String, u32, u64)> =
            batches[0].counts.iter().map(|c| (c.key_id.clone(), c.status_class, c.count)).collect();
        rows.sort();
        assert_eq!(
            rows,
            vec![(String::new(), 2, 1), (key.to_string(), 2, 3), (key.to_string(), 4, 1), (key.to_string(), 5, 2)]
        );
        assert!(counter.take().is_empty(), "a take empties the counter");
    }

    #[test]
    fn past_the_row_bound_requests_are_counted_as_dropped() {
        let counter = UsageCounter::new(Bounds { rows: 2, batch: 1 }, Clock::system(), Arc::default());
        let org = Uuid::now_v7();
        let (a, b, c) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        for key in [a, b, c, c, a] {
            counter.count(org, Some(key), 200);
        }
        assert_eq!(counter.dropped.load(Ordering::Relaxed), 2, "the third key's two requests");
        let batches = counter.take();
        assert_eq!(batches.len(), 2, "one row per batch");
        assert_eq!(total(&batches), 3, "the rows that fit stay exact");
        assert_ne!(batches[0].batch_id, batches[1].batch_id);
    }

    #[test]
    fn rows_are_cut_by_the_counters_clock_hour() {
        let clock = Clock::adjustable();
        let counter = UsageCounter::new(Bounds::default(), clock.clone(), Arc::default());
        let org = Uuid::now_v7();
        counter.count(org, None, 200);
        clock.advance(std::time::Duration::from_secs(3600));
        counter.count(org, None, 200);
        let hours: std::collections::HashSet<_> =
            counter.take().iter().flat_map(|b| b.counts.clone()).map(|c| c.hour.unwrap().seconds).collect();
        assert_eq!(hours.len(), 2);
        assert!(hours.iter().all(|s| s % 3600 == 0), "each row is at the start of its hour");
    }
}
