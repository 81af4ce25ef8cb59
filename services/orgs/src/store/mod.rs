//! The orgs service's storage. Org changes and their audit events commit together (the
//! audit log lives here, so no outbox is needed).

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    authz::Role,
    db::is_unique_violation,
    ids::Page,
    mail::{MAIL_TOPIC, OutgoingMail},
    outbox,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr,
    EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::OnConflict,
};
use uuid::Uuid;

pub use entities::{audit_events, dev_orgs, invitations, members, orgs};

use crate::{domain::slug, error::Error};

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
pub struct AuditQuery {
    pub org_id: Uuid,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
    pub action: Option<String>,
}

/// Attempts at a free slug: the first few take the next number, the rest add a random
/// suffix, so that any number of concurrent creators of one name all succeed.
const SLUG_ATTEMPTS: usize = 12;
const NUMBERED_SLUG_ATTEMPTS: usize = 3;

/// Invitation statuses as stored; "expired" is a pending one past its time.
pub const PENDING: &str = "pending";
pub const ACCEPTED: &str = "accepted";
pub const DECLINED: &str = "declined";
pub const REVOKED: &str = "revoked";

/// A new invitation with the mail that tells the invitee.
pub struct NewInvitation {
    pub invitation: invitations::Model,
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
        audit: impl Fn(&orgs::Model) -> AuditRecord,
    ) -> Result<(orgs::Model, bool), Error> {
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

    async fn dev_org(&self, user_id: Uuid) -> Result<Option<orgs::Model>, Error> {
        let Some(claim) = dev_orgs::Entity::find_by_id(user_id).one(&self.db).await? else {
            return Ok(None);
        };
        Ok(orgs::Entity::find_by_id(claim.org_id).one(&self.db).await?)
    }

    pub async fn create_org(
        &self,
        new: NewOrg,
        audit: impl Fn(&orgs::Model) -> AuditRecord,
    ) -> Result<orgs::Model, Error> {
        for attempt in 0..SLUG_ATTEMPTS {
            let txn = self.db.begin().await?;
            match insert_org(&txn, Uuid::now_v7(), &new, attempt).await {
                Ok(org) => {
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

    pub async fn org(&self, id: Uuid) -> Result<Option<orgs::Model>, Error> {
        Ok(orgs::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn role(&self, org_id: Uuid, user_id: Uuid) -> Result<Option<Role>, Error> {
        let member = members::Entity::find_by_id((org_id, user_id)).one(&self.db).await?;
        Ok(member.and_then(|m| Role::parse(&m.role)))
    }

    /// One page of the orgs a user belongs to.
    pub async fn orgs_of(&self, user_id: Uuid, page: &Page) -> Result<Vec<orgs::Model>, Error> {
        let mut memberships = members::Entity::find().filter(members::Column::UserId.eq(user_id));
        if let Some(after) = page.after {
            memberships = memberships.filter(members::Column::OrgId.gt(after));
        }
        let ids: Vec<Uuid> = memberships
            .order_by_asc(members::Column::OrgId)
            .limit(page.limit + 1)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|m| m.org_id)
            .collect();
        Ok(orgs::Entity::find()
            .filter(orgs::Column::Id.is_in(ids))
            .order_by_asc(orgs::Column::Id)
            .all(&self.db)
            .await?)
    }

    pub async fn update_org(&self, id: Uuid, changes: OrgChanges, audit: AuditRecord) -> Result<orgs::Model, Error> {
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
        Ok(org)
    }

    pub async fn delete_org(&self, id: Uuid, audit: AuditRecord) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        members::Entity::delete_many().filter(members::Column::OrgId.eq(id)).exec(&txn).await?;
        dev_orgs::Entity::delete_many().filter(dev_orgs::Column::OrgId.eq(id)).exec(&txn).await?;
        let deleted = orgs::Entity::delete_by_id(id).exec(&txn).await?;
        if deleted.rows_affected == 0 {
            return Err(Error::OrgNotFound);
        }
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(())
    }

    pub async fn members(&self, org_id: Uuid, page: &Page) -> Result<Vec<members::Model>, Error> {
        let mut query = members::Entity::find().filter(members::Column::OrgId.eq(org_id));
        if let Some(after) = page.after {
            query = query.filter(members::Column::UserId.gt(after));
        }
        Ok(query.order_by_asc(members::Column::UserId).limit(page.limit + 1).all(&self.db).await?)
    }

    /// Changes a member's role; the last owner is never demoted (the org row is locked, as
    /// for removals).
    pub async fn update_role(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: AuditRecord,
    ) -> Result<members::Model, Error> {
        let txn = self.db.begin().await?;
        orgs::Entity::find_by_id(org_id).lock_exclusive().one(&txn).await?.ok_or(Error::OrgNotFound)?;
        let member = members::Entity::find_by_id((org_id, user_id)).one(&txn).await?.ok_or(Error::MemberNotFound)?;
        if member.role == Role::Owner.as_str() && role != Role::Owner {
            ensure_another_owner(&txn, org_id).await?;
        }
        let mut active: members::ActiveModel = member.into();
        active.role = Set(role.as_str().to_owned());
        let member = active.update(&txn).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(member)
    }

    /// Fails with `LastOwner` when removing this member would leave the org without one.
    pub async fn ensure_removable(&self, org_id: Uuid, user_id: Uuid) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        let member = members::Entity::find_by_id((org_id, user_id)).one(&txn).await?.ok_or(Error::MemberNotFound)?;
        if member.role == Role::Owner.as_str() {
            ensure_another_owner(&txn, org_id).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    /// Removes a member; the org row is locked so that two owners cannot remove each
    /// other at once and leave the org without one.
    pub async fn remove_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        audit: AuditRecord,
    ) -> Result<members::Model, Error> {
        let txn = self.db.begin().await?;
        orgs::Entity::find_by_id(org_id).lock_exclusive().one(&txn).await?.ok_or(Error::OrgNotFound)?;
        let member = members::Entity::find_by_id((org_id, user_id)).one(&txn).await?.ok_or(Error::MemberNotFound)?;
        if member.role == Role::Owner.as_str() {
            ensure_another_owner(&txn, org_id).await?;
        }
        members::Entity::delete_by_id((org_id, user_id)).exec(&txn).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(member)
    }

    /// Stores an invitation and queues its mail, unless the address has a pending one.
    pub async fn create_invitation(&self, new: NewInvitation, audit: AuditRecord) -> Result<invitations::Model, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        orgs::Entity::find_by_id(new.invitation.org_id).lock_exclusive().one(&txn).await?.ok_or(Error::OrgNotFound)?;
        let pending = invitations::Entity::find()
            .filter(invitations::Column::OrgId.eq(new.invitation.org_id))
            .filter(invitations::Column::Email.eq(new.invitation.email.clone()))
            .filter(invitations::Column::Status.eq(PENDING))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .count(&txn)
            .await?;
        if pending > 0 {
            return Err(Error::AlreadyInvited);
        }
        let invitation = invitations::ActiveModel::from(new.invitation).insert(&txn).await?;
        outbox::enqueue(&txn, MAIL_TOPIC, &[(new.mail.id, new.mail.to_json())]).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(invitation)
    }

    pub async fn invitation(&self, id: Uuid) -> Result<Option<invitations::Model>, Error> {
        Ok(invitations::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// One page of an org's invitations, every status, oldest first.
    pub async fn invitations_of_org(&self, org_id: Uuid, page: &Page) -> Result<Vec<invitations::Model>, Error> {
        let mut query = invitations::Entity::find().filter(invitations::Column::OrgId.eq(org_id));
        if let Some(after) = page.after {
            query = query.filter(invitations::Column::Id.gt(after));
        }
        Ok(query.order_by_asc(invitations::Column::Id).limit(page.limit + 1).all(&self.db).await?)
    }

    /// One page of the pending, unexpired invitations to an address, with their orgs.
    pub async fn pending_for_email(
        &self,
        email: &str,
        page: &Page,
    ) -> Result<Vec<(invitations::Model, Option<orgs::Model>)>, Error> {
        let mut query = invitations::Entity::find()
            .filter(invitations::Column::Email.eq(email))
            .filter(invitations::Column::Status.eq(PENDING))
            .filter(invitations::Column::ExpiresAt.gt(keyplane_common::time::now()));
        if let Some(after) = page.after {
            query = query.filter(invitations::Column::Id.gt(after));
        }
        let found = query.order_by_asc(invitations::Column::Id).limit(page.limit + 1).all(&self.db).await?;
        let ids: Vec<Uuid> = found.iter().map(|i| i.org_id).collect();
        let orgs = orgs::Entity::find().filter(orgs::Column::Id.is_in(ids)).all(&self.db).await?;
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
        invitation: &invitations::Model,
        status: &str,
        join: Option<Uuid>,
        audit: Vec<AuditRecord>,
    ) -> Result<(invitations::Model, Option<members::Model>), Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let moved = invitations::Entity::update_many()
            .col_expr(invitations::Column::Status, sea_orm::sea_query::Expr::value(status))
            .col_expr(invitations::Column::RespondedAt, sea_orm::sea_query::Expr::value(now))
            .filter(invitations::Column::Id.eq(invitation.id))
            .filter(invitations::Column::Status.eq(PENDING))
            .filter(invitations::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if moved.rows_affected == 0 {
            let current = invitations::Entity::find_by_id(invitation.id).one(&txn).await?;
            let status = current.map_or_else(|| "gone".to_owned(), |i| status_of(&i, now).to_owned());
            return Err(Error::InvitationNotPending(status));
        }
        let member = match join {
            Some(user_id) => {
                orgs::Entity::find_by_id(invitation.org_id).one(&txn).await?.ok_or(Error::OrgNotFound)?;
                let member = members::ActiveModel {
                    org_id: Set(invitation.org_id),
                    user_id: Set(user_id),
                    role: Set(invitation.role.clone()),
                    joined_at: Set(now),
                }
                .insert(&txn)
                .await
                .map_err(|e| if is_unique_violation(&e) { Error::AlreadyMember } else { e.into() })?;
                Some(member)
            }
            None => None,
        };
        append_audit(&txn, &audit).await?;
        let updated =
            invitations::Entity::find_by_id(invitation.id).one(&txn).await?.ok_or(Error::InvitationNotFound)?;
        txn.commit().await?;
        Ok((updated, member))
    }

    /// Stores audit events; an id already stored is skipped. Answers how many were new.
    pub async fn append_audit(&self, events: &[AuditRecord]) -> Result<u64, Error> {
        Ok(append_audit(&self.db, events).await?)
    }

    pub async fn audit_events(&self, query: AuditQuery, page: &Page) -> Result<Vec<audit_events::Model>, Error> {
        let mut select = audit_events::Entity::find().filter(audit_events::Column::OrgId.eq(query.org_id));
        if let Some(from) = query.from {
            select = select.filter(audit_events::Column::At.gte(from));
        }
        if let Some(to) = query.to {
            select = select.filter(audit_events::Column::At.lt(to));
        }
        if let Some(action) = query.action {
            select = select.filter(audit_events::Column::Action.eq(action));
        }
        if let Some(before) = page.after {
            select = select.filter(audit_events::Column::Id.lt(before));
        }
        // Newest first; ids are time-ordered.
        Ok(select.order_by_desc(audit_events::Column::Id).limit(page.limit + 1).all(&self.db).await?)
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

/// An invitation's status as users see it: a pending one past its time has expired.
pub fn status_of(invitation: &invitations::Model, now: DateTime<Utc>) -> &str {
    if invitation.status == PENDING && invitation.expires_at <= now { "expired" } else { &invitation.status }
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
