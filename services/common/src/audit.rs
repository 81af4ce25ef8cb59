//! An audit event as producers write it to their outbox and the orgs service stores it.

use chrono::{DateTime, Utc};
use keyplane_proto::orgs::v1 as pb;
use prost_types::{ListValue, Struct, Value, value::Kind as ValueKind};
use uuid::Uuid;

use crate::{principal::Principal, time};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AuditRecord {
    pub id: Uuid,
    pub org_id: Uuid,
    pub at: DateTime<Utc>,
    pub actor_type: String,
    pub actor_id: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    #[serde(default)]
    pub ip: String,
    #[serde(default)]
    pub user_agent: String,
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl AuditRecord {
    /// An event by `actor` now, with a fresh id.
    pub fn new(org_id: Uuid, actor: &Principal, action: &str, target: (&str, String)) -> Self {
        let (actor_type, actor_id) = actor.actor();
        Self {
            id: Uuid::now_v7(),
            org_id,
            at: time::now(),
            actor_type: actor_type.to_owned(),
            actor_id,
            action: action.to_owned(),
            target_type: target.0.to_owned(),
            target_id: target.1,
            ip: String::new(),
            user_agent: String::new(),
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// An event of the platform rather than of one org (a signing-key rotation, a failed
    /// login): stored under the nil org id. The orgs service also files one addressed to a
    /// user under each org that user is a member of (see [`AuditRecord::copy_for`]).
    pub fn platform(actor: (&str, String), action: &str, target: (&str, String)) -> Self {
        Self {
            id: Uuid::now_v7(),
            org_id: Uuid::nil(),
            at: time::now(),
            actor_type: actor.0.to_owned(),
            actor_id: actor.1,
            action: action.to_owned(),
            target_type: target.0.to_owned(),
            target_id: target.1,
            ip: String::new(),
            user_agent: String::new(),
            metadata: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    pub fn is_platform(&self) -> bool {
        self.org_id.is_nil()
    }

    /// The copy of a platform event filed under `org_id`, with an id derived from both, so
    /// that a redelivered event files the same copies again (and they are stored once).
    /// The id keeps the original's time (a UUIDv7's first 48 bits): logs are read in id
    /// order.
    pub fn copy_for(&self, org_id: Uuid) -> Self {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new().chain_update(self.id.as_bytes()).chain_update(org_id.as_bytes()).finalize();
        let mut bytes = [0u8; 16];
        bytes[..6].copy_from_slice(&self.id.as_bytes()[..6]);
        bytes[6..].copy_from_slice(&digest[..10]);
        bytes[6] = (bytes[6] & 0x0f) | 0x70; // version 7
        bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
        Self { id: Uuid::from_bytes(bytes), org_id, ..self.clone() }
    }

    /// Records where the request came from.
    pub fn from_caller(mut self, caller: &crate::internal_auth::Caller) -> Self {
        self.ip = caller.client_ip.clone();
        self.user_agent = caller.user_agent.clone();
        self
    }

    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Self {
        self.metadata = metadata;
        self
    }

    pub fn to_proto(&self) -> pb::AuditEvent {
        pb::AuditEvent {
            id: self.id.to_string(),
            org_id: self.org_id.to_string(),
            at: Some(time::to_proto(self.at)),
            actor: Some(pb::Actor { r#type: self.actor_type.clone(), id: self.actor_id.clone() }),
            action: self.action.clone(),
            target: Some(pb::Target { r#type: self.target_type.clone(), id: self.target_id.clone() }),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            metadata: match json_to_proto(&self.metadata).kind {
                Some(ValueKind::StructValue(s)) => Some(s),
                _ => None,
            },
        }
    }

    pub fn from_proto(event: &pb::AuditEvent) -> Option<Self> {
        let actor = event.actor.clone().unwrap_or_default();
        let target = event.target.clone().unwrap_or_default();
        Some(Self {
            id: Uuid::parse_str(&event.id).ok()?,
            org_id: Uuid::parse_str(&event.org_id).ok()?,
            at: event.at.as_ref().and_then(time::from_proto)?,
            actor_type: actor.r#type,
            actor_id: actor.id,
            action: event.action.clone(),
            target_type: target.r#type,
            target_id: target.id,
            ip: event.ip.clone(),
            user_agent: event.user_agent.clone(),
            metadata: event
                .metadata
                .as_ref()
                .map(struct_to_json)
                .unwrap_or(serde_json::Value::Object(Default::default())),
        })
    }
}

/// JSON into a protobuf `Value` (`google.protobuf.Struct` is JSON's protobuf twin).
pub fn json_to_proto(value: &serde_json::Value) -> Value {
    use serde_json::Value as J;
    let kind = match value {
        J::Null => ValueKind::NullValue(0),
        J::Bool(b) => ValueKind::BoolValue(*b),
        J::Number(n) => ValueKind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => ValueKind::StringValue(s.clone()),
        J::Array(items) => ValueKind::ListValue(ListValue { values: items.iter().map(json_to_proto).collect() }),
        J::Object(map) => {
            ValueKind::StructValue(Struct { fields: map.iter().map(|(k, v)| (k.clone(), json_to_proto(v))).collect() })
        }
    };
    Value { kind: Some(kind) }
}

pub fn proto_to_json(value: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match &value.kind {
        None | Some(ValueKind::NullValue(_)) => J::Null,
        Some(ValueKind::BoolValue(b)) => J::Bool(*b),
        Some(ValueKind::NumberValue(n)) => {
            // Whole numbers read back as integers, as they were written.
            if n.fract() == 0.0 && n.abs() < 9.0e15 {
                J::from(*n as i64)
            } else {
                serde_json::Number::from_f64(*n).map_or(J::Null, J::Number)
            }
        }
        Some(ValueKind::StringValue(s)) => J::String(s.clone()),
        Some(ValueKind::ListValue(list)) => J::Array(list.values.iter().map(proto_to_json).collect()),
        Some(ValueKind::StructValue(s)) => struct_to_json(s),
    }
}

pub fn struct_to_json(s: &Struct) -> serde_json::Value {
    serde_json::Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), proto_to_json(v))).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_survive_the_proto_round_trip() {
        let record = AuditRecord::new(
            Uuid::now_v7(),
            &Principal::Service { name: "keys".into() },
            "api_key.created",
            ("api_key", "k1".into()),
        )
        .with_metadata(serde_json::json!({"count": 3, "scopes": ["read:keys"], "nested": {"ok": true}}));
        assert_eq!(AuditRecord::from_proto(&record.to_proto()), Some(record));
    }

    #[test]
    fn a_platform_events_copies_are_stable_distinct_and_keep_its_time() {
        let event = AuditRecord::platform(("anonymous", "192.0.2.1".into()), "auth.login_failed", ("user", "u".into()));
        assert!(event.is_platform());
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let (copy_a, copy_b) = (event.copy_for(a), event.copy_for(b));
        assert_eq!(copy_a.id, event.copy_for(a).id, "the same copy every time");
        assert_ne!(copy_a.id, copy_b.id);
        assert_eq!(copy_a.id.get_version_num(), 7);
        assert_eq!(copy_a.id.get_timestamp(), event.id.get_timestamp(), "ordered with the original");
        assert_eq!((copy_a.org_id, copy_a.action.as_str()), (a, "auth.login_failed"));
    }
}
