//! The keys service's storage. Every change that is audited commits with its audit event
//! (the outbox) in one transaction.

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{audit::AuditRecord, db::is_unique_violation, ids::Page, outbox};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, SimpleExpr},
};
use uuid::Uuid;

pub use entities::credentials::{self, API_KEY, MCP_TOKEN};
use entities::{bootstrap_claims, use_batches};

use crate::error::Error;

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// A regeneration: the new secret's hash, and the old one's if it keeps working.
pub struct Regeneration {
    pub new_hash: String,
    pub new_prefix: String,
    pub keep_previous_until: Option<DateTime<Utc>>,
}

/// The next revision of a row: every change that matters to a verdict takes one.
fn next_revision() -> SimpleExpr {
    Expr::col(credentials::Column::Revision).add(1i64)
}

/// How long a batch id of key use is remembered: far longer than a gateway retries.
const USE_BATCH_MEMORY: chrono::Duration = chrono::Duration::hours(24);

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn insert(&self, row: credentials::Model, audit: &[AuditRecord]) -> Result<credentials::Model, Error> {
        let txn = self.db.begin().await?;
        let row = credentials::ActiveModel::from(row).insert(&txn).await?;
        outbox::enqueue_audit(&txn, audit).await?;
        txn.commit().await?;
        Ok(row)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<credentials::Model>, Error> {
        Ok(credentials::Entity::find_by_id(id).one(&self.db).await?)
    }

    /// One page of an org's credentials of `kind`, oldest first (ids are time-ordered).
    pub async fn list_for_org(&self, org_id: Uuid, kind: &str, page: &Page) -> Result<Vec<credentials::Model>, Error> {
        self.list(credentials::Column::OrgId.eq(org_id), kind, page).await
    }

    pub async fn list_for_creator(
        &self,
        user_id: Uuid,
        kind: &str,
        page: &Page,
    ) -> Result<Vec<credentials::Model>, Error> {
        self.list(credentials::Column::CreatedBy.eq(user_id), kind, page).await
    }

    async fn list(
        &self,
        owner: sea_orm::sea_query::SimpleExpr,
        kind: &str,
        page: &Page,
    ) -> Result<Vec<credentials::Model>, Error> {
        let mut query = credentials::Entity::find().filter(owner).filter(credentials::Column::Kind.eq(kind));
        if let Some(after) = page.after {
            query = query.filter(credentials::Column::Id.gt(after));
        }
        Ok(query.order_by_asc(credentials::Column::Id).limit(page.limit + 1).all(&self.db).await?)
    }

    /// The credential whose current or previous secret has this hash.
    pub async fn find_by_hash(&self, hash: &str) -> Result<Option<credentials::Model>, Error> {
        Ok(credentials::Entity::find()
            .filter(
                Condition::any()
                    .add(credentials::Column::Hash.eq(hash))
                    .add(credentials::Column::PreviousHash.eq(hash)),
            )
            .one(&self.db)
            .await?)
    }

    /// Revokes a credential now; an already revoked one stays as it was.
    pub async fn revoke(&self, id: Uuid, audit: &[AuditRecord]) -> Result<credentials::Model, Error> {
        let txn = self.db.begin().await?;
        let revoked = credentials::Entity::update_many()
            .col_expr(credentials::Column::RevokedAt, Expr::value(keyplane_common::time::now()))
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.eq(id))
            .filter(credentials::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if revoked.rows_affected > 0 {
            outbox::enqueue_audit(&txn, audit).await?;
        }
        let row = credentials::Entity::find_by_id(id).one(&txn).await?.ok_or(Error::KeyNotFound)?;
        txn.commit().await?;
        Ok(row)
    }

    /// Replaces the secret of a key whose current hash is still `expected_hash`.
    pub async fn regenerate(
        &self,
        id: Uuid,
        expected_hash: &str,
        regeneration: Regeneration,
        audit: &[AuditRecord],
    ) -> Result<credentials::Model, Error> {
        let txn = self.db.begin().await?;
        let previous_hash = regeneration.keep_previous_until.map(|_| expected_hash.to_owned());
        let updated = credentials::Entity::update_many()
            .col_expr(credentials::Column::Hash, Expr::value(regeneration.new_hash))
            .col_expr(credentials::Column::Prefix, Expr::value(regeneration.new_prefix))
            .col_expr(credentials::Column::PreviousHash, Expr::value(previous_hash))
            .col_expr(credentials::Column::PreviousExpiresAt, Expr::value(regeneration.keep_previous_until))
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.eq(id))
            .filter(credentials::Column::Hash.eq(expected_hash))
            .filter(credentials::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::Conflict);
        }
        outbox::enqueue_audit(&txn, audit).await?;
        let row = credentials::Entity::find_by_id(id).one(&txn).await?.ok_or(Error::KeyNotFound)?;
        txn.commit().await?;
        Ok(row)
    }

    /// Inserts the org's bootstrap key unless the org has an active API key or already
    /// had its bootstrap key. Concurrent callers meet at the claim's primary key.
    pub async fn ensure_bootstrap(
        &self,
        row: credentials::Model,
        audit: &[AuditRecord],
    ) -> Result<Option<credentials::Model>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        if bootstrap_claims::Entity::find_by_id(row.org_id).one(&txn).await?.is_some() {
            return Ok(None);
        }
        let active = credentials::Entity::find()
            .filter(credentials::Column::OrgId.eq(row.org_id))
            .filter(credentials::Column::Kind.eq(API_KEY))
            .filter(credentials::Column::RevokedAt.is_null())
            .filter(
                Condition::any()
                    .add(credentials::Column::ExpiresAt.is_null())
                    .add(credentials::Column::ExpiresAt.gt(now)),
            )
            .count(&txn)
            .await?;
        if active > 0 {
            return Ok(None);
        }
        let claim =
            bootstrap_claims::ActiveModel { org_id: Set(row.org_id), key_id: Set(row.id), created_at: Set(now) };
        match claim.insert(&txn).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let row = credentials::ActiveModel::from(row).insert(&txn).await?;
        outbox::enqueue_audit(&txn, audit).await?;
        match txn.commit().await {
            Ok(()) => Ok(Some(row)),
            // A concurrent caller's claim committed first.
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes every live credential of an org; answers the ones it revoked.
    pub async fn revoke_org(
        &self,
        org_id: Uuid,
        audit_for: impl Fn(&credentials::Model) -> AuditRecord,
    ) -> Result<Vec<credentials::Model>, Error> {
        self.revoke_where(credentials::Column::OrgId.eq(org_id), audit_for).await
    }

    /// Revokes every live credential a user created in an org.
    pub async fn revoke_created_by(
        &self,
        org_id: Uuid,
        user_id: Uuid,
        audit_for: impl Fn(&credentials::Model) -> AuditRecord,
    ) -> Result<Vec<credentials::Model>, Error> {
        let owned =
            Condition::all().add(credentials::Column::OrgId.eq(org_id)).add(credentials::Column::CreatedBy.eq(user_id));
        self.revoke_where(owned, audit_for).await
    }

    async fn revoke_where(
        &self,
        which: impl sea_orm::sea_query::IntoCondition + Clone,
        audit_for: impl Fn(&credentials::Model) -> AuditRecord,
    ) -> Result<Vec<credentials::Model>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let live = credentials::Entity::find()
            .filter(which.clone())
            .filter(credentials::Column::RevokedAt.is_null())
            .lock_exclusive()
            .all(&txn)
            .await?;
        let ids: Vec<Uuid> = live.iter().map(|row| row.id).collect();
        credentials::Entity::update_many()
            .col_expr(credentials::Column::RevokedAt, Expr::value(now))
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.is_in(ids))
            .exec(&txn)
            .await?;
        let audit: Vec<AuditRecord> = live.iter().map(&audit_for).collect();
        outbox::enqueue_audit(&txn, &audit).await?;
        txn.commit().await?;
        Ok(live
            .into_iter()
            .map(|row| credentials::Model { revoked_at: Some(now), revision: row.revision + 1, ..row })
            .collect())
    }

    /// Moves `last_used_at` forward and records uses of rotated secrets, in one
    /// transaction, once per batch: answers false for a batch applied before.
    pub async fn record_use(
        &self,
        batch_id: Uuid,
        uses: &[(Uuid, DateTime<Utc>)],
        audit: &[AuditRecord],
    ) -> Result<bool, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let claim = use_batches::ActiveModel { batch_id: Set(batch_id), received_at: Set(now) };
        match claim.insert(&txn).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        for (id, at) in uses {
            credentials::Entity::update_many()
                .col_expr(credentials::Column::LastUsedAt, Expr::value(*at))
                .filter(credentials::Column::Id.eq(*id))
                .filter(
                    Condition::any()
                        .add(credentials::Column::LastUsedAt.is_null())
                        .add(credentials::Column::LastUsedAt.lt(*at)),
                )
                .exec(&txn)
                .await?;
        }
        outbox::enqueue_audit(&txn, audit).await?;
        use_batches::Entity::delete_many()
            .filter(use_batches::Column::ReceivedAt.lt(now - USE_BATCH_MEMORY))
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(true)
    }
}
