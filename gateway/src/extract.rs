//! Request extractors that reject in the contract's shape: bad JSON is 400 `invalid_json`
//! naming the line and column, a wrong field is 400 `validation_failed`, an oversized
//! body is 413. And the caller, moved out of the request rather than copied.

use axum::{
    body::Bytes,
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, request::Parts},
};
use keyplane_common::{error::FieldViolation, internal_auth::Caller};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON body.
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (then `T::default()`).
pub struct OptionalJson<T>(pub T);

/// A query string.
pub struct ApiQuery<T>(pub T);

/// Who is calling, as the middleware recorded it: taken out of the request, since an
/// `Extension<Caller>` would copy its strings and the principal's scopes on every request.
pub struct Calling(pub Caller);

async fn body<S: Send + Sync>(request: Request, state: &S) -> Result<Bytes, ApiError> {
    Bytes::from_request(request, state).await.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is over 1 MiB")
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

/// A body that is not JSON at all is `invalid_json` (naming line and column), whatever
/// field problems it also has: a body that fails is checked for its syntax on its own,
/// since serde stops at the first problem it meets, an unknown field before a syntax error say.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let e = match serde_json::from_slice(bytes) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(bytes) {
        return Err(ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")));
    }
    Err(match e.classify() {
        serde_json::error::Category::Data => {
            let problem = e.to_string();
            // serde names the field in backticks: "unknown field `x`", "missing field `y`".
            let field = problem.split('`').nth(1).unwrap_or("body").to_owned();
            ApiError::invalid(vec![FieldViolation::new(field, problem)])
        }
        _ => ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}")),
    })
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(request, state).await?;
        parse(&bytes).map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = body(request, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse(&bytes).map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| Self(q))
            .map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Calling {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        // The context middleware puts it into every request before any handler runs.
        parts.extensions.remove::<Caller>().map(Self).ok_or_else(ApiError::internal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Body {
        name: String,
    }

    #[test]
    fn bad_json_names_line_and_column() {
        let err = parse::<Body>(b"{\n  \"name\": }").unwrap_err();
        assert_eq!(err.code, "invalid_json");
        assert!(err.message.contains("line 2 column"), "{}", err.message);
    }

    #[test]
    fn bad_json_wins_over_an_unknown_field_before_it() {
        let err = parse::<Body>(b"{\"colour\": \"red\", \"name\": }").unwrap_err();
        assert_eq!(err.code, "invalid_json");
    }

    #[test]
    fn wrong_fields_are_validation_errors() {
        let err = parse::<Body>(br#"{"name": "a", "extra": 1}"#).unwrap_err();
        assert_eq!((err.status, err.code.as_str()), (StatusCode::BAD_REQUEST, "validation_failed"));
        assert_eq!(err.details[0].field, "extra");
        let err = parse::<Body>(br#"{"name": 7}"#).unwrap_err();
        assert_eq!(err.code, "validation_failed");
    }
}
