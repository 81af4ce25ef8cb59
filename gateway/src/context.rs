//! The outermost middleware: gives every request an id (the caller's, if sane), records
//! where it came from, and writes every error response in the contract's JSON shape.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::Response,
};
use keyplane_common::rest::{ErrorBody, REQUEST_ID_HEADER};

use crate::{error::ApiError, state::AppState};

/// Where a request came from, for audit records and per-source limits.
#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub client_ip: String,
    pub user_agent: String,
}

/// A request id the caller sent is kept if it is short and plain.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

fn client_ip(headers: &HeaderMap, peer: Option<SocketAddr>, trust_forwarded_for: bool) -> String {
    let forwarded = trust_forwarded_for
        .then(|| headers.get("x-forwarded-for")?.to_str().ok()?.split(',').next().map(|s| s.trim().to_owned()))
        .flatten()
        .filter(|ip| ip.parse::<std::net::IpAddr>().is_ok());
    forwarded.or_else(|| peer.map(|p| p.ip().to_string())).unwrap_or_default()
}

pub async fn context(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|id| sane(id))
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
    let context = RequestContext {
        client_ip: client_ip(request.headers(), peer, state.trust_forwarded_for),
        user_agent: request
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(256).collect())
            .unwrap_or_default(),
        request_id: request_id.clone(),
    };
    request.extensions_mut().insert(context);
    let mut response = render_error(next.run(request).await, &request_id);
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

/// Writes the JSON body of an error: ours from its [`ApiError`], and a plain one for any
/// error response that has no JSON body (a layer's 413 or 408, say). Bodies that are
/// already JSON (a data-plane backend's) pass through.
fn render_error(response: Response, request_id: &str) -> Response {
    let status = response.status();
    let error = response.extensions().get::<ApiError>().cloned();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match error {
        Some(error) => error.body(),
        None if (status.is_client_error() || status.is_server_error()) && !is_json => default_body(status),
        None => return response,
    };
    let body = ErrorBody { request_id: Some(request_id.to_owned()), ..body };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, Body::from(bytes))
}

fn default_body(status: StatusCode) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is over 1 MiB"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this route does not take that method"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send application/json"),
        s if s.is_server_error() => ("internal_error", "internal error"),
        _ => ("bad_request", "the request is not valid"),
    };
    ErrorBody::new(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(sane("req-123_abc.def:1"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane(&"x".repeat(200)));
        assert!(!sane("<script>"));
    }

    #[test]
    fn forwarded_for_is_believed_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.7, 10.0.0.1"));
        let peer = Some(SocketAddr::from(([10, 0, 0, 2], 1234)));
        assert_eq!(client_ip(&headers, peer, true), "203.0.113.7");
        assert_eq!(client_ip(&headers, peer, false), "10.0.0.2");
    }
}
