//! Accounts and sessions, who-am-I, and key verification for the platform's backends.

use axum::Extension;
use axum::{Json, extract::State, http::StatusCode};
use chrono::{DateTime, Utc};
use keyplane_common::{internal_auth::Caller, principal::Principal};
use keyplane_proto::{
    identity::v1::{
        GetUserRequest, LoginRequest, LogoutRequest, RefreshRequest, ResendVerificationRequest, SignupRequest,
        VerifyEmailRequest,
    },
    orgs::v1::ListOrgsRequest,
    types::v1::PageRequest,
};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{
    NoStore,
    dto::{Org, Session, User},
};
use crate::{error::ApiError, extract::ApiJson, state::AppState};

/// `GET /api/v1/keys/self`: the key presenting it, as the gateway verified it, with no
/// call behind: what an SDK asks to learn which key it holds and what it may do.
pub async fn key_self(Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    match &caller.principal {
        Some(Principal::ApiKey(key)) => {
            let mut answer = key_json(key);
            answer["org_id"] = json!(key.org_id);
            Ok(Json(answer))
        }
        _ => Err(ApiError::unauthorized("use_api_key", "use an API key")),
    }
}

fn key_json(key: &keyplane_common::principal::KeyPrincipal) -> Value {
    json!({
        "id": key.key_id,
        "name": key.name,
        "prefix": key.prefix,
        "environment": key.environment,
        "scopes": key.scopes.effective(),
        "resource_ids": key.resource_ids,
        "expires_at": key.expires_at,
        "in_grace": key.grace_ends_at.is_some(),
        "rate_limit": key.rate_limit.map(|r| json!({"requests": r.requests, "per_seconds": r.per_seconds})),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignupBody {
    email: String,
    password: String,
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    email: String,
    password: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshBody {
    refresh_token: String,
}

pub async fn signup(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<SignupBody>,
) -> Result<NoStore<(StatusCode, Json<Session>)>, ApiError> {
    let request = SignupRequest { email: body.email, password: body.password, name: body.name };
    Ok(NoStore((StatusCode::CREATED, Json(state.upstream.signup(&caller, request).await?.into()))))
}

pub async fn login(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Result<NoStore<Json<Session>>, ApiError> {
    let request = LoginRequest { email: body.email, password: body.password };
    Ok(NoStore(Json(state.upstream.login(&caller, request).await?.into())))
}

pub async fn refresh(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<NoStore<Json<Session>>, ApiError> {
    let request = RefreshRequest { refresh_token: body.refresh_token };
    Ok(NoStore(Json(state.upstream.refresh(&caller, request).await?.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailBody {
    token: String,
}

/// `POST /api/v1/auth/verify-email`: spends the token a verification mail carried.
pub async fn verify_email(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<VerifyEmailBody>,
) -> Result<Json<Value>, ApiError> {
    let user = state.upstream.verify_email(&caller, VerifyEmailRequest { token: body.token }).await?;
    Ok(Json(json!({ "user": User::from(user) })))
}

/// `POST /api/v1/auth/verify-email/resend`: another verification mail for the caller.
pub async fn resend_verification(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    state.upstream.resend_verification(&caller, ResendVerificationRequest {}).await?;
    Ok(StatusCode::ACCEPTED)
}

pub async fn logout(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<StatusCode, ApiError> {
    state.upstream.logout(&caller, LogoutRequest {}).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/v1/auth/me`: who the credential is.
pub async fn me(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Json<Value>, ApiError> {
    match caller.principal.clone() {
        Some(Principal::User(user)) => {
            let profile = state.upstream.get_user(&caller, GetUserRequest { id: user.user_id.to_string() }).await?;
            let orgs = state
                .upstream
                .list_orgs(&caller, ListOrgsRequest { page: Some(PageRequest { limit: 100, cursor: String::new() }) })
                .await?;
            let orgs: Vec<Org> = orgs.orgs.into_iter().map(Org::from).collect();
            Ok(Json(json!({
                "principal": "session",
                "user": User::from(profile),
                "issuer": user.issuer,
                "orgs": orgs,
            })))
        }
        Some(Principal::ApiKey(key)) => {
            let org = state.org_names.get(&state.upstream, &caller, key.org_id).await?;
            Ok(Json(json!({
                "principal": "api_key",
                "key": key_json(&key),
                "org": { "id": org.id, "name": org.name, "slug": org.slug },
            })))
        }
        _ => Err(ApiError::unauthorized("unauthenticated", "this route needs a session or an API key")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyBody {
    key: String,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    resource_id: Option<String>,
}

#[derive(Serialize, Default)]
pub struct Verification {
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    key_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    org_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    environment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scopes: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource_ids: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    in_grace: Option<bool>,
}

fn refused(code: &str) -> Json<Verification> {
    Json(Verification { valid: false, code: Some(code.to_owned()), ..Verification::default() })
}

/// `POST /api/v1/keys/verify`: for backends that hold a raw key. Refusals carry the code
/// the gateway would answer with; they take the same path whether the key is unknown or
/// revoked, so timing tells nothing either.
pub async fn verify(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<VerifyBody>,
) -> Result<Json<Verification>, ApiError> {
    let Ok(parsed) = state.key_format.parse(&body.key) else { return Ok(refused("invalid_api_key")) };
    let principal = match state.verifier.verify_secret(&parsed.secret, &caller).await {
        Ok(p) => p,
        Err(e) if e.status == StatusCode::UNAUTHORIZED => return Ok(refused(&e.code)),
        Err(e) => return Err(e),
    };
    let Principal::ApiKey(key) = principal.as_ref() else { return Ok(refused("invalid_api_key")) };
    state.meter.record(key, &caller);
    let mut answer = Verification {
        valid: true,
        code: None,
        key_id: Some(key.key_id.to_string()),
        org_id: Some(key.org_id.to_string()),
        environment: Some(key.environment.as_str()),
        scopes: Some(key.scopes.effective()),
        resource_ids: Some(key.resource_ids.clone()),
        expires_at: key.expires_at,
        in_grace: Some(key.grace_ends_at.is_some()),
    };
    if body.scope.as_deref().is_some_and(|s| !key.scopes.allows(s)) {
        answer.valid = false;
        answer.code = Some("insufficient_scope".into());
    } else if body.resource_id.as_ref().is_some_and(|r| !key.resource_ids.is_empty() && !key.resource_ids.contains(r)) {
        answer.valid = false;
        answer.code = Some("resource_not_allowed".into());
    }
    Ok(Json(answer))
}
