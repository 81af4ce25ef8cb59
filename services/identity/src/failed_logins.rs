//! Failed sign-ins, grouped in memory per (address, source) and written to the audit
//! outbox about once a second: one `auth.login_failed` event per group and second, with
//! its count, as rotated-key uses are. A password-spraying run is a handful of events,
//! not a row per guess, and the sign-in path waits on no write.
//!
//! An event about a known user names the user (the orgs service files a copy under each
//! of its orgs); a guess at an unknown address names the address.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use keyplane_common::{audit::AuditRecord, internal_auth::Caller};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::store::Store;

const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Groups held between flushes; past it, further sources of an address fold into one.
const MAX_GROUPS: usize = 10_000;
/// Attempted addresses are cut to this length: the group key is attacker-supplied.
const MAX_ADDRESS: usize = 320;
const OTHER_SOURCES: &str = "(other sources)";

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Source {
    address: String,
    ip: String,
    user_agent: String,
}

struct Group {
    user_id: Option<Uuid>,
    count: u64,
    first_at: DateTime<Utc>,
    last_at: DateTime<Utc>,
    request_id: String,
}

#[derive(Default)]
pub struct FailedLogins {
    groups: Mutex<HashMap<Source, Group>>,
    /// Events written to nothing yet (the database was away): kept for the next flush.
    unsent: Mutex<Vec<AuditRecord>>,
}

impl FailedLogins {
    pub fn record(&self, address: &str, user_id: Option<Uuid>, caller: &Caller, now: DateTime<Utc>) {
        let address: String = address.trim().to_lowercase().chars().take(MAX_ADDRESS).collect();
        let mut source = Source { address, ip: caller.client_ip.clone(), user_agent: caller.user_agent.clone() };
        let mut groups = self.groups.lock().expect("failed logins lock");
        if !groups.contains_key(&source) && groups.len() >= MAX_GROUPS {
            source.ip = String::new();
            source.user_agent = OTHER_SOURCES.to_owned();
        }
        let group = groups.entry(source).or_insert_with(|| Group {
            user_id,
            count: 0,
            first_at: now,
            last_at: now,
            request_id: String::new(),
        });
        group.count += 1;
        group.last_at = now;
        group.request_id.clone_from(&caller.request_id);
    }

    fn take(&self) -> Vec<AuditRecord> {
        let groups = std::mem::take(&mut *self.groups.lock().expect("failed logins lock"));
        groups.into_iter().map(|(source, group)| event(source, group)).collect()
    }

    /// Writes what was counted to the outbox; what cannot be written waits (bounded).
    async fn flush(&self, store: &Store, relay: &Notify) {
        let mut events = std::mem::take(&mut *self.unsent.lock().expect("failed logins lock"));
        events.extend(self.take());
        if events.is_empty() {
            return;
        }
        match store.enqueue_audit(&events).await {
            Ok(()) => relay.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, events = events.len(), "failed sign-ins not audited yet; will retry");
                events.truncate(MAX_GROUPS);
                *self.unsent.lock().expect("failed logins lock") = events;
            }
        }
    }

    pub fn spawn_flusher(
        self: &Arc<Self>,
        store: Store,
        relay: Arc<Notify>,
        shutdown: CancellationToken,
    ) -> tokio::task::JoinHandle<()> {
        let logins = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(FLUSH_EVERY) => logins.flush(&store, &relay).await,
                }
            }
            logins.flush(&store, &relay).await;
        })
    }
}

fn event(source: Source, group: Group) -> AuditRecord {
    let target = match group.user_id {
        Some(user_id) => ("user", user_id.to_string()),
        None => ("email", source.address.clone()),
    };
    let mut event = AuditRecord::platform(("anonymous", source.ip.clone()), "auth.login_failed", target);
    event.at = group.last_at;
    event.ip = source.ip;
    event.user_agent = source.user_agent;
    event.metadata = serde_json::json!({
        "email": source.address,
        "count": group.count,
        "first_at": group.first_at,
        "last_at": group.last_at,
        "request_id": group.request_id,
    });
    event
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: &str) -> Caller {
        Caller { client_ip: ip.into(), user_agent: "curl".into(), ..Caller::default() }
    }

    #[test]
    fn failures_are_grouped_per_address_and_source() {
        let logins = FailedLogins::default();
        let (now, user) = (Utc::now(), Uuid::now_v7());
        for _ in 0..3 {
            logins.record("Dev@Example.com", Some(user), &from("192.0.2.1"), now);
        }
        logins.record("dev@example.com", Some(user), &from("192.0.2.2"), now);
        logins.record("nobody@example.com", None, &from("192.0.2.1"), now);
        let mut events = logins.take();
        events.sort_by_key(|e| (e.target_id.clone(), e.ip.clone()));
        assert_eq!(events.len(), 3);
        let counts: Vec<u64> = events.iter().map(|e| e.metadata["count"].as_u64().unwrap()).collect();
        assert!(counts.contains(&3) && counts.iter().sum::<u64>() == 5, "{counts:?}");
        assert!(events.iter().all(|e| e.is_platform() && e.action == "auth.login_failed"));
        assert!(events.iter().any(|e| e.target_type == "email" && e.target_id == "nobody@example.com"));
        assert!(logins.take().is_empty());
    }

    #[test]
    fn past_the_bound_sources_fold_and_counts_stay_exact() {
        let logins = FailedLogins::default();
        let now = Utc::now();
        for i in 0..(MAX_GROUPS + 5) {
            logins.record("a@example.com", None, &from(&format!("10.0.{}.{}", i / 256, i % 256)), now);
        }
        let events = logins.take();
        assert_eq!(events.len(), MAX_GROUPS + 1);
        let folded = events.iter().find(|e| e.user_agent == OTHER_SOURCES).unwrap();
        assert_eq!(folded.metadata["count"], 5);
    }
}
