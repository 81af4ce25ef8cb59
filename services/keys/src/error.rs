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
    #[error("a {0} cannot hold a credential with these scopes: {1}")]
    RoleTooLow(keyplane_common::authz::Role, String),
    #[error("no such organization")]
    OrgNotFound,
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
    fn kind(&self) -> Kind {
        match self {
            Self::Validation(_) | Self::InvalidScope(_) => Kind::InvalidArgument,
            Self::InsufficientScope
            | Self::ResourceNotAllowed
            | Self::ScopesRequired
            | Self::EnvironmentNotAllowed(_)
            | Self::ExpiryNotAllowed(_)
            | Self::RoleTooLow(..) => Kind::PermissionDenied,
            Self::KeyNotFound | Self::TokenNotFound | Self::OrgNotFound => Kind::NotFound,
            Self::KeyRevoked | Self::KeyExpired => Kind::FailedPrecondition,
            Self::Conflict => Kind::Conflict,
            Self::SessionRequired => Kind::Unauthenticated,
            Self::Failure(f) => f.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::InvalidScope(_) => "invalid_scope",
            Self::InsufficientScope => "insufficient_scope",
            Self::ResourceNotAllowed => "resource_not_allowed",
            Self::ScopesRequired => "insufficient_scope",
            Self::EnvironmentNotAllowed(_) => "environment_not_allowed",
            Self::ExpiryNotAllowed(_) => "expiry_not_allowed",
            Self::RoleTooLow(..) => "insufficient_role",
            Self::OrgNotFound => "org_not_found",
            Self::KeyNotFound => "key_not_found",
            Self::TokenNotFound => "mcp_token_not_found",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::Conflict => "conflict",
            Self::SessionRequired => "session_required",
            Self::Failure(f) => f.code(),
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
