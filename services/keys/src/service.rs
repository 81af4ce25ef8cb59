//! The keys use cases. Each authorizes through the orgs service, commits the change with
//! its audit event, then tells the caches.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authorizer::Authorizer,
    authz::Action,
    credential::{CredentialType, Environment, KeyFormat, Secret, SecretHash},
    error::FieldViolation,
    ids::Page,
    internal_auth::Caller,
    principal::Principal,
    scope::Scopes,
    text, time,
};
use keyplane_proto::keys::v1::RotatedUse;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::grant::{self, BOOTSTRAP_KEY_NAME, Grant},
    error::Error,
    propagate::Propagator,
    records,
    store::{API_KEY, MCP_TOKEN, Regeneration, Store, credentials::Model},
};

pub struct Service {
    pub store: Store,
    pub authz: Authorizer,
    pub format: KeyFormat,
    pub propagator: Propagator,
    /// Wakes the outbox relay after a commit, so audit events arrive promptly.
    pub relay: Arc<Notify>,
}

/// What a new API key asks for, before validation.
pub struct NewKey {
    pub org_id: String,
    pub name: String,
    pub environment: Option<Environment>,
    pub scopes: Option<Vec<String>>,
    pub resource_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// What a new MCP token asks for, before validation.
pub struct NewToken {
    pub org_id: String,
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A malformed org id names no org: the same answer as another tenant's.
fn org_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::OrgNotFound)
}

/// The audit event of a credential revoked in bulk, and why.
fn revocation(caller: &Caller, principal: &Principal, row: &Model, reason: &str) -> AuditRecord {
    let action = if row.kind == MCP_TOKEN { "mcp_token.revoked" } else { "api_key.revoked" };
    audit(caller, principal, row, action).with_metadata(serde_json::json!({ "reason": reason, "name": row.name }))
}

fn audit(caller: &Caller, principal: &Principal, row: &Model, action: &str) -> AuditRecord {
    let target = if row.kind == MCP_TOKEN { "mcp_token" } else { "api_key" };
    AuditRecord::new(row.org_id, principal, action, (target, row.id.to_string()))
        .from_caller(caller)
        .with_metadata(serde_json::json!({ "name": row.name, "prefix": row.prefix }))
}

/// Every secret a credential holds or held: its current hash and its previous one.
fn hashes_of(row: &Model) -> Vec<String> {
    row.previous_hash.clone().into_iter().chain([row.hash.clone()]).collect()
}

/// A credential about to be stored, with its freshly generated secret.
struct Minted<'a> {
    org_id: Uuid,
    kind: &'static str,
    creator: Option<Uuid>,
    name: String,
    environment: &'static str,
    secret: &'a Secret,
    grant: Grant,
    expires_at: Option<DateTime<Utc>>,
}

impl Minted<'_> {
    fn row(self) -> Model {
        Model {
            id: Uuid::now_v7(),
            kind: self.kind.to_owned(),
            org_id: self.org_id,
            created_by: self.creator,
            name: self.name,
            environment: self.environment.to_owned(),
            prefix: self.secret.display_prefix().to_owned(),
            hash: self.secret.hash().to_hex(),
            previous_hash: None,
            previous_expires_at: None,
            scopes: records::scopes_json(&self.grant.scopes),
            resource_ids: serde_json::Value::from(self.grant.resource_ids),
            bootstrap: false,
            created_at: time::now(),
            last_used_at: None,
            expires_at: self.expires_at,
            revoked_at: None,
            revision: 1,
        }
    }
}

impl Service {
    pub async fn create_key(&self, caller: &Caller, new: NewKey) -> Result<(Model, Secret), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(&new.org_id)?;
        self.authz.require(principal, org_id, Action::KeysWrite).await?;
        let mut violations = Vec::new();
        let name = text::display_text("name", &new.name, grant::MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let environment = new.environment.or_else(|| {
            violations.push(FieldViolation::new("environment", "must be \"test\" or \"live\""));
            None
        });
        let expires_at = grant::expiry(new.expires_at, time::now()).map_err(|v| violations.push(v)).ok();
        let (Some(name), Some(environment), Some(expires_at)) = (name, environment, expires_at) else {
            return Err(Error::Validation(violations));
        };
        let grant = grant::grant(
            principal,
            &grant::Request {
                scopes: new.scopes.as_deref(),
                resource_ids: &new.resource_ids,
                environment: Some(environment),
                expires_at,
            },
        )?;
        let secret = self.format.generate(CredentialType::ApiKey(environment));
        let row = Minted {
            org_id,
            kind: API_KEY,
            creator: principal.user_id(),
            name,
            environment: environment.as_str(),
            secret: &secret,
            grant,
            expires_at,
        }
        .row();
        let row = self.store.insert(row.clone(), &[audit(caller, principal, &row, "api_key.created")]).await?;
        self.relay.notify_one();
        tracing::info!(key_id = %row.id, org_id = %org_id, key_prefix = %row.prefix, "api key created");
        Ok((row, secret))
    }

    pub async fn list_keys(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<Model>, Error> {
        let org_id = org_id(org)?;
        self.authz.require(caller.principal()?, org_id, Action::KeysRead).await?;
        self.store.list_for_org(org_id, API_KEY, &page).await
    }

    pub async fn get_key(&self, caller: &Caller, org: &str, key_id: &str, action: Action) -> Result<Model, Error> {
        let org_id = org_id(org)?;
        self.authz.require(caller.principal()?, org_id, action).await?;
        let key_id = keyplane_common::ids::parse_uuid("key_id", key_id).map_err(|_| Error::KeyNotFound)?;
        match self.store.get(key_id).await? {
            Some(row) if row.org_id == org_id && row.kind == API_KEY => Ok(row),
            _ => Err(Error::KeyNotFound),
        }
    }

    pub async fn revoke_key(&self, caller: &Caller, org: &str, key_id: &str) -> Result<Model, Error> {
        let principal = caller.principal()?;
        let row = self.get_key(caller, org, key_id, Action::KeysWrite).await?;
        let revoked = self.store.revoke(row.id, &[audit(caller, principal, &row, "api_key.revoked")]).await?;
        self.relay.notify_one();
        self.propagator.publish(&revoked, hashes_of(&revoked)).await;
        tracing::info!(key_id = %revoked.id, key_prefix = %revoked.prefix, "api key revoked");
        Ok(revoked)
    }

    pub async fn regenerate_key(
        &self,
        caller: &Caller,
        org: &str,
        key_id: &str,
        grace: Option<i64>,
    ) -> Result<(Model, Secret), Error> {
        let principal = caller.principal()?;
        let grace = grant::grace_period(grace)?;
        let row = self.get_key(caller, org, key_id, Action::KeysWrite).await?;
        let now = time::now();
        match records::status(&row, now) {
            keyplane_proto::keys::v1::KeyStatus::Revoked => return Err(Error::KeyRevoked),
            keyplane_proto::keys::v1::KeyStatus::Expired => return Err(Error::KeyExpired),
            _ => {}
        }
        let environment =
            Environment::parse(&row.environment).ok_or_else(|| Error::internal("stored key without environment"))?;
        let secret = self.format.generate(CredentialType::ApiKey(environment));
        let keep_previous_until = (grace > 0).then(|| now + chrono::Duration::seconds(grace));
        let event = audit(caller, principal, &row, "api_key.regenerated").with_metadata(
            serde_json::json!({ "name": row.name, "grace_period_seconds": grace, "previous_prefix": row.prefix }),
        );
        let regeneration = Regeneration {
            new_hash: secret.hash().to_hex(),
            new_prefix: secret.display_prefix().to_owned(),
            keep_previous_until,
        };
        let updated = self.store.regenerate(row.id, &row.hash, regeneration, &[event]).await?;
        self.relay.notify_one();
        // The secret before last stops now; the last one moves into its grace period.
        self.propagator.publish(&updated, hashes_of(&row)).await;
        tracing::info!(key_id = %updated.id, grace_period_seconds = grace, "api key regenerated");
        Ok((updated, secret))
    }

    pub async fn ensure_bootstrap_key(&self, caller: &Caller, org: &str) -> Result<Option<(Model, Secret)>, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authz.require(principal, org_id, Action::KeysWrite).await?;
        let secret = self.format.generate(CredentialType::ApiKey(Environment::Test));
        let grant = Grant { scopes: Scopes::Full, resource_ids: Vec::new() };
        let mut row = Minted {
            org_id,
            kind: API_KEY,
            creator: principal.user_id(),
            name: BOOTSTRAP_KEY_NAME.to_owned(),
            environment: "test",
            secret: &secret,
            grant,
            expires_at: None,
        }
        .row();
        row.bootstrap = true;
        let event = audit(caller, principal, &row, "api_key.created");
        let created = self.store.ensure_bootstrap(row, &[event]).await?;
        if let Some(row) = &created {
            self.relay.notify_one();
            tracing::info!(key_id = %row.id, org_id = %org_id, "bootstrap key created");
        }
        Ok(created.map(|row| (row, secret)))
    }

    pub async fn revoke_org_credentials(&self, caller: &Caller, org: &str) -> Result<usize, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authz.require(principal, org_id, Action::OrgDelete).await?;
        let revoked = self.store.revoke_org(org_id, |row| revocation(caller, principal, row, "org_deleted")).await?;
        self.announce_revoked(&revoked).await;
        Ok(revoked.len())
    }

    /// A member left or was removed: the keys and tokens it created stop at once, so
    /// nobody keeps a credential of an org they no longer belong to. Only the orgs service
    /// asks, after deciding the removal.
    pub async fn revoke_member_credentials(&self, caller: &Caller, org: &str, user: &str) -> Result<usize, Error> {
        let principal = caller.principal()?;
        if !matches!(principal, Principal::Service { .. }) {
            return Err(Error::SessionRequired);
        }
        let org_id = org_id(org)?;
        let user_id = keyplane_common::ids::parse_uuid("user_id", user)?;
        let revoked = self
            .store
            .revoke_created_by(org_id, user_id, |row| revocation(caller, principal, row, "member_removed"))
            .await?;
        self.announce_revoked(&revoked).await;
        tracing::info!(org_id = %org_id, credentials_revoked = revoked.len(), "a former member's credentials revoked");
        Ok(revoked.len())
    }

    async fn announce_revoked(&self, revoked: &[Model]) {
        self.relay.notify_one();
        for row in revoked {
            self.propagator.publish(row, hashes_of(row)).await;
        }
    }

    pub async fn lookup_by_hash(
        &self,
        hash: &[u8],
    ) -> Result<Option<keyplane_proto::keys::v1::CredentialRecord>, Error> {
        let hash = SecretHash::from_bytes(hash).ok_or_else(|| FieldViolation::new("hash", "must be 32 bytes"))?;
        let hex = hash.to_hex();
        Ok(self.store.find_by_hash(&hex).await?.and_then(|row| records::lookup(&row, &hex)))
    }

    /// Applies one batch of the gateways' counted uses, once however often it is sent:
    /// `last_used_at`, and a `rotated_key_used` audit event for each source that used a
    /// previous secret (its id chosen by the gateway).
    pub async fn record_use(
        &self,
        batch_id: Uuid,
        uses: Vec<(Uuid, DateTime<Utc>, Vec<RotatedUse>)>,
    ) -> Result<(), Error> {
        let mut last_used = Vec::with_capacity(uses.len());
        let mut events = Vec::new();
        for (key_id, at, rotated) in uses {
            last_used.push((key_id, at));
            for used in rotated {
                let (Ok(org_id), Ok(event_id)) = (Uuid::parse_str(&used.org_id), Uuid::parse_str(&used.event_id))
                else {
                    continue;
                };
                let first = used.first_at.as_ref().and_then(time::from_proto).unwrap_or(at);
                let last = used.last_at.as_ref().and_then(time::from_proto).unwrap_or(at);
                let mut event = AuditRecord::new(
                    org_id,
                    &Principal::Service { name: "gateway".into() },
                    "rotated_key_used",
                    ("api_key", key_id.to_string()),
                )
                .with_metadata(serde_json::json!({
                    "count": used.count,
                    "first_at": first,
                    "last_at": last,
                    "request_id": used.request_id,
                }));
                event.id = event_id;
                event.actor_type = "api_key".into();
                event.actor_id = key_id.to_string();
                event.at = last;
                event.ip = used.ip;
                event.user_agent = used.user_agent;
                events.push(event);
            }
        }
        let applied = self.store.record_use(batch_id, &last_used, &events).await?;
        if !applied {
            tracing::debug!(batch_id = %batch_id, "key-use batch already applied");
        } else if !events.is_empty() {
            self.relay.notify_one();
        }
        Ok(())
    }

    pub async fn create_mcp_token(&self, caller: &Caller, new: NewToken) -> Result<(Model, Secret), Error> {
        let principal = caller.principal()?;
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let org_id = org_id(&new.org_id)?;
        let role = self.authz.require(principal, org_id, Action::McpTokensCreate).await?;
        let mut violations = Vec::new();
        let name = text::display_text("name", &new.name, grant::MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let expires_at = grant::expiry(new.expires_at, time::now()).map_err(|v| violations.push(v)).ok();
        let (Some(name), Some(expires_at)) = (name, expires_at) else {
            return Err(Error::Validation(violations));
        };
        let grant = grant::grant(
            principal,
            &grant::Request { scopes: new.scopes.as_deref(), resource_ids: &[], environment: None, expires_at },
        )?;
        // A token acts for its creator: it holds no scope its creator's role could not use.
        // (Its power also follows the creator's role at every use: see orgs' Authorize.)
        let role = role.ok_or_else(|| Error::internal("a user's authorization came without a role"))?;
        if !role.may_hold(&grant.scopes) {
            let too_much: Vec<String> = grant
                .scopes
                .effective()
                .into_iter()
                .filter(|s| keyplane_common::authz::scope_min_role(s) > role)
                .collect();
            return Err(Error::RoleTooLow(role, too_much.join(", ")));
        }
        let secret = self.format.generate(CredentialType::McpToken);
        let row = Minted {
            org_id,
            kind: MCP_TOKEN,
            creator: Some(user.user_id),
            name,
            environment: "",
            secret: &secret,
            grant,
            expires_at,
        }
        .row();
        let row = self.store.insert(row.clone(), &[audit(caller, principal, &row, "mcp_token.created")]).await?;
        self.relay.notify_one();
        Ok((row, secret))
    }

    pub async fn list_mcp_tokens(&self, caller: &Caller, page: Page) -> Result<Vec<Model>, Error> {
        let Principal::User(user) = caller.principal()? else { return Err(Error::SessionRequired) };
        self.store.list_for_creator(user.user_id, MCP_TOKEN, &page).await
    }

    /// The token's owner may revoke it, and so may an admin of its org; to anyone else
    /// the token does not exist.
    pub async fn revoke_mcp_token(&self, caller: &Caller, token_id: &str) -> Result<Model, Error> {
        let principal = caller.principal()?;
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let token_id = Uuid::parse_str(token_id).map_err(|_| Error::TokenNotFound)?;
        let row = match self.store.get(token_id).await? {
            Some(row) if row.kind == MCP_TOKEN => row,
            _ => return Err(Error::TokenNotFound),
        };
        if row.created_by != Some(user.user_id) {
            self.authz
                .require(principal, row.org_id, Action::McpTokensAdmin)
                .await
                .map_err(|_| Error::TokenNotFound)?;
        }
        let revoked = self.store.revoke(row.id, &[audit(caller, principal, &row, "mcp_token.revoked")]).await?;
        self.relay.notify_one();
        self.propagator.publish(&revoked, hashes_of(&revoked)).await;
        Ok(revoked)
    }
}
