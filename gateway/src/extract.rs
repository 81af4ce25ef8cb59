//! Request extractors that reject in the contract's shape: bad JSON is 400 `invalid_json`
//! naming the line and column, a wrong field is 400 `validation_failed`, an oversized
//! body is 413. And the caller, moved out of the request rather than copied.

use axum::{
    body::{Body, Bytes},
    extract::{FromRequest, FromRequestParts, Query, Request},
    http::{StatusCode, request::Parts},
};
use keyplane_common::{error::FieldViolation, internal_auth::Caller};
use serde::de::DeserializeOwned;

use crate::{error::ApiError, idle::FellSilent};

/// A JSON body.
pub struct ApiJson<T>(pub T);

/// A JSON body that may be absent (then `T::default()`).
pub struct OptionalJson<T>(pub T);

/// A query string.
pub struct ApiQuery<T>(pub T);

/// A body as bytes, refused as [`whole_body`] refuses (axum's `Bytes` answers in its own words).
pub struct WholeBody(pub Bytes);

/// Who is calling, as the middleware recorded it: taken out of the request, since an
/// `Extension<Caller>` would copy its strings and the principal's scopes on every request.
pub struct Calling(pub Caller);

/// A request's body, read whole: over 1 MiB is 413, one that broke off or stopped before
/// its end is 400.
pub async fn whole_body(body: Body) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(body, crate::MAX_BODY_BYTES).await.map_err(|e| {
        let causes = || std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |e| e.source());
        if causes().any(|e| e.is::<http_body_util::LengthLimitError>()) {
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is over 1 MiB")
        } else if causes().any(|e| e.is::<FellSilent>()) {
            ApiError::bad_request(
                "incomplete_body",
                "the request body stopped before its end (its Content-Length, or its last chunk)",
            )
        } else {
            ApiError::bad_request("invalid_body", "the request body could not be read")
        }
    })
}

fn invalid_json(e: &serde_json::Error) -> ApiError {
    ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
}

/// 400 `invalid_json` (naming line and column) unless `bytes` are JSON, whatever its shape.
fn check_json(bytes: &[u8]) -> Result<(), ApiError> {
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).map(drop).map_err(|e| invalid_json(&e))
}

/// A body that is not JSON at all is `invalid_json` (naming line and column), whatever
/// field problems it also has: a body that fails is checked for its syntax on its own,
/// since serde stops at the first problem it meets, an unknown field before a syntax error say.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let e = match serde_json::from_slice(bytes) {
        Ok(value) => return Ok(value),
        Err(e) => e,
    };
    check_json(bytes)?;
    if e.classify() != serde_json::error::Category::Data {
        return Err(invalid_json(&e));
    }
    // Read again, following the path, to name the field: only a body that failed pays for it.
    let path = serde_path_to_error::deserialize::<_, T>(&mut serde_json::Deserializer::from_slice(bytes))
        .err()
        .map(|e| e.path().to_string());
    let problem = e.to_string();
    Err(ApiError::invalid(vec![FieldViolation::new(field_named(path.as_deref(), &problem, "body"), problem)]))
}

/// The field a problem is about: where deserializing stopped; for a missing field (which
/// serde reports on the object around it) that object's path and the name serde gives in
/// backticks.
fn field_named(path: Option<&str>, problem: &str, whole: &str) -> String {
    let path = path.filter(|p| *p != ".");
    if problem.starts_with("missing field") {
        let name = problem.split('`').nth(1).unwrap_or_default();
        return match path {
            Some(path) => format!("{path}.{name}"),
            None => name.to_owned(),
        };
    }
    path.unwrap_or(whole).to_owned()
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = whole_body(request.into_body()).await?;
        parse(&bytes).map(Self)
    }
}

impl<S: Send + Sync> FromRequest<S> for WholeBody {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        whole_body(request.into_body()).await.map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, Self::Rejection> {
        let bytes = whole_body(request.into_body()).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        parse(&bytes).map(Self)
    }
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::try_from_uri(&parts.uri) {
            Ok(Query(query)) => Ok(Self(query)),
            Err(_) => Err(query_problem::<T>(parts.uri.query().unwrap_or_default())),
        }
    }
}

/// A query string that did not read: 400 `invalid_query` naming the parameter. It is read
/// again as axum reads it, following the path: only a query that failed pays for that.
fn query_problem<T: DeserializeOwned>(query: &str) -> ApiError {
    let deserializer = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    let (field, problem) = match serde_path_to_error::deserialize::<_, T>(deserializer) {
        Err(e) => {
            let path = e.path().to_string();
            let problem = e.into_inner().to_string();
            (field_named(Some(&path), &problem, "query"), problem)
        }
        Ok(_) => ("query".to_owned(), "is not a valid query string".to_owned()),
    };
    let message = format!("the query is not valid: {field}: {problem}");
    ApiError { details: vec![FieldViolation::new(field, problem)], ..ApiError::bad_request("invalid_query", message) }
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
        assert_eq!(err.details[0].field, "name", "the field, not the value it was given");
        let err = parse::<Body>(br#"{}"#).unwrap_err();
        assert_eq!(err.details[0].field, "name");
        let err = parse::<Outer>(br#"{"inner": [{}]}"#).unwrap_err();
        assert_eq!(err.details[0].field, "inner[0].name");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Outer {
        inner: Vec<Body>,
    }

    #[test]
    fn a_nested_problem_names_its_path() {
        let err = parse::<Outer>(br#"{"inner": [{"name": "a"}, {"name": false}]}"#).unwrap_err();
        assert_eq!(err.details[0].field, "inner[1].name");
        let err = parse::<Outer>(br#"{"inner": [{"name": "a", "colour": 1}]}"#).unwrap_err();
        assert_eq!(err.details[0].field, "inner[0].colour");
    }

    #[derive(serde::Deserialize, Debug)]
    #[allow(dead_code)]
    struct Page {
        limit: Option<u32>,
    }

    #[test]
    fn a_bad_query_parameter_is_named_in_details() {
        let err = query_problem::<Page>("limit=abc");
        assert_eq!((err.status, err.code.as_str()), (StatusCode::BAD_REQUEST, "invalid_query"));
        assert_eq!(err.details[0].field, "limit");
        assert!(!err.message.contains("Failed to deserialize"), "our words, not the library's: {}", err.message);
    }
}
