//! The orgs service's storage: domain types in and out (rows stay in here). Every change
//! commits with its audit event, written straight into the audit log, which lives here;
//! the outbox carries only the mail the service sends (invitations).

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authz::Role,
    db::is_unique_violation,
    mail::{MAIL_TOPIC, OutgoingMail},
    outbox,
    page::Page,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::OnConflict,
};
use uuid::Uuid;

use entities::{audit_events, dev_orgs, invitations, members, orgs};

use crate::{
    domain::{
        access::Actor,
        invitation::{Invitation, Status, may_invite},
        org::{Member, Org},
        revocation::{CREDENTIALS_TOPIC, Revocation},
        slug,
    },
    error::Error,
};

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// A new org with its first owner.
pub struct NewOrg {
    pub name: String,
    pub description: String,
    pub website_url: String,
    pub owner: Uuid,
}

/// A change to an org's editable fields.
#[derive(Default)]
pub struct OrgChanges {
    pub name: Option<String>,
    pub description: Option<String>,
    pub website_url: Option<String>,
}

/// Filters of the audit log.
#[derive(Default)]
pub struct AuditFilter {
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub action: Option<String>,
    /// (type, id), or (None, id) for any type.
    pub actor: Option<(Option<String>, String)>,
}

/// Attempts at a free slug: the first few take the next number, the rest add a random
/// suffix, so that any number of concurrent creators of one name all succeed.
const SLUG_ATTEMPTS: usize = 12;
const NUMBERED_SLUG_ATTEMPTS: usize = 3;

/// A new invitation with the mail that tells the invitee.
pub struct NewInvitation {
    pub invitation: Invitation,
    pub mail: OutgoingMail,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// The user's developer org, created with them as owner on the first call. Concurrent
    /// calls meet at the `dev_orgs` primary key: one creates, the others read its org.
    pub async fn ensure_dev_org(
        &self,
        user_id: Uuid,
        new: NewOrg,
        audit: impl Fn(&Org) -> AuditRecord,
    ) -> Result<(Org, bool), Error> {
        for attempt in 0..SLUG_ATTEMPTS {
            if let Some(org) = self.dev_org(user_id).await? {
                return Ok((org, false));
            }
            let txn = self.db.begin().await?;
            let org_id = Uuid::now_v7();
            let claim = dev_orgs::ActiveModel {
                user_id: Set(user_id),
                org_id: Set(org_id),
                created_at: Set(keyplane_common::time::now()),
            };
            if let Err(e) = claim.insert(&txn).await {
                if is_unique_violation(&e) {
                    continue;
                }
                return Err(e.into());
            }
            match insert_org(&txn, org_id, &new, attempt).await {
                Ok(org) => {
                    let org = to_org(org);
                    append_audit(&txn, &[audit(&org)]).await?;
                    match txn.commit().await {
                        Ok(()) => return Ok((org, true)),
                        Err(e) if is_unique_violation(&e) => continue,
                        Err(e) => return Err(e.into()),
                    }
                }
                // Lost a race for the slug or the claim: try again from the top.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::internal("could not allocate an org after several attempts"))
    }

    /// The user's developer org, while the user is still in it: one it left is forgotten
    /// (the next call makes another).
    async fn dev_org(&self, user_id: Uuid) -> Result<Option<Org>, Error> {
        let Some(claim) = dev_orgs::Entity::find_by_id(user_id).one(&self.db).await? else {
            return Ok(None);
        };
        if self.role(claim.org_id, user_id).await?.is_none() {
            dev_orgs::Entity::delete_by_id(user_id).exec(&self.db).await?;
            return Ok(None);
        }
        self.org(claim.org_id).await
    }

    pub async fn create_org(&self, new: NewOrg, audit: impl Fn(&Org) -> AuditRecord) -> Result<Org, Error> {
        for attempt in 0..SLUG_ATTEMPTS {
            let txn = self.db.begin().await?;
            match insert_org(&txn, Uuid::now_v7(), &new, attempt).await {
                Ok(org) => {
                    let org = to_org(org);
                    append_audit(&txn, &[audit(&org)]).await?;
                    txn.commit().await?;
                    return Ok(org);
                }
                // Another org took the slug meanwhile: try the next one.
                Err(e) if is_unique_violation(&e) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::internal("could not allocate a slug after several attempts"))
    }

    pub async fn org(&self, id: Uuid) -> Result<Option<Org>, Error> {
        Ok(orgs::Entity::find_by_id(id).one(&self.db).await?.map(to_org))
    }

    pub async fn role(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>, Error> {
        let member = members::Entity::find_by_id((org_id, user_id)).one(&self.db).await?;
        Ok(member.and_then(|m| Role::parse(&m.role)))
    }

    /// One page of the orgs a user belongs to.
    pub async fn orgs_of(&self, user_id: Uuid, page: &Page) -> Result<Vec<Org>, Error> {
        let memberships = members::Entity::find().filter(members::Column::UserId.eq(user_id));
        let ids: Vec<Uuid> = page
            .apply(memberships, members::Column::OrgId)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.org_id)
            .collect();
        let orgs = orgs::Entity::find().filter(orgs::Column::Id.is_in(ids)).order_by_asc(orgs::Column::Id);
        Ok(orgs.all(&self.db).await?.into_iter().map(to_org).collect())
    }

    pub async fn update_org(&self, id: Uuid, changes: OrgChanges, audit: AuditRecord) -> Result<Org, Error> {
        let txn = self.db.begin().await?;
        let org = orgs::Entity::find_by_id(id).one(&txn).await?.ok_or(Error::OrgNotFound)?;
        let mut active: orgs::ActiveModel = org.into();
        if let Some(name) = changes.name {
            active.name = Set(name);
        }
        if let Some(description) = changes.description {
            active.description = Set(description);
        }
        if let Some(url) = changes.website_url {
            active.website_url = Set(url);
        }
        active.updated_at = Set(keyplane_common::time::now());
        let org = active.update(&txn).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(to_org(org))
    }

    /// Deletes an org with its members and pending invitations, and queues the revocation
    /// of its credentials, in one transaction. Answers the queued revocation's id.
    pub async fn delete_org(&self, id: Uuid, audit: AuditRecord, revocation: &Revocation) -> Result<Uuid, Error> {
        let txn = self.db.begin().await?;
        members::Entity::delete_many().filter(members::Column::OrgId.eq(id)).exec(&txn).await?;
        dev_orgs::Entity::delete_many().filter(dev_orgs::Column::OrgId.eq(id)).exec(&txn).await?;
        close_invitations(&txn, invitations::Column::OrgId.eq(id)).await?;
        let deleted = orgs::Entity::delete_by_id(id).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(Error::OrgNotFound);
        }
        append_audit(&txn, &[audit]).await?;
        let queued = queue_revocation(&txn, revocation).await?;
        txn.commit().await?;
        Ok(queued)
    }

    /// Takes a revocation off the outbox once it was delivered at once.
    pub async fn forget_revocation(&self, id: Uuid) -> Result<(), Error> {
        Ok(outbox::forget(&self.db, id).await?)
    }

    pub async fn membership(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Member>, Error> {
        members::Entity::find_by_id((org_id, user_id)).one(&self.db).await?.map(to_member).transpose()
    }

    pub async fn members(&self, org_id: Uuid, page: &Page) -> Result<Vec<Member>, Error> {
        let select = members::Entity::find().filter(members::Column::OrgId.eq(org_id));
        page.apply(select, members::Column::UserId).all(&self.db).await?.into_iter().map(to_member).collect()
    }

    /// Changes a member's role, deciding inside the transaction (the org row locked, as
    /// for removals): only an owner's own session grants or takes away the owner role,
    /// and the last owner is never demoted. Pending invitations the member made for a role
    /// it can no longer grant are revoked with it.
    pub async fn update_role(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        actor: Actor<'_>,
        audit: impl FnOnce(Role) -> AuditRecord,
    ) -> Result<Member, Error> {
        let txn = self.db.begin().await?;
        let by_owner_session = lock_org_for(&txn, org_id, actor).await?;
        let member = members::Entity::find_by_id((org_id, user_id)).one(&txn).await?.ok_or(Error::MemberNotFound)?;
        let current = to_member(member.clone())?.role;
        if (role == Role::Owner || current == Role::Owner) && !by_owner_session {
            return Err(Error::OwnerSessionRequired);
        }
        if current == Role::Owner && role != Role::Owner {
            ensure_another_owner(&txn, org_id).await?;
        }
        let mut active: members::ActiveModel = member.into();
        active.role = Set(role.as_str().to_owned());
        let member = active.update(&txn).await?;
        let beyond: Vec<&str> = [Role::Member, Role::Admin, Role::Owner]
            .into_iter()
            .filter(|invited| !may_invite(role, *invited))
            .map(Role::as_str)
            .collect();
        close_invitations(
            &txn,
            Condition::all()
                .add(invitations::Column::OrgId.eq(org_id))
                .add(invitations::Column::InvitedBy.eq(user_id.to_string()))
                .add(invitations::Column::Role.is_in(beyond)),
        )
        .await?;
        append_audit(&txn, &[audit(current)]).await?;
        txn.commit().await?;
        to_member(member)
    }

    /// Removes a member, deciding inside the transaction: only an owner's own session
    /// removes an owner (a member may always leave), and never the last one. With the
    /// membership go the member's developer-org claim and the invitations it made, and the
    /// revocation of what it created is queued. Answers the former membership and the
    /// queued revocation's id.
    pub async fn remove_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        actor: Actor<'_>,
        leaving: bool,
        audit: AuditRecord,
    ) -> Result<(Member, Revocation, Uuid), Error> {
        let txn = self.db.begin().await?;
        let by_owner_session = lock_org_for(&txn, org_id, actor).await?;
        let member = members::Entity::find_by_id((org_id, user_id)).one(&txn).await?.ok_or(Error::MemberNotFound)?;
        let member = to_member(member)?;
        if member.role == Role::Owner {
            if !leaving && !by_owner_session {
                return Err(Error::OwnerSessionRequired);
            }
            ensure_another_owner(&txn, org_id).await?;
        }
        members::Entity::delete_by_id((org_id, user_id)).exec(&txn).await?;
        dev_orgs::Entity::delete_many()
            .filter(dev_orgs::Column::UserId.eq(user_id))
            .filter(dev_orgs::Column::OrgId.eq(org_id))
            .exec(&txn)
            .await?;
        close_invitations(
            &txn,
            Condition::all()
                .add(invitations::Column::OrgId.eq(org_id))
                .add(invitations::Column::InvitedBy.eq(user_id.to_string())),
        )
        .await?;
        append_audit(&txn, &[audit]).await?;
        let revocation = Revocation::Member { org_id, user_id, member_since: member.joined_at };
        let queued = queue_revocation(&txn, &revocation).await?;
        txn.commit().await?;
        Ok((member, revocation, queued))
    }

    /// Stores an invitation and queues its mail, unless the address has a pending one.
    /// Inviting an owner takes an owner's own session, decided under the org's lock.
    pub async fn create_invitation(
        &self,
        new: NewInvitation,
        actor: Actor<'_>,
        audit: AuditRecord,
    ) -> Result<Invitation, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let by_owner_session = lock_org_for(&txn, new.invitation.org_id, actor).await?;
        if new.invitation.role == Role::Owner && !by_owner_session {
            return Err(Error::OwnerSessionRequired);
        }
        let pending = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(new.invitation.org_id))
            .filter(invitations::Column::Email.eq(new.invitation.email.clone()))
            .filter(invitations::Column::Status.eq(Status::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .count(&txn)
            .await?;
        if pending > 0 {
            return Err(Error::AlreadyInvited);
        }
        let invitation = invitations::ActiveModel::from(to_invitation_row(&new.invitation)).insert(&txn).await?;
        outbox::enqueue(&txn, MAIL_TOPIC, &[(new.mail.id, new.mail.to_json())]).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        to_invitation(invitation)
    }

    pub async fn invitation(&self, id: Uuid) -> Result<Option<Invitation>, Error> {
        invitations::Entity::find_by_id(id).one(&self.db).await?.map(to_invitation).transpose()
    }

    /// One page of an org's invitations, every status, oldest first.
    pub async fn invitations_of_org(&self, org_id: Uuid, page: &Page) -> Result<Vec<Invitation>, Error> {
        let select = invitations::Entity::find().filter(invitations::Column::OrgId.eq(org_id));
        page.apply(select, invitations::Column::Id).all(&self.db).await?.into_iter().map(to_invitation).collect()
    }

    /// One page of the pending, unexpired invitations to an address, with their orgs.
    pub async fn pending_for_email(&self, email: &str, page: &Page) -> Result<Vec<(Invitation, Option<Org>)>, Error> {
        let select = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email))
            .filter(invitations::Column::Status.eq(Status::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(keyplane_common::time::now()));
        let found: Vec<Invitation> = page
            .apply(select, invitations::Column::Id)
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_invitation)
            .collect::<Result<_, _>>()?;
        let ids: Vec<Uuid> = found.iter().map(|i| i.org_id).collect();
        let orgs: Vec<Org> = orgs::Entity::find()
            .filter(orgs::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_org)
            .collect();
        Ok(found
            .into_iter()
            .map(|invitation| {
                let org = orgs.iter().find(|o| o.id == invitation.org_id).cloned();
                (invitation, org)
            })
            .collect())
    }

    /// Moves a pending, unexpired invitation to `status`; with `join`, the invitee becomes
    /// a member in the same transaction. Fails if the invitation is no longer pending.
    pub async fn respond(
        &self,
        invitation: &Invitation,
        status: Status,
        join: Option<Uuid>,
        audit: Vec<AuditRecord>,
    ) -> Result<(Invitation, Option<Member>), Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let moved = invitations::Entity::update_many()
            .col_expr(invitations::Column::Status, sea_orm::sea_query::Expr::value(status.as_str()))
            .col_expr(invitations::Column::RespondedAt, sea_orm::sea_query::Expr::value(now))
            .filter(invitations::Column::Id.eq(invitation.id))
            .filter(invitations::Column::Status.eq(Status::Pending.as_str()))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            let current =
                invitations::Entity::find_by_id(invitation.id).one(&txn).await?.map(to_invitation).transpose()?;
            let status = current.map_or_else(|| "gone".to_owned(), |i| i.status_at(now).to_owned());
            return Err(Error::InvitationNotPending(status));
        }
        let member = match join {
            Some(user_id) => {
                orgs::Entity::find_by_id(invitation.org_id).one(&txn).await?.ok_or(Error::OrgNotFound)?;
                let member = members::ActiveModel {
                    org_id: Set(invitation.org_id),
                    user_id: Set(user_id),
                    role: Set(invitation.role.as_str().to_owned()),
                    joined_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(|e| if is_unique_violation(&e) { Error::AlreadyMember } else { e.into() })?;
                Some(to_member(member)?)
            }
            None => None,
        };
        append_audit(&txn, &audit).await?;
        let updated =
            invitations::Entity::find_by_id(invitation.id).one(&txn).await?.ok_or(Error::InvitationNotFound)?;
        txn.commit().await?;
        Ok((to_invitation(updated)?, member))
    }

    /// Stores audit events; an id already stored is skipped. Answers how many were new.
    /// The orgs a user is a member of, every one (for filing platform events about them).
    pub async fn org_ids_of(&self, user_id: Uuid) -> Result<Vec<Uuid>, Error> {
        Ok(members::Entity::find()
            .select_only()
            .column(members::Column::OrgId)
            .filter(members::Column::UserId.eq(user_id))
            .into_tuple()
            .all(&self.db)
            .await?)
    }

    /// Files audit events (each id once) and, together, queues the mail an event causes
    /// when, and only when, that event is filed for the first time: a redelivered event
    /// mails nobody again.
    pub async fn append_audit_with_mail(
        &self,
        events: &[AuditRecord],
        mail: &[(Uuid, Vec<OutgoingMail>)],
    ) -> Result<u64, Error> {
        let txn = self.db.begin().await?;
        let (mailing, plain): (Vec<AuditRecord>, Vec<AuditRecord>) =
            events.iter().cloned().partition(|e| mail.iter().any(|(id, _)| *id == e.id));
        let mut stored = append_audit(&txn, &plain).await?;
        for event in mailing {
            let first_time = append_audit(&txn, std::slice::from_ref(&event)).await? == 1;
            stored += u64::from(first_time);
            let queued: Vec<_> = mail
                .iter()
                .filter(|(id, _)| first_time && *id == event.id)
                .flat_map(|(_, mails)| mails.iter().map(|m| (m.id, m.to_json())))
                .collect();
            outbox::enqueue(&txn, MAIL_TOPIC, &queued).await?;
        }
        txn.commit().await?;
        Ok(stored)
    }

    /// The ids of an org's owners.
    pub async fn owner_ids(&self, org_id: Uuid) -> Result<Vec<Uuid>, Error> {
        let owners = members::Entity::find()
            .filter(members::Column::OrgId.eq(org_id))
            .filter(members::Column::Role.eq(Role::Owner.as_str()))
            .all(&self.db)
            .await?;
        Ok(owners.into_iter().map(|m| m.user_id).collect())
    }

    /// One page of an org's audit log, newest first (ids are time-ordered).
    pub async fn audit_events(&self, org_id: Uuid, query: AuditFilter, page: &Page) -> Result<Vec<AuditRecord>, Error> {
        let mut select = audit_events::Entity::find().filter(audit_events::Column::OrgId.eq(org_id));
        if let Some(from) = query.from {
            select = select.filter(audit_events::Column::At.gte(from));
        }
        if let Some(to) = query.to {
            select = select.filter(audit_events::Column::At.lt(to));
        }
        if let Some(action) = query.action {
            select = select.filter(audit_events::Column::Action.eq(action));
        }
        if let Some((actor_type, actor_id)) = query.actor {
            select = select.filter(audit_events::Column::ActorId.eq(actor_id));
            if let Some(actor_type) = actor_type {
                select = select.filter(audit_events::Column::ActorType.eq(actor_type));
            }
        }
        let rows = page.apply_newest_first(select, audit_events::Column::Id).all(&self.db).await?;
        Ok(rows.into_iter().map(to_audit_record).collect())
    }
}

async fn insert_org<C: ConnectionTrait>(db: &C, id: Uuid, new: &NewOrg, attempt: usize) -> Result<orgs::Model, DbErr> {
    let base = slug::slugify(&new.name);
    if attempt >= NUMBERED_SLUG_ATTEMPTS {
        return insert_org_row(db, id, new, slug::with_random_suffix(&base)).await;
    }
    let taken: Vec<String> = orgs::Entity::find()
        .select_only()
        .column(orgs::Column::Slug)
        .filter(
            Condition::any().add(orgs::Column::Slug.eq(base.clone())).add(orgs::Column::Slug.like(format!("{base}-%"))),
        )
        .into_tuple()
        .all(db)
        .await?;
    insert_org_row(db, id, new, slug::first_free(&base, &taken)).await
}

async fn insert_org_row<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    new: &NewOrg,
    slug: String,
) -> Result<orgs::Model, DbErr> {
    let now = keyplane_common::time::now();
    let org = orgs::ActiveModel {
        id: Set(id),
        name: Set(new.name.clone()),
        slug: Set(slug),
        description: Set(new.description.clone()),
        website_url: Set(new.website_url.clone()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await?;
    members::ActiveModel {
        org_id: Set(id),
        user_id: Set(new.owner),
        role: Set(Role::Owner.as_str().to_owned()),
        joined_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(org)
}

fn to_org(row: orgs::Model) -> Org {
    Org {
        id: row.id,
        name: row.name,
        slug: row.slug,
        description: row.description,
        website_url: row.website_url,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }
}

fn to_member(row: members::Model) -> Result<Member, Error> {
    let role = Role::parse(&row.role).ok_or_else(|| Error::internal(format!("member with role {:?}", row.role)))?;
    Ok(Member { org_id: row.org_id, user_id: row.user_id, role, joined_at: row.joined_at })
}

fn to_invitation(row: invitations::Model) -> Result<Invitation, Error> {
    let corrupt = |what: &str| Error::internal(format!("invitation {} has a bad {what}", row.id));
    Ok(Invitation {
        id: row.id,
        org_id: row.org_id,
        role: Role::parse(&row.role).ok_or_else(|| corrupt("role"))?,
        status: Status::parse(&row.status).ok_or_else(|| corrupt("status"))?,
        invited_by: Uuid::parse_str(&row.invited_by).ok(),
        created_at: row.created_at,
        expires_at: row.expires_at,
        responded_at: row.responded_at,
        email: row.email,
    })
}

fn to_invitation_row(i: &Invitation) -> invitations::Model {
    invitations::Model {
        id: i.id,
        org_id: i.org_id,
        email: i.email.clone(),
        role: i.role.as_str().to_owned(),
        status: i.status.as_str().to_owned(),
        invited_by: i.invited_by.map(|u| u.to_string()).unwrap_or_default(),
        created_at: i.created_at,
        expires_at: i.expires_at,
        responded_at: i.responded_at,
    }
}

fn to_audit_record(row: audit_events::Model) -> AuditRecord {
    AuditRecord {
        id: row.id,
        org_id: row.org_id,
        at: row.at,
        actor_type: row.actor_type,
        actor_id: row.actor_id,
        action: row.action,
        target_type: row.target_type,
        target_id: row.target_id,
        ip: row.ip,
        user_agent: row.user_agent,
        metadata: row.metadata,
    }
}

/// Revokes the pending invitations `which` selects: their inviter may no longer grant them.
async fn close_invitations(
    txn: &DatabaseTransaction,
    which: impl sea_orm::sea_query::IntoCondition,
) -> Result<(), Error> {
    invitations::Entity::update_many()
        .col_expr(invitations::Column::Status, sea_orm::sea_query::Expr::value(Status::Revoked.as_str()))
        .col_expr(invitations::Column::RespondedAt, sea_orm::sea_query::Expr::value(keyplane_common::time::now()))
        .filter(which)
        .filter(invitations::Column::Status.eq(Status::Pending.as_str()))
        .exec(txn)
        .await?;
    Ok(())
}

async fn queue_revocation(txn: &DatabaseTransaction, revocation: &Revocation) -> Result<Uuid, Error> {
    let id = Uuid::now_v7();
    let payload = serde_json::to_value(revocation).map_err(|e| Error::internal(e.to_string()))?;
    outbox::enqueue(txn, CREDENTIALS_TOPIC, &[(id, payload)]).await?;
    Ok(id)
}

/// Locks the org's row for the rest of the transaction, then decides the actor's right
/// with the role it holds now; answers whether it acts as an owner in its own session.
async fn lock_org_for(txn: &DatabaseTransaction, org_id: Uuid, actor: Actor<'_>) -> Result<bool, Error> {
    orgs::Entity::find_by_id(org_id).lock_exclusive().one(txn).await?.ok_or(Error::OrgNotFound)?;
    let role = match actor.user_id() {
        Some(user_id) => members::Entity::find_by_id((org_id, user_id)).one(txn).await?.map(to_member).transpose()?,
        None => None,
    };
    actor.decide(org_id, role.map(|m| m.role))
}

async fn ensure_another_owner(txn: &DatabaseTransaction, org_id: Uuid) -> Result<(), Error> {
    let owners = members::Entity::find()
        .filter(members::Column::OrgId.eq(org_id))
        .filter(members::Column::Role.eq(Role::Owner.as_str()))
        .count(txn)
        .await?;
    if owners <= 1 { Err(Error::LastOwner) } else { Ok(()) }
}

async fn append_audit<C: ConnectionTrait>(db: &C, events: &[AuditRecord]) -> Result<u64, DbErr> {
    if events.is_empty() {
        return Ok(0);
    }
    let rows = events.iter().map(|e| audit_events::ActiveModel {
        id: Set(e.id),
        org_id: Set(e.org_id),
        at: Set(e.at),
        actor_type: Set(e.actor_type.clone()),
        actor_id: Set(e.actor_id.clone()),
        action: Set(e.action.clone()),
        target_type: Set(e.target_type.clone()),
        target_id: Set(e.target_id.clone()),
        ip: Set(e.ip.clone()),
        user_agent: Set(e.user_agent.clone()),
        metadata: Set(e.metadata.clone()),
    });
    let inserted = audit_events::Entity::insert_many(rows)
        .on_conflict(OnConflict::column(audit_events::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(n) => Ok(n),
        Err(DbErr::RecordNotInserted) => Ok(0),
        Err(e) => Err(e),
    }
}
