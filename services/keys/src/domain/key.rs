//! A stored API key or MCP token, and what it says at a given moment: its status, the end
//! of its previous secret's grace period, and the record behind each of its secrets.

use chrono::{DateTime, Utc};
use keyplane_common::{
    credential::{CredentialType, Environment, Secret, SecretHash},
    key_record::KeyRecord,
    rate_limit::RateLimit,
    scope::Scopes,
};
use uuid::Uuid;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    ApiKey,
    McpToken,
}

impl Kind {
    /// The audit log's name of what was acted on.
    pub fn target(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::McpToken => "mcp_token",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Active,
    Revoked,
    Expired,
}

/// A regenerated key's previous secret, working until its grace period ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PreviousSecret {
    pub hash: SecretHash,
    pub until: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Credential {
    pub id: Uuid,
    pub kind: Kind,
    pub org_id: Uuid,
    /// The user it acts for: who made it, or the user behind the key that made it.
    pub created_by: Option<Uuid>,
    pub name: String,
    /// None for MCP tokens.
    pub environment: Option<Environment>,
    /// The first characters of the current secret, for lists.
    pub prefix: String,
    pub hash: SecretHash,
    pub previous: Option<PreviousSecret>,
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
    /// The org's bootstrap key (minted once, by ensure-dev-org).
    pub bootstrap: bool,
    pub created_at: DateTime<Utc>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// Grows with every change that matters to a verdict.
    pub revision: u64,
    /// Its own rate limit; None: the gateway's default.
    pub rate_limit: Option<RateLimit>,
}

/// What a new credential is, before it is stored.
pub struct Mint {
    pub kind: Kind,
    pub org_id: Uuid,
    pub created_by: Option<Uuid>,
    pub name: String,
    pub environment: Option<Environment>,
    pub scopes: Scopes,
    pub resource_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
    pub bootstrap: bool,
}

impl Credential {
    /// A new credential holding `secret` (only its hash and prefix are kept).
    pub fn mint(mint: Mint, secret: &Secret, now: DateTime<Utc>) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: mint.kind,
            org_id: mint.org_id,
            created_by: mint.created_by,
            name: mint.name,
            environment: mint.environment,
            prefix: secret.display_prefix().to_owned(),
            hash: secret.hash(),
            previous: None,
            scopes: mint.scopes,
            resource_ids: mint.resource_ids,
            bootstrap: mint.bootstrap,
            created_at: now,
            last_used_at: None,
            expires_at: mint.expires_at,
            revoked_at: None,
            revision: 1,
            rate_limit: mint.rate_limit,
        }
    }

    pub fn status(&self, now: DateTime<Utc>) -> Status {
        if self.revoked_at.is_some() {
            Status::Revoked
        } else if self.expires_at.is_some_and(|t| t <= now) {
            Status::Expired
        } else {
            Status::Active
        }
    }

    /// The end of the previous secret's grace period, while it lasts.
    pub fn grace_ends_at(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.previous.map(|p| p.until).filter(|until| *until > now)
    }

    /// Every secret the credential holds: its current one, and its previous one.
    pub fn hashes(&self) -> Vec<SecretHash> {
        self.previous.iter().map(|p| p.hash).chain([self.hash]).collect()
    }

    /// The record behind `hash`: the current secret, or the previous one (which carries the
    /// end of its grace period). None when the credential does not hold the hash.
    pub fn record_for(&self, hash: &SecretHash) -> Option<KeyRecord> {
        let previous = match self.previous {
            _ if self.hash == *hash => None,
            Some(previous) if previous.hash == *hash => Some(previous),
            _ => return None,
        };
        let credential_type = match (self.kind, self.environment) {
            (Kind::ApiKey, Some(environment)) => CredentialType::ApiKey(environment),
            (Kind::ApiKey, None) => return None,
            (Kind::McpToken, _) => CredentialType::McpToken,
        };
        Some(KeyRecord {
            credential_type,
            id: self.id,
            org_id: self.org_id,
            name: self.name.clone(),
            prefix: self.prefix.clone(),
            scopes: self.scopes.clone(),
            resource_ids: self.resource_ids.clone(),
            expires_at: self.expires_at,
            revoked_at: self.revoked_at,
            previous_secret_until: previous.map(|p| p.until),
            is_previous_secret: previous.is_some(),
            created_by: self.created_by,
            revision: self.revision,
            rate_limit: self.rate_limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use keyplane_common::credential::KeyFormat;

    use super::*;

    fn key(now: DateTime<Utc>) -> (Credential, Secret) {
        let secret = KeyFormat::default().generate(CredentialType::ApiKey(Environment::Test));
        let mint = Mint {
            kind: Kind::ApiKey,
            org_id: Uuid::now_v7(),
            created_by: Some(Uuid::now_v7()),
            name: "k".into(),
            environment: Some(Environment::Test),
            scopes: Scopes::Full,
            resource_ids: vec![],
            expires_at: Some(now + chrono::Duration::hours(1)),
            rate_limit: None,
            bootstrap: false,
        };
        (Credential::mint(mint, &secret, now), secret)
    }

    #[test]
    fn a_key_is_active_until_it_expires_or_is_revoked() {
        let now = Utc::now();
        let (mut key, _) = key(now);
        assert_eq!(key.status(now), Status::Active);
        assert_eq!(key.status(now + chrono::Duration::hours(2)), Status::Expired);
        key.revoked_at = Some(now);
        assert_eq!(key.status(now), Status::Revoked);
    }

    #[test]
    fn each_secret_has_its_own_record() {
        let now = Utc::now();
        let (mut key, secret) = key(now);
        let old = SecretHash::of("the previous secret");
        key.previous = Some(PreviousSecret { hash: old, until: now + chrono::Duration::minutes(5) });
        let current = key.record_for(&secret.hash()).unwrap();
        assert!(!current.is_previous_secret && current.previous_secret_until.is_none());
        let previous = key.record_for(&old).unwrap();
        assert_eq!(
            (previous.is_previous_secret, previous.previous_secret_until),
            (true, Some(now + chrono::Duration::minutes(5)))
        );
        assert!(key.record_for(&SecretHash::of("another")).is_none());
        assert_eq!(key.hashes(), vec![old, secret.hash()]);
        assert_eq!(key.grace_ends_at(now), Some(now + chrono::Duration::minutes(5)));
        assert_eq!(key.grace_ends_at(now + chrono::Duration::minutes(6)), None);
    }
}
