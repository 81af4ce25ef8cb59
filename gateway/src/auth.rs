//! Who is calling, and whether that kind of credential may call this route: the
//! middleware that puts the verified principal into the request's [`Caller`].
//!
//! Each group of routes carries one policy. A credential of the wrong kind for the route
//! is refused before anything is looked up; a key of the wrong shape or checksum too.

use std::sync::Arc;

use axum::{
    extract::{Request, State},
    http::{HeaderMap, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use keyplane_common::{
    credential::{CredentialType, ParsedCredential},
    internal_auth::Caller,
    principal::Principal,
};

use crate::{attribution::Counted, error::ApiError, state::AppState, verifier::Grant};

/// Credentials longer than this are refused before any parsing.
pub const MAX_CREDENTIAL_LEN: usize = 8 * 1024;

/// What a group of routes accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// A session bearer (self-issued or external OIDC).
    Session,
    /// Management: a session, or an API key of the org (scope-checked by the services).
    /// A regenerated key's previous secret is refused here: it exists so stragglers keep
    /// working, and must never manage the key that replaced it.
    Management,
    /// Who am I: a session or any API key, a previous secret in its grace period included
    /// (the answer says `in_grace`).
    Identify,
    /// An API key, a previous secret in its grace period included: the data plane.
    Key,
    /// RFC 9421 signatures only: any bearer is refused.
    Signature,
    /// An MCP token: the MCP server.
    Mcp,
}

/// A bearer, classified by its shape alone.
enum Bearer<'a> {
    Secret(ParsedCredential),
    Session(&'a str),
}

/// The one bearer token of a request, if any.
fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::bad_request("multiple_authorization_headers", "send one Authorization header"));
    }
    if value.len() > MAX_CREDENTIAL_LEN {
        return Err(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "credential_too_large",
            "the credential is over 8 KiB",
        ));
    }
    // Visible ASCII, spaces and tabs only: so the whitespace a token may not hold is
    // checked byte by byte (a `char` walk cost 2.5% of a keyed request).
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, token) = value.split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.bytes().any(|b| b == b' ' || b == b'\t') {
        return Err(malformed());
    }
    Ok(Some(token))
}

fn malformed() -> ApiError {
    ApiError::unauthorized("invalid_authorization", "send Authorization: Bearer <credential>")
}

fn classify<'a>(state: &AppState, token: &'a str) -> Result<Bearer<'a>, ApiError> {
    if state.key_format.claims(token) {
        let parsed = state.key_format.parse(token).map_err(|_| invalid_key())?;
        return Ok(Bearer::Secret(parsed));
    }
    if token.starts_with("eyJ") && token.matches('.').count() == 2 {
        return Ok(Bearer::Session(token));
    }
    // Another vendor's key (`ghp_…`), or nothing we issue.
    Err(invalid_key())
}

fn invalid_key() -> ApiError {
    ApiError::unauthorized("invalid_api_key", "the API key is not valid")
}

fn use_api_key() -> ApiError {
    ApiError::unauthorized("use_api_key", "use an API key")
}

fn use_mcp_token() -> ApiError {
    ApiError::unauthorized("use_mcp_token", "the MCP server takes an MCP token")
}

fn session_required() -> ApiError {
    ApiError::unauthorized("session_required", "this route needs a session bearer, not an API key")
}

/// Who is calling; for a key or token, with its cached grant (the answers kept with it).
async fn authenticate(
    state: &AppState,
    policy: Policy,
    headers: &HeaderMap,
    caller: &Caller,
) -> Result<(Arc<Principal>, Option<Arc<Grant>>), ApiError> {
    if policy == Policy::Signature {
        return Err(ApiError::unauthorized(
            "signature_required",
            "census verbs are authenticated by RFC 9421 signatures alone, never a key or session",
        ));
    }
    let token = bearer(headers)?.ok_or_else(|| match policy {
        Policy::Key => {
            ApiError::unauthorized("unauthenticated", "this route needs an API key: Authorization: Bearer <key>")
        }
        _ => ApiError::unauthorized("unauthenticated", "this route needs a credential: Authorization: Bearer <token>"),
    })?;
    match (classify(state, token)?, policy) {
        (Bearer::Session(_), Policy::Key) => Err(use_api_key()),
        (Bearer::Session(_), Policy::Mcp) => Err(use_mcp_token()),
        (Bearer::Session(token), _) => state.verifier.verify_session(token, caller).await.map(|p| (p, None)),
        (Bearer::Secret(parsed), policy) => {
            let is_key = matches!(parsed.credential_type, CredentialType::ApiKey(_));
            match policy {
                Policy::Session => return Err(session_required()),
                Policy::Mcp if is_key => return Err(use_mcp_token()),
                Policy::Key | Policy::Management | Policy::Identify if !is_key => return Err(use_api_key()),
                _ => {}
            }
            let grant = state.verifier.verify_grant(&parsed.secret, caller).await?;
            if let Principal::ApiKey(key) = grant.principal().as_ref() {
                // Every use of a previous secret is audited, a refused one too.
                state.meter.record(key, caller);
                if policy == Policy::Management && key.grace_ends_at.is_some() {
                    return Err(ApiError::unauthorized(
                        "key_in_grace",
                        "the previous secret of a regenerated key works on the data plane only; use the new secret",
                    ));
                }
            }
            Ok((Arc::clone(grant.principal()), Some(grant)))
        }
    }
}

/// Authenticates the request for `policy` and puts the principal into its [`Caller`]
/// (which the context middleware put there, with where the request came from).
async fn require(state: AppState, policy: Policy, mut request: Request, next: Next) -> Response {
    // Taken, not cloned: the authenticated caller replaces it below.
    let Some(caller) = request.extensions_mut().remove::<Caller>() else {
        return ApiError::internal().into_response();
    };
    match authenticate(&state, policy, request.headers(), &caller).await {
        Ok((principal, grant)) => {
            let mut counted = Counted::new(&state, Arc::clone(&principal), request.uri().path());
            let authenticated = Caller { principal: Some(Arc::clone(&principal)), ..caller };
            request.extensions_mut().insert(authenticated);
            // The grant goes with the principal, and only with it: no other is left behind.
            match grant {
                Some(grant) => request.extensions_mut().insert(grant),
                None => request.extensions_mut().remove::<Arc<Grant>>(),
            };
            // After authentication, before the route: the limit is the principal's.
            let decision = crate::throttle::for_principal(&state, &principal);
            let who = crate::idempotency::Who::Principal(&principal);
            let response = crate::throttle::within(&state, decision, Some(who), request, next).await;
            counted.answered(&response);
            response
        }
        Err(error) => error.into_response(),
    }
}

pub async fn session(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Session, request, next).await
}

pub async fn management(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Management, request, next).await
}

pub async fn identify(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Identify, request, next).await
}

pub async fn key(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Key, request, next).await
}

pub async fn mcp(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Mcp, request, next).await
}

pub async fn signature(State(state): State<AppState>, request: Request, next: Next) -> Response {
    require(state, Policy::Signature, request, next).await
}
