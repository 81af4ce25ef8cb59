//! Everything the identity service can answer besides success.

use keyplane_common::error::{Failure, FieldViolation, Kind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", keyplane_common::error::describe(.0))]
    Validation(Vec<FieldViolation>),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error("the email or password is not correct")]
    InvalidCredentials,
    /// The cause is for the log; the caller learns only that the token is not valid.
    #[error("the session token is not valid")]
    InvalidToken(&'static str),
    #[error("the session token has expired")]
    TokenExpired,
    #[error("the session has ended")]
    SessionRevoked,
    #[error("the refresh token is not valid")]
    InvalidRefreshToken,
    #[error("the refresh token was already used; the session has been ended")]
    RefreshTokenReused,
    #[error("the API key is not valid")]
    InvalidApiKey,
    #[error("the MCP token is not valid")]
    InvalidMcpToken,
    #[error("the key or token has been revoked")]
    KeyRevoked,
    #[error("the key or token has expired")]
    KeyExpired,
    #[error("this needs a session bearer")]
    SessionRequired,
    #[error("no such user")]
    UserNotFound,
    #[error("the identity provider's keys cannot be fetched")]
    IssuerUnavailable,
    #[error("too many sign-ins at once; retry in a moment")]
    Busy,
    #[error("the verification token is not valid, was used already, or has expired")]
    InvalidVerificationToken,
    #[error("the email address is verified already")]
    AlreadyVerified,
    #[error("the development mailbox is off")]
    DevMailboxOff,
    #[error("this account's address is verified by its identity provider, not by mail")]
    VerifiedByIssuer,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Validation(_) => (Kind::InvalidArgument, "validation_failed"),
            Self::EmailTaken => (Kind::Conflict, "email_taken"),
            Self::InvalidCredentials => (Kind::Unauthenticated, "invalid_credentials"),
            Self::InvalidToken(_) => (Kind::Unauthenticated, "invalid_token"),
            Self::TokenExpired => (Kind::Unauthenticated, "token_expired"),
            Self::SessionRevoked => (Kind::Unauthenticated, "session_revoked"),
            Self::InvalidRefreshToken => (Kind::Unauthenticated, "invalid_refresh_token"),
            Self::RefreshTokenReused => (Kind::Unauthenticated, "refresh_token_reused"),
            Self::InvalidApiKey => (Kind::Unauthenticated, "invalid_api_key"),
            Self::InvalidMcpToken => (Kind::Unauthenticated, "invalid_mcp_token"),
            Self::KeyRevoked => (Kind::Unauthenticated, "key_revoked"),
            Self::KeyExpired => (Kind::Unauthenticated, "key_expired"),
            Self::SessionRequired => (Kind::Unauthenticated, "session_required"),
            Self::UserNotFound => (Kind::NotFound, "user_not_found"),
            Self::DevMailboxOff => (Kind::NotFound, "not_found"),
            Self::IssuerUnavailable => (Kind::Unavailable, "issuer_unavailable"),
            Self::Busy => (Kind::Unavailable, "overloaded"),
            Self::InvalidVerificationToken => (Kind::InvalidArgument, "invalid_verification_token"),
            Self::AlreadyVerified => (Kind::Conflict, "already_verified"),
            Self::VerifiedByIssuer => (Kind::Conflict, "verified_by_issuer"),
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
