//! Errors in the contract's JSON shape.

use axum::{
    Json,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use keyplane_common::{error::FieldViolation, error_body::ErrorBody};

pub struct ApiError {
    status: StatusCode,
    body: Box<ErrorBody>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self { status, body: Box::new(ErrorBody::new(status, code, message)) }
    }

    pub fn invalid(violation: FieldViolation) -> Self {
        let mut e = Self::new(
            StatusCode::BAD_REQUEST,
            "validation_failed",
            format!("{} {}", violation.field, violation.problem),
        );
        e.body.details.push(violation);
        e
    }

    pub fn with_request_id(mut self, request_id: Option<String>) -> Self {
        self.body.request_id = request_id;
        self
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        match keyplane_common::db::classify(&e) {
            keyplane_common::db::DbFailure::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "service_unavailable", "the database is unavailable")
            }
            keyplane_common::db::DbFailure::Internal(cause) => {
                tracing::error!(error = %cause, "internal error");
                Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal_error", "internal error")
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(*self.body)).into_response()
    }
}
