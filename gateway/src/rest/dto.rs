//! The JSON shapes of the public contract, made from the services' answers.

use chrono::{DateTime, Utc};
use keyplane_common::{authz::Role, credential::Environment, time};
use keyplane_proto::{identity::v1 as identity, keys::v1 as keys, orgs::v1 as orgs};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The words the contract spells some fields with, for the document (roles and environments
/// are the common crate's own enums): each field keeps the services' own value, and the e2e suite checks every answer against these.
#[allow(dead_code)] // described, never built
pub mod names {
    use serde::Serialize;
    use utoipa::ToSchema;

    pub use keyplane_common::{authz::Role, credential::Environment};

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum KeyStatus {
        Active,
        Revoked,
        Expired,
    }

    #[derive(Serialize, ToSchema)]
    #[serde(rename_all = "snake_case")]
    pub enum InvitationStatus {
        Pending,
        Accepted,
        Declined,
        Revoked,
        Expired,
    }
}

pub fn at(t: Option<&prost_types::Timestamp>) -> Option<DateTime<Utc>> {
    t.and_then(time::from_proto)
}

fn environment(value: i32) -> Option<&'static str> {
    Environment::from_proto(value).map(|e| e.as_str())
}

/// A list page: `{data, next_cursor}`, `next_cursor` null on the last page.
#[derive(Serialize, ToSchema)]
pub struct Paged<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    pub fn new(data: Vec<T>, page: Option<keyplane_proto::types::v1::PageInfo>) -> Self {
        Self { data, next_cursor: page.map(|p| p.next_cursor).filter(|c| !c.is_empty()) }
    }
}

#[derive(Serialize, ToSchema)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
    pub created_at: Option<DateTime<Utc>>,
}

impl From<identity::User> for User {
    fn from(u: identity::User) -> Self {
        Self {
            created_at: at(u.created_at.as_ref()),
            email_verified: u.email_verified,
            id: u.id,
            email: u.email,
            name: u.name,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Session {
    pub user: Option<User>,
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    pub refresh_token: String,
}

impl From<identity::SessionTokens> for Session {
    fn from(t: identity::SessionTokens) -> Self {
        Self {
            user: t.user.map(User::from),
            access_token: t.access_token,
            token_type: t.token_type,
            expires_in: t.expires_in,
            refresh_token: t.refresh_token,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Org {
    pub id: String,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub website_url: String,
    pub created_at: Option<DateTime<Utc>>,
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<orgs::Org> for Org {
    fn from(o: orgs::Org) -> Self {
        Self {
            created_at: at(o.created_at.as_ref()),
            updated_at: at(o.updated_at.as_ref()),
            id: o.id,
            name: o.name,
            slug: o.slug,
            description: o.description,
            website_url: o.website_url,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Member {
    pub user_id: String,
    pub email: String,
    pub name: String,
    #[schema(value_type = names::Role)]
    pub role: &'static str,
    pub joined_at: Option<DateTime<Utc>>,
}

pub fn role(value: i32) -> &'static str {
    Role::from_proto(value).map_or("", Role::as_str)
}

impl From<orgs::Member> for Member {
    fn from(m: orgs::Member) -> Self {
        Self {
            role: role(m.role),
            joined_at: at(m.joined_at.as_ref()),
            user_id: m.user_id,
            email: m.email,
            name: m.name,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Invitation {
    pub id: String,
    pub org_id: String,
    pub org_name: String,
    pub email: String,
    #[schema(value_type = names::Role)]
    pub role: &'static str,
    #[schema(value_type = names::InvitationStatus)]
    pub status: String,
    pub invited_by: String,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub responded_at: Option<DateTime<Utc>>,
}

impl From<orgs::Invitation> for Invitation {
    fn from(i: orgs::Invitation) -> Self {
        Self {
            role: role(i.role),
            created_at: at(i.created_at.as_ref()),
            expires_at: at(i.expires_at.as_ref()),
            responded_at: at(i.responded_at.as_ref()),
            id: i.id,
            org_id: i.org_id,
            org_name: i.org_name,
            email: i.email,
            status: i.status,
            invited_by: i.invited_by,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct Party {
    #[serde(rename = "type")]
    pub kind: String,
    pub id: String,
}

#[derive(Serialize, ToSchema)]
pub struct AuditEvent {
    pub id: String,
    pub at: Option<DateTime<Utc>>,
    pub actor: Party,
    pub action: String,
    pub target: Party,
    pub ip: String,
    pub user_agent: String,
    /// What the action concerned, by action (a key's name and scopes, a role, …).
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
}

impl From<orgs::AuditEvent> for AuditEvent {
    fn from(e: orgs::AuditEvent) -> Self {
        let actor = e.actor.unwrap_or_default();
        let target = e.target.unwrap_or_default();
        Self {
            at: at(e.at.as_ref()),
            actor: Party { kind: actor.r#type, id: actor.id },
            target: Party { kind: target.r#type, id: target.id },
            metadata: e.metadata.as_ref().map(keyplane_common::audit::struct_to_json).unwrap_or(serde_json::json!({})),
            id: e.id,
            action: e.action,
            ip: e.ip,
            user_agent: e.user_agent,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeveloperApiKey)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    #[schema(value_type = names::Environment)]
    pub environment: Option<&'static str>,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub resource_ids: Vec<String>,
    #[schema(value_type = names::KeyStatus)]
    pub status: &'static str,
    pub created_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// While a regenerated key's previous secret still works.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// The key's own limit; null: the platform's default for keys.
    pub rate_limit: Option<Rate>,
}

/// `{requests, per_seconds}`: at most that many requests per window.
#[derive(Serialize, Deserialize, Clone, Copy, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub requests: u32,
    pub per_seconds: u32,
}

impl From<Rate> for keyplane_proto::types::v1::RateLimit {
    fn from(r: Rate) -> Self {
        Self { requests: r.requests, per_seconds: r.per_seconds }
    }
}

impl From<keys::ApiKey> for ApiKey {
    fn from(k: keys::ApiKey) -> Self {
        let status = match keys::KeyStatus::try_from(k.status).unwrap_or(keys::KeyStatus::Unspecified) {
            keys::KeyStatus::Active => "active",
            keys::KeyStatus::Revoked => "revoked",
            keys::KeyStatus::Expired => "expired",
            keys::KeyStatus::Unspecified => "unknown",
        };
        Self {
            environment: environment(k.environment),
            status,
            created_at: at(k.created_at.as_ref()),
            last_used_at: at(k.last_used_at.as_ref()),
            expires_at: at(k.expires_at.as_ref()),
            revoked_at: at(k.revoked_at.as_ref()),
            grace_ends_at: at(k.grace_ends_at.as_ref()),
            rate_limit: k.rate_limit.map(|r| Rate { requests: r.requests, per_seconds: r.per_seconds }),
            id: k.id,
            name: k.name,
            prefix: k.prefix,
            scopes: k.scopes,
            resource_ids: k.resource_ids,
        }
    }
}

#[derive(Serialize, ToSchema)]
#[schema(as = DeveloperApiKeyWithSecret)]
pub struct CreatedKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The plaintext, shown this once.
    #[serde(rename = "key")]
    pub secret: String,
}

impl From<keys::KeyWithSecret> for CreatedKey {
    fn from(k: keys::KeyWithSecret) -> Self {
        Self { key: k.key.map(ApiKey::from).unwrap_or_else(|| ApiKey::from(keys::ApiKey::default())), secret: k.secret }
    }
}

#[derive(Serialize, ToSchema)]
pub struct McpToken {
    pub id: String,
    pub name: String,
    pub org_id: String,
    pub prefix: String,
    pub scopes: Vec<String>,
    pub created_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
}

impl From<keys::McpToken> for McpToken {
    fn from(t: keys::McpToken) -> Self {
        Self {
            created_at: at(t.created_at.as_ref()),
            expires_at: at(t.expires_at.as_ref()),
            revoked_at: at(t.revoked_at.as_ref()),
            last_used_at: at(t.last_used_at.as_ref()),
            id: t.id,
            name: t.name,
            org_id: t.org_id,
            prefix: t.prefix,
            scopes: t.scopes,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct CreatedMcpToken {
    #[serde(flatten)]
    pub token: McpToken,
    /// The plaintext, shown this once.
    pub plain: String,
}

impl From<keys::McpTokenWithSecret> for CreatedMcpToken {
    fn from(t: keys::McpTokenWithSecret) -> Self {
        Self { token: McpToken::from(t.token.unwrap_or_default()), plain: t.secret }
    }
}
