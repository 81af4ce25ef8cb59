//! Everything the orgs service can answer besides success.

use keyplane_common::error::{Failure, FieldViolation, Kind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", keyplane_common::error::describe(.0))]
    Validation(Vec<FieldViolation>),
    #[error("no such organization")]
    OrgNotFound,
    #[error("no such member")]
    MemberNotFound,
    #[error("no user has this email")]
    UserNotFound,
    #[error("the user is already a member")]
    AlreadyMember,
    #[error("the last owner of an organization cannot be removed")]
    LastOwner,
    #[error("this needs the {0} role")]
    InsufficientRole(&'static str),
    #[error("the key lacks the {0} scope")]
    InsufficientScope(&'static str),
    #[error("{0}")]
    Forbidden(&'static str),
    #[error("this needs a signed-in user")]
    SessionRequired,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn kind(&self) -> Kind {
        match self {
            Self::Validation(_) => Kind::InvalidArgument,
            Self::OrgNotFound | Self::MemberNotFound | Self::UserNotFound => Kind::NotFound,
            Self::AlreadyMember => Kind::Conflict,
            Self::LastOwner => Kind::FailedPrecondition,
            Self::InsufficientRole(_) | Self::InsufficientScope(_) | Self::Forbidden(_) => Kind::PermissionDenied,
            Self::SessionRequired => Kind::Unauthenticated,
            Self::Failure(f) => f.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::OrgNotFound => "org_not_found",
            Self::MemberNotFound => "member_not_found",
            Self::UserNotFound => "user_not_found",
            Self::AlreadyMember => "already_member",
            Self::LastOwner => "last_owner",
            Self::InsufficientRole(_) => "insufficient_role",
            Self::InsufficientScope(_) => "insufficient_scope",
            Self::Forbidden(_) => "forbidden",
            Self::SessionRequired => "session_required",
            Self::Failure(f) => f.code(),
        }
    }

    fn violations(&self) -> Vec<FieldViolation> {
        match self {
            Self::Validation(v) => v.clone(),
            _ => Vec::new(),
        }
    }
}

keyplane_common::service_error_conversions!(Error);
