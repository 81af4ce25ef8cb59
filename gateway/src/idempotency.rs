//! `Idempotency-Key` on creating POSTs: the same key from the same principal with the same
//! request within 24 h replays the first answer, status and body, byte for byte; another
//! request under the key is 422 `idempotency_key_reused`; while the first still runs, 409
//! `idempotency_in_progress`. The record lives in Redis, so it survives a gateway restart
//! and holds across replicas.
//!
//! A stored answer may hold a secret (a new key, a session): every stored body is sealed
//! with the operator key, bound to its record, and dropped after 24 h. Only final answers
//! are kept (2xx and 4xx): a 5xx or a 429 says nothing happened for sure, so the record
//! goes and a retry runs again, as Stripe does.

use std::time::Duration;

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use base64::Engine;
use keyplane_common::{cache::CacheError, principal::Principal};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{error::ApiError, state::AppState};

pub const HEADER: HeaderName = HeaderName::from_static("idempotency-key");
pub const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// How long an answer is replayed.
const KEEP: Duration = Duration::from_secs(24 * 3600);
/// Answers larger than this are not kept (none of ours comes close).
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// The answer headers a replay carries again.
const KEPT_HEADERS: [HeaderName; 3] = [header::CONTENT_TYPE, header::LOCATION, header::CACHE_CONTROL];

#[derive(Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
enum Record {
    /// The first request is running (or its gateway died: the lease runs out).
    Running {
        fingerprint: String,
    },
    Done {
        fingerprint: String,
        status: u16,
        headers: Vec<(String, String)>,
        sealed_body: String,
    },
}

impl Record {
    fn fingerprint(&self) -> &str {
        match self {
            Self::Running { fingerprint } | Self::Done { fingerprint, .. } => fingerprint,
        }
    }
}

/// Whose Idempotency-Keys a request's are: a principal's, or an anonymous caller's
/// address's. Its record key is built only for a POST that carries one.
#[derive(Clone, Copy)]
pub enum Who<'a> {
    Principal(&'a Principal),
    Address(&'a str),
}

impl Who<'_> {
    fn key(self) -> String {
        match self {
            Who::Principal(principal) => principal.cache_key(),
            Who::Address(ip) => format!("anonymous:{ip}"),
        }
    }
}

/// Runs `request` once per (who, Idempotency-Key): `user:…`, `api_key:…` or
/// `anonymous:<address>`. Requests without the header, and other methods than POST, pass
/// straight through.
pub async fn once(state: &AppState, who: Who<'_>, request: Request, next: Next) -> Response {
    if request.method() != Method::POST || !request.headers().contains_key(HEADER) {
        return next.run(request).await;
    }
    // Boxed: the cache round trips would otherwise sit in every request's future, which
    // each middleware layer allocates and copies whole (measured: memcpy and malloc on
    // the hot path).
    Box::pin(keyed(state, &who.key(), request, next)).await
}

/// A POST carrying an Idempotency-Key (`once` saw one).
async fn keyed(state: &AppState, principal: &str, request: Request, next: Next) -> Response {
    let mut keys = request.headers().get_all(HEADER).iter();
    let Some(raw_key) = keys.next() else { return next.run(request).await };
    let single = keys.next().is_none();
    let Some(key) = raw_key.to_str().ok().filter(|k| single && (1..=255).contains(&k.len())) else {
        return ApiError::bad_request(
            "invalid_idempotency_key",
            "send one Idempotency-Key of 1 to 255 visible characters",
        )
        .into_response();
    };
    let record_key = format!("idem:{principal}:{}", hex::encode(Sha256::digest(key.as_bytes())));
    let (parts, body) = request.into_parts();
    let bytes = match crate::extract::whole_body(body).await {
        Ok(bytes) => bytes,
        Err(e) => return e.into_response(),
    };
    let fingerprint = state.sealer.mac(&fingerprint_input(&parts.method, parts.uri.path(), &bytes));
    let running = serde_json::to_vec(&Record::Running { fingerprint: fingerprint.clone() }).expect("serializes");
    let lease = state.request_timeout + Duration::from_secs(30);
    match state.cache.set_if_absent(&record_key, &running, lease).await {
        Ok(true) => {}
        Ok(false) => return earlier(state, &record_key, &fingerprint).await,
        Err(e) => return unavailable(&e),
    }
    // The request runs to its end, and its answer is kept, even if the client hangs up
    // meanwhile: the client's retry must find the answer, not run the request again.
    let state = state.clone();
    let run = tokio::spawn(async move {
        let response = next.run(Request::from_parts(parts, Body::from(bytes))).await;
        keep(&state, &record_key, fingerprint, response).await
    });
    run.await.unwrap_or_else(|_| ApiError::internal().into_response())
}

/// What an earlier request under the same key says to this one.
async fn earlier(state: &AppState, record_key: &str, fingerprint: &str) -> Response {
    let stored = match state.cache.get(record_key).await {
        Ok(stored) => stored,
        Err(e) => return unavailable(&e),
    };
    let Some(record) = stored.and_then(|bytes| serde_json::from_slice::<Record>(&bytes).ok()) else {
        // The first one's lease ran out this instant: the client retries.
        return in_progress();
    };
    if record.fingerprint() != fingerprint {
        return ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "this Idempotency-Key was used with another request; use a new key for a new request",
        )
        .into_response();
    }
    match record {
        Record::Running { .. } => in_progress(),
        Record::Done { status, headers, sealed_body, .. } => replay(state, record_key, status, &headers, &sealed_body),
    }
}

/// Keeps a final answer for replays and hands it on; forgets the key otherwise.
async fn keep(state: &AppState, record_key: &str, fingerprint: String, response: Response) -> Response {
    let status = response.status();
    let last = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
    if last {
        let _ = state.cache.delete(record_key).await;
        return response;
    }
    let (parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ANSWER_BYTES).await else {
        let _ = state.cache.delete(record_key).await;
        return ApiError::internal().into_response();
    };
    let headers = kept_headers(&parts.headers);
    let sealed = state.sealer.seal(&bytes, &seal_context(record_key));
    let record = Record::Done {
        fingerprint,
        status: status.as_u16(),
        headers,
        sealed_body: base64::engine::general_purpose::STANDARD.encode(sealed),
    };
    let stored = serde_json::to_vec(&record).expect("serializes");
    if let Err(e) = state.cache.set(record_key, &stored, KEEP).await {
        // The answer still goes out; a retry would run again, which is what the client
        // gets without the header at all.
        tracing::warn!(error = %e, "idempotent answer not kept");
        let _ = state.cache.delete(record_key).await;
    }
    Response::from_parts(parts, Body::from(bytes))
}

fn replay(state: &AppState, record_key: &str, status: u16, headers: &[(String, String)], sealed: &str) -> Response {
    let opened = base64::engine::general_purpose::STANDARD
        .decode(sealed)
        .ok()
        .and_then(|sealed| state.sealer.open(&sealed, &seal_context(record_key)).ok());
    let Some(body) = opened else {
        tracing::error!("a kept idempotent answer does not open (was the operator key changed?)");
        return ApiError::internal().into_response();
    };
    let mut response = Response::new(Body::from(Bytes::from(body)));
    *response.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (HeaderName::try_from(name.as_str()), HeaderValue::from_str(value)) {
            response.headers_mut().insert(name, value);
        }
    }
    response.headers_mut().insert(REPLAYED, HeaderValue::from_static("true"));
    response
}

fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(name)?.to_str().ok()?;
            Some((name.as_str().to_owned(), value.to_owned()))
        })
        .collect()
}

/// The request as far as idempotency cares: method, path and body. Stored only keyed
/// (HMAC under the operator key): a body may hold a password.
fn fingerprint_input(method: &Method, path: &str, body: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(method.as_str().len() + path.len() + body.len() + 2);
    for part in [method.as_str().as_bytes(), b"\0", path.as_bytes(), b"\0", body] {
        input.extend_from_slice(part);
    }
    input
}

/// A sealed answer opens only under its own record.
fn seal_context(record_key: &str) -> String {
    format!("idempotency:{record_key}")
}

fn in_progress() -> Response {
    let mut response = ApiError::new(
        StatusCode::CONFLICT,
        "idempotency_in_progress",
        "a request with this Idempotency-Key is still running; retry shortly",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

fn unavailable(error: &CacheError) -> Response {
    tracing::warn!(%error, "idempotency store unavailable");
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "idempotency_unavailable",
        "requests with an Idempotency-Key cannot be kept right now; retry shortly",
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_is_the_method_the_path_and_the_body_keyed() {
        let sealer = keyplane_common::crypto::Sealer::parse(&keyplane_common::crypto::Sealer::generate_key()).unwrap();
        let print = |m: &Method, p: &str, b: &[u8]| sealer.mac(&fingerprint_input(m, p, b));
        let base = print(&Method::POST, "/api/v1/x", b"{}");
        assert_eq!(base, print(&Method::POST, "/api/v1/x", b"{}"));
        assert_ne!(base, print(&Method::POST, "/api/v1/y", b"{}"));
        assert_ne!(base, print(&Method::POST, "/api/v1/x", b"{ }"));
        assert_ne!(print(&Method::POST, "/a", b"b/c"), print(&Method::POST, "/ab", b"/c"), "fields apart");
        let plain = hex::encode(Sha256::digest(fingerprint_input(&Method::POST, "/api/v1/x", b"{}")));
        assert_ne!(base, plain, "not a plain hash: a body with a password cannot be guessed offline");
    }
}
