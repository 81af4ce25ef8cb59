//! The identity use cases: accounts, verified addresses, sessions, and who a credential
//! stands for.

use std::{sync::Arc, time::Duration};

use keyplane_common::{
    audit::AuditRecord,
    cache::Cache,
    error::{Failure, FieldViolation},
    internal_auth::Caller,
    mail::OutgoingMail,
    principal::{Principal, UserPrincipal},
    text,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    domain::{
        email::Email,
        opaque_token::{self, OpaqueToken, TokenKind},
        password::{self, NewPassword},
        user::{DevMail, User},
        verification::{self, VERIFICATION_TTL},
    },
    error::Error,
    failed_logins::FailedLogins,
    hashing::HashingPool,
    jwt::{BearerVerifier, VerifiedBearer, external::ExternalIdentity},
    key_lookup::KeyLookup,
    store::{LOCAL_ISSUER, NewSession, NewVerification, Refreshed, Store},
};

/// A session just started or refreshed.
pub struct IssuedSession {
    pub user: User,
    pub access_token: String,
    pub expires_in: Duration,
    pub refresh_token: OpaqueToken,
}

/// How long a session's liveness is cached; a logout overwrites it at once.
const SESSION_CACHE_TTL: Duration = Duration::from_secs(300);
const MAX_NAME_LEN: usize = 200;
const DEV_MAILBOX_PAGE: u64 = 50;

pub struct Service {
    pub store: Store,
    pub bearer: BearerVerifier,
    pub keys: KeyLookup,
    pub cache: Cache,
    pub refresh_token_ttl: Duration,
    /// External users already provisioned: (issuer, subject) → user.
    pub external_users: moka::future::Cache<(String, String), Arc<User>>,
    pub hashing: HashingPool,
    /// Wakes the mail relay after a commit that queued mail.
    pub mail_relay: Arc<Notify>,
    pub public_url: Option<String>,
    pub dev_mailbox: bool,
    pub revocations: SessionRevocations,
    pub failed_logins: Arc<FailedLogins>,
    /// Wakes the audit relay after a commit that queued an audit event.
    pub audit_relay: Arc<Notify>,
}

impl Service {
    /// A new account: signed in at once (the self-serve funnel does not wait for mail),
    /// its address unverified until the mailed token comes back.
    pub async fn signup(&self, email: &str, password: &str, name: &str) -> Result<IssuedSession, Error> {
        let mut violations = Vec::new();
        let email = Email::parse(email).map_err(|v| violations.push(v)).ok();
        let password = NewPassword::parse(password).map_err(|v| violations.push(v)).ok();
        let name = text::optional_text("name", name, MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
        let (Some(email), Some(password), Some(name)) = (email, password, name) else {
            return Err(Error::Validation(violations));
        };
        let name = if name.is_empty() { email.as_str().split('@').next().unwrap_or_default().to_owned() } else { name };
        let hash = self.hashing.run(move || password.hash()).await?;
        let verification = self.verification(email.as_str());
        let user = self.store.insert_local_user(Uuid::now_v7(), email.as_str(), &name, hash, verification).await?;
        self.mail_relay.notify_one();
        tracing::info!(user_id = %user.id, "user signed up");
        self.start_session(user).await
    }

    /// Unknown email and wrong password get the same answer in the same time.
    /// Signs in with a password. A failure is audited (grouped per address and source):
    /// the same answer for an unknown address as for a wrong password, to the caller.
    pub async fn login(&self, email: &str, password: &str, caller: &Caller) -> Result<IssuedSession, Error> {
        let (user, stored) = match Email::parse(email) {
            Ok(email) => self.store.password_account(email.as_str()).await?.unzip(),
            Err(_) => (None, None),
        };
        let stored = stored.flatten();
        let password = password.to_owned();
        let valid = self.hashing.run(move || password::verify(&password, stored.as_deref())).await?;
        match user {
            Some(user) if valid => self.start_session(user).await,
            user => {
                self.failed_logins.record(email, user.map(|u| u.id), caller, keyplane_common::time::now());
                Err(Error::InvalidCredentials)
            }
        }
    }

    /// Starts signing session bearers with a new key, audited as the platform's event.
    pub async fn rotate_signing_key(&self, caller: &Caller) -> Result<String, Error> {
        let actor = match caller.principal.as_deref() {
            Some(principal) => principal.actor(),
            None => ("service", caller.service.clone()),
        };
        let kid = self
            .bearer
            .ring
            .rotate(|kid| {
                AuditRecord::platform(actor, "signing_key.rotated", ("signing_key", kid.to_owned())).from_caller(caller)
            })
            .await?;
        self.audit_relay.notify_one();
        Ok(kid)
    }

    /// A verification token for `email` and the mail that carries it.
    fn verification(&self, email: &str) -> NewVerification {
        let token = OpaqueToken::generate(TokenKind::EmailVerification);
        NewVerification {
            token_hash: token.hash(),
            expires_at: keyplane_common::time::now() + VERIFICATION_TTL,
            mail: verification::mail(email, &token, self.public_url.as_deref()),
        }
    }

    /// Spends a mailed token: the address it was sent to is verified.
    pub async fn verify_email(&self, token: &str) -> Result<User, Error> {
        let hash =
            opaque_token::hash_presented(TokenKind::EmailVerification, token).ok_or(Error::InvalidVerificationToken)?;
        let user = self.store.verify_email(&hash).await?;
        tracing::info!(user_id = %user.id, "email address verified");
        Ok(user)
    }

    /// Sends the signed-in user another verification mail.
    pub async fn resend_verification(&self, principal: &Principal) -> Result<(), Error> {
        let Principal::User(session) = principal else { return Err(Error::SessionRequired) };
        let user = self.store.user(session.user_id).await?.ok_or(Error::UserNotFound)?;
        if user.email_verified {
            return Err(Error::AlreadyVerified);
        }
        if user.issuer != LOCAL_ISSUER {
            return Err(Error::VerifiedByIssuer);
        }
        self.store.add_verification(&user, self.verification(&user.email)).await?;
        self.mail_relay.notify_one();
        Ok(())
    }

    /// Queues another service's mail for the mailer.
    pub async fn send_mail(&self, mail: OutgoingMail) -> Result<(), Error> {
        self.store.enqueue_mail(&mail).await?;
        self.mail_relay.notify_one();
        Ok(())
    }

    pub async fn dev_mailbox(&self, to: &str) -> Result<Vec<DevMail>, Error> {
        if !self.dev_mailbox {
            return Err(Error::DevMailboxOff);
        }
        let to = text::email_address("to", to).map_err(|v| Error::Validation(vec![v]))?;
        self.store.dev_mail(&to, DEV_MAILBOX_PAGE).await
    }

    async fn start_session(&self, user: User) -> Result<IssuedSession, Error> {
        let refresh_token = OpaqueToken::generate(TokenKind::Refresh);
        let expires_at = keyplane_common::time::now()
            + chrono::Duration::from_std(self.refresh_token_ttl).map_err(|e| Error::internal(e.to_string()))?;
        let session = self
            .store
            .create_session(NewSession { user_id: user.id, expires_at, refresh_hash: refresh_token.hash() })
            .await?;
        self.issue(user, session.id, refresh_token)
    }

    fn issue(&self, user: User, session_id: Uuid, refresh_token: OpaqueToken) -> Result<IssuedSession, Error> {
        let access_token =
            self.bearer.sessions.issue(&self.bearer.ring, user.id, session_id, &user.email, &user.name)?;
        Ok(IssuedSession { user, access_token, expires_in: self.bearer.sessions.ttl(), refresh_token })
    }

    pub async fn refresh(&self, presented: &str) -> Result<IssuedSession, Error> {
        let hash = opaque_token::hash_presented(TokenKind::Refresh, presented).ok_or(Error::InvalidRefreshToken)?;
        let successor = OpaqueToken::generate(TokenKind::Refresh);
        match self.store.rotate_refresh(&hash, successor.hash()).await? {
            Refreshed::Rotated(session) => {
                let user = self.store.user(session.user_id).await?.ok_or(Error::InvalidRefreshToken)?;
                self.issue(user, session.id, successor)
            }
            Refreshed::Reused(session_id) => {
                tracing::warn!(session_id = %session_id, "refresh token reused; session revoked");
                self.revocations.mark_revoked(session_id).await;
                Err(Error::RefreshTokenReused)
            }
        }
    }

    /// Ends the caller's session. An external issuer's session is the issuer's to end:
    /// there is nothing of ours to revoke, and the answer is the same 204.
    pub async fn logout(&self, principal: &Principal) -> Result<(), Error> {
        let Principal::User(user) = principal else { return Err(Error::SessionRequired) };
        let Some(session_id) = user.session_id else { return Ok(()) };
        self.store.revoke_session(session_id, "logout").await?;
        self.revocations.mark_revoked(session_id).await;
        Ok(())
    }

    /// Who a raw credential stands for, and the revision of a key's record (0 otherwise).
    pub async fn authenticate(&self, credential: &str, min_revision: u64) -> Result<(Principal, u64), Error> {
        if self.keys.claims(credential) {
            return self.keys.authenticate(credential, min_revision).await;
        }
        let principal = match self.bearer.verify(credential).await? {
            VerifiedBearer::Session(session) => {
                self.check_session_live(session.session_id).await?;
                Principal::User(UserPrincipal {
                    user_id: session.user_id,
                    session_id: Some(session.session_id),
                    email: session.email,
                    name: session.name,
                    issuer: LOCAL_ISSUER.to_owned(),
                })
            }
            VerifiedBearer::External(identity) => {
                let user = self.provision(identity).await?;
                Principal::User(UserPrincipal {
                    user_id: user.id,
                    session_id: None,
                    email: user.email.clone(),
                    name: user.name.clone(),
                    issuer: user.issuer.clone(),
                })
            }
        };
        Ok((principal, 0))
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
        if !session.is_live(keyplane_common::time::now()) {
            return Err(Error::SessionRevoked);
        }
        if let Err(e) = self.cache.set_if_absent(&key, b"active", SESSION_CACHE_TTL).await {
            tracing::debug!(error = %e, "session cache write failed");
        }
        Ok(())
    }

    /// The user behind an external token: created on its first use, and kept in step with
    /// what the issuer says of the address.
    async fn provision(&self, identity: ExternalIdentity) -> Result<Arc<User>, Error> {
        let key = (identity.issuer.clone(), identity.subject.clone());
        if let Some(user) = self.external_users.get(&key).await
            && user.email == identity.email
            && user.email_verified == identity.email_verified
        {
            return Ok(user);
        }
        let name = text::optional_text("name", &identity.name, MAX_NAME_LEN).unwrap_or_default();
        let user = self
            .store
            .provision_external(&identity.issuer, &identity.subject, &identity.email, &name, identity.email_verified)
            .await
            .map_err(|e| match e {
                Error::Failure(Failure::Unavailable(what)) => Error::Failure(Failure::Unavailable(what)),
                other => Error::internal(other.to_string()),
            })?;
        let user = Arc::new(user);
        self.external_users.insert(key, Arc::clone(&user)).await;
        Ok(user)
    }

    pub async fn user(&self, id: &str) -> Result<User, Error> {
        let id =
            Uuid::parse_str(id).map_err(|_| Error::Validation(vec![FieldViolation::new("id", "must be a UUID")]))?;
        self.store.user(id).await?.ok_or(Error::UserNotFound)
    }

    pub async fn users(&self, ids: &[String]) -> Result<Vec<User>, Error> {
        let ids = ids
            .iter()
            .map(|id| {
                Uuid::parse_str(id).map_err(|_| Error::Validation(vec![FieldViolation::new("ids", "must be UUIDs")]))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.store.users(ids).await
    }

    pub async fn user_by_email(&self, email: &str) -> Result<User, Error> {
        let email = Email::parse(email).map_err(|v| Error::Validation(vec![v]))?;
        self.store.user_by_email(email.as_str()).await?.ok_or(Error::UserNotFound)
    }
}

fn session_key(session_id: Uuid) -> String {
    format!("session:{session_id}")
}

/// Tells every replica that a session ended: its cached liveness is overwritten with
/// "revoked". A write Redis refuses is retried until it lands; until then replicas whose
/// cache still says "active" would keep accepting the session. "Revoked" is final, so a
/// late retry can never undo anything.
#[derive(Clone)]
pub struct SessionRevocations {
    cache: Cache,
    ttl: Duration,
    retry: mpsc::UnboundedSender<Uuid>,
}

impl SessionRevocations {
    /// `ttl`: longer than any access token of the session lives.
    pub fn start(cache: Cache, ttl: Duration, shutdown: CancellationToken) -> Self {
        let (retry, mut queue) = mpsc::unbounded_channel::<Uuid>();
        let revocations = Self { cache, ttl, retry };
        let worker = revocations.clone();
        tokio::spawn(async move {
            let mut pending = std::collections::HashSet::new();
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = queue.recv() => match next {
                        Some(session_id) => { pending.insert(session_id); continue; }
                        None => return,
                    },
                    () = tokio::time::sleep(Duration::from_secs(1)), if !pending.is_empty() => {}
                }
                let mut still = std::collections::HashSet::new();
                for session_id in pending.drain() {
                    if worker.write(session_id).await.is_err() {
                        still.insert(session_id);
                    }
                }
                pending = still;
            }
        });
        revocations
    }

    pub async fn mark_revoked(&self, session_id: Uuid) {
        if let Err(e) = self.write(session_id).await {
            // The database says revoked meanwhile: replicas that miss the cache read it there.
            tracing::warn!(error = %e, "session revocation not yet in the cache; retrying");
            let _ = self.retry.send(session_id);
        }
    }

    async fn write(&self, session_id: Uuid) -> Result<(), keyplane_common::cache::CacheError> {
        self.cache.set(&session_key(session_id), b"revoked", self.ttl).await
    }
}
