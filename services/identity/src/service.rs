//! The identity use cases: accounts, sessions, and who a credential stands for.

use std::{sync::Arc, time::Duration};

use keyplane_common::{
    cache::Cache,
    error::{Failure, FieldViolation},
    principal::{Principal, UserPrincipal},
    text,
};
use uuid::Uuid;

use crate::{
    credentials::KeyAuthenticator,
    domain::{
        email::Email,
        password::{self, NewPassword},
        refresh_token::{self, RefreshToken},
    },
    error::Error,
    jwt::{BearerVerifier, VerifiedBearer, external::ExternalIdentity},
    store::{LOCAL_ISSUER, NewSession, Refreshed, Store, users},
};

/// A session just started or refreshed.
pub struct IssuedSession {
    pub user: users::Model,
    pub access_token: String,
    pub expires_in: Duration,
    pub refresh_token: RefreshToken,
}

/// How long a session's liveness is cached; a logout overwrites it at once.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(300);
const MAX_NAME_LEN: usize = 200;

pub struct Service {
    pub store: Store,
    pub bearer: BearerVerifier,
    pub keys: KeyAuthenticator,
    pub cache: Cache,
    pub refresh_token_ttl: Duration,
    /// External users already provisioned: (issuer, subject) → user.
    pub external_users: moka::future::Cache<(String, String), Arc<users::Model>>,
}

impl Service {
    pub async fn signup(&self, email: &str, password: &str, name: &str) -> Result<IssuedSession, Error> {
        let mut violations = Vec::new();
        let email = Email::parse(email).map_err(|v| violations.push(v)).ok();
        let password = NewPassword::parse(password).map_err(|v| violations.push(v)).ok();
        let name = text::optional_text("name", name, MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let (Some(email), Some(password), Some(name)) = (email, password, name) else {
            return Err(Error::Validation(violations));
        };
        let name = if name.is_empty() { email.as_str().split('@').next().unwrap_or_default().to_owned() } else { name };
        let hash = tokio::task::spawn_blocking(move || password.hash())
            .await
            .map_err(|e| Error::internal(format!("hashing task: {e}")))?;
        let user = self.store.insert_local_user(email.as_str(), &name, hash).await?;
        tracing::info!(user_id = %user.id, "user signed up");
        self.start_session(user).await
    }

    /// Unknown email and wrong password get the same answer in the same time.
    pub async fn login(&self, email: &str, password: &str) -> Result<IssuedSession, Error> {
        let user = match Email::parse(email) {
            Ok(email) => self.store.local_user_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let stored = user.as_ref().and_then(|u| u.password_hash.clone());
        let password = password.to_owned();
        let valid = tokio::task::spawn_blocking(move || password::verify(&password, stored.as_deref()))
            .await
            .map_err(|e| Error::internal(format!("verify task: {e}")))?;
        match user {
            Some(user) if valid => self.start_session(user).await,
            _ => Err(Error::InvalidCredentials),
        }
    }

    async fn start_session(&self, user: users::Model) -> Result<IssuedSession, Error> {
        let refresh_token = RefreshToken::generate();
        let expires_at = keyplane_common::time::now()
            + chrono::Duration::from_std(self.refresh_token_ttl).map_err(|e| Error::internal(e.to_string()))?;
        let session = self
            .store
            .create_session(NewSession { user_id: user.id, expires_at, refresh_hash: refresh_token.hash() })
            .await?;
        self.issue(user, session.id, refresh_token)
    }

    fn issue(&self, user: users::Model, session_id: Uuid, refresh_token: RefreshToken) -> Result<IssuedSession, Error> {
        let access_token =
            self.bearer.sessions.issue(&self.bearer.ring, user.id, session_id, &user.email, &user.name)?;
        Ok(IssuedSession { user, access_token, expires_in: self.bearer.sessions.ttl(), refresh_token })
    }

    pub async fn refresh(&self, presented: &str) -> Result<IssuedSession, Error> {
        let hash = refresh_token::hash_presented(presented).ok_or(Error::InvalidRefreshToken)?;
        let successor = RefreshToken::generate();
        match self.store.rotate_refresh(&hash, successor.hash()).await? {
            Refreshed::Rotated(session) => {
                let user = self.store.user(session.user_id).await?.ok_or(Error::InvalidRefreshToken)?;
                self.issue(user, session.id, successor)
            }
            Refreshed::Reused(session_id) => {
                tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
                self.mark_session_revoked(session_id).await;
                Err(Error::RefreshTokenReused)
            }
        }
    }

    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        let Principal::User(UserPrincipal { session_id: Some(session_id), .. }) = principal else {
            return Err(Error::SessionRequired);
        };
        self.store.revoke_session(*session_id, "logout").await?;
        self.mark_session_revoked(*session_id).await;
        Ok(())
    }

    /// Overwrites the cached liveness so every replica refuses the session now.
    async fn mark_session_revoked(&self, session_id: Uuid) {
        let ttl = self.bearer.sessions.ttl() + Duration::from_secs(300);
        if let Err(e) = self.cache.set(&session_key(session_id), b"revoked", ttl).await {
            // The database says revoked; replicas that miss the cache read it there.
            tracing::warn!(error = %e, "could not cache a session revocation");
        }
    }

    /// Who a raw credential stands for.
    pub async fn authenticate(&self, credential: &str) -> Result<Principal, Error> {
        if self.keys.claims(credential) {
            return self.keys.authenticate(credential).await;
        }
        match self.bearer.verify(credential).await? {
            VerifiedBearer::Session(session) => {
                self.check_session_live(session.session_id).await?;
                Ok(Principal::User(UserPrincipal {
                    user_id: session.user_id,
                    session_id: Some(session.session_id),
                    email: session.email,
                    name: session.name,
                    issuer: LOCAL_ISSUER.to_owned(),
                }))
            }
            VerifiedBearer::External(identity) => {
                let user = self.provision(identity).await?;
                Ok(Principal::User(UserPrincipal {
                    user_id: user.id,
                    session_id: None,
                    email: user.email.clone(),
                    name: user.name.clone(),
                    issuer: user.issuer.clone(),
                }))
            }
        }
    }

    async fn check_session_live(&self, session_id: Uuid) -> Result<(), Error> {
        let key = session_key(session_id);
        match self.cache.get(&key).await {
            Ok(Some(state)) if state == b"active" => return Ok(()),
            Ok(Some(_)) => return Err(Error::SessionRevoked),
            Ok(None) => {}
            Err(e) => tracing::debug!(error = %e, "session cache read failed"),
        }
        let session = self.store.session(session_id).await?.ok_or(Error::InvalidToken("unknown session"))?;
        if session.revoked_at.is_some() || session.expires_at <= keyplane_common::time::now() {
            return Err(Error::SessionRevoked);
        }
        if let Err(e) = self.cache.set_if_absent(&key, b"active", SESSION_CACHE_TTL).await {
            tracing::debug!(error = %e, "session cache write failed");
        }
        Ok(())
    }

    /// The user behind an external token: created on its first use.
    async fn provision(&self, identity: ExternalIdentity) -> Result<Arc<users::Model>, Error> {
        let key = (identity.issuer.clone(), identity.subject.clone());
        self.external_users
            .try_get_with(key, async {
                let name = text::optional_text("name", &identity.name, MAX_NAME_LEN).unwrap_or_default();
                let user =
                    self.store.provision_external(&identity.issuer, &identity.subject, &identity.email, &name).await?;
                Ok::<_, Error>(Arc::new(user))
            })
            .await
            .map_err(|e| match e.as_ref() {
                Error::Failure(Failure::Unavailable(what)) => Error::Failure(Failure::Unavailable(what)),
                other => Error::internal(other.to_string()),
            })
    }

    pub async fn user(&self, id: &str) -> Result<users::Model, Error> {
        let id =
            Uuid::parse_str(id).map_err(|_| Error::Validation(vec![FieldViolation::new("id", "must be a UUID")]))?;
        self.store.user(id).await?.ok_or(Error::UserNotFound)
    }

    pub async fn users(&self, ids: &[String]) -> Result<Vec<users::Model>, Error> {
        let ids = ids
            .iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|_| Error::Validation(vec![FieldViolation::new("ids", "must be UUIDs")]))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store.users(ids).await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<users::Model, Error> {
        let email = Email::parse(email).map_err(|v| Error::Validation(vec![v]))?;
        self.store.user_by_email(email.as_str()).await?.ok_or(Error::UserNotFound)
    }
}

fn session_key(session_id: Uuid) -> String {
    format!("session:{session_id}")
}
