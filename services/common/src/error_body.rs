//! The JSON error body of the public contract, shared by the gateway and the backends
//! it forwards to, so that every non-2xx response has one shape.

use http::{HeaderName, StatusCode};

use crate::error::FieldViolation;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Error))]
pub struct ErrorBody {
    /// The HTTP status text.
    pub error: String,
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<FieldViolation>,
}

impl ErrorBody {
    pub fn new(status: StatusCode, code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error: status.canonical_reason().unwrap_or("Error").to_owned(),
            code: code.into(),
            message: message.into(),
            request_id: None,
            details: Vec::new(),
        }
    }
}

/// The request id header every response carries (a `HeaderName`: a `&str` is parsed again
/// on every use).
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");
