//! Stored credentials as the contract shows them: API keys, MCP tokens, and the record
//! behind a hash that the hot path caches.

use chrono::{DateTime, Utc};
use keyplane_common::{credential::Environment, principal::environment_to_proto, scope::Scopes, time};
use keyplane_proto::keys::v1::{self as pb, CredentialKind, KeyStatus};

use crate::store::{MCP_TOKEN, credentials::Model};

pub fn scopes(row: &Model) -> Scopes {
    match &row.scopes {
        None => Scopes::Full,
        Some(list) => Scopes::Only(
            list.as_array()
                .map(|items| items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
                .unwrap_or_default(),
        ),
    }
}

pub fn scopes_json(scopes: &Scopes) -> Option<serde_json::Value> {
    match scopes {
        Scopes::Full => None,
        Scopes::Only(set) => Some(serde_json::Value::from(set.iter().cloned().collect::<Vec<_>>())),
    }
}

pub fn resource_ids(row: &Model) -> Vec<String> {
    row.resource_ids
        .as_array()
        .map(|items| items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

fn environment(row: &Model) -> i32 {
    Environment::parse(&row.environment).map(environment_to_proto).unwrap_or_default().into()
}

pub fn status(row: &Model, now: DateTime<Utc>) -> KeyStatus {
    if row.revoked_at.is_some() {
        KeyStatus::Revoked
    } else if row.expires_at.is_some_and(|t| t <= now) {
        KeyStatus::Expired
    } else {
        KeyStatus::Active
    }
}

/// The end of the grace period of the previous secret, while it lasts.
fn grace_ends_at(row: &Model, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    row.previous_hash.as_ref().and(row.previous_expires_at).filter(|t| *t > now)
}

pub fn api_key(row: &Model) -> pb::ApiKey {
    let now = time::now();
    let scopes = scopes(row);
    pb::ApiKey {
        id: row.id.to_string(),
        org_id: row.org_id.to_string(),
        name: row.name.clone(),
        environment: environment(row),
        prefix: row.prefix.clone(),
        scopes: scopes.effective(),
        full_access: scopes.is_full(),
        resource_ids: resource_ids(row),
        status: status(row, now).into(),
        created_at: Some(time::to_proto(row.created_at)),
        last_used_at: row.last_used_at.map(time::to_proto),
        expires_at: row.expires_at.map(time::to_proto),
        revoked_at: row.revoked_at.map(time::to_proto),
        grace_ends_at: grace_ends_at(row, now).map(time::to_proto),
    }
}

pub fn mcp_token(row: &Model) -> pb::McpToken {
    let scopes = scopes(row);
    pb::McpToken {
        id: row.id.to_string(),
        name: row.name.clone(),
        org_id: row.org_id.to_string(),
        user_id: row.created_by.map(|u| u.to_string()).unwrap_or_default(),
        prefix: row.prefix.clone(),
        scopes: scopes.effective(),
        full_access: scopes.is_full(),
        created_at: Some(time::to_proto(row.created_at)),
        expires_at: row.expires_at.map(time::to_proto),
        revoked_at: row.revoked_at.map(time::to_proto),
        last_used_at: row.last_used_at.map(time::to_proto),
    }
}

pub fn revision(row: &Model) -> u64 {
    u64::try_from(row.revision).unwrap_or_default()
}

/// The record behind `hash` in `row`: the current secret, or the previous one (which
/// carries the end of its grace period). None when `row` does not hold the hash.
pub fn lookup(row: &Model, hash: &str) -> Option<pb::CredentialRecord> {
    let previous = if row.hash == hash {
        false
    } else if row.previous_hash.as_deref() == Some(hash) {
        true
    } else {
        return None;
    };
    let scopes = scopes(row);
    Some(pb::CredentialRecord {
        kind: if row.kind == MCP_TOKEN { CredentialKind::McpToken } else { CredentialKind::ApiKey }.into(),
        id: row.id.to_string(),
        org_id: row.org_id.to_string(),
        name: row.name.clone(),
        prefix: row.prefix.clone(),
        environment: environment(row),
        scopes: scopes.list(),
        full_access: scopes.is_full(),
        resource_ids: resource_ids(row),
        expires_at: row.expires_at.map(time::to_proto),
        revoked_at: row.revoked_at.map(time::to_proto),
        grace_ends_at: if previous { row.previous_expires_at.map(time::to_proto) } else { None },
        previous_secret: previous,
        created_by: row.created_by.map(|u| u.to_string()).unwrap_or_default(),
        revision: revision(row),
    })
}
