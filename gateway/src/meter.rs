//! Key use, counted in memory and flushed to `keys.RecordUse` about once a second (and on
//! shutdown): `last_used_at`, and every use of a rotated key's previous secret. Never a
//! database write per request.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use chrono::{DateTime, Utc};
use keyplane_common::{internal_auth::Caller, principal::KeyPrincipal, time};
use keyplane_proto::keys::v1::{KeyUse, RecordUseRequest, RotatedUse};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::upstream::Upstream;

const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Distinct sources of rotated-secret use kept per key between flushes; more are folded
/// into one entry, so memory stays bounded while the keys service is away.
const MAX_SOURCES_PER_KEY: usize = 100;

#[derive(Default)]
pub struct UseMeter {
    pending: Mutex<HashMap<Uuid, Pending>>,
}

struct Pending {
    last_used_at: DateTime<Utc>,
    rotated: HashMap<(String, String), RotatedUse>,
}

impl UseMeter {
    pub fn record(&self, key: &KeyPrincipal, origin: &Caller) {
        let now = time::now();
        let mut pending = self.pending.lock().expect("meter lock");
        let entry = pending.entry(key.key_id).or_insert_with(|| Pending { last_used_at: now, rotated: HashMap::new() });
        entry.last_used_at = entry.last_used_at.max(now);
        if key.grace_ends_at.is_some() {
            let source = if entry.rotated.len() < MAX_SOURCES_PER_KEY {
                (origin.client_ip.clone(), origin.user_agent.clone())
            } else {
                (String::new(), "(other sources)".to_owned())
            };
            let used = entry.rotated.entry(source.clone()).or_insert_with(|| RotatedUse {
                org_id: key.org_id.to_string(),
                first_at: Some(time::to_proto(now)),
                ip: source.0,
                user_agent: source.1,
                ..RotatedUse::default()
            });
            used.count += 1;
            used.last_at = Some(time::to_proto(now));
            used.request_id.clone_from(&origin.request_id);
        }
    }

    fn take(&self) -> Vec<KeyUse> {
        let pending = std::mem::take(&mut *self.pending.lock().expect("meter lock"));
        pending
            .into_iter()
            .map(|(key_id, p)| KeyUse {
                key_id: key_id.to_string(),
                last_used_at: Some(time::to_proto(p.last_used_at)),
                rotated_uses: p.rotated.into_values().collect(),
            })
            .collect()
    }

    /// Puts back what could not be delivered, merged with what arrived meanwhile.
    fn restore(&self, uses: Vec<KeyUse>) {
        let mut pending = self.pending.lock().expect("meter lock");
        for u in uses {
            let (Ok(key_id), Some(at)) =
                (Uuid::parse_str(&u.key_id), u.last_used_at.as_ref().and_then(time::from_proto))
            else {
                continue;
            };
            let entry = pending.entry(key_id).or_insert_with(|| Pending { last_used_at: at, rotated: HashMap::new() });
            entry.last_used_at = entry.last_used_at.max(at);
            for r in u.rotated_uses {
                let merged = entry
                    .rotated
                    .entry((r.ip.clone(), r.user_agent.clone()))
                    .or_insert_with(|| RotatedUse { count: 0, ..r.clone() });
                merged.count += r.count;
                merged.first_at = r.first_at.or(merged.first_at);
            }
        }
    }

    /// Delivers the counts now; what fails is kept for the next flush.
    pub async fn flush(&self, upstream: &Upstream) {
        let uses = self.take();
        if uses.is_empty() {
            return;
        }
        let origin = Caller { service: "gateway".into(), ..Caller::default() };
        if let Err(e) = upstream.record_use(&origin, RecordUseRequest { uses: uses.clone() }).await {
            tracing::warn!(code = %e.code, "key use not recorded yet; will retry");
            self.restore(uses);
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
            created_by: None,
        }
    }

    #[test]
    fn uses_are_folded_per_key_and_source() {
        let meter = UseMeter::default();
        let (fresh, rotated) = (key(false), key(true));
        let origin = Caller { client_ip: "203.0.113.1".into(), user_agent: "curl".into(), ..Caller::default() };
        for _ in 0..3 {
            meter.record(&fresh, &origin);
            meter.record(&rotated, &origin);
        }
        let uses = meter.take();
        assert_eq!(uses.len(), 2);
        let rotated_use = uses.iter().find(|u| u.key_id == rotated.key_id.to_string()).unwrap();
        assert_eq!(rotated_use.rotated_uses.len(), 1);
        assert_eq!(rotated_use.rotated_uses[0].count, 3);
        assert!(uses.iter().find(|u| u.key_id == fresh.key_id.to_string()).unwrap().rotated_uses.is_empty());
        meter.restore(uses);
        meter.record(&rotated, &origin);
        let again = meter.take();
        let rotated_use = again.iter().find(|u| u.key_id == rotated.key_id.to_string()).unwrap();
        assert_eq!(rotated_use.rotated_uses[0].count, 4, "nothing lost across a failed flush");
    }
}
