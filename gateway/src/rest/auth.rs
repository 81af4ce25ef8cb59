//! Accounts and sessions, who-am-I, and key verification for the platform's backends.

use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use keyplane_common::principal::{KeyPrincipal, Principal};
use keyplane_proto::{
    identity::v1::{
        GetUserRequest, LoginRequest, LogoutRequest, RefreshRequest, ResendVerificationRequest, SignupRequest,
        VerifyEmailRequest,
    },
    orgs::v1::ListOrgsRequest,
    types::v1::PageRequest,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    NoStore,
    dto::{Org, Rate, Session, User},
    json_answer,
};
use crate::{
    error::ApiError,
    extract::ApiJson,
    extract::Calling,
    org_names::OrgName,
    state::AppState,
    verifier::{Grant, Kept},
};

/// An API key as the gateway verified it: what it is and what it may do.
#[derive(Serialize, ToSchema)]
pub struct KeyIdentity {
    id: Uuid,
    name: String,
    prefix: String,
    #[schema(value_type = super::dto::names::Environment)]
    environment: &'static str,
    /// What the key may do (a full-permission key: every scope).
    scopes: Vec<String>,
    /// The data-plane resources it is pinned to; empty: not pinned.
    resource_ids: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    /// Whether this secret is a regenerated key's previous one, still in its grace period.
    in_grace: bool,
    /// The key's own limit; null: the platform's default for keys.
    rate_limit: Option<Rate>,
}

impl From<&KeyPrincipal> for KeyIdentity {
    fn from(key: &KeyPrincipal) -> Self {
        Self {
            id: key.key_id,
            name: key.name.clone(),
            prefix: key.prefix.clone(),
            environment: key.environment.as_str(),
            scopes: key.scopes.effective(),
            resource_ids: key.resource_ids.clone(),
            expires_at: key.expires_at,
            in_grace: key.grace_ends_at.is_some(),
            rate_limit: key.rate_limit.map(|r| Rate { requests: r.requests, per_seconds: r.per_seconds }),
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct KeySelf {
    #[serde(flatten)]
    key: KeyIdentity,
    org_id: Uuid,
}

/// `GET /api/v1/keys/self`: the key presenting it, as the gateway verified it, with no
/// call behind: what an SDK asks to learn which key it holds and what it may do.
#[utoipa::path(get, path = "/api/v1/keys/self", operation_id = "getKeySelf", tag = "auth",
    security(("api_key" = [])),
    responses(
        (status = 200, description = "The key presenting it", body = KeySelf),
        (status = 401, description = "No key, or a session bearer (`use_api_key`)"),
    ))]
pub async fn key_self(grant: Option<Extension<Arc<Grant>>>) -> Result<Response, ApiError> {
    let write = |key: &KeyPrincipal| serde_json::to_vec(&KeySelf { key: KeyIdentity::from(key), org_id: key.org_id });
    match grant.and_then(|grant| grant.answer(Kept::KeySelf, write)) {
        Some(answer) => answer.map(json_answer),
        None => Err(ApiError::unauthorized("use_api_key", "use an API key")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

#[utoipa::path(post, path = "/api/v1/auth/signup", operation_id = "signup", tag = "auth",
    request_body = SignupBody,
    responses(
        (status = 201, description = "The account, signed in; a verification mail is on its way", body = Session),
        (status = 400, description = "Not an address, or a weak password"),
        (status = 409, description = "The address has an account (`email_taken`)"),
        (status = 429, description = "Too many sign-ins from this address"),
    ))]
pub async fn signup(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<NoStore<(StatusCode, Json<Session>)>, ApiError> {
    let request = SignupRequest { email: body.email, password: body.password, name: body.name };
    Ok(NoStore((StatusCode::CREATED, Json(state.upstream.signup(&caller, request).await?.into()))))
}

#[utoipa::path(post, path = "/api/v1/auth/login", operation_id = "login", tag = "auth",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session", body = Session),
        (status = 401, description = "The same answer for an unknown address and a wrong password (`invalid_credentials`)"),
        (status = 429, description = "Too many sign-ins from this address"),
    ))]
pub async fn login(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<NoStore<Json<Session>>, ApiError> {
    let request = LoginRequest { email: body.email, password: body.password };
    Ok(NoStore(Json(state.upstream.login(&caller, request).await?.into())))
}

#[utoipa::path(post, path = "/api/v1/auth/refresh", operation_id = "refreshSession", tag = "auth",
    request_body = RefreshBody,
    responses(
        (status = 200, description = "A new access token and a new refresh token; the old refresh token is spent", body = Session),
        (status = 401, description = "Unknown, expired or spent (a spent one's reuse ends the whole session)"),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<NoStore<Json<Session>>, ApiError> {
    let request = RefreshRequest { refresh_token: body.refresh_token };
    Ok(NoStore(Json(state.upstream.refresh(&caller, request).await?.into())))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    token: String,
}

#[derive(Serialize, ToSchema)]
pub struct VerifiedUser {
    user: User,
}

/// `POST /api/v1/auth/verify-email`: spends the token a verification mail carried.
#[utoipa::path(post, path = "/api/v1/auth/verify-email", operation_id = "verifyEmail", tag = "auth",
    request_body = VerifyEmailBody,
    responses(
        (status = 200, description = "The address is verified", body = VerifiedUser),
        (status = 400, description = "Unknown, spent or expired token"),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<VerifyEmailBody>,
) -> Result<Json<VerifiedUser>, ApiError> {
    let user = state.upstream.verify_email(&caller, VerifyEmailRequest { token: body.token }).await?;
    Ok(Json(VerifiedUser { user: User::from(user) }))
}

/// `POST /api/v1/auth/verify-email/resend`: another verification mail for the caller.
#[utoipa::path(post, path = "/api/v1/auth/verify-email/resend", operation_id = "resendVerificationEmail", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 202, description = "Another verification mail is on its way"),
        (status = 401, description = "No session"),
        (status = 409, description = "Already verified"),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    Calling(caller): Calling,
) -> Result<StatusCode, ApiError> {
    state.upstream.resend_verification(&caller, ResendVerificationRequest {}).await?;
    Ok(StatusCode::ACCEPTED)
}

#[utoipa::path(post, path = "/api/v1/auth/logout", operation_id = "logout", tag = "auth",
    security(("session" = [])),
    responses(
        (status = 204, description = "The session's tokens are refused from now on"),
        (status = 401, description = "No session"),
    ))]
pub async fn logout(State(state): State<AppState>, Calling(caller): Calling) -> Result<StatusCode, ApiError> {
    state.upstream.logout(&caller, LogoutRequest {}).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Who a session is.
#[derive(Serialize, ToSchema)]
pub struct SessionWhoami {
    /// `session`.
    principal: &'static str,
    user: User,
    /// Who issued the bearer: this platform, or an external OIDC issuer.
    issuer: String,
    /// The orgs the user belongs to (the first 100).
    orgs: Vec<Org>,
}

/// Who an API key is.
#[derive(Serialize, ToSchema)]
pub struct KeyWhoami {
    /// `api_key`.
    principal: &'static str,
    key: KeyIdentity,
    org: OrgName,
}

#[derive(Serialize, ToSchema)]
#[serde(untagged)]
pub enum Whoami {
    Session(SessionWhoami),
    ApiKey(KeyWhoami),
}

/// `GET /api/v1/auth/me`: who the credential is.
#[utoipa::path(get, path = "/api/v1/auth/me", operation_id = "whoami", tag = "auth",
    security(("session" = []), ("api_key" = [])),
    responses(
        (status = 200, description = "Who the credential is: a session's user and orgs, or a key and its org", body = Whoami),
        (status = 401, description = "No credential, or one that is not valid"),
    ))]
pub async fn me(State(state): State<AppState>, Calling(caller): Calling) -> Result<Json<Whoami>, ApiError> {
    match caller.principal.as_deref().cloned() {
        Some(Principal::User(user)) => {
            let profile = state.upstream.get_user(&caller, GetUserRequest { id: user.user_id.to_string() }).await?;
            let orgs = state
                .upstream
                .list_orgs(&caller, ListOrgsRequest { page: Some(PageRequest { limit: 100, cursor: String::new() }) })
                .await?;
            Ok(Json(Whoami::Session(SessionWhoami {
                principal: "session",
                user: User::from(profile),
                issuer: user.issuer.clone(),
                orgs: orgs.orgs.into_iter().map(Org::from).collect(),
            })))
        }
        Some(Principal::ApiKey(key)) => {
            let org = state.org_names.get(&state.upstream, &caller, key.org_id).await?;
            Ok(Json(Whoami::ApiKey(KeyWhoami { principal: "api_key", key: KeyIdentity::from(&key), org })))
        }
        _ => Err(ApiError::unauthorized("unauthenticated", "this route needs a session or an API key")),
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    key: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

// Borrowed from the cached principal: a verdict is written without copying it. (A plain
// comment: a doc comment would become the public schema's description.)
#[derive(Serialize, Default, ToSchema)]
pub struct Verification<'a> {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    key_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    org_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<super::dto::names::Environment>)]
    environment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    scopes: Option<Vec<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<String>>)]
    resource_ids: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_grace: Option<bool>,
}

impl<'a> Verification<'a> {
    fn refused(code: &str) -> Response {
        Verification { valid: false, code: Some(code), ..Verification::default() }.into_response()
    }

    /// The verdict on `key`: valid, or refused with `code`.
    fn of(key: &'a KeyPrincipal, code: Option<&'a str>) -> Self {
        Verification {
            valid: code.is_none(),
            code,
            key_id: Some(key.key_id),
            org_id: Some(key.org_id),
            environment: Some(key.environment.as_str()),
            scopes: Some(key.scopes.effective_names()),
            resource_ids: Some(&key.resource_ids),
            expires_at: key.expires_at,
            in_grace: Some(key.grace_ends_at.is_some()),
        }
    }
}

impl IntoResponse for Verification<'_> {
    /// Written into a buffer the size of a full-permission verdict, which axum's `Json`
    /// would grow twice.
    fn into_response(self) -> Response {
        let mut body = Vec::with_capacity(512);
        match serde_json::to_writer(&mut body, &self) {
            Ok(()) => json_answer(body.into()),
            Err(_) => ApiError::internal().into_response(),
        }
    }
}

/// `POST /api/v1/keys/verify`: for backends that hold a raw key. Refusals carry the code
/// the gateway would answer with; they take the same path whether the key is unknown or
/// revoked, so timing tells nothing either.
#[utoipa::path(post, path = "/api/v1/keys/verify", operation_id = "verifyApiKey", tag = "auth",
    description = "For the platform's own backends that hold a raw key. `valid: false` carries the code \
        the gateway would answer with (`invalid_api_key`, `key_revoked`, `key_expired`, \
        `insufficient_scope`, `resource_not_allowed`); unknown and revoked keys are told apart only by code.",
    request_body = VerifyBody,
    responses(
        (status = 200, description = "The verdict", body = Verification),
        (status = 429, description = "Too many verifications from this address"),
    ))]
pub async fn verify(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Response, ApiError> {
    let Ok(parsed) = state.key_format.parse(&body.key) else { return Ok(Verification::refused("invalid_api_key")) };
    let grant = match state.verifier.verify_grant(&parsed.secret, &caller).await {
        Ok(grant) => grant,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return Ok(Verification::refused(&e.code)),
        Err(e) => return Err(e),
    };
    let Principal::ApiKey(key) = grant.principal().as_ref() else {
        return Ok(Verification::refused("invalid_api_key"));
    };
    state.meter.record(key, &caller);
    let code = if body.scope.as_deref().is_some_and(|s| !key.scopes.allows(s)) {
        Some("insufficient_scope")
    } else if body.resource_id.as_ref().is_some_and(|r| !key.resource_ids.is_empty() && !key.resource_ids.contains(r)) {
        Some("resource_not_allowed")
    } else {
        None
    };
    match code {
        None => match grant.answer(Kept::Verify, |key| serde_json::to_vec(&Verification::of(key, None))) {
            Some(answer) => answer.map(json_answer),
            None => Ok(Verification::refused("invalid_api_key")),
        },
        Some(code) => Ok(Verification::of(key, Some(code)).into_response()),
    }
}
