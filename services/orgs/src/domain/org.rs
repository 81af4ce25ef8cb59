//! Orgs and their members, as the use cases see them.

use chrono::{DateTime, Utc};
use keyplane_common::authz::Role;
use uuid::Uuid;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Org {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub description: String,
    pub website_url: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub role: Role,
    pub joined_at: DateTime<Utc>,
}

/// A user as the identity service describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserInfo {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub email_verified: bool,
}
