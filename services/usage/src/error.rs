//! Everything the usage service can answer besides success.

use keyplane_common::error::{Failure, FieldViolation, Kind, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}", keyplane_common::error::describe(.0))]
    Validation(Vec<FieldViolation>),
    #[error("no such organization")]
    OrgNotFound,
    #[error(transparent)]
    Failure(#[from] Failure),
}

impl ServiceError for Error {
    fn describe(&self) -> (Kind, &'static str) {
        match self {
            Self::Validation(_) => (Kind::InvalidArgument, "validation_failed"),
            Self::OrgNotFound => (Kind::NotFound, "org_not_found"),
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
