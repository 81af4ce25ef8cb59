//! The orgs use cases.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authz::{Action, Role},
    error::FieldViolation,
    grpc::Outbound,
    ids::{Page, parse_uuid},
    internal_auth::Caller,
    principal::Principal,
};
use keyplane_proto::{
    identity::v1::{
        BatchGetUsersRequest, FindUserByEmailRequest, User, identity_service_client::IdentityServiceClient,
    },
    keys::v1::{RevokeOrgCredentialsRequest, keys_service_client::KeysServiceClient},
};
use tonic::{Code, transport::Channel};
use uuid::Uuid;

use crate::{
    domain::{access, org_fields},
    error::Error,
    store::{AuditQuery, NewOrg, OrgChanges, Store, audit_events, members, orgs},
};

pub struct Service {
    pub store: Store,
    pub identity: IdentityServiceClient<Channel>,
    pub keys: KeysServiceClient<Channel>,
    pub outbound: Outbound,
}

/// What a new org asks for, before validation.
pub struct OrgInput {
    pub name: String,
    pub description: String,
    pub website_url: String,
}

/// A member with the user's name and email.
pub struct MemberView {
    pub member: members::Model,
    pub user: Option<User>,
}

fn org_id(raw: &str) -> Result<Uuid, Error> {
    // A malformed id names no org: the same answer as another tenant's.
    Uuid::parse_str(raw).map_err(|_| Error::OrgNotFound)
}

fn audit(caller: &Caller, principal: &Principal, org_id: Uuid, action: &str, target: (&str, String)) -> AuditRecord {
    AuditRecord::new(org_id, principal, action, target).from_caller(caller)
}

impl Service {
    /// May `principal` do `action` on the org? Also the answer of the Authorize RPC.
    pub async fn authorize(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Option<Role>, Error> {
        let membership = match principal {
            Principal::User(user) => self.store.role(org_id, user.user_id).await?,
            Principal::ApiKey(_) | Principal::McpToken(_) => {
                // A key of a deleted org has been revoked; say so plainly all the same.
                if self.store.org(org_id).await?.is_none() {
                    return Err(Error::OrgNotFound);
                }
                None
            }
            Principal::Service { .. } => None,
        };
        access::decide(principal, org_id, membership, action)
    }

    fn validate(input: &OrgInput) -> Result<NewOrgFields, Error> {
        let mut violations = Vec::new();
        let name = org_fields::name(&input.name).map_err(|v| violations.push(v)).ok();
        let description = org_fields::description(&input.description).map_err(|v| violations.push(v)).ok();
        let website_url = org_fields::website_url(&input.website_url).map_err(|v| violations.push(v)).ok();
        match (name, description, website_url) {
            (Some(name), Some(description), Some(website_url)) => Ok(NewOrgFields { name, description, website_url }),
            _ => Err(Error::Validation(violations)),
        }
    }

    pub async fn ensure_dev_org(&self, caller: &Caller, name: &str) -> Result<(orgs::Model, bool), Error> {
        let principal = caller.principal()?;
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let name = if name.trim().is_empty() {
            let who =
                if user.name.is_empty() { user.email.split('@').next().unwrap_or("My") } else { user.name.as_str() };
            format!("{who}'s org")
        } else {
            name.to_owned()
        };
        let fields = Self::validate(&OrgInput { name, description: String::new(), website_url: String::new() })?;
        let new = fields.into_new(user.user_id);
        self.store
            .ensure_dev_org(user.user_id, new, |org| {
                audit(caller, principal, org.id, "org.created", ("org", org.id.to_string()))
            })
            .await
    }

    pub async fn create_org(&self, caller: &Caller, input: OrgInput) -> Result<orgs::Model, Error> {
        let principal = caller.principal()?;
        let owner = match principal {
            Principal::User(user) => user.user_id,
            Principal::ApiKey(key) => {
                if !key.scopes.allows("write:orgs") {
                    return Err(Error::InsufficientScope("write:orgs"));
                }
                // The org belongs to the person who made the key.
                key.created_by.ok_or(Error::Forbidden("this key has no owner to own a new org"))?
            }
            Principal::McpToken(_) | Principal::Service { .. } => return Err(Error::SessionRequired),
        };
        let fields = Self::validate(&input)?;
        self.store
            .create_org(fields.into_new(owner), |org| {
                audit(caller, principal, org.id, "org.created", ("org", org.id.to_string()))
            })
            .await
    }

    pub async fn list_orgs(&self, caller: &Caller, page: Page) -> Result<Vec<orgs::Model>, Error> {
        match caller.principal()? {
            Principal::User(user) => self.store.orgs_of(user.user_id, &page).await,
            Principal::ApiKey(key) => {
                if !key.scopes.allows("read:orgs") {
                    return Err(Error::InsufficientScope("read:orgs"));
                }
                Ok(self
                    .store
                    .org(key.org_id)
                    .await?
                    .into_iter()
                    .filter(|o| page.after.is_none_or(|a| o.id > a))
                    .collect())
            }
            Principal::McpToken(token) => Ok(self.store.org(token.org_id).await?.into_iter().collect()),
            Principal::Service { .. } => Err(Error::SessionRequired),
        }
    }

    pub async fn get_org(&self, caller: &Caller, org: &str) -> Result<orgs::Model, Error> {
        let org_id = org_id(org)?;
        let principal = caller.principal()?;
        // Services may read any org (the gateway's whoami for a key of any scope).
        if !matches!(principal, Principal::Service { .. }) {
            self.authorize(principal, org_id, Action::OrgRead).await?;
        }
        self.store.org(org_id).await?.ok_or(Error::OrgNotFound)
    }

    pub async fn update_org(&self, caller: &Caller, org: &str, changes: OrgChanges) -> Result<orgs::Model, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authorize(principal, org_id, Action::OrgUpdate).await?;
        let mut violations = Vec::new();
        let mut checked = OrgChanges::default();
        if let Some(name) = &changes.name {
            checked.name = org_fields::name(name).map_err(|v| violations.push(v)).ok();
        }
        if let Some(description) = &changes.description {
            checked.description = org_fields::description(description).map_err(|v| violations.push(v)).ok();
        }
        if let Some(url) = &changes.website_url {
            checked.website_url = org_fields::website_url(url).map_err(|v| violations.push(v)).ok();
        }
        if !violations.is_empty() {
            return Err(Error::Validation(violations));
        }
        let event = audit(caller, principal, org_id, "org.updated", ("org", org_id.to_string()));
        self.store.update_org(org_id, checked, event).await
    }

    /// Revokes every key and token of the org first: if that fails, nothing is deleted.
    pub async fn delete_org(&self, caller: &Caller, org: &str) -> Result<(), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authorize(principal, org_id, Action::OrgDelete).await?;
        let request = self.outbound.request_as(RevokeOrgCredentialsRequest { org_id: org_id.to_string() }, caller);
        let revoked = self.keys.clone().revoke_org_credentials(request).await?.into_inner().revoked;
        let event = audit(caller, principal, org_id, "org.deleted", ("org", org_id.to_string()))
            .with_metadata(serde_json::json!({ "credentials_revoked": revoked }));
        self.store.delete_org(org_id, event).await?;
        tracing::info!(org_id = %org_id, credentials_revoked = revoked, "org deleted");
        Ok(())
    }

    pub async fn list_members(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<MemberView>, Error> {
        let org_id = org_id(org)?;
        self.authorize(caller.principal()?, org_id, Action::MembersRead).await?;
        let members = self.store.members(org_id, &page).await?;
        let ids = members.iter().map(|m| m.user_id.to_string()).collect();
        let users =
            self.identity.clone().batch_get_users(self.outbound.request(BatchGetUsersRequest { ids }, None)).await?;
        let mut by_id: HashMap<String, User> =
            users.into_inner().users.into_iter().map(|u| (u.id.clone(), u)).collect();
        Ok(members
            .into_iter()
            .map(|member| MemberView { user: by_id.remove(&member.user_id.to_string()), member })
            .collect())
    }

    pub async fn add_member(
        &self,
        caller: &Caller,
        org: &str,
        email: &str,
        role: Option<Role>,
    ) -> Result<MemberView, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let my_role = self.authorize(principal, org_id, Action::MembersWrite).await?;
        let role = role.ok_or_else(|| FieldViolation::new("role", "must be \"owner\", \"admin\" or \"member\""))?;
        // Nobody hands out more than they have (keys act as admins).
        if role > my_role.unwrap_or(Role::Admin) {
            return Err(Error::InsufficientRole("owner"));
        }
        let found = self
            .identity
            .clone()
            .find_user_by_email(self.outbound.request(FindUserByEmailRequest { email: email.to_owned() }, None))
            .await;
        let user = match found {
            Ok(user) => user.into_inner(),
            Err(status) if status.code() == Code::NotFound => return Err(Error::UserNotFound),
            Err(status) => return Err(status.into()),
        };
        let user_id =
            parse_uuid("user_id", &user.id).map_err(|_| Error::internal("identity answered a bad user id"))?;
        let event = audit(caller, principal, org_id, "member.added", ("user", user.id.clone()))
            .with_metadata(serde_json::json!({ "role": role.as_str() }));
        let member = self.store.add_member(org_id, user_id, role, event).await?;
        Ok(MemberView { member, user: Some(user) })
    }

    /// Admins remove members; anyone may leave; only owners remove owners.
    pub async fn remove_member(&self, caller: &Caller, org: &str, user: &str) -> Result<(), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let user_id = Uuid::parse_str(user).map_err(|_| Error::MemberNotFound)?;
        let leaving = principal.user_id() == Some(user_id) && matches!(principal, Principal::User(_));
        let my_role = if leaving {
            self.authorize(principal, org_id, Action::OrgRead).await?
        } else {
            self.authorize(principal, org_id, Action::MembersWrite).await?
        };
        if !leaving && my_role != Some(Role::Owner) && self.store.role(org_id, user_id).await? == Some(Role::Owner) {
            return Err(Error::InsufficientRole("owner"));
        }
        let event = audit(caller, principal, org_id, "member.removed", ("user", user_id.to_string()));
        self.store.remove_member(org_id, user_id, event).await?;
        Ok(())
    }

    pub async fn append_audit(&self, events: Vec<AuditRecord>) -> Result<u64, Error> {
        self.store.append_audit(&events).await
    }

    pub async fn audit_log(
        &self,
        caller: &Caller,
        org: &str,
        from: Option<DateTime<Utc>>,
        to: Option<DateTime<Utc>>,
        action: Option<String>,
        page: Page,
    ) -> Result<Vec<audit_events::Model>, Error> {
        let org_id = org_id(org)?;
        self.authorize(caller.principal()?, org_id, Action::AuditRead).await?;
        self.store.audit_events(AuditQuery { org_id, from, to, action }, &page).await
    }
}

struct NewOrgFields {
    name: String,
    description: String,
    website_url: String,
}

impl NewOrgFields {
    fn into_new(self, owner: Uuid) -> NewOrg {
        NewOrg { name: self.name, description: self.description, website_url: self.website_url, owner }
    }
}
