//! The identity service's storage: users, sessions, refresh tokens, signing keys.

mod entities;

use chrono::{DateTime, Utc};
use keyplane_common::{
    audit::AuditRecord,
    db::is_unique_violation,
    mail::{MAIL_TOPIC, MailKind, OutgoingMail},
    outbox,
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait, sea_query::OnConflict,
};
use uuid::Uuid;

pub use entities::signing_keys;
use entities::{dev_mailbox, email_verifications, refresh_tokens, sessions, users};

use crate::{
    domain::user::{DevMail, Session, User},
    error::Error,
};

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

/// A verification mail about to go out: the token's hash is stored, the token is mailed.
pub struct NewVerification {
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
    pub mail: OutgoingMail,
}

/// What spending a refresh token led to.
pub enum Refreshed {
    Rotated(Session),
    /// The token had been spent before: the session is now revoked.
    Reused(Uuid),
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    /// A new password account, unverified, and the mail that can verify it: together.
    pub async fn insert_local_user(
        &self,
        id: Uuid,
        email: &str,
        name: &str,
        password_hash: String,
        verification: NewVerification,
    ) -> Result<User, Error> {
        let now = keyplane_common::time::now();
        let user = users::ActiveModel {
            id: Set(id),
            email: Set(email.to_owned()),
            name: Set(name.to_owned()),
            issuer: Set(LOCAL_ISSUER.to_owned()),
            subject: Set(email.to_owned()),
            password_hash: Set(Some(password_hash)),
            created_at: Set(now),
            updated_at: Set(now),
            email_verified_at: Set(None),
        };
        let txn = self.db.begin().await?;
        let user =
            user.insert(&txn).await.map_err(|e| if is_unique_violation(&e) { Error::EmailTaken } else { e.into() })?;
        insert_verification(&txn, user.id, email, verification).await?;
        txn.commit().await?;
        Ok(to_user(user))
    }

    /// Another verification mail for a user's address.
    pub async fn add_verification(&self, user: &User, verification: NewVerification) -> Result<(), Error> {
        let txn = self.db.begin().await?;
        insert_verification(&txn, user.id, &user.email, verification).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Spends a verification token: its address is verified, if it is still the user's.
    pub async fn verify_email(&self, token_hash: &str) -> Result<User, Error> {
        let now = keyplane_common::time::now();
        let txn = self.db.begin().await?;
        let spent = email_verifications::Entity::update_many()
            .col_expr(email_verifications::Column::UsedAt, sea_orm::sea_query::Expr::value(now))
            .filter(email_verifications::Column::TokenHash.eq(token_hash))
            .filter(email_verifications::Column::UsedAt.is_null())
            .filter(email_verifications::Column::ExpiresAt.gt(now))
            .exec(&txn)
            .await?;
        if spent.rows_affected == 0 {
            return Err(Error::InvalidVerificationToken);
        }
        let verification = email_verifications::Entity::find_by_id(token_hash.to_owned())
            .one(&txn)
            .await?
            .ok_or(Error::InvalidVerificationToken)?;
        let user = users::Entity::find_by_id(verification.user_id).one(&txn).await?.ok_or(Error::UserNotFound)?;
        if user.email != verification.email {
            return Err(Error::InvalidVerificationToken);
        }
        let user = if user.email_verified_at.is_some() {
            user
        } else {
            let mut active: users::ActiveModel = user.into();
            active.email_verified_at = Set(Some(now));
            active.updated_at = Set(now);
            active.update(&txn).await?
        };
        txn.commit().await?;
        Ok(to_user(user))
    }

    /// Queues a mail for the mailer; a mail id queued before is queued once.
    pub async fn enqueue_mail(&self, mail: &OutgoingMail) -> Result<(), Error> {
        Ok(outbox::enqueue(&self.db, MAIL_TOPIC, &[(mail.id, mail.to_json())]).await?)
    }

    /// Keeps a mail in the development mailbox (once per id).
    pub async fn keep_dev_mail(&self, mail: &OutgoingMail) -> Result<(), Error> {
        let row = dev_mailbox::ActiveModel {
            id: Set(mail.id),
            to_address: Set(mail.to.to_lowercase()),
            kind: Set(mail.kind.as_str().to_owned()),
            subject: Set(mail.subject.clone()),
            body: Set(mail.body.clone()),
            token: Set(mail.token.clone()),
            invitation_id: Set(mail.invitation_id),
            sent_at: Set(keyplane_common::time::now()),
        };
        let inserted = dev_mailbox::Entity::insert(row)
            .on_conflict(OnConflict::column(dev_mailbox::Column::Id).do_nothing().to_owned())
            .exec_without_returning(&self.db)
            .await;
        match inserted {
            Ok(_) | Err(sea_orm::DbErr::RecordNotInserted) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The development mailbox of one address, newest first.
    pub async fn dev_mail(&self, to: &str, limit: u64) -> Result<Vec<DevMail>, Error> {
        let rows = dev_mailbox::Entity::find()
            .filter(dev_mailbox::Column::ToAddress.eq(to.to_lowercase()))
            .order_by_desc(dev_mailbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|m| {
                let kind = MailKind::parse(&m.kind)?;
                let mail = OutgoingMail {
                    id: m.id,
                    to: m.to_address,
                    subject: m.subject,
                    body: m.body,
                    kind,
                    token: m.token,
                    invitation_id: m.invitation_id,
                };
                Some(DevMail { mail, sent_at: m.sent_at })
            })
            .collect())
    }

    async fn local_row_by_email(&self, email: &str) -> Result<Option<users::Model>, Error> {
        Ok(users::Entity::find()
            .filter(users::Column::Issuer.eq(LOCAL_ISSUER))
            .filter(users::Column::Subject.eq(email))
            .one(&self.db)
            .await?)
    }

    /// The password account with this email, and its password's hash.
    pub async fn password_account(&self, email: &str) -> Result<Option<(User, Option<String>)>, Error> {
        Ok(self.local_row_by_email(email).await?.map(|row| {
            let hash = row.password_hash.clone();
            (to_user(row), hash)
        }))
    }

    /// A password account with this email, else the newest external one.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, Error> {
        if let Some(user) = self.local_row_by_email(email).await? {
            return Ok(Some(to_user(user)));
        }
        Ok(users::Entity::find()
            .filter(users::Column::Email.eq(email))
            .order_by_desc(users::Column::CreatedAt)
            .one(&self.db)
            .await?
            .map(to_user))
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, Error> {
        Ok(users::Entity::find_by_id(id).one(&self.db).await?.map(to_user))
    }

    pub async fn users(&self, ids: Vec<Uuid>) -> Result<Vec<User>, Error> {
        Ok(users::Entity::find()
            .filter(users::Column::Id.is_in(ids))
            .all(&self.db)
            .await?
            .into_iter()
            .map(to_user)
            .collect())
    }

    /// The user behind an external issuer's subject, created on first sight. The address
    /// and whether the issuer verified it follow what the issuer says now.
    pub async fn provision_external(
        &self,
        issuer: &str,
        subject: &str,
        email: &str,
        name: &str,
        email_verified: bool,
    ) -> Result<User, Error> {
        let find = || {
            users::Entity::find()
                .filter(users::Column::Issuer.eq(issuer))
                .filter(users::Column::Subject.eq(subject))
                .one(&self.db)
        };
        let now = keyplane_common::time::now();
        if let Some(user) = find().await? {
            if user.email == email && user.email_verified_at.is_some() == email_verified {
                return Ok(to_user(user));
            }
            let verified_at = if email_verified { user.email_verified_at.or(Some(now)) } else { None };
            let mut active: users::ActiveModel = user.into();
            active.email = Set(email.to_owned());
            active.email_verified_at = Set(verified_at);
            active.updated_at = Set(now);
            return Ok(to_user(active.update(&self.db).await?));
        }
        let user = users::ActiveModel {
            id: Set(Uuid::now_v7()),
            email: Set(email.to_owned()),
            name: Set(name.to_owned()),
            issuer: Set(issuer.to_owned()),
            subject: Set(subject.to_owned()),
            password_hash: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            email_verified_at: Set(email_verified.then_some(now)),
        };
        match user.insert(&self.db).await {
            Ok(user) => Ok(to_user(user)),
            // The same subject's first requests raced; the winner's row is the user.
            Err(e) if is_unique_violation(&e) => {
                find().await?.map(to_user).ok_or_else(|| Error::internal("provisioned user vanished"))
            }
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_session(&self, new: NewSession) -> Result<Session, Error> {
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
        Ok(to_session(session))
    }

    pub async fn session(&self, id: Uuid) -> Result<Option<Session>, Error> {
        Ok(sessions::Entity::find_by_id(id).one(&self.db).await?.map(to_session))
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
        Ok(Refreshed::Rotated(to_session(session)))
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
    /// Starts signing with `key`, retiring the others, with the rotation's audit event.
    pub async fn add_signing_key(
        &self,
        key: signing_keys::Model,
        unpublish_others_at: DateTime<Utc>,
        audit: &AuditRecord,
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
        outbox::enqueue_audit(&txn, std::slice::from_ref(audit)).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Queues audit events for the orgs service's log.
    pub async fn enqueue_audit(&self, events: &[AuditRecord]) -> Result<(), Error> {
        Ok(outbox::enqueue_audit(&self.db, events).await?)
    }

    /// Replaces a signing key's stored (sealed) private key: sealing under a new operator
    /// key, or sealing a key stored before sealing existed.
    pub async fn reseal_signing_key(&self, kid: &str, sealed: Vec<u8>) -> Result<(), Error> {
        signing_keys::Entity::update_many()
            .col_expr(signing_keys::Column::PrivatePkcs8, sea_orm::sea_query::Expr::value(sealed))
            .filter(signing_keys::Column::Kid.eq(kid))
            .exec(&self.db)
            .await?;
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

fn to_user(row: users::Model) -> User {
    User {
        id: row.id,
        email: row.email,
        name: row.name,
        issuer: row.issuer,
        created_at: row.created_at,
        email_verified: row.email_verified_at.is_some(),
    }
}

fn to_session(row: sessions::Model) -> Session {
    Session { id: row.id, user_id: row.user_id, expires_at: row.expires_at, revoked_at: row.revoked_at }
}

async fn insert_verification<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    email: &str,
    verification: NewVerification,
) -> Result<(), Error> {
    email_verifications::ActiveModel {
        token_hash: Set(verification.token_hash),
        user_id: Set(user_id),
        email: Set(email.to_owned()),
        created_at: Set(keyplane_common::time::now()),
        expires_at: Set(verification.expires_at),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    outbox::enqueue(db, MAIL_TOPIC, &[(verification.mail.id, verification.mail.to_json())]).await?;
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
