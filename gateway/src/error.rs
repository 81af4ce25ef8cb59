//! The gateway's one error type, and the one place a gRPC status becomes the contract's
//! JSON error body. The body itself is written by the outermost middleware
//! ([`crate::context`]), which knows the request id.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use keyplane_common::{
    error::{FieldViolation, Kind, decode},
    error_body::ErrorBody,
};
use tonic::Status;

#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub details: Vec<FieldViolation>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, code: code.to_owned(), message: message.into(), details: Vec::new() }
    }

    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let message = violations.iter().map(|v| format!("{} {}", v.field, v.problem)).collect::<Vec<_>>().join("; ");
        Self { details: violations, ..Self::bad_request("validation_failed", message) }
    }

    pub fn unavailable() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "a backing service is unavailable")
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            details: self.details.clone(),
            ..ErrorBody::new(self.status, self.code.clone(), self.message.clone())
        }
    }
}

/// A status from a service. Ours carry a code and a message fit for the caller; anything
/// else (a transport failure, a peer's panic) is described by its kind alone, so that no
/// address, SQL or stack trace reaches the response.
impl From<Status> for ApiError {
    fn from(status: Status) -> Self {
        let (kind, code, details) = decode(&status);
        if code == "internal_auth_required" {
            // Our services refused each other: a misconfigured secret, never the caller's
            // fault, and never to be mistaken for a verdict on the caller's credential.
            tracing::error!(message = status.message(), "a service refused the gateway's internal credentials");
            return Self::unavailable();
        }
        let ours = !status.details().is_empty();
        let message = match kind {
            Kind::Internal => {
                tracing::error!(grpc_code = ?status.code(), message = status.message(), "a service failed");
                "internal error".to_owned()
            }
            _ if ours => status.message().to_owned(),
            Kind::Unavailable => "a backing service is unavailable".to_owned(),
            Kind::Timeout => "a backing service did not answer in time".to_owned(),
            Kind::Unimplemented => "this is not implemented yet".to_owned(),
            _ => kind.default_code().replace('_', " "),
        };
        if matches!(kind, Kind::Unavailable | Kind::Timeout) && !ours {
            tracing::warn!(grpc_code = ?status.code(), message = status.message(), "backing service call failed");
        }
        Self { status: kind.http_status(), code, message, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = self.status.into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response.extensions_mut().insert(self);
        response
    }
}
