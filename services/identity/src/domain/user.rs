//! Users and their sessions, as the use cases see them.

use chrono::{DateTime, Utc};
use keyplane_common::mail::OutgoingMail;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    /// "keyplane" for password accounts, else the external issuer.
    pub issuer: String,
    pub created_at: DateTime<Utc>,
    /// A verification mail's token came back, or the external issuer vouched for it.
    pub email_verified: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub id: Uuid,
    pub user_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

impl Session {
    pub fn is_live(&self, now: DateTime<Utc>) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

/// A mail the development mailbox kept.
#[derive(Clone, Debug)]
pub struct DevMail {
    pub mail: OutgoingMail,
    pub sent_at: DateTime<Utc>,
}
