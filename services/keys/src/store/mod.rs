//! The keys service's storage: credentials in, credentials out (rows stay in here). Every
//! change that is audited commits with its audit event (the outbox) in one transaction.

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord, credential::Environment, credential::SecretHash, db, db::is_unique_violation, outbox,
    page::Page, rate_limit::RateLimit, scope::Scopes,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, PaginatorTrait,
    QueryFilter, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, IntoCondition, OnConflict, SimpleExpr},
};
use uuid::Uuid;

use entities::{bootstrap_claims, credentials, membership_fences, org_fences, use_batches};

use crate::{
    domain::{
        grant::Membership,
        key::{Credential, Kind, PreviousSecret},
        leak::Exposed,
    },
    error::Error,
};

const API_KEY: &str = "api_key";
const MCP_TOKEN: &str = "mcp_token";

/// The next revision of a row: every change that matters to a verdict takes one.
fn next_revision() -> SimpleExpr {
    Expr::col(credentials::Column::Revision).add(1i64)
}

/// How long a batch id of key use is remembered: far longer than a gateway retries.
const USE_BATCH_MEMORY: chrono::Duration = chrono::Duration::hours(24);

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// Stores a new credential, unless its org was deleted or the membership it was
    /// authorized on ended since (the org's fence orders the two).
    pub async fn insert(
        &self,
        credential: &Credential,
        authorized_on: Option<Membership>,
        audit: &[AuditRecord],
    ) -> Result<Credential, Error> {
        let txn = self.db.begin().await?;
        pass_fences(&txn, credential.org_id, authorized_on).await?;
        let row = credentials::ActiveModel::from(to_row(credential)).insert(&txn).await?;
        outbox::enqueue_audit(&txn, audit).await?;
        txn.commit().await?;
        from_row(row)
    }

    pub async fn get(&self, id: Uuid) -> Result<Option<Credential>, Error> {
        credentials::Entity::find_by_id(id).one(&self.db).await?.map(from_row).transpose()
    }

    /// One page of an org's credentials of `kind`, oldest first.
    pub async fn list_for_org(&self, org_id: Uuid, kind: Kind, page: &Page) -> Result<Vec<Credential>, Error> {
        self.list(credentials::Column::OrgId.eq(org_id), kind, page).await
    }

    pub async fn list_for_creator(&self, user_id: Uuid, kind: Kind, page: &Page) -> Result<Vec<Credential>, Error> {
        self.list(credentials::Column::CreatedBy.eq(user_id), kind, page).await
    }

    async fn list(&self, owner: SimpleExpr, kind: Kind, page: &Page) -> Result<Vec<Credential>, Error> {
        let select = credentials::Entity::find().filter(owner).filter(credentials::Column::Kind.eq(kind_name(kind)));
        page.apply(select, credentials::Column::Id).all(&self.db).await?.into_iter().map(from_row).collect()
    }

    /// The credential whose current or previous secret has this hash.
    pub async fn find_by_hash(&self, hash: &SecretHash) -> Result<Option<Credential>, Error> {
        let hex = hash.to_hex();
        let query = credentials::Entity::find()
            .filter(
                Condition::any()
                    .add(credentials::Column::Hash.eq(hex.clone()))
                    .add(credentials::Column::PreviousHash.eq(hex)),
            )
            .one(&self.db);
        tracing::Instrument::instrument(query, db::span(&self.db, "SELECT", "credentials"))
            .await?
            .map(from_row)
            .transpose()
    }

    /// Stores a key's new name and rate limit (a new revision), unless it was revoked
    /// meanwhile.
    pub async fn update(&self, changed: &Credential, audit: &[AuditRecord]) -> Result<Credential, Error> {
        let txn = self.db.begin().await?;
        let updated = credentials::Entity::update_many()
            .col_expr(credentials::Column::Name, Expr::value(changed.name.clone()))
            .col_expr(
                credentials::Column::RateLimitRequests,
                Expr::value(changed.rate_limit.map(|r| i64::from(r.requests))),
            )
            .col_expr(
                credentials::Column::RateLimitPerSeconds,
                Expr::value(changed.rate_limit.map(|r| i64::from(r.per_seconds))),
            )
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.eq(changed.id))
            .filter(credentials::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::KeyRevoked);
        }
        outbox::enqueue_audit(&txn, audit).await?;
        let row = credentials::Entity::find_by_id(changed.id).one(&txn).await?.ok_or(Error::KeyNotFound)?;
        txn.commit().await?;
        from_row(row)
    }

    /// Revokes a credential now; an already revoked one stays as it was.
    pub async fn revoke(&self, id: Uuid, audit: &[AuditRecord]) -> Result<Credential, Error> {
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
        from_row(row)
    }

    /// Stops a leaked secret: revokes the credential, or ends the grace of its previous
    /// secret. True when this call stopped it (a concurrent report or revoke did nothing
    /// twice, and only the one that did it is audited).
    pub async fn stop_leaked(
        &self,
        credential: &Credential,
        exposed: Exposed,
        audit: &[AuditRecord],
    ) -> Result<Option<Credential>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let update = credentials::Entity::update_many()
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.eq(credential.id))
            .filter(credentials::Column::RevokedAt.is_null());
        let update = match exposed {
            Exposed::Current => update
                .col_expr(credentials::Column::RevokedAt, Expr::value(now))
                .filter(credentials::Column::Hash.eq(credential.hash.to_hex())),
            Exposed::Previous => {
                let previous = credential.previous.ok_or_else(|| Error::internal("no previous secret"))?;
                update
                    .col_expr(credentials::Column::PreviousExpiresAt, Expr::value(now))
                    .filter(credentials::Column::PreviousHash.eq(previous.hash.to_hex()))
                    .filter(credentials::Column::PreviousExpiresAt.gt(now))
            }
        };
        if update.exec(&txn).await?.rows_affected == 0 {
            return Ok(None);
        }
        outbox::enqueue_audit(&txn, audit).await?;
        let row = credentials::Entity::find_by_id(credential.id).one(&txn).await?.ok_or(Error::KeyNotFound)?;
        txn.commit().await?;
        from_row(row).map(Some)
    }

    /// Stores a regenerated key, if its secret is still the one it was regenerated from
    /// and it was not revoked meanwhile.
    /// Stores a key's new secret and holder, unless the membership the regeneration was
    /// authorized on ended since (a removal racing it must not leave the new secret alive).
    pub async fn regenerate(
        &self,
        before: &Credential,
        after: &Credential,
        authorized_on: Option<Membership>,
        audit: &[AuditRecord],
    ) -> Result<Credential, Error> {
        let txn = self.db.begin().await?;
        pass_fences(&txn, before.org_id, authorized_on).await?;
        let updated = credentials::Entity::update_many()
            .col_expr(credentials::Column::Hash, Expr::value(after.hash.to_hex()))
            .col_expr(credentials::Column::Prefix, Expr::value(after.prefix.clone()))
            .col_expr(credentials::Column::PreviousHash, Expr::value(after.previous.map(|p| p.hash.to_hex())))
            .col_expr(credentials::Column::PreviousExpiresAt, Expr::value(after.previous.map(|p| p.until)))
            .col_expr(credentials::Column::CreatedBy, Expr::value(after.created_by))
            .col_expr(credentials::Column::Revision, next_revision())
            .filter(credentials::Column::Id.eq(before.id))
            .filter(credentials::Column::Hash.eq(before.hash.to_hex()))
            .filter(credentials::Column::RevokedAt.is_null())
            .exec(&txn)
            .await?;
        if updated.rows_affected == 0 {
            return Err(Error::Conflict);
        }
        outbox::enqueue_audit(&txn, audit).await?;
        let row = credentials::Entity::find_by_id(before.id).one(&txn).await?.ok_or(Error::KeyNotFound)?;
        txn.commit().await?;
        from_row(row)
    }

    /// Inserts the org's bootstrap key unless the org has an active API key or already
    /// had its bootstrap key. Concurrent callers meet at the claim's primary key.
    pub async fn ensure_bootstrap(
        &self,
        credential: &Credential,
        authorized_on: Option<Membership>,
        audit: &[AuditRecord],
    ) -> Result<Option<Credential>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        pass_fences(&txn, credential.org_id, authorized_on).await?;
        if bootstrap_claims::Entity::find_by_id(credential.org_id).one(&txn).await?.is_some() {
            return Ok(None);
        }
        let active = credentials::Entity::find()
            .filter(credentials::Column::OrgId.eq(credential.org_id))
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
        let claim = bootstrap_claims::ActiveModel {
            org_id: Set(credential.org_id),
            key_id: Set(credential.id),
            created_at: Set(now),
        };
        match claim.insert(&txn).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        let row = credentials::ActiveModel::from(to_row(credential)).insert(&txn).await?;
        outbox::enqueue_audit(&txn, audit).await?;
        match txn.commit().await {
            Ok(()) => Ok(Some(from_row(row)?)),
            // A concurrent caller's claim committed first.
            Err(e) if is_unique_violation(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Revokes every live credential of a deleted org, and closes its fence: none is
    /// stored after. Answers the ones it revoked.
    pub async fn revoke_org(
        &self,
        org_id: Uuid,
        audit_for: impl Fn(&Credential) -> AuditRecord,
    ) -> Result<Vec<Credential>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let fence = lock_fence(&txn, org_id).await?;
        if fence.closed_at.is_none() {
            let mut closing: org_fences::ActiveModel = fence.into();
            closing.closed_at = Set(Some(now));
            closing.update(&txn).await?;
        }
        revoke_where(txn, credentials::Column::OrgId.eq(org_id), audit_for, now).await
    }

    /// Revokes every live credential a user created in an org on a membership that
    /// ended, and fences the membership: none authorized on it is stored after.
    pub async fn revoke_created_by(
        &self,
        org_id: Uuid,
        ended: Membership,
        audit_for: impl Fn(&Credential) -> AuditRecord,
    ) -> Result<Vec<Credential>, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        lock_fence(&txn, org_id).await?;
        let fence = membership_fences::ActiveModel {
            org_id: Set(org_id),
            user_id: Set(ended.user_id),
            member_since: Set(ended.since),
            closed_at: Set(now),
        };
        membership_fences::Entity::insert(fence)
            .on_conflict(
                OnConflict::columns([
                    membership_fences::Column::OrgId,
                    membership_fences::Column::UserId,
                    membership_fences::Column::MemberSince,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&txn)
            .await
            .or_else(|e| if matches!(e, sea_orm::DbErr::RecordNotInserted) { Ok(0) } else { Err(e) })?;
        let owned = Condition::all()
            .add(credentials::Column::OrgId.eq(org_id))
            .add(credentials::Column::CreatedBy.eq(ended.user_id));
        revoke_where(txn, owned, audit_for, now).await
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

/// The org's fence, locked for the rest of the transaction (made on first use).
async fn lock_fence(txn: &DatabaseTransaction, org_id: Uuid) -> Result<org_fences::Model, Error> {
    let fence = org_fences::ActiveModel { org_id: Set(org_id), closed_at: Set(None) };
    org_fences::Entity::insert(fence)
        .on_conflict(OnConflict::column(org_fences::Column::OrgId).do_nothing().to_owned())
        .exec_without_returning(txn)
        .await
        .or_else(|e| if matches!(e, sea_orm::DbErr::RecordNotInserted) { Ok(0) } else { Err(e) })?;
    org_fences::Entity::find_by_id(org_id)
        .lock_exclusive()
        .one(txn)
        .await?
        .ok_or_else(|| Error::internal("an org fence vanished"))
}

/// Refuses a new credential of a deleted org, or one authorized on a membership that ended.
async fn pass_fences(txn: &DatabaseTransaction, org_id: Uuid, authorized_on: Option<Membership>) -> Result<(), Error> {
    if lock_fence(txn, org_id).await?.closed_at.is_some() {
        return Err(Error::OrgNotFound);
    }
    if let Some(membership) = authorized_on {
        let ended =
            membership_fences::Entity::find_by_id((org_id, membership.user_id, membership.since)).one(txn).await?;
        if ended.is_some() {
            return Err(Error::CreatorNotMember);
        }
    }
    Ok(())
}

/// Revokes the live credentials `which` selects, with their audit events, and commits.
async fn revoke_where(
    txn: DatabaseTransaction,
    which: impl IntoCondition,
    audit_for: impl Fn(&Credential) -> AuditRecord,
    now: DateTime<Utc>,
) -> Result<Vec<Credential>, Error> {
    let live: Vec<Credential> = credentials::Entity::find()
        .filter(which)
        .filter(credentials::Column::RevokedAt.is_null())
        .lock_exclusive()
        .all(&txn)
        .await?
        .into_iter()
        .map(from_row)
        .collect::<Result<_, _>>()?;
    let ids: Vec<Uuid> = live.iter().map(|c| c.id).collect();
    credentials::Entity::update_many()
        .col_expr(credentials::Column::RevokedAt, Expr::value(now))
        .col_expr(credentials::Column::Revision, next_revision())
        .filter(credentials::Column::Id.is_in(ids))
        .exec(&txn)
        .await?;
    let audit: Vec<AuditRecord> = live.iter().map(&audit_for).collect();
    outbox::enqueue_audit(&txn, &audit).await?;
    txn.commit().await?;
    Ok(live.into_iter().map(|c| Credential { revoked_at: Some(now), revision: c.revision + 1, ..c }).collect())
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::ApiKey => API_KEY,
        Kind::McpToken => MCP_TOKEN,
    }
}

/// A stored row as the domain sees it. A row this code cannot read is a bug of ours.
fn from_row(row: credentials::Model) -> Result<Credential, Error> {
    let corrupt = |what: &str| Error::internal(format!("credential {} has a bad {what}", row.id));
    let hash = |hex: &str| SecretHash::from_hex(hex);
    let kind = match row.kind.as_str() {
        API_KEY => Kind::ApiKey,
        MCP_TOKEN => Kind::McpToken,
        _ => return Err(corrupt("kind")),
    };
    let previous = match (&row.previous_hash, row.previous_expires_at) {
        (Some(previous), Some(until)) => {
            Some(PreviousSecret { hash: hash(previous).ok_or_else(|| corrupt("previous hash"))?, until })
        }
        _ => None,
    };
    let strings = |json: &serde_json::Value| -> Vec<String> {
        json.as_array()
            .map(|items| items.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
            .unwrap_or_default()
    };
    Ok(Credential {
        id: row.id,
        kind,
        org_id: row.org_id,
        created_by: row.created_by,
        environment: Environment::parse(&row.environment),
        prefix: row.prefix.clone(),
        hash: hash(&row.hash).ok_or_else(|| corrupt("hash"))?,
        previous,
        scopes: match &row.scopes {
            None => Scopes::Full,
            Some(list) => Scopes::Only(strings(list).into_iter().collect()),
        },
        resource_ids: strings(&row.resource_ids),
        bootstrap: row.bootstrap,
        created_at: row.created_at,
        last_used_at: row.last_used_at,
        expires_at: row.expires_at,
        revoked_at: row.revoked_at,
        revision: u64::try_from(row.revision).map_err(|_| corrupt("revision"))?,
        rate_limit: match (row.rate_limit_requests, row.rate_limit_per_seconds) {
            (Some(requests), Some(per)) => Some(
                u32::try_from(requests)
                    .ok()
                    .zip(u32::try_from(per).ok())
                    .and_then(|(requests, per)| RateLimit::new("rate_limit", requests, per).ok())
                    .ok_or_else(|| corrupt("rate limit"))?,
            ),
            _ => None,
        },
        name: row.name,
    })
}

fn to_row(c: &Credential) -> credentials::Model {
    credentials::Model {
        id: c.id,
        kind: kind_name(c.kind).to_owned(),
        org_id: c.org_id,
        created_by: c.created_by,
        name: c.name.clone(),
        environment: c.environment.map(|e| e.as_str().to_owned()).unwrap_or_default(),
        prefix: c.prefix.clone(),
        hash: c.hash.to_hex(),
        previous_hash: c.previous.map(|p| p.hash.to_hex()),
        previous_expires_at: c.previous.map(|p| p.until),
        scopes: match &c.scopes {
            Scopes::Full => None,
            Scopes::Only(set) => Some(serde_json::Value::from(set.iter().cloned().collect::<Vec<_>>())),
        },
        resource_ids: serde_json::Value::from(c.resource_ids.clone()),
        bootstrap: c.bootstrap,
        created_at: c.created_at,
        last_used_at: c.last_used_at,
        expires_at: c.expires_at,
        revoked_at: c.revoked_at,
        revision: i64::try_from(c.revision).unwrap_or(i64::MAX),
        rate_limit_requests: c.rate_limit.map(|r| i64::from(r.requests)),
        rate_limit_per_seconds: c.rate_limit.map(|r| i64::from(r.per_seconds)),
    }
}
