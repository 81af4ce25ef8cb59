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
    #[error("the API key has been revoked")]
    KeyRevoked,
    #[error("the API key has expired")]
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
    fn kind(&self) -> Kind {
        match self {
            Self::Validation(_) => Kind::InvalidArgument,
            Self::EmailTaken => Kind::Conflict,
            Self::InvalidCredentials
            | Self::InvalidToken(_)
            | Self::TokenExpired
            | Self::SessionRevoked
            | Self::InvalidRefreshToken
            | Self::RefreshTokenReused
            | Self::InvalidApiKey
            | Self::InvalidMcpToken
            | Self::KeyRevoked
            | Self::KeyExpired
            | Self::SessionRequired => Kind::Unauthenticated,
            Self::UserNotFound | Self::DevMailboxOff => Kind::NotFound,
            Self::IssuerUnavailable | Self::Busy => Kind::Unavailable,
            Self::InvalidVerificationToken => Kind::InvalidArgument,
            Self::AlreadyVerified | Self::VerifiedByIssuer => Kind::Conflict,
            Self::Failure(f) => f.kind(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::Validation(_) => "validation_failed",
            Self::EmailTaken => "email_taken",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken(_) => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::SessionRevoked => "session_revoked",
            Self::InvalidRefreshToken => "invalid_refresh_token",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::InvalidApiKey => "invalid_api_key",
            Self::InvalidMcpToken => "invalid_mcp_token",
            Self::KeyRevoked => "key_revoked",
            Self::KeyExpired => "key_expired",
            Self::SessionRequired => "session_required",
            Self::UserNotFound => "user_not_found",
            Self::IssuerUnavailable => "issuer_unavailable",
            Self::Busy => "overloaded",
            Self::InvalidVerificationToken => "invalid_verification_token",
            Self::AlreadyVerified => "already_verified",
            Self::VerifiedByIssuer => "verified_by_issuer",
            Self::DevMailboxOff => "not_found",
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
