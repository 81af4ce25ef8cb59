//! Who is calling: the verified principal that the gateway passes to services.

use chrono::{DateTime, Utc};
use keyplane_proto::types::v1 as pb;
use uuid::Uuid;

use crate::{credential::Environment, rate_limit::RateLimit, scope::Scopes, time};

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Principal {
    User(UserPrincipal),
    ApiKey(KeyPrincipal),
    McpToken(McpPrincipal),
    Service { name: String },
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct UserPrincipal {
    pub user_id: Uuid,
    /// None for external OIDC tokens.
    pub session_id: Option<Uuid>,
    pub email: String,
    pub name: String,
    pub issuer: String,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct KeyPrincipal {
    pub key_id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub environment: Environment,
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    /// Set while the previous secret of a regenerated key is in its grace period.
    pub grace_ends_at: Option<DateTime<Utc>>,
    pub created_by: Option<Uuid>,
    /// The revision of the key's record this principal was decided on: a change since
    /// (a regeneration, say) means the presented secret may no longer be the current one.
    #[serde(default)]
    pub revision: u64,
    /// The key's own rate limit; None: the gateway's default for keys.
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
}

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct McpPrincipal {
    pub token_id: Uuid,
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub name: String,
    pub prefix: String,
    pub scopes: Scopes,
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revision: u64,
}

impl Principal {
    /// The actor as the audit log records it: (`type`, `id`).
    pub fn actor(&self) -> (&'static str, String) {
        match self {
            Self::User(u) => ("user", u.user_id.to_string()),
            Self::ApiKey(k) => ("api_key", k.key_id.to_string()),
            Self::McpToken(t) => ("mcp_token", t.token_id.to_string()),
            Self::Service { name } => ("service", name.clone()),
        }
    }

    /// The user behind the principal, if one is known.
    pub fn user_id(&self) -> Option<Uuid> {
        match self {
            Self::User(u) => Some(u.user_id),
            Self::ApiKey(k) => k.created_by,
            Self::McpToken(t) => Some(t.user_id),
            Self::Service { .. } => None,
        }
    }

    /// A stable identity for caches keyed by caller.
    pub fn cache_key(&self) -> String {
        let (kind, id) = self.actor();
        format!("{kind}:{id}")
    }
}

/// A principal field that could not be read from its proto form.
#[derive(Debug, Clone, thiserror::Error)]
#[error("malformed principal: {0}")]
pub struct MalformedPrincipal(pub &'static str);

fn uuid(s: &str, field: &'static str) -> Result<Uuid, MalformedPrincipal> {
    Uuid::parse_str(s).map_err(|_| MalformedPrincipal(field))
}

fn optional_uuid(s: &str, field: &'static str) -> Result<Option<Uuid>, MalformedPrincipal> {
    if s.is_empty() { Ok(None) } else { uuid(s, field).map(Some) }
}

impl TryFrom<pb::Principal> for Principal {
    type Error = MalformedPrincipal;

    fn try_from(p: pb::Principal) -> Result<Self, Self::Error> {
        use pb::principal::Kind;
        Ok(match p.kind.ok_or(MalformedPrincipal("kind"))? {
            Kind::Session(s) => Self::User(UserPrincipal {
                user_id: uuid(&s.user_id, "user_id")?,
                session_id: optional_uuid(&s.session_id, "session_id")?,
                email: s.email,
                name: s.name,
                issuer: s.issuer,
            }),
            Kind::ApiKey(k) => Self::ApiKey(KeyPrincipal {
                key_id: uuid(&k.key_id, "key_id")?,
                org_id: uuid(&k.org_id, "org_id")?,
                name: k.name,
                prefix: k.prefix,
                environment: Environment::from_proto(k.environment).ok_or(MalformedPrincipal("environment"))?,
                scopes: Scopes::from_parts(k.full_access, &k.scopes),
                resource_ids: k.resource_ids,
                expires_at: k.expires_at.as_ref().and_then(time::from_proto),
                grace_ends_at: if k.in_grace { k.grace_ends_at.as_ref().and_then(time::from_proto) } else { None },
                created_by: optional_uuid(&k.created_by, "created_by")?,
                revision: k.revision,
                rate_limit: RateLimit::from_proto(k.rate_limit.as_ref()),
            }),
            Kind::McpToken(t) => Self::McpToken(McpPrincipal {
                token_id: uuid(&t.token_id, "token_id")?,
                org_id: uuid(&t.org_id, "org_id")?,
                user_id: uuid(&t.user_id, "user_id")?,
                name: t.name,
                prefix: t.prefix,
                scopes: Scopes::from_parts(t.full_access, &t.scopes),
                expires_at: t.expires_at.as_ref().and_then(time::from_proto),
                revision: t.revision,
            }),
            Kind::Service(s) => Self::Service { name: s.name },
        })
    }
}

impl From<&Principal> for pb::Principal {
    fn from(p: &Principal) -> Self {
        use pb::principal::Kind;
        let kind = match p {
            Principal::User(u) => Kind::Session(pb::SessionPrincipal {
                user_id: u.user_id.to_string(),
                session_id: u.session_id.map(|s| s.to_string()).unwrap_or_default(),
                email: u.email.clone(),
                name: u.name.clone(),
                issuer: u.issuer.clone(),
            }),
            Principal::ApiKey(k) => Kind::ApiKey(pb::ApiKeyPrincipal {
                key_id: k.key_id.to_string(),
                org_id: k.org_id.to_string(),
                name: k.name.clone(),
                prefix: k.prefix.clone(),
                environment: k.environment.to_proto().into(),
                scopes: k.scopes.list(),
                full_access: k.scopes.is_full(),
                resource_ids: k.resource_ids.clone(),
                expires_at: k.expires_at.map(time::to_proto),
                in_grace: k.grace_ends_at.is_some(),
                grace_ends_at: k.grace_ends_at.map(time::to_proto),
                created_by: k.created_by.map(|u| u.to_string()).unwrap_or_default(),
                revision: k.revision,
                rate_limit: k.rate_limit.map(RateLimit::to_proto),
            }),
            Principal::McpToken(t) => Kind::McpToken(pb::McpTokenPrincipal {
                token_id: t.token_id.to_string(),
                org_id: t.org_id.to_string(),
                user_id: t.user_id.to_string(),
                scopes: t.scopes.list(),
                full_access: t.scopes.is_full(),
                expires_at: t.expires_at.map(time::to_proto),
                name: t.name.clone(),
                prefix: t.prefix.clone(),
                revision: t.revision,
            }),
            Principal::Service { name } => Kind::Service(pb::ServicePrincipal { name: name.clone() }),
        };
        pb::Principal { kind: Some(kind) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_survive_the_proto_round_trip() {
        let now = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        let cases = [
            Principal::User(UserPrincipal {
                user_id: Uuid::now_v7(),
                session_id: Some(Uuid::now_v7()),
                email: "a@example.com".into(),
                name: "A".into(),
                issuer: "keyplane".into(),
            }),
            Principal::ApiKey(KeyPrincipal {
                key_id: Uuid::now_v7(),
                org_id: Uuid::now_v7(),
                name: "k".into(),
                prefix: "phosra_test_abcd".into(),
                environment: Environment::Test,
                scopes: Scopes::parse(&["read:keys"]).unwrap(),
                resource_ids: vec!["fam_1".into()],
                expires_at: Some(now),
                grace_ends_at: Some(now),
                revision: 1,
                created_by: Some(Uuid::now_v7()),
                rate_limit: Some(RateLimit { requests: 10, per_seconds: 60 }),
            }),
            Principal::Service { name: "keys".into() },
        ];
        for p in cases {
            let back = Principal::try_from(pb::Principal::from(&p)).unwrap();
            assert_eq!(back, p);
        }
    }
}
