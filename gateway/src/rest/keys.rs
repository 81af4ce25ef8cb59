//! API keys of an org, and MCP tokens of the caller.

use axum::{
    Json,
    extract::{Path, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use keyplane_common::credential::Environment;
use keyplane_proto::{
    keys::v1::{
        CreateKeyRequest, CreateMcpTokenRequest, GetKeyRequest, ListKeysRequest, ListMcpTokensRequest,
        RegenerateKeyRequest, RevokeKeyRequest, RevokeMcpTokenRequest, ScopeList, UpdateKeyRequest,
    },
    types::v1::Environment as PbEnvironment,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    NoStore, PageQuery,
    dto::{ApiKey, CreatedKey, CreatedMcpToken, McpToken, Paged, Rate},
};
use crate::{
    error::ApiError,
    extract::Calling,
    extract::{ApiJson, ApiQuery, OptionalJson},
    state::AppState,
};

/// The seed's plain-array list: the next page goes in a `Link` header.
#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/keys", operation_id = "listApiKeys", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id"), super::PageQuery),
    security(("session" = []), ("api_key" = ["read:keys"])),
    responses(
        (status = 200, description = "The org's keys, never a secret or hash; the next page in a `Link` header", body = Vec<ApiKey>),
        (status = 401, description = "No credential"),
        (status = 403, description = "A key without `read:keys`"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Calling(caller): Calling,
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

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateKeyBody {
    name: String,
    #[serde(default)]
    #[schema(value_type = super::dto::names::Environment)]
    environment: String,
    scopes: Option<Vec<String>>,
    #[serde(default)]
    resource_ids: Vec<String>,
    expires_at: Option<DateTime<Utc>>,
    rate_limit: Option<Rate>,
}

#[utoipa::path(post, path = "/api/v1/developers/orgs/{org_id}/keys", operation_id = "createApiKey", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id")),
    request_body = CreateKeyBody,
    security(("session" = []), ("api_key" = ["write:keys"])),
    responses(
        (status = 201, description = "The key, with its secret in `key`: shown this once", body = CreatedKey),
        (status = 400, description = "A bad name, environment, scope (the valid ones are named), expiry or rate"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin, or a key granting a scope it lacks"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Calling(caller): Calling,
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

#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/keys/{key_id}", operation_id = "getApiKey", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id"), ("key_id" = String, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["read:keys"])),
    responses(
        (status = 200, description = "The key", body = ApiKey),
        (status = 401, description = "No credential"),
        (status = 404, description = "Not a key of an org of the caller's"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.upstream.get_key(&caller, GetKeyRequest { org_id, key_id }).await?.into()))
}

/// `PATCH …/keys/{keyId}`: `{name?, rate_limit?}`; `rate_limit: null` goes back to the
/// default.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateKeyBody {
    name: Option<String>,
    /// Absent: unchanged; null: the default; a rate: that rate.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Rate>)]
    rate_limit: Option<Option<Rate>>,
}

/// A field that is present (`null` included) reads as `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<Rate>>, D::Error> {
    Option::<Rate>::deserialize(d).map(Some)
}

#[utoipa::path(patch, path = "/api/v1/developers/orgs/{org_id}/keys/{key_id}", operation_id = "updateApiKey", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id"), ("key_id" = String, Path, description = "The key's id")),
    request_body = UpdateKeyBody,
    security(("session" = []), ("api_key" = ["write:keys"])),
    responses(
        (status = 200, description = "The key, renamed or with its new limit", body = ApiKey),
        (status = 400, description = "A bad name or rate"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not a key of an org of the caller's"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Calling(caller): Calling,
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

#[utoipa::path(delete, path = "/api/v1/developers/orgs/{org_id}/keys/{key_id}", operation_id = "revokeApiKey", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id"), ("key_id" = String, Path, description = "The key's id")),
    security(("session" = []), ("api_key" = ["write:keys"])),
    responses(
        (status = 200, description = "The key, revoked now: every replica refuses it within a second", body = ApiKey),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not a key of an org of the caller's"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, key_id)): Path<(String, String)>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.upstream.revoke_key(&caller, RevokeKeyRequest { org_id, key_id }).await?.into()))
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegenerateBody {
    grace_period_seconds: Option<i64>,
}

#[utoipa::path(post, path = "/api/v1/developers/orgs/{org_id}/keys/{key_id}/regenerate", operation_id = "regenerateApiKey", tag = "keys",
    params(("org_id" = String, Path, description = "The org's id"), ("key_id" = String, Path, description = "The key's id")),
    request_body(content = Option<RegenerateBody>, description = "Optional: `grace_period_seconds`, 0 to 604800 (default 86400)"),
    security(("session" = []), ("api_key" = ["write:keys"])),
    responses(
        (status = 200, description = "The same key with a new secret in `key`, shown this once; the old secret works through the grace period, each use audited", body = CreatedKey),
        (status = 400, description = "A grace period out of range"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not a key of an org of the caller's"),
        (status = 409, description = "The key is revoked"),
    ))]
pub async fn regenerate(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, key_id)): Path<(String, String)>,
    OptionalJson(body): OptionalJson<RegenerateBody>,
) -> Result<NoStore<Json<CreatedKey>>, ApiError> {
    let request = RegenerateKeyRequest { org_id, key_id, grace_period_seconds: body.grace_period_seconds };
    Ok(NoStore(Json(state.upstream.regenerate_key(&caller, request).await?.into())))
}

#[utoipa::path(get, path = "/api/v1/mcp-tokens", operation_id = "listMcpTokens", tag = "mcp",
    params(super::PageQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's MCP tokens, never `plain`", body = Paged<McpToken>),
        (status = 401, description = "No session"),
    ))]
pub async fn list_mcp_tokens(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<McpToken>>, ApiError> {
    let listed = state.upstream.list_mcp_tokens(&caller, ListMcpTokensRequest { page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.tokens.into_iter().map(McpToken::from).collect(), listed.page)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMcpTokenBody {
    name: String,
    org_id: String,
    scopes: Option<Vec<String>>,
    expires_at: Option<DateTime<Utc>>,
}

#[utoipa::path(post, path = "/api/v1/mcp-tokens", operation_id = "createMcpToken", tag = "mcp",
    request_body = CreateMcpTokenBody,
    security(("session" = [])),
    responses(
        (status = 201, description = "The token, with its secret in `plain`: shown this once", body = CreatedMcpToken),
        (status = 400, description = "A bad name, scope or expiry"),
        (status = 401, description = "No session"),
        (status = 403, description = "Scopes beyond the caller's role"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn create_mcp_token(
    State(state): State<AppState>,
    Calling(caller): Calling,
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

#[utoipa::path(delete, path = "/api/v1/mcp-tokens/{id}", operation_id = "revokeMcpToken", tag = "mcp",
    params(("id" = String, Path, description = "The token's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The token, revoked now", body = McpToken),
        (status = 401, description = "No session"),
        (status = 404, description = "Not the caller's token, nor one of an org it administers"),
    ))]
pub async fn revoke_mcp_token(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(token_id): Path<String>,
) -> Result<Json<McpToken>, ApiError> {
    Ok(Json(state.upstream.revoke_mcp_token(&caller, RevokeMcpTokenRequest { token_id }).await?.into()))
}
