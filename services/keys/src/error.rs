//! Everything the keys service can answer besides success.

use keyplane_common::error::{Failure, FieldViolation, Kind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", keyplane_common::error::describe(.0))]
    Validation(Vec<FieldViolation>),
    #[error("{0}")]
    InvalidScope(String),
    #[error("the key cannot grant scopes it does not hold")]
    InsufficientScope,
    #[error("the key cannot grant access to resources it is not pinned to")]
    ResourceNotAllowed,
    #[error("a key creating a credential must list its scopes (omitted means full permission)")]
    ScopesRequired,
    #[error("a {0} key can only create {0} keys")]
    EnvironmentNotAllowed(keyplane_common::credential::Environment),
    #[error("the new credential must expire no later than its creator, at {0}")]
    ExpiryNotAllowed(chrono::DateTime<chrono::Utc>),
    #[error("the key may allow at most {0} requests per seconds (its creator key's own limit)")]
    RateLimitNotAllowed(keyplane_common::rate_limit::RateLimit),
    #[error("a key cannot change its own rate limit; a person or another key may")]
    OwnRateLimit,
    #[error("a {0} cannot hold a credential with these scopes: {1}")]
    RoleTooLow(keyplane_common::authz::Role, String),
    #[error("no such organization")]
    OrgNotFound,
    #[error("the credential's creator is no longer a member of this organization")]
    CreatorNotMember,
    #[error("only the key's creator, or an owner, may regenerate it: its new secret acts with the creator's role")]
    NotCreator,
    #[error("this secret is no longer the key's current one; use the new secret")]
    StaleSecret,
    #[error("only the orgs service revokes credentials in bulk")]
    OrgsOnly,
    #[error("only a platform service reports leaked secrets")]
    ReporterOnly,
    #[error("no such API key")]
    KeyNotFound,
    #[error("no such MCP token")]
    TokenNotFound,
    #[error("the API key is revoked")]
    KeyRevoked,
    #[error("the API key has expired")]
    KeyExpired,
    #[error("the key was changed by another request; retry")]
    Conflict,
    #[error("this needs a signed-in user")]
    SessionRequired,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Validation(_) => (Kind::InvalidArgument, "validation_failed"),
            Self::InvalidScope(_) => (Kind::InvalidArgument, "invalid_scope"),
            Self::InsufficientScope | Self::ScopesRequired => (Kind::PermissionDenied, "insufficient_scope"),
            Self::ResourceNotAllowed => (Kind::PermissionDenied, "resource_not_allowed"),
            Self::EnvironmentNotAllowed(_) => (Kind::PermissionDenied, "environment_not_allowed"),
            Self::ExpiryNotAllowed(_) => (Kind::PermissionDenied, "expiry_not_allowed"),
            Self::RoleTooLow(..) => (Kind::PermissionDenied, "insufficient_role"),
            Self::RateLimitNotAllowed(_) | Self::OwnRateLimit => (Kind::PermissionDenied, "rate_limit_not_allowed"),
            Self::OrgNotFound => (Kind::NotFound, "org_not_found"),
            Self::CreatorNotMember => (Kind::PermissionDenied, "creator_not_member"),
            Self::NotCreator => (Kind::PermissionDenied, "not_key_creator"),
            Self::StaleSecret => (Kind::Unauthenticated, "key_in_grace"),
            Self::OrgsOnly | Self::ReporterOnly => (Kind::PermissionDenied, "forbidden"),
            Self::KeyNotFound => (Kind::NotFound, "key_not_found"),
            Self::TokenNotFound => (Kind::NotFound, "mcp_token_not_found"),
            Self::KeyRevoked => (Kind::FailedPrecondition, "key_revoked"),
            Self::KeyExpired => (Kind::FailedPrecondition, "key_expired"),
            Self::Conflict => (Kind::Conflict, "conflict"),
            Self::SessionRequired => (Kind::Unauthenticated, "session_required"),
            Self::Failure(f) => f.describe(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Validation(v) => v.clone(),
            Self::InvalidScope(message) => vec![FieldViolation::new("scopes", message.clone())],
            _ => Vec::new(),
        }
    }
}

keyplane_common::service_error_conversions!(Error);
