//! The identity service's storage: users, sessions, refresh tokens, signing keys.

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::db::is_unique_violation;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set, TransactionTrait,
};
use uuid::Uuid;

pub use entities::{refresh_tokens, sessions, signing_keys, users};

use crate::error::Error;

/// The issuer recorded for password accounts.
pub const LOCAL_ISSUER: &str = "keyplane";

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
}

/// A new session and its first refresh token.
pub struct NewSession {
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub refresh_hash: String,
}

/// What spending a refresh token led to.
pub enum Refreshed {
    Rotated(sessions::Model),
    /// The token had been spent before: the session is now revoked.
    Reused(Uuid),
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn insert_local_user(
        &self,
        email: &str,
        name: &str,
        password_hash: String,
    ) -> Result<users::Model, Error> {
        let now = keyplane_common::time::now();
        let user = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(email.to_owned()),
            name: Set(name.to_owned()),
            issuer: Set(LOCAL_ISSUER.to_owned()),
            subject: Set(email.to_owned()),
            password_hash: Set(Some(password_hash)),
            created_at: Set(now),
            updated_at: Set(now),
        };
        user.insert(&self.db).await.map_err(|e| if is_unique_violation(&e) { Error::EmailTaken } else { e.into() })
    }

    pub async fn local_user_by_email(&self, email: &str) -> Result<Option<users::Model>, Error> {
        Ok(users::Entity::find()
            .filter(users::Column::Issuer.eq(LOCAL_ISSUER))
            .filter(users::Column::Subject.eq(email))
            .one(&self.db)
            .await?)
    }

    /// A password account with this email, else the newest external one.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<users::Model>, Error> {
        if let Some(user) = self.local_user_by_email(email).await? {
            return Ok(Some(user));
        }
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .order_by_desc(users::Column::CreatedAt)
            .one(&self.db)
            .await?)
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<users::Model>, Error> {
        Ok(users::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn users(&self, ids: Vec<Uuid>) -> Result<Vec<users::Model>, Error> {
        Ok(users::Entity::find().filter(users::Column::Id.is_in(ids)).all(&self.db).await?)
    }

    /// The user behind an external issuer's subject, created on first sight.
    pub async fn provision_external(
        &self,
        issuer: &str,
        subject: &str,
        email: &str,
        name: &str,
    ) -> Result<users::Model, Error> {
        let find = || {
            users::Entity::find()
                .filter(users::Column::Issuer.eq(issuer))
                .filter(users::Column::Subject.eq(subject))
                .one(&self.db)
        };
        if let Some(user) = find().await? {
            return Ok(user);
        }
        let now = keyplane_common::time::now();
        let user = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(email.to_owned()),
            name: Set(name.to_owned()),
            issuer: Set(issuer.to_owned()),
            subject: Set(subject.to_owned()),
            password_hash: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
        };
        match user.insert(&self.db).await {
            Ok(user) => Ok(user),
            // The same subject's first requests raced; the winner's row is the user.
            Err(e) if is_unique_violation(&e) => {
                find().await?.ok_or_else(|| Error::internal("provisioned user vanished"))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_session(&self, new: NewSession) -> Result<sessions::Model, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let session = sessions::ActiveModel {
            id: Set(Uuid::now_v7()),
            user_id: Set(new.user_id),
            created_at: Set(now),
            expires_at: Set(new.expires_at),
            revoked_at: Set(None),
            revoked_reason: Set(None),
        }
        .insert(&txn)
        .await?;
        insert_refresh(&txn, new.refresh_hash, session.id, new.expires_at).await?;
        txn.commit().await?;
        Ok(session)
    }

    pub async fn session(&self, id: Uuid) -> Result<Option<sessions::Model>, Error> {
        Ok(sessions::Entity::find_by_id(id).one(&self.db).await?)
    }

    pub async fn revoke_session(&self, id: Uuid, reason: &str) -> Result<(), Error> {
        revoke(&self.db, id, reason).await
    }

    /// Spends a refresh token and stores its successor, in one transaction.
    /// The successor expires with the session: refreshing never extends a session.
    pub async fn rotate_refresh(&self, presented_hash: &str, successor_hash: String) -> Result<Refreshed, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let token = refresh_tokens::Entity::find_by_id(presented_hash.to_owned())
            .one(&txn)
            .await?
            .ok_or(Error::InvalidRefreshToken)?;
        let session =
            sessions::Entity::find_by_id(token.session_id).one(&txn).await?.ok_or(Error::InvalidRefreshToken)?;
        if token.spent_at.is_some() {
            revoke(&txn, session.id, "refresh_token_reuse").await?;
            txn.commit().await?;
            return Ok(Refreshed::Reused(session.id));
        }
        if token.expires_at <= now || session.revoked_at.is_some() || session.expires_at <= now {
            return Err(Error::InvalidRefreshToken);
        }
        let spent = refresh_tokens::Entity::update_many()
            .col_expr(refresh_tokens::Column::SpentAt, sea_orm::sea_query::Expr::value(now))
            .filter(refresh_tokens::Column::Hash.eq(presented_hash))
            .filter(refresh_tokens::Column::SpentAt.is_null())
            .exec(&txn)
            .await?;
        if spent.rows_affected == 0 {
            // Spent by a concurrent refresh: a second use all the same.
            revoke(&txn, session.id, "refresh_token_reuse").await?;
            txn.commit().await?;
            return Ok(Refreshed::Reused(session.id));
        }
        insert_refresh(&txn, successor_hash, session.id, session.expires_at).await?;
        txn.commit().await?;
        Ok(Refreshed::Rotated(session))
    }

    /// Keys that still verify tokens: not yet unpublished.
    pub async fn published_signing_keys(&self) -> Result<Vec<signing_keys::Model>, Error> {
        let now = keyplane_common::time::now();
        Ok(signing_keys::Entity::find()
            .filter(
                Condition::any()
                    .add(signing_keys::Column::UnpublishAt.is_null())
                    .add(signing_keys::Column::UnpublishAt.gt(now)),
            )
            .order_by_asc(signing_keys::Column::CreatedAt)
            .all(&self.db)
            .await?)
    }

    /// Adds a signing key and retires every other one, published until `unpublish_at`.
    pub async fn add_signing_key(
        &self,
        key: signing_keys::Model,
        unpublish_others_at: DateTime<Utc>,
    ) -> Result<(), Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let kid = key.kid.clone();
        signing_keys::ActiveModel::from(key).insert(&txn).await?;
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::RetiredAt, sea_orm::sea_query::Expr::value(now))
            .col_expr(signing_keys::Column::UnpublishAt, sea_orm::sea_query::Expr::value(unpublish_others_at))
            .filter(signing_keys::Column::Kid.ne(kid))
            .filter(signing_keys::Column::RetiredAt.is_null())
            .exec(&txn)
            .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Adds the first signing key, unless another replica got there first.
    pub async fn add_first_signing_key(&self, key: signing_keys::Model) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        let existing = signing_keys::Entity::find().filter(signing_keys::Column::RetiredAt.is_null()).one(&txn).await?;
        if existing.is_none() {
            signing_keys::ActiveModel::from(key).insert(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }
}

async fn insert_refresh(
    txn: &DatabaseTransaction,
    hash: String,
    session_id: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), Error> {
    refresh_tokens::ActiveModel {
        hash: Set(hash),
        session_id: Set(session_id),
        created_at: Set(keyplane_common::time::now()),
        expires_at: Set(expires_at),
        spent_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(())
}

async fn revoke<C: sea_orm::ConnectionTrait>(db: &C, id: Uuid, reason: &str) -> Result<(), Error> {
    sessions::Entity::update_many()
        .col_expr(sessions::Column::RevokedAt, sea_orm::sea_query::Expr::value(keyplane_common::time::now()))
        .col_expr(sessions::Column::RevokedReason, sea_orm::sea_query::Expr::value(reason.to_owned()))
        .filter(sessions::Column::Id.eq(id))
        .filter(sessions::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(())
}
