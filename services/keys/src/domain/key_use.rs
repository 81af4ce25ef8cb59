//! Uses of keys as the gateways count them: the last use of each key, and every use of a
//! regenerated key's previous secret, one entry per source.

use chrono::{DateTime, Utc};
use keyplane_common::{audit::AuditRecord, principal::Principal};
use uuid::Uuid;

pub struct KeyUse {
    pub key_id: Uuid,
    pub last_used_at: DateTime<Utc>,
    pub rotated: Vec<RotatedUse>,
}

/// Uses of a previous secret from one source (address and user agent).
pub struct RotatedUse {
    /// Chosen by the gateway: a batch delivered twice writes the event once.
    pub event_id: Uuid,
    pub org_id: Uuid,
    pub first_at: DateTime<Utc>,
    pub last_at: DateTime<Utc>,
    pub count: u64,
    pub ip: String,
    pub user_agent: String,
    pub request_id: String,
}

impl RotatedUse {
    /// The `rotated_key_used` event: the key is the actor (whoever held the secret).
    pub fn audit(&self, key_id: Uuid) -> AuditRecord {
        let mut event = AuditRecord::new(
            self.org_id,
            &Principal::Service { name: "gateway".into() },
            "rotated_key_used",
            ("api_key", key_id.to_string()),
        )
        .with_metadata(serde_json::json!({
            "count": self.count,
            "first_at": self.first_at,
            "last_at": self.last_at,
            "request_id": self.request_id,
        }));
        event.id = self.event_id;
        event.actor_type = "api_key".into();
        event.actor_id = key_id.to_string();
        event.at = self.last_at;
        event.ip.clone_from(&self.ip);
        event.user_agent.clone_from(&self.user_agent);
        event
    }
}
