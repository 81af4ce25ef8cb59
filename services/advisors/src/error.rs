//! Everything the advisors service can answer besides success.

use keyplane_common::{
    error::{Failure, FieldViolation, Kind, ServiceError},
    httpsig::Refusal,
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", keyplane_common::error::describe(.0))]
    Validation(Vec<FieldViolation>),
    #[error("no such advisor")]
    AdvisorNotFound,
    #[error("no such consultation")]
    ConsultationNotFound,
    #[error("no such payload key")]
    PayloadKeyNotFound,
    #[error("the advisor already declared key {0:?}")]
    KeyAlreadyDeclared(String),
    #[error("the consultation is answered already")]
    AlreadyAnswered,
    #[error("invalid signature: {0}")]
    InvalidSignature(Refusal),
    #[error("this needs a signed-in user")]
    SessionRequired,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Validation(_) => (Kind::InvalidArgument, "validation_failed"),
            Self::AdvisorNotFound => (Kind::NotFound, "advisor_not_found"),
            Self::ConsultationNotFound => (Kind::NotFound, "consultation_not_found"),
            Self::PayloadKeyNotFound => (Kind::NotFound, "payload_key_not_found"),
            Self::KeyAlreadyDeclared(_) => (Kind::Conflict, "payload_key_exists"),
            Self::AlreadyAnswered => (Kind::Conflict, "consultation_answered"),
            Self::InvalidSignature(refusal) if refusal.is_bad_input() => {
                (Kind::InvalidArgument, "invalid_signature_input")
            }
            Self::InvalidSignature(_) => (Kind::Unauthenticated, "invalid_signature"),
            Self::SessionRequired => (Kind::Unauthenticated, "session_required"),
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
