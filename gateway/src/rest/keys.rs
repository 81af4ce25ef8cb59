//! API keys of an org, and MCP tokens of the caller.

use axum::{
    Extension, Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use keyplane_common::credential::Environment;
use keyplane_common::internal_auth::Caller;
use keyplane_proto::{
    keys::v1::{
        CreateKeyRequest, CreateMcpTokenRequest, GetKeyRequest, ListKeysRequest, ListMcpTokensRequest,
        RegenerateKeyRequest, RevokeKeyRequest, RevokeMcpTokenRequest, ScopeList, UpdateKeyRequest,
    },
    types::v1::Environment as PbEnvironment,
};
use serde::Deserialize;

use super::{
    NoStore, PageQuery,
    dto::{ApiKey, CreatedKey, CreatedMcpToken, McpToken, Paged, Rate},
};
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery, OptionalJson},
    state::AppState,
};

/// The seed's plain-array list: the next page goes in a `Link` header.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Response, ApiError> {
    let limit = page.limit;
    let listed = state
        .upstream
        .list_keys(&caller, ListKeysRequest { org_id: org_id.clone(), page: Some(page.request()?) })
        .await?;
    let keys: Vec<ApiKey> = listed.keys.into_iter().map(ApiKey::from).collect();
    let mut response = Json(keys).into_response();
    if let Some(next) = listed.page.map(|p| p.next_cursor).filter(|c| !c.is_empty()) {
        let link = format!(
            "</api/v1/developers/orgs/{org_id}/keys?limit={}&cursor={next}>; rel=\"next\"",
            limit.unwrap_or(50)
        );
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: String,
    #[serde(default)]
    environment: String,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    resource_ids: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit: Option<Rate>,
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<CreateKeyBody>,
) -> Result<NoStore<(StatusCode, Json<CreatedKey>)>, ApiError> {
    let environment = Environment::parse(&body.environment).map_or(PbEnvironment::Unspecified, Environment::to_proto);
    let request = CreateKeyRequest {
        org_id,
        name: body.name,
        environment: environment.into(),
        scopes: body.scopes.map(|scopes| ScopeList { scopes }),
        resource_ids: body.resource_ids,
        expires_at: body.expires_at.map(keyplane_common::time::to_proto),
        rate_limit: body.rate_limit.map(Into::into),
    };
    Ok(NoStore((StatusCode::CREATED, Json(state.upstream.create_key(&caller, request).await?.into()))))
}

pub async fn get(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((org_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.upstream.get_key(&caller, GetKeyRequest { org_id, key_id }).await?.into()))
}

/// `PATCH …/keys/{keyId}`: `{name?, rate_limit?}`; `rate_limit: null` goes back to the
/// default.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    name: Option<String>,
    /// Absent: unchanged; null: the default; a rate: that rate.
    #[serde(default, deserialize_with = "present")]
    rate_limit: Option<Option<Rate>>,
}

/// A field that is present (`null` included) reads as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Rate>>, D::Error> {
    Option::<Rate>::deserialize(d).map(Some)
}

pub async fn update(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((org_id, key_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<UpdateKeyBody>,
) -> Result<Json<ApiKey>, ApiError> {
    let request = UpdateKeyRequest {
        org_id,
        key_id,
        name: body.name,
        rate_limit: body.rate_limit.flatten().map(Into::into),
        clear_rate_limit: matches!(body.rate_limit, Some(None)),
    };
    Ok(Json(state.upstream.update_key(&caller, request).await?.into()))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((org_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.upstream.revoke_key(&caller, RevokeKeyRequest { org_id, key_id }).await?.into()))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegenerateBody {
    grace_period_seconds: Option<i64>,
}

pub async fn regenerate(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((org_id, key_id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<RegenerateBody>,
) -> Result<NoStore<Json<CreatedKey>>, ApiError> {
    let request = RegenerateKeyRequest { org_id, key_id, grace_period_seconds: body.grace_period_seconds };
    Ok(NoStore(Json(state.upstream.regenerate_key(&caller, request).await?.into())))
}

pub async fn list_mcp_tokens(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<McpToken>>, ApiError> {
    let listed = state.upstream.list_mcp_tokens(&caller, ListMcpTokensRequest { page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.tokens.into_iter().map(McpToken::from).collect(), listed.page)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMcpTokenBody {
    name: String,
    org_id: String,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
}

pub async fn create_mcp_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateMcpTokenBody>,
) -> Result<NoStore<(StatusCode, Json<CreatedMcpToken>)>, ApiError> {
    let request = CreateMcpTokenRequest {
        org_id: body.org_id,
        name: body.name,
        scopes: body.scopes.map(|scopes| ScopeList { scopes }),
        expires_at: body.expires_at.map(keyplane_common::time::to_proto),
    };
    Ok(NoStore((StatusCode::CREATED, Json(state.upstream.create_mcp_token(&caller, request).await?.into()))))
}

pub async fn revoke_mcp_token(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(token_id): Path<String>,
) -> Result<Json<McpToken>, ApiError> {
    Ok(Json(state.upstream.revoke_mcp_token(&caller, RevokeMcpTokenRequest { token_id }).await?.into()))
}
