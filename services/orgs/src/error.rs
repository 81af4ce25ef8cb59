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
    fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Validation(_) => (Kind::InvalidArgument, "validation_failed"),
            Self::OrgNotFound => (Kind::NotFound, "org_not_found"),
            Self::MemberNotFound => (Kind::NotFound, "member_not_found"),
            Self::UserNotFound => (Kind::NotFound, "user_not_found"),
            Self::InvitationNotFound => (Kind::NotFound, "invitation_not_found"),
            Self::AlreadyMember => (Kind::Conflict, "already_member"),
            Self::AlreadyInvited => (Kind::Conflict, "already_invited"),
            Self::LastOwner => (Kind::FailedPrecondition, "last_owner"),
            Self::InvitationNotPending(_) => (Kind::FailedPrecondition, "invitation_not_pending"),
            Self::InsufficientRole(_) | Self::CreatorRoleTooLow(_) => (Kind::PermissionDenied, "insufficient_role"),
            Self::InsufficientScope(_) => (Kind::PermissionDenied, "insufficient_scope"),
            Self::Forbidden(_) => (Kind::PermissionDenied, "forbidden"),
            Self::CreatorNotMember => (Kind::PermissionDenied, "creator_not_member"),
            Self::OwnerSessionRequired => (Kind::PermissionDenied, "owner_session_required"),
            Self::EmailUnverified => (Kind::PermissionDenied, "email_unverified"),
            Self::SessionRequired => (Kind::Unauthenticated, "session_required"),
            Self::KeyInGrace => (Kind::Unauthenticated, "key_in_grace"),
            Self::Failure(f) => f.describe(),
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
