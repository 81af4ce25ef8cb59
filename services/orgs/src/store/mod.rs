//! The orgs service's storage. Org changes and their audit events commit together (the
//! audit log lives here, so no outbox is needed).

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{audit::AuditRecord, authz::Role, db::is_unique_violation, ids::Page};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::OnConflict,
};
use uuid::Uuid;

pub use entities::{audit_events, dev_orgs, members, orgs};

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

const SLUG_ATTEMPTS: usize = 5;

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
        for _ in 0..SLUG_ATTEMPTS {
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
            match insert_org(&txn, org_id, &new).await {
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
        for _ in 0..SLUG_ATTEMPTS {
            let txn = self.db.begin().await?;
            match insert_org(&txn, Uuid::now_v7(), &new).await {
                Ok(org) => {
                    append_audit(&txn, &[audit(&org)]).await?;
                    txn.commit().await?;
                    return Ok(org);
                }
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

    pub async fn add_member(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        role: Role,
        audit: AuditRecord,
    ) -> Result<members::Model, Error> {
        let txn = self.db.begin().await?;
        let member = members::ActiveModel {
            org_id: Set(org_id),
            user_id: Set(user_id),
            role: Set(role.as_str().to_owned()),
            joined_at: Set(keyplane_common::time::now()),
        }
        .insert(&txn)
        .await
        .map_err(|e| if is_unique_violation(&e) { Error::AlreadyMember } else { e.into() })?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(member)
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
            let owners = members::Entity::find()
                .filter(members::Column::OrgId.eq(org_id))
                .filter(members::Column::Role.eq(Role::Owner.as_str()))
                .count(&txn)
                .await?;
            if owners <= 1 {
                return Err(Error::LastOwner);
            }
        }
        members::Entity::delete_by_id((org_id, user_id)).exec(&txn).await?;
        append_audit(&txn, &[audit]).await?;
        txn.commit().await?;
        Ok(member)
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

async fn insert_org<C: ConnectionTrait>(db: &C, id: Uuid, new: &NewOrg) -> Result<orgs::Model, DbErr> {
    let base = slug::slugify(&new.name);
    let taken: Vec<String> = orgs::Entity::find()
        .select_only()
        .column(orgs::Column::Slug)
        .filter(
            Condition::any().add(orgs::Column::Slug.eq(base.clone())).add(orgs::Column::Slug.like(format!("{base}-%"))),
        )
        .into_tuple()
        .all(db)
        .await?;
    let now = keyplane_common::time::now();
    let org = orgs::ActiveModel {
        id: Set(id),
        name: Set(new.name.clone()),
        slug: Set(slug::first_free(&base, &taken)),
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
