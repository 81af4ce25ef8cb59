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
    #[error("the previous secret of a regenerated key works on the data plane only; use the new secret")]
    KeyInGrace,
    #[error("the credential's creator is no longer a member of this organization")]
    CreatorNotMember,
    #[error("this needs the {0} role, which the credential's creator does not have")]
    CreatorRoleTooLow(&'static str),
    #[error("granting or taking away the owner role takes an owner's own session")]
    OwnerSessionRequired,
    #[error("no such invitation")]
    InvitationNotFound,
    #[error("this address already has a pending invitation to the organization")]
    AlreadyInvited,
    #[error("the invitation is {0}")]
    InvitationNotPending(String),
    #[error("verify your email address before accepting invitations")]
    EmailUnverified,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn kind(&self) -> Kind {
        match self {
            Self::Validation(_) => Kind::InvalidArgument,
            Self::OrgNotFound | Self::MemberNotFound | Self::UserNotFound | Self::InvitationNotFound => Kind::NotFound,
            Self::AlreadyMember | Self::AlreadyInvited => Kind::Conflict,
            Self::LastOwner | Self::InvitationNotPending(_) => Kind::FailedPrecondition,
            Self::InsufficientRole(_)
            | Self::InsufficientScope(_)
            | Self::Forbidden(_)
            | Self::CreatorNotMember
            | Self::CreatorRoleTooLow(_)
            | Self::OwnerSessionRequired
            | Self::EmailUnverified => Kind::PermissionDenied,
            Self::SessionRequired | Self::KeyInGrace => Kind::Unauthenticated,
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
            Self::KeyInGrace => "key_in_grace",
            Self::CreatorNotMember => "creator_not_member",
            Self::CreatorRoleTooLow(_) => "insufficient_role",
            Self::OwnerSessionRequired => "owner_session_required",
            Self::InvitationNotFound => "invitation_not_found",
            Self::AlreadyInvited => "already_invited",
            Self::InvitationNotPending(_) => "invitation_not_pending",
            Self::EmailUnverified => "email_unverified",
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
