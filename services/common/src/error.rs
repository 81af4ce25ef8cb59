//! One error vocabulary for every service: a closed [`Kind`] mapped once to gRPC and once
//! to HTTP, a stable snake_case code carried in `google.rpc.ErrorInfo.reason`, and field
//! violations carried in `google.rpc.BadRequest`.

use http::StatusCode;
use tonic::Code;
pub use tonic::Status;
use tonic_types::{ErrorDetails, StatusExt};

/// The error domain in `ErrorInfo`.
pub const DOMAIN: &str = "keyplane";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    InvalidArgument,
    Unauthenticated,
    PermissionDenied,
    NotFound,
    Conflict,
    FailedPrecondition,
    TooManyRequests,
    Unavailable,
    Timeout,
    Unimplemented,
    Internal,
}

impl Kind {
    pub fn grpc_code(self) -> Code {
        match self {
            Self::InvalidArgument => Code::InvalidArgument,
            Self::Unauthenticated => Code::Unauthenticated,
            Self::PermissionDenied => Code::PermissionDenied,
            Self::NotFound => Code::NotFound,
            Self::Conflict => Code::AlreadyExists,
            Self::FailedPrecondition => Code::FailedPrecondition,
            Self::TooManyRequests => Code::ResourceExhausted,
            Self::Unavailable => Code::Unavailable,
            Self::Timeout => Code::DeadlineExceeded,
            Self::Unimplemented => Code::Unimplemented,
            Self::Internal => Code::Internal,
        }
    }

    pub fn from_grpc_code(code: Code) -> Self {
        match code {
            Code::InvalidArgument | Code::OutOfRange => Self::InvalidArgument,
            Code::Unauthenticated => Self::Unauthenticated,
            Code::PermissionDenied => Self::PermissionDenied,
            Code::NotFound => Self::NotFound,
            Code::AlreadyExists | Code::Aborted => Self::Conflict,
            Code::FailedPrecondition => Self::FailedPrecondition,
            Code::ResourceExhausted => Self::TooManyRequests,
            Code::Unavailable | Code::Cancelled => Self::Unavailable,
            Code::DeadlineExceeded => Self::Timeout,
            Code::Unimplemented => Self::Unimplemented,
            Code::Ok | Code::Unknown | Code::Internal | Code::DataLoss => Self::Internal,
        }
    }

    pub fn http_status(self) -> StatusCode {
        match self {
            Self::InvalidArgument => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::PermissionDenied => StatusCode::FORBIDDEN,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict | Self::FailedPrecondition => StatusCode::CONFLICT,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Timeout => StatusCode::GATEWAY_TIMEOUT,
            Self::Unimplemented => StatusCode::NOT_IMPLEMENTED,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The code used when a status carries none of its own.
    pub fn default_code(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_request",
            Self::Unauthenticated => "unauthenticated",
            Self::PermissionDenied => "forbidden",
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::FailedPrecondition => "failed_precondition",
            Self::TooManyRequests => "rate_limited",
            Self::Unavailable => "service_unavailable",
            Self::Timeout => "timeout",
            Self::Unimplemented => "not_implemented",
            Self::Internal => "internal_error",
        }
    }
}

/// A problem with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldViolation {
    pub field: String,
    pub problem: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self { field: field.into(), problem: problem.into() }
    }

    /// A UUID from a request field, or the violation naming the field.
    pub fn uuid(field: &str, value: &str) -> Result<uuid::Uuid, Self> {
        uuid::Uuid::parse_str(value).map_err(|_| Self::new(field, "must be a UUID"))
    }
}

/// What every service's error enum knows about itself.
pub trait ServiceError: std::error::Error + std::fmt::Debug + Sized {
    /// The kind and the stable snake_case machine code (the same over gRPC and REST) of
    /// this error: one description per variant.
    fn describe(&self) -> (Kind, &'static str);

    fn violations(&self) -> Vec<FieldViolation> {
        Vec::new()
    }

    fn kind(&self) -> Kind {
        self.describe().0
    }

    fn code(&self) -> &'static str {
        self.describe().1
    }

    fn into_status(self) -> Status {
        let (kind, code) = self.describe();
        if kind == Kind::Internal {
            // The cause goes to the log; the caller learns only that it was ours.
            tracing::error!(error = %self, source = ?std::error::Error::source(&self), "internal error");
            return status(kind, code, "internal error", &[]);
        }
        // The caller gets the code and a short message; the log keeps the cause.
        tracing::debug!(code, cause = ?self, "request refused");
        status(kind, code, self.to_string(), &self.violations())
    }
}

/// Field problems as one sentence: `name is required; email must be an email address`.
pub fn describe(violations: &[FieldViolation]) -> String {
    violations.iter().map(|v| format!("{} {}", v.field, v.problem)).collect::<Vec<_>>().join("; ")
}

/// What can go wrong in any service apart from its own rules: the database or a peer is
/// away, a peer refused (its status passes through unchanged), a call acts for nobody, or
/// a bug of ours.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("{0} is unavailable")]
    Unavailable(&'static str),
    #[error(transparent)]
    Upstream(Status),
    #[error("this call needs a principal")]
    NoPrincipal,
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    pub fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Unavailable(_) => (Kind::Unavailable, "service_unavailable"),
            Self::Upstream(status) => (kind_of(status), "upstream"),
            Self::NoPrincipal => (Kind::Unauthenticated, "unauthenticated"),
            Self::Internal(_) => (Kind::Internal, "internal_error"),
        }
    }
}

impl From<crate::db::DbErr> for Failure {
    fn from(e: crate::db::DbErr) -> Self {
        match crate::db::classify(&e) {
            crate::db::DbFailure::Unavailable => Self::Unavailable("the database"),
            crate::db::DbFailure::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<crate::internal_auth::NoPrincipal> for Failure {
    fn from(_: crate::internal_auth::NoPrincipal) -> Self {
        Self::NoPrincipal
    }
}

/// The conversions every service's error enum needs, given its variants
/// `Validation(Vec<FieldViolation>)` and `Failure(Failure)`: to a `Status` (a peer's status
/// passes through unchanged), and from a `FieldViolation`, a database error and a missing
/// principal; plus `Error::internal(cause)` and `Error::upstream(status)`. A peer's status
/// becomes an error only where a call site says so, with `upstream`: never by `?` alone.
#[macro_export]
macro_rules! service_error_conversions {
    ($error:ident) => {
        impl $error {
            /// A bug of ours: the cause is logged, the caller hears "internal error".
            pub fn internal(cause: impl Into<String>) -> Self {
                Self::Failure($crate::error::Failure::Internal(cause.into()))
            }

            /// A peer's refusal or failure, passed through to our caller as it is.
            pub fn upstream(status: $crate::error::Status) -> Self {
                Self::Failure($crate::error::Failure::Upstream(status))
            }
        }

        impl From<$error> for $crate::error::Status {
            fn from(e: $error) -> Self {
                match e {
                    $error::Failure($crate::error::Failure::Upstream(status)) => status,
                    other => $crate::error::ServiceError::into_status(other),
                }
            }
        }

        impl From<$crate::error::FieldViolation> for $error {
            fn from(violation: $crate::error::FieldViolation) -> Self {
                Self::Validation(vec![violation])
            }
        }

        impl From<$crate::db::DbErr> for $error {
            fn from(e: $crate::db::DbErr) -> Self {
                Self::Failure(e.into())
            }
        }

        impl From<$crate::internal_auth::NoPrincipal> for $error {
            fn from(e: $crate::internal_auth::NoPrincipal) -> Self {
                Self::Failure(e.into())
            }
        }
    };
}

/// A status with the stable code in `ErrorInfo` and field problems in `BadRequest`.
pub fn status(kind: Kind, code: &str, message: impl Into<String>, violations: &[FieldViolation]) -> Status {
    let mut details = ErrorDetails::with_error_info(code, DOMAIN, std::collections::HashMap::new());
    for v in violations {
        details.add_bad_request_violation(v.field.clone(), v.problem.clone());
    }
    Status::with_error_details(kind.grpc_code(), message, details)
}

/// The stable code and field violations a status carries, as the gateway reads them.
pub fn decode(status: &Status) -> (Kind, String, Vec<FieldViolation>) {
    let kind = kind_of(status);
    let details = status.get_error_details();
    let code = details
        .error_info()
        .map(|info| info.reason.clone())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| kind.default_code().to_owned());
    let violations = details
        .bad_request()
        .map(|b| {
            b.field_violations.iter().map(|v| FieldViolation::new(v.field.clone(), v.description.clone())).collect()
        })
        .unwrap_or_default();
    (kind, code, violations)
}

/// The kind of a status; tonic reports a client-side deadline as CANCELLED.
pub fn kind_of(status: &Status) -> Kind {
    if status.code() == Code::Cancelled && status.message() == "Timeout expired" {
        return Kind::Timeout;
    }
    Kind::from_grpc_code(status.code())
}

/// A copy of a status (tonic's `Status` is not `Clone`), keeping code, message and details.
pub fn clone_status(status: &Status) -> Status {
    Status::with_details_and_metadata(
        status.code(),
        status.message().to_owned(),
        bytes::Bytes::copy_from_slice(status.details()),
        status.metadata().clone(),
    )
}

/// The stable code of a status alone.
pub fn code_of(status: &Status) -> String {
    decode(status).1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_violations_survive_the_status() {
        let s = status(
            Kind::InvalidArgument,
            "validation_failed",
            "name is required",
            &[FieldViolation::new("name", "is required")],
        );
        let (kind, code, violations) = decode(&s);
        assert_eq!(kind, Kind::InvalidArgument);
        assert_eq!(code, "validation_failed");
        assert_eq!(violations, vec![FieldViolation::new("name", "is required")]);
        assert_eq!(s.message(), "name is required");
    }

    #[test]
    fn a_bare_status_gets_the_default_code() {
        assert_eq!(code_of(&Status::unavailable("down")), "service_unavailable");
        assert_eq!(Kind::from_grpc_code(Code::Unimplemented).http_status(), StatusCode::NOT_IMPLEMENTED);
    }
}
