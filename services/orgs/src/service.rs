//! The orgs use cases.

use keyplane_common::{
    audit::AuditRecord,
    authz::{Action, Role},
    error::FieldViolation,
    internal_auth::Caller,
    mail::OutgoingMail,
    page::Page,
    principal::Principal,
    text,
};
use std::{collections::HashMap, sync::Arc};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::{
    domain::{
        access::{self, Actor, is_owner_session},
        invitation::{self, INVITATION_TTL, Invitation, Status},
        leak_notice,
        org::{Member, Org, UserInfo},
        org_fields,
        revocation::Revocation,
    },
    error::Error,
    peers::{Identity, Keys},
    store::{AuditFilter, NewInvitation, NewOrg, OrgChanges, Store},
};

pub struct Service {
    pub store: Store,
    pub identity: Identity,
    pub keys: Keys,
    /// Wakes the mail relay after an invitation commits.
    pub mail_relay: Arc<Notify>,
    /// Wakes the revocation relay when a revocation could not be delivered at once.
    pub revocation_relay: Arc<Notify>,
    /// Where the console is, for links in mail (None: mails name the API route).
    pub public_url: Option<String>,
}

/// What a new org asks for, before validation.
pub struct OrgInput {
    pub name: String,
    pub description: String,
    pub website_url: String,
}

/// A member with the user's name and email.
pub struct MemberView {
    pub member: Member,
    pub user: Option<UserInfo>,
}

/// An invitation with the name of its org.
pub struct InvitationView {
    pub invitation: Invitation,
    pub org_name: String,
}

fn org_id(raw: &str) -> Result<Uuid, Error> {
    // A malformed id names no org: the same answer as another tenant's.
    Uuid::parse_str(raw).map_err(|_| Error::OrgNotFound)
}

fn audit(caller: &Caller, principal: &Principal, org_id: Uuid, action: &str, target: (&str, String)) -> AuditRecord {
    AuditRecord::new(org_id, principal, action, target).from_caller(caller)
}

impl Service {
    /// May `principal` do `action` on the org? A key or token acts with its creator's
    /// current role, looked up here at every call.
    pub async fn authorize(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Option<Role>, Error> {
        Ok(self.standing(principal, org_id, action).await?.map(|m| m.role))
    }

    /// The answer of the Authorize RPC: the membership the principal acts on (none for
    /// services), or why it may not act.
    pub async fn standing(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Option<Member>, Error> {
        if matches!(principal, Principal::ApiKey(_) | Principal::McpToken(_)) && self.store.org(org_id).await?.is_none()
        {
            // A key of a deleted org has been revoked; say so plainly all the same.
            return Err(Error::OrgNotFound);
        }
        let membership = match principal {
            Principal::Service { .. } => None,
            _ => match principal.user_id() {
                Some(user_id) => self.store.membership(org_id, user_id).await?,
                None => None,
            },
        };
        access::decide(principal, org_id, membership.as_ref().map(|m| m.role), action)?;
        Ok(membership)
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

    pub async fn ensure_dev_org(&self, caller: &Caller, name: &str) -> Result<(Org, bool), Error> {
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

    pub async fn create_org(&self, caller: &Caller, input: OrgInput) -> Result<Org, Error> {
        let principal = caller.principal()?;
        let owner = match principal {
            Principal::User(user) => user.user_id,
            Principal::ApiKey(key) => {
                if key.grace_ends_at.is_some() {
                    return Err(Error::KeyInGrace);
                }
                if !key.scopes.allows("write:orgs") {
                    return Err(Error::InsufficientScope("write:orgs"));
                }
                // The org belongs to the person who made the key, while they are a member
                // of the key's org: a key acts for its creator, never beyond them.
                let creator = key.created_by.ok_or(Error::CreatorNotMember)?;
                if self.store.role(key.org_id, creator).await?.is_none() {
                    return Err(Error::CreatorNotMember);
                }
                creator
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

    pub async fn list_orgs(&self, caller: &Caller, page: Page) -> Result<Vec<Org>, Error> {
        let principal = caller.principal()?;
        let own_org = match principal {
            Principal::User(user) => return self.store.orgs_of(user.user_id, &page).await,
            Principal::ApiKey(key) => key.org_id,
            Principal::McpToken(token) => token.org_id,
            Principal::Service { .. } => return Err(Error::SessionRequired),
        };
        // A key or token lists its own org, if it may read it.
        match self.authorize(principal, own_org, Action::OrgRead).await {
            Ok(_) => {}
            Err(Error::OrgNotFound) => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        Ok(self.store.org(own_org).await?.into_iter().filter(|o| page.after.is_none_or(|a| o.id > a)).collect())
    }

    pub async fn get_org(&self, caller: &Caller, org: &str) -> Result<Org, Error> {
        let org_id = org_id(org)?;
        let principal = caller.principal()?;
        // Services may read any org (the gateway's whoami for a key of any scope).
        if !matches!(principal, Principal::Service { .. }) {
            self.authorize(principal, org_id, Action::OrgRead).await?;
        }
        self.store.org(org_id).await?.ok_or(Error::OrgNotFound)
    }

    pub async fn update_org(&self, caller: &Caller, org: &str, changes: OrgChanges) -> Result<Org, Error> {
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

    /// Deletes the org; the revocation of every key and token is decided in the same
    /// transaction and delivered at once (or, if keys is away, as soon as it is back).
    pub async fn delete_org(&self, caller: &Caller, org: &str) -> Result<(), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authorize(principal, org_id, Action::OrgDelete).await?;
        let event = audit(caller, principal, org_id, "org.deleted", ("org", org_id.to_string()));
        let revocation = Revocation::Org { org_id };
        let queued = self.store.delete_org(org_id, event, &revocation).await?;
        self.revoke_now(caller, &revocation, queued).await;
        tracing::info!(org_id = %org_id, "org deleted");
        Ok(())
    }

    /// Delivers a queued revocation now; if keys cannot take it, the relay keeps trying.
    async fn revoke_now(&self, caller: &Caller, revocation: &Revocation, queued: Uuid) {
        match self.keys.revoke(caller, revocation).await {
            Ok(revoked) => {
                tracing::info!(credentials_revoked = revoked, "credentials revoked");
                if let Err(e) = self.store.forget_revocation(queued).await {
                    tracing::warn!(error = %e, "a delivered revocation stays queued; it will be delivered again");
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "credential revocation not delivered yet; the relay retries");
                self.revocation_relay.notify_one();
            }
        }
    }

    pub async fn list_members(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<MemberView>, Error> {
        let org_id = org_id(org)?;
        self.authorize(caller.principal()?, org_id, Action::MembersRead).await?;
        let members = self.store.members(org_id, &page).await?;
        let ids: Vec<Uuid> = members.iter().map(|m| m.user_id).collect();
        let mut by_id: HashMap<Uuid, UserInfo> =
            self.identity.users(&ids).await?.into_iter().map(|u| (u.id, u)).collect();
        Ok(members.into_iter().map(|member| MemberView { user: by_id.remove(&member.user_id), member }).collect())
    }

    /// Admins change members and admins; granting or taking away the owner role takes an
    /// owner's own session; the last owner is never demoted (decided in the store, under
    /// the org's lock).
    pub async fn update_member_role(
        &self,
        caller: &Caller,
        org: &str,
        user: &str,
        role: Option<Role>,
    ) -> Result<MemberView, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let user_id = Uuid::parse_str(user).map_err(|_| Error::MemberNotFound)?;
        self.authorize(principal, org_id, Action::MembersGrant).await?;
        let role = role.ok_or_else(|| FieldViolation::new("role", "must be \"owner\", \"admin\" or \"member\""))?;
        let event = |current: Role| {
            audit(caller, principal, org_id, "member.role_changed", ("user", user_id.to_string()))
                .with_metadata(serde_json::json!({ "from": current.as_str(), "to": role.as_str() }))
        };
        let actor = Actor { principal, action: Action::MembersGrant };
        let member = self.store.update_role(org_id, user_id, role, actor, event).await?;
        Ok(MemberView { user: self.identity.user(user_id).await?, member })
    }

    /// Admins remove members; anyone may leave; only an owner's session removes an owner.
    /// What the member created in the org is revoked with the removal: nobody keeps a
    /// working credential of an org they left.
    pub async fn remove_member(&self, caller: &Caller, org: &str, user: &str) -> Result<(), Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let user_id = Uuid::parse_str(user).map_err(|_| Error::MemberNotFound)?;
        let leaving = principal.user_id() == Some(user_id) && matches!(principal, Principal::User(_));
        let actor = Actor { principal, action: if leaving { Action::OrgRead } else { Action::MembersWrite } };
        self.authorize(principal, org_id, actor.action).await?;
        let event = audit(caller, principal, org_id, "member.removed", ("user", user_id.to_string()));
        let (_, revocation, queued) = self.store.remove_member(org_id, user_id, actor, leaving, event).await?;
        self.revoke_now(caller, &revocation, queued).await;
        Ok(())
    }

    /// Invites an address: nobody joins an org without accepting. Admins invite members
    /// and admins; inviting an owner takes an owner's own session.
    pub async fn create_invitation(
        &self,
        caller: &Caller,
        org: &str,
        email: &str,
        role: Option<Role>,
    ) -> Result<InvitationView, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        let my_role = self.authorize(principal, org_id, Action::MembersGrant).await?;
        let mut violations = Vec::new();
        let email = text::email_address("email", email).map_err(|v| violations.push(v)).ok();
        let role = role.or_else(|| {
            violations.push(FieldViolation::new("role", "must be \"owner\", \"admin\" or \"member\""));
            None
        });
        let (Some(email), Some(role)) = (email, role) else { return Err(Error::Validation(violations)) };
        if role == Role::Owner && !is_owner_session(principal, my_role) {
            return Err(Error::OwnerSessionRequired);
        }
        if let Some(existing) = self.identity.user_by_email(&email).await?
            && self.store.role(org_id, existing.id).await?.is_some()
        {
            return Err(Error::AlreadyMember);
        }
        let org = self.store.org(org_id).await?.ok_or(Error::OrgNotFound)?;
        let now = keyplane_common::time::now();
        let expires_at = now + INVITATION_TTL;
        let id = Uuid::now_v7();
        let inviter = match principal {
            Principal::User(u) if !u.name.is_empty() => u.name.clone(),
            Principal::User(u) => u.email.clone(),
            _ => format!("An administrator of {}", org.name),
        };
        let mail = invitation::mail(id, &email, &org.name, role, &inviter, expires_at, self.public_url.as_deref());
        let row = Invitation {
            id,
            org_id,
            email: email.clone(),
            role,
            status: Status::Pending,
            invited_by: principal.user_id(),
            created_at: now,
            expires_at,
            responded_at: None,
        };
        let event = audit(caller, principal, org_id, "invitation.created", ("invitation", id.to_string()))
            .with_metadata(serde_json::json!({ "email": email, "role": role.as_str() }));
        let actor = Actor { principal, action: Action::MembersGrant };
        let invitation = self.store.create_invitation(NewInvitation { invitation: row, mail }, actor, event).await?;
        self.mail_relay.notify_one();
        Ok(InvitationView { invitation, org_name: org.name })
    }

    pub async fn list_invitations(&self, caller: &Caller, org: &str, page: Page) -> Result<Vec<InvitationView>, Error> {
        let org_id = org_id(org)?;
        self.authorize(caller.principal()?, org_id, Action::MembersWrite).await?;
        let org = self.store.org(org_id).await?.ok_or(Error::OrgNotFound)?;
        let found = self.store.invitations_of_org(org_id, &page).await?;
        Ok(found.into_iter().map(|invitation| InvitationView { invitation, org_name: org.name.clone() }).collect())
    }

    pub async fn revoke_invitation(&self, caller: &Caller, org: &str, id: &str) -> Result<InvitationView, Error> {
        let principal = caller.principal()?;
        let org_id = org_id(org)?;
        self.authorize(principal, org_id, Action::MembersWrite).await?;
        let invitation = self.invitation_of(org_id, id).await?;
        let event = audit(caller, principal, org_id, "invitation.revoked", ("invitation", invitation.id.to_string()));
        let (invitation, _) = self.store.respond(&invitation, Status::Revoked, None, vec![event]).await?;
        self.view(invitation).await
    }

    /// The caller's pending invitations, to its address once verified (none before).
    pub async fn list_my_invitations(&self, caller: &Caller, page: Page) -> Result<Vec<InvitationView>, Error> {
        let Principal::User(user) = caller.principal()? else { return Err(Error::SessionRequired) };
        let Some(me) = self.identity.user(user.user_id).await? else { return Ok(Vec::new()) };
        if !me.email_verified {
            return Ok(Vec::new());
        }
        let found = self.store.pending_for_email(&me.email, &page).await?;
        Ok(found
            .into_iter()
            .map(|(invitation, org)| InvitationView { invitation, org_name: org.map(|o| o.name).unwrap_or_default() })
            .collect())
    }

    /// Joins the org, for the owner of the invited address only: to anybody else the
    /// invitation does not exist, and an address not yet verified cannot answer.
    pub async fn accept_invitation(&self, caller: &Caller, id: &str) -> Result<MemberView, Error> {
        let (principal, user, invitation) = self.invitee(caller, id).await?;
        let events = vec![
            audit(
                caller,
                principal,
                invitation.org_id,
                "invitation.accepted",
                ("invitation", invitation.id.to_string()),
            ),
            audit(caller, principal, invitation.org_id, "member.added", ("user", user.id.to_string()))
                .with_metadata(serde_json::json!({ "role": invitation.role.as_str(), "invitation_id": invitation.id })),
        ];
        let (_, member) = self.store.respond(&invitation, Status::Accepted, Some(user.id), events).await?;
        let member = member.ok_or_else(|| Error::internal("an accepted invitation made no member"))?;
        Ok(MemberView { member, user: Some(user) })
    }

    pub async fn decline_invitation(&self, caller: &Caller, id: &str) -> Result<InvitationView, Error> {
        let (principal, _, invitation) = self.invitee(caller, id).await?;
        let event = audit(
            caller,
            principal,
            invitation.org_id,
            "invitation.declined",
            ("invitation", invitation.id.to_string()),
        );
        let (invitation, _) = self.store.respond(&invitation, Status::Declined, None, vec![event]).await?;
        self.view(invitation).await
    }

    /// The invitation `id`, if the caller is its invitee with a verified address.
    async fn invitee<'c>(&self, caller: &'c Caller, id: &str) -> Result<(&'c Principal, UserInfo, Invitation), Error> {
        let principal = caller.principal()?;
        let Principal::User(session) = principal else { return Err(Error::SessionRequired) };
        let id = Uuid::parse_str(id).map_err(|_| Error::InvitationNotFound)?;
        let invitation = self.store.invitation(id).await?.ok_or(Error::InvitationNotFound)?;
        let user = self.identity.user(session.user_id).await?.ok_or(Error::InvitationNotFound)?;
        if user.email != invitation.email {
            return Err(Error::InvitationNotFound);
        }
        if !user.email_verified {
            return Err(Error::EmailUnverified);
        }
        Ok((principal, user, invitation))
    }

    async fn invitation_of(&self, org_id: Uuid, id: &str) -> Result<Invitation, Error> {
        let id = Uuid::parse_str(id).map_err(|_| Error::InvitationNotFound)?;
        match self.store.invitation(id).await? {
            Some(invitation) if invitation.org_id == org_id => Ok(invitation),
            _ => Err(Error::InvitationNotFound),
        }
    }

    async fn view(&self, invitation: Invitation) -> Result<InvitationView, Error> {
        let org_name = self.store.org(invitation.org_id).await?.map(|o| o.name).unwrap_or_default();
        Ok(InvitationView { invitation, org_name })
    }

    /// Stores events once per id. A platform event about a user (a failed login) is also
    /// filed under every org the user is a member of, where its admins read it.
    /// Files events delivered by a service. Owners are mailed of a leaked credential only
    /// when the keys service, which decided it, files the event: no other service can make
    /// the platform mail owners what it likes.
    pub async fn append_audit(&self, caller: &Caller, events: Vec<AuditRecord>) -> Result<u64, Error> {
        let mut filed = Vec::with_capacity(events.len());
        for event in events {
            if event.is_platform()
                && event.target_type == "user"
                && let Ok(user_id) = Uuid::parse_str(&event.target_id)
            {
                filed.extend(self.store.org_ids_of(user_id).await?.into_iter().map(|org| event.copy_for(org)));
            }
            filed.push(event);
        }
        let notices = if caller.service == "keys" { self.leak_notices(&filed).await? } else { Vec::new() };
        let stored = self.store.append_audit_with_mail(&filed, &notices).await?;
        if !notices.is_empty() {
            self.mail_relay.notify_one();
        }
        Ok(stored)
    }

    /// The mail to each verified owner for each event that tells owners, by event id.
    /// Composed before anything is stored: if identity cannot answer, the whole delivery
    /// fails and is retried, and no event is filed without its mail.
    async fn leak_notices(&self, events: &[AuditRecord]) -> Result<Vec<(Uuid, Vec<OutgoingMail>)>, Error> {
        let mut notices = Vec::new();
        for event in events.iter().filter(|e| leak_notice::notifies(e)) {
            let Some(org) = self.store.org(event.org_id).await? else { continue };
            let owners = self.store.owner_ids(event.org_id).await?;
            let users = self.identity.users(&owners).await?;
            let mail = users.iter().filter(|u| u.email_verified).map(|u| leak_notice::mail(event, &org.name, u));
            notices.push((event.id, mail.collect()));
        }
        Ok(notices)
    }

    pub async fn audit_log(
        &self,
        caller: &Caller,
        org: &str,
        filter: AuditFilter,
        page: Page,
    ) -> Result<Vec<AuditRecord>, Error> {
        let org_id = org_id(org)?;
        self.authorize(caller.principal()?, org_id, Action::AuditRead).await?;
        self.store.audit_events(org_id, filter, &page).await
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
