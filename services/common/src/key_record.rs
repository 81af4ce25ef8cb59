//! The record behind a secret's hash: what the keys service answers for a hash, what
//! Redis and every local cache keep, and what identity decides a credential on.

use chrono::{DateTime, Utc};
use keyplane_proto::keys::v1 as pb;
use uuid::Uuid;

use crate::{
    credential::{CredentialType, Environment},
    rate_limit::RateLimit,
    scope::Scopes,
    time,
};

#[derive(Clone, Debug, PartialEq)]
pub struct KeyRecord {
    /// An API key of one environment, or an MCP token.
    pub credential_type: CredentialType,
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The hash is a regenerated key's previous secret, which works until then.
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub is_previous_secret: bool,
    pub created_by: Option<Uuid>,
    /// Grows with every change of the credential.
    pub revision: u64,
    /// The key's own rate limit; None: the gateway's default.
    pub rate_limit: Option<RateLimit>,
}

/// A record field that could not be read from its proto form.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed credential record: {0}")]
pub struct MalformedRecord(pub &'static str);

impl KeyRecord {
    pub fn to_proto(&self) -> pb::CredentialRecord {
        let (kind, environment) = match self.credential_type {
            CredentialType::ApiKey(env) => (pb::CredentialKind::ApiKey, Some(env)),
            CredentialType::McpToken => (pb::CredentialKind::McpToken, None),
        };
        pb::CredentialRecord {
            kind: kind.into(),
            id: self.id.to_string(),
            org_id: self.org_id.to_string(),
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            environment: environment.map(Environment::to_proto).unwrap_or_default().into(),
            scopes: self.scopes.list(),
            full_access: self.scopes.is_full(),
            resource_ids: self.resource_ids.clone(),
            expires_at: self.expires_at.map(time::to_proto),
            revoked_at: self.revoked_at.map(time::to_proto),
            grace_ends_at: self.previous_secret_until.map(time::to_proto),
            previous_secret: self.is_previous_secret,
            created_by: self.created_by.map(|u| u.to_string()).unwrap_or_default(),
            revision: self.revision,
            rate_limit: self.rate_limit.map(RateLimit::to_proto),
        }
    }

    pub fn from_proto(record: &pb::CredentialRecord) -> Result<Self, MalformedRecord> {
        let id = |s: &str, field| Uuid::parse_str(s).map_err(|_| MalformedRecord(field));
        let credential_type = match pb::CredentialKind::try_from(record.kind).unwrap_or(pb::CredentialKind::Unspecified)
        {
            pb::CredentialKind::ApiKey => CredentialType::ApiKey(
                Environment::from_proto(record.environment).ok_or(MalformedRecord("environment"))?,
            ),
            pb::CredentialKind::McpToken => CredentialType::McpToken,
            pb::CredentialKind::Unspecified => return Err(MalformedRecord("kind")),
        };
        Ok(Self {
            credential_type,
            id: id(&record.id, "id")?,
            org_id: id(&record.org_id, "org_id")?,
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            scopes: Scopes::from_parts(record.full_access, &record.scopes),
            resource_ids: record.resource_ids.clone(),
            expires_at: record.expires_at.as_ref().and_then(time::from_proto),
            revoked_at: record.revoked_at.as_ref().and_then(time::from_proto),
            previous_secret_until: record.grace_ends_at.as_ref().and_then(time::from_proto),
            is_previous_secret: record.previous_secret,
            created_by: if record.created_by.is_empty() { None } else { Some(id(&record.created_by, "created_by")?) },
            revision: record.revision,
            rate_limit: RateLimit::from_proto(record.rate_limit.as_ref()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_survive_the_proto_round_trip() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let record = KeyRecord {
            credential_type: CredentialType::ApiKey(Environment::Live),
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "phosra_live_abcd".into(),
            scopes: Scopes::parse(&["read:keys"]).unwrap(),
            resource_ids: vec!["fam_1".into()],
            expires_at: Some(now),
            revoked_at: None,
            previous_secret_until: Some(now),
            is_previous_secret: true,
            created_by: Some(Uuid::now_v7()),
            revision: 7,
            rate_limit: Some(RateLimit { requests: 100, per_seconds: 1 }),
        };
        assert_eq!(KeyRecord::from_proto(&record.to_proto()).unwrap(), record);
        let token = KeyRecord { credential_type: CredentialType::McpToken, created_by: None, ..record };
        assert_eq!(KeyRecord::from_proto(&token.to_proto()).unwrap(), token);
    }
}
