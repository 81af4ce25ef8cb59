//! The keys use cases. Each authorizes through the orgs service, commits the change with
//! its audit event, then tells the caches.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authz::{Action, scope_min_role},
    credential::{CredentialType, Environment, KeyFormat, Secret, SecretHash},
    error::FieldViolation,
    internal_auth::Caller,
    key_record::KeyRecord,
    page::Page,
    principal::Principal,
    rate_limit::RateLimit,
    scope::Scopes,
    text,
    time::Clock,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::{
        grant::{self, BOOTSTRAP_KEY_NAME, Membership},
        key::{Credential, Kind, Mint, Status as KeyStatus},
        key_use::KeyUse,
        leak::{self, Leak, Verdict},
        regeneration,
    },
    error::Error,
    orgs::{Orgs, Standing},
    propagate::Propagator,
    store::Store,
};

pub struct Service {
    pub store: Store,
    pub orgs: Orgs,
    pub format: KeyFormat,
    pub propagator: Propagator,
    /// Wakes the outbox relay after a commit, so audit events arrive promptly.
    pub relay: Arc<Notify>,
    pub clock: Clock,
    /// The most a key's own rate limit may allow (the operator's ceiling).
    pub max_key_rate: RateLimit,
    /// The rate of a key without one of its own.
    pub default_key_rate: RateLimit,
}

/// What a new API key asks for, before validation.
pub struct NewKey {
    pub org_id: String,
    pub name: String,
    pub environment: Option<Environment>,
    pub scopes: Option<Vec<String>>,
    pub resource_ids: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub rate_limit: Option<RateLimit>,
}

/// A change to a key: what is None stays.
pub struct KeyChange {
    pub name: Option<String>,
    /// Some(None): back to the gateway's default.
    pub rate_limit: Option<Option<RateLimit>>,
}

/// What a new MCP token asks for, before validation.
pub struct NewToken {
    pub org_id: String,
    pub name: String,
    pub scopes: Option<Vec<String>>,
    pub expires_at: Option<DateTime<Utc>>,
}

/// GitHub sends at most a few hundred matches in one alert.
pub const MAX_LEAKS_PER_REPORT: usize = 1000;

/// The principal of a call the service `name` makes on its own authority (signed by it,
/// acting as itself); any other caller, another service included, is refused with `refusal`.
fn only_service<'c>(caller: &'c Caller, name: &str, refusal: Error) -> Result<&'c Principal, Error> {
    match caller.principal()? {
        principal @ Principal::Service { name: acting } if acting == name && caller.service == name => Ok(principal),
        _ => Err(refusal),
    }
}

/// Bulk revocations are the orgs service's to decide.
fn only_orgs(caller: &Caller) -> Result<&Principal, Error> {
    only_service(caller, "orgs", Error::OrgsOnly)
}

/// What the reporter shows and the owners read: the leaked secret's own prefix (a
/// previous secret's differs from the credential's current one), else the credential's.
fn leaked_prefix(found: &Leak, credential: &Credential) -> String {
    if found.prefix.is_empty() { credential.prefix.clone() } else { found.prefix.clone() }
}

/// A malformed org id names no org: the same answer as another tenant's.
fn org_id(raw: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(raw).map_err(|_| Error::OrgNotFound)
}

fn audit(caller: &Caller, principal: &Principal, credential: &Credential, action: &str) -> AuditRecord {
    AuditRecord::new(credential.org_id, principal, action, (credential.kind.target(), credential.id.to_string()))
        .from_caller(caller)
        .with_metadata(serde_json::json!({ "name": credential.name, "prefix": credential.prefix }))
}

/// The audit event of a credential revoked in bulk, and why.
fn revocation(caller: &Caller, principal: &Principal, credential: &Credential, reason: &str) -> AuditRecord {
    let action = match credential.kind {
        Kind::ApiKey => "api_key.revoked",
        Kind::McpToken => "mcp_token.revoked",
    };
    audit(caller, principal, credential, action)
        .with_metadata(serde_json::json!({ "reason": reason, "name": credential.name }))
}

impl Service {
    pub async fn create_key(&self, caller: &Caller, new: NewKey) -> Result<(Credential, Secret), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(&new.org_id)?;
        let standing = self.orgs.require(principal, org_id, Action::KeysWrite).await?;
        let now = self.clock.now();
        let mut violations = Vec::new();
        let name = text::display_text("name", &new.name, grant::MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let environment = new.environment.or_else(|| {
            violations.push(FieldViolation::new("environment", "must be \"test\" or \"live\""));
            None
        });
        let expires_at = grant::expiry(new.expires_at, now).map_err(|v| violations.push(v)).ok();
        if let Err(v) = self.under_ceiling(new.rate_limit) {
            violations.push(v);
        }
        let (Some(name), Some(environment), Some(expires_at), true) =
            (name, environment, expires_at, violations.is_empty())
        else {
            return Err(Error::Validation(violations));
        };
        let grant = grant::grant(
            principal,
            &grant::Request {
                scopes: new.scopes.as_deref(),
                resource_ids: &new.resource_ids,
                environment: Some(environment),
                expires_at,
                rate_limit: new.rate_limit,
                default_rate: self.default_key_rate,
            },
        )?;
        let secret = self.format.generate(CredentialType::ApiKey(environment));
        let mint = Mint {
            kind: Kind::ApiKey,
            org_id,
            created_by: principal.user_id(),
            name,
            environment: Some(environment),
            scopes: grant.scopes,
            resource_ids: grant.resource_ids,
            expires_at,
            rate_limit: grant.rate_limit,
            bootstrap: false,
        };
        let key = Credential::mint(mint, &secret, keyplane_common::time::now());
        let key =
            self.store.insert(&key, standing.membership, &[audit(caller, principal, &key, "api_key.created")]).await?;
        self.relay.notify_one();
        tracing::info!(key_id = %key.id, org_id = %org_id, key_prefix = %key.prefix, "api key created");
        Ok((key, secret))
    }

    pub async fn list_keys(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<Credential>, Error> {
        let org_id = org_id(org)?;
        self.orgs.require(caller.principal()?, org_id, Action::KeysRead).await?;
        self.store.list_for_org(org_id, Kind::ApiKey, &page).await
    }

    pub async fn get_key(&self, caller: &Caller, org: &str, key_id: &str, action: Action) -> Result<Credential, Error> {
        Ok(self.key_as(caller, org, key_id, action).await?.0)
    }

    /// A key of the org, and the standing the caller acts on.
    async fn key_as(
        &self,
        caller: &Caller,
        org: &str,
        key_id: &str,
        action: Action,
    ) -> Result<(Credential, Standing), Error> {
        let org_id = org_id(org)?;
        let standing = self.orgs.require(caller.principal()?, org_id, action).await?;
        let key_id = Uuid::parse_str(key_id).map_err(|_| Error::KeyNotFound)?;
        match self.store.get(key_id).await? {
            Some(key) if key.org_id == org_id && key.kind == Kind::ApiKey => Ok((key, standing)),
            _ => Err(Error::KeyNotFound),
        }
    }

    /// Renames a key or changes its rate limit. A key changing a key must hold everything
    /// the target holds (as for regenerating), and gives it no more rate than its own.
    pub async fn update_key(
        &self,
        caller: &Caller,
        org: &str,
        key_id: &str,
        change: KeyChange,
    ) -> Result<Credential, Error> {
        let principal = caller.principal()?;
        let (key, _) = self.key_as(caller, org, key_id, Action::KeysWrite).await?;
        grant::covers(principal, &key)?;
        let mut violations = Vec::new();
        let name = match &change.name {
            Some(name) => text::display_text("name", name, grant::MAX_NAME_LEN).map_err(|v| violations.push(v)).ok(),
            None => Some(key.name.clone()),
        };
        let rate_limit = match change.rate_limit {
            Some(_) if matches!(principal, Principal::ApiKey(own) if own.key_id == key.id) => {
                // Changing its own window would start its count afresh: a key could spend
                // its budget, change its window, and spend it again.
                return Err(Error::OwnRateLimit);
            }
            Some(wanted) => {
                if let Err(v) = self.under_ceiling(wanted) {
                    violations.push(v);
                }
                // A key gives no more than it has; cleared by a key with a limit of its
                // own, the limit becomes that one.
                grant::rate_change(principal, self.default_key_rate, wanted)?
            }
            None => key.rate_limit,
        };
        let (Some(name), true) = (name, violations.is_empty()) else { return Err(Error::Validation(violations)) };
        if key.status(self.clock.now()) == KeyStatus::Revoked {
            return Err(Error::KeyRevoked);
        }
        if name == key.name && rate_limit == key.rate_limit {
            return Ok(key);
        }
        let changed = Credential { name, rate_limit, ..key.clone() };
        let event = audit(caller, principal, &changed, "api_key.updated").with_metadata(serde_json::json!({
            "name": changed.name,
            "previous_name": key.name,
            "rate_limit": changed.rate_limit.map(|r| r.to_string()),
            "previous_rate_limit": key.rate_limit.map(|r| r.to_string()),
        }));
        let updated = self.store.update(&changed, &[event]).await?;
        self.relay.notify_one();
        // Caches hold the record, rate limit included: every replica learns the change.
        self.propagator.publish(&updated, updated.hashes()).await;
        Ok(updated)
    }

    /// A key's own rate may not pass the operator's ceiling.
    fn under_ceiling(&self, rate: Option<RateLimit>) -> Result<(), FieldViolation> {
        match rate {
            Some(rate) if !rate.within(self.max_key_rate) => Err(FieldViolation::new(
                "rate_limit",
                format!("may allow at most {} requests per seconds (the operator's ceiling)", self.max_key_rate),
            )),
            _ => Ok(()),
        }
    }

    pub async fn revoke_key(&self, caller: &Caller, org: &str, key_id: &str) -> Result<Credential, Error> {
        let principal = caller.principal()?;
        let key = self.get_key(caller, org, key_id, Action::KeysWrite).await?;
        let revoked = self.store.revoke(key.id, &[audit(caller, principal, &key, "api_key.revoked")]).await?;
        self.relay.notify_one();
        self.propagator.publish(&revoked, revoked.hashes()).await;
        tracing::info!(key_id = %revoked.id, key_prefix = %revoked.prefix, "api key revoked");
        Ok(revoked)
    }

    pub async fn regenerate_key(
        &self,
        caller: &Caller,
        org: &str,
        key_id: &str,
        grace: Option<i64>,
    ) -> Result<(Credential, Secret), Error> {
        let principal = caller.principal()?;
        let grace = regeneration::grace_period(grace)?;
        let (key, standing) = self.key_as(caller, org, key_id, Action::KeysWrite).await?;
        regeneration::may_regenerate(principal, standing.role, &key)?;
        let environment = key.environment.ok_or_else(|| Error::internal("stored key without environment"))?;
        let secret = self.format.generate(CredentialType::ApiKey(environment));
        let regenerated = regeneration::regenerate(&key, &secret, grace, self.clock.now(), principal.user_id())?;
        let event = audit(caller, principal, &key, "api_key.regenerated").with_metadata(serde_json::json!({
            "name": key.name,
            "grace_period_seconds": grace,
            "previous_prefix": key.prefix,
            "previous_holder": key.created_by,
        }));
        let updated = self.store.regenerate(&key, &regenerated, standing.membership, &[event]).await?;
        self.relay.notify_one();
        // The secret before last stops now; the last one moves into its grace period.
        self.propagator.publish(&updated, key.hashes()).await;
        tracing::info!(key_id = %updated.id, grace_period_seconds = grace, "api key regenerated");
        Ok((updated, secret))
    }

    pub async fn ensure_bootstrap_key(
        &self,
        caller: &Caller,
        org: &str,
    ) -> Result<Option<(Credential, Secret)>, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let standing = self.orgs.require(principal, org_id, Action::KeysWrite).await?;
        let secret = self.format.generate(CredentialType::ApiKey(Environment::Test));
        let mint = Mint {
            kind: Kind::ApiKey,
            org_id,
            created_by: principal.user_id(),
            name: BOOTSTRAP_KEY_NAME.to_owned(),
            environment: Some(Environment::Test),
            scopes: Scopes::Full,
            resource_ids: Vec::new(),
            expires_at: None,
            rate_limit: None,
            bootstrap: true,
        };
        let key = Credential::mint(mint, &secret, keyplane_common::time::now());
        let event = audit(caller, principal, &key, "api_key.created");
        let created = self.store.ensure_bootstrap(&key, standing.membership, &[event]).await?;
        if let Some(key) = &created {
            self.relay.notify_one();
            tracing::info!(key_id = %key.id, org_id = %org_id, "bootstrap key created");
        }
        Ok(created.map(|key| (key, secret)))
    }

    /// The org was deleted: every key and token stops at once, and none is made after.
    /// Only the orgs service asks, after deciding the deletion.
    pub async fn revoke_org_credentials(&self, caller: &Caller, org: &str) -> Result<usize, Error> {
        let principal = only_orgs(caller)?;
        let org_id = org_id(org)?;
        let revoked = self.store.revoke_org(org_id, |c| revocation(caller, principal, c, "org_deleted")).await?;
        self.announce_revoked(&revoked).await;
        Ok(revoked.len())
    }

    /// A member left or was removed: the keys and tokens it created stop at once, and none
    /// authorized on the membership that ended is made after. Only the orgs service asks,
    /// after deciding the removal.
    pub async fn revoke_member_credentials(
        &self,
        caller: &Caller,
        org: &str,
        user: &str,
        member_since: Option<DateTime<Utc>>,
    ) -> Result<usize, Error> {
        let principal = only_orgs(caller)?;
        let org_id = org_id(org)?;
        let user_id = FieldViolation::uuid("user_id", user)?;
        let since = member_since.ok_or_else(|| FieldViolation::new("member_since", "is required"))?;
        let ended = Membership { user_id, since };
        let revoked =
            self.store.revoke_created_by(org_id, ended, |c| revocation(caller, principal, c, "member_removed")).await?;
        self.announce_revoked(&revoked).await;
        tracing::info!(org_id = %org_id, credentials_revoked = revoked.len(), "a former member's credentials revoked");
        Ok(revoked.len())
    }

    async fn announce_revoked(&self, revoked: &[Credential]) {
        self.relay.notify_one();
        for credential in revoked {
            self.propagator.publish(credential, credential.hashes()).await;
        }
    }

    /// The record behind a hash, whatever its state (the caller decides on it).
    pub async fn lookup_by_hash(&self, hash: &[u8]) -> Result<Option<KeyRecord>, Error> {
        let hash = SecretHash::from_bytes(hash).ok_or_else(|| FieldViolation::new("hash", "must be 32 bytes"))?;
        Ok(self.store.find_by_hash(&hash).await?.and_then(|c| c.record_for(&hash)))
    }

    /// Applies one batch of the gateways' counted uses, once however often it is sent:
    /// `last_used_at`, and a `rotated_key_used` audit event for each source that used a
    /// previous secret (its id chosen by the gateway).
    pub async fn record_use(&self, batch_id: Uuid, uses: Vec<KeyUse>) -> Result<(), Error> {
        let last_used: Vec<(Uuid, DateTime<Utc>)> = uses.iter().map(|u| (u.key_id, u.last_used_at)).collect();
        let events: Vec<AuditRecord> =
            uses.iter().flat_map(|u| u.rotated.iter().map(|rotated| rotated.audit(u.key_id))).collect();
        let applied = self.store.record_use(batch_id, &last_used, &events).await?;
        if !applied {
            tracing::debug!(batch_id = %batch_id, "key-use batch already applied");
        } else if !events.is_empty() {
            self.relay.notify_one();
        }
        Ok(())
    }

    pub async fn create_mcp_token(&self, caller: &Caller, new: NewToken) -> Result<(Credential, Secret), Error> {
        let principal = caller.principal()?;
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let org_id = org_id(&new.org_id)?;
        let standing = self.orgs.require(principal, org_id, Action::McpTokensCreate).await?;
        let mut violations = Vec::new();
        let name = text::display_text("name", &new.name, grant::MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let expires_at = grant::expiry(new.expires_at, self.clock.now()).map_err(|v| violations.push(v)).ok();
        let (Some(name), Some(expires_at)) = (name, expires_at) else {
            return Err(Error::Validation(violations));
        };
        let grant = grant::grant(
            principal,
            &grant::Request {
                scopes: new.scopes.as_deref(),
                resource_ids: &[],
                environment: None,
                expires_at,
                rate_limit: None,
                default_rate: self.default_key_rate,
            },
        )?;
        // A token acts for its creator: it holds no scope its creator's role could not use.
        // (Its power also follows the creator's role at every use: see orgs' Authorize.)
        let role = standing.role.ok_or_else(|| Error::internal("a user's authorization came without a role"))?;
        if !role.may_hold(&grant.scopes) {
            let too_much: Vec<String> =
                grant.scopes.effective().into_iter().filter(|s| scope_min_role(s) > role).collect();
            return Err(Error::RoleTooLow(role, too_much.join(", ")));
        }
        let secret = self.format.generate(CredentialType::McpToken);
        let mint = Mint {
            kind: Kind::McpToken,
            org_id,
            created_by: Some(user.user_id),
            name,
            environment: None,
            scopes: grant.scopes,
            resource_ids: Vec::new(),
            expires_at,
            rate_limit: None,
            bootstrap: false,
        };
        let token = Credential::mint(mint, &secret, keyplane_common::time::now());
        let token = self
            .store
            .insert(&token, standing.membership, &[audit(caller, principal, &token, "mcp_token.created")])
            .await?;
        self.relay.notify_one();
        Ok((token, secret))
    }

    pub async fn list_mcp_tokens(&self, caller: &Caller, page: Page) -> Result<Vec<Credential>, Error> {
        let Principal::User(user) = caller.principal()? else { return Err(Error::SessionRequired) };
        self.store.list_for_creator(user.user_id, Kind::McpToken, &page).await
    }

    /// The token's owner may revoke it, and so may an admin of its org; to anyone else
    /// the token does not exist.
    pub async fn revoke_mcp_token(&self, caller: &Caller, token_id: &str) -> Result<Credential, Error> {
        let principal = caller.principal()?;
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let token_id = Uuid::parse_str(token_id).map_err(|_| Error::TokenNotFound)?;
        let token = match self.store.get(token_id).await? {
            Some(token) if token.kind == Kind::McpToken => token,
            _ => return Err(Error::TokenNotFound),
        };
        if token.created_by != Some(user.user_id) {
            self.orgs
                .require(principal, token.org_id, Action::McpTokensAdmin)
                .await
                .map_err(|_| Error::TokenNotFound)?;
        }
        let revoked = self.store.revoke(token.id, &[audit(caller, principal, &token, "mcp_token.revoked")]).await?;
        self.relay.notify_one();
        self.propagator.publish(&revoked, revoked.hashes()).await;
        Ok(revoked)
    }

    /// Secrets found in public: each that still works stops at once (every gateway refuses
    /// it within the usual bound), audited with where it was found; the org's owners hear of
    /// it through the audit event (the orgs service mails them). A report repeated changes
    /// nothing. Only the gateway asks, after checking the reporter's signature.
    pub async fn revoke_leaked(&self, caller: &Caller, leaks: Vec<Leak>) -> Result<Vec<Verdict>, Error> {
        let principal = only_service(caller, "gateway", Error::ReporterOnly)?;
        if leaks.len() > MAX_LEAKS_PER_REPORT {
            return Err(FieldViolation::new("secrets", format!("at most {MAX_LEAKS_PER_REPORT} per report")).into());
        }
        let mut verdicts = Vec::with_capacity(leaks.len());
        for found in leaks {
            let real = self.stop_leaked(caller, principal, &found).await?;
            verdicts
                .push(Verdict { hash: found.hash, prefix: real.map(|credential| leaked_prefix(&found, &credential)) });
        }
        Ok(verdicts)
    }

    /// Stops one leaked secret if it still works: the credential it belongs to (None: not
    /// ours). A regeneration or revocation landing between the read
    /// and the write is read again, so a secret that still works is never left working.
    async fn stop_leaked(
        &self,
        caller: &Caller,
        principal: &Principal,
        found: &Leak,
    ) -> Result<Option<Credential>, Error> {
        for _ in 0..3 {
            let Some(credential) = self.store.find_by_hash(&found.hash).await? else { return Ok(None) };
            let Some(exposed) = leak::exposed(&credential, &found.hash, self.clock.now()) else {
                return Ok(Some(credential));
            };
            let prefix = leaked_prefix(found, &credential);
            let event =
                audit(caller, principal, &credential, leak::action(credential.kind)).with_metadata(serde_json::json!({
                    "name": credential.name,
                    "prefix": prefix,
                    "secret": if exposed == leak::Exposed::Current { "current" } else { "previous" },
                    "url": found.url,
                    "source": found.source,
                    "reporter": found.reporter,
                }));
            if let Some(stopped) = self.store.stop_leaked(&credential, exposed, &[event]).await? {
                self.relay.notify_one();
                // Every secret the credential held: a revoked one stops them all, an ended
                // grace the previous one (the current is republished unchanged).
                self.propagator.publish(&stopped, credential.hashes()).await;
                tracing::warn!(
                    key_id = %stopped.id, key_prefix = %prefix, reporter = %found.reporter,
                    "a leaked credential was stopped"
                );
                return Ok(Some(stopped));
            }
        }
        Err(Error::Conflict)
    }
}
