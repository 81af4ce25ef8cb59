//! Orgs, members, the audit log, and the one-call developer bootstrap.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use chrono::{DateTime, Utc};
use keyplane_proto::{
    keys::v1::EnsureBootstrapKeyRequest,
    orgs::v1::{
        CreateOrgRequest, DeleteOrgRequest, EnsureDevOrgRequest, GetOrgRequest, ListAuditEventsRequest,
        ListMembersRequest, ListOrgsRequest, RemoveMemberRequest, Role, UpdateMemberRoleRequest, UpdateOrgRequest,
    },
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    NoStore, PageQuery,
    dto::{AuditEvent, Member, Org, Paged},
};
use crate::{
    error::ApiError,
    extract::Calling,
    extract::{ApiJson, ApiQuery, OptionalJson},
    state::AppState,
};

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnsureDevOrgBody {
    #[serde(default)]
    name: String,
    #[serde(default)]
    bootstrap_key: bool,
}

/// The bootstrap key: its secret, shown this once.
#[derive(Serialize, ToSchema)]
pub struct FirstKey {
    id: String,
    name: String,
    #[schema(value_type = super::dto::names::Environment)]
    environment: &'static str,
    key: String,
}

#[derive(Serialize, ToSchema)]
pub struct DevOrg {
    #[serde(flatten)]
    org: Org,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_key: Option<FirstKey>,
}

/// `POST /api/ensure-dev-org`: the caller's developer org, and with `bootstrap_key` its
/// first key when it has none.
#[utoipa::path(post, path = "/api/v1/ensure-dev-org", operation_id = "ensureDevOrg", tag = "orgs",
    request_body(content = Option<EnsureDevOrgBody>, description = "Optional"),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's developer org, created on first call; with `bootstrap_key` and no active key, its first key", body = DevOrg),
        (status = 401, description = "No session (`session_required` for a key)"),
    ))]
pub async fn ensure_dev_org(
    State(state): State<AppState>,
    Calling(caller): Calling,
    OptionalJson(body): OptionalJson<EnsureDevOrgBody>,
) -> Result<NoStore<Json<DevOrg>>, ApiError> {
    let ensured = state.upstream.ensure_dev_org(&caller, EnsureDevOrgRequest { name: body.name }).await?;
    let org = ensured.org.ok_or_else(ApiError::internal)?;
    let mut first_key = None;
    if body.bootstrap_key {
        let minted =
            state.upstream.ensure_bootstrap_key(&caller, EnsureBootstrapKeyRequest { org_id: org.id.clone() }).await?;
        first_key = minted.key.and_then(|k| {
            let key = k.key?;
            Some(FirstKey { id: key.id, name: key.name, environment: "test", key: k.secret })
        });
    }
    Ok(NoStore(Json(DevOrg { org: org.into(), first_key })))
}

#[utoipa::path(get, path = "/api/v1/developers/orgs", operation_id = "listOrgs", tag = "orgs",
    params(super::PageQuery),
    security(("session" = []), ("api_key" = ["read:orgs"])),
    responses(
        (status = 200, description = "The orgs the caller belongs to (a key: its own org)", body = Paged<Org>),
        (status = 401, description = "No credential"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Org>>, ApiError> {
    let listed = state.upstream.list_orgs(&caller, ListOrgsRequest { page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.orgs.into_iter().map(Org::from).collect(), listed.page)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrgBody {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    website_url: String,
}

#[utoipa::path(post, path = "/api/v1/developers/orgs", operation_id = "createOrg", tag = "orgs",
    request_body = CreateOrgBody,
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 201, description = "The org; its slug derived from the name, unique", body = Org),
        (status = 400, description = "No name, or a bad website URL"),
        (status = 401, description = "No credential"),
        (status = 403, description = "A key without `write:orgs`"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiJson(body): ApiJson<CreateOrgBody>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    let request = CreateOrgRequest { name: body.name, description: body.description, website_url: body.website_url };
    Ok((StatusCode::CREATED, Json(state.upstream.create_org(&caller, request).await?.into())))
}

#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}", operation_id = "getOrg", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id")),
    security(("session" = []), ("api_key" = ["read:orgs"])),
    responses(
        (status = 200, description = "The org", body = Org),
        (status = 401, description = "No credential"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
) -> Result<Json<Org>, ApiError> {
    Ok(Json(state.upstream.get_org(&caller, GetOrgRequest { org_id }).await?.into()))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateOrgBody {
    name: Option<String>,
    description: Option<String>,
    website_url: Option<String>,
}

#[utoipa::path(put, path = "/api/v1/developers/orgs/{org_id}", operation_id = "updateOrg", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id")),
    request_body = UpdateOrgBody,
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 200, description = "The org, changed (admins)", body = Org),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin, or a key without `write:orgs`"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn update(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<UpdateOrgBody>,
) -> Result<Json<Org>, ApiError> {
    let request =
        UpdateOrgRequest { org_id, name: body.name, description: body.description, website_url: body.website_url };
    Ok(Json(state.upstream.update_org(&caller, request).await?.into()))
}

#[utoipa::path(delete, path = "/api/v1/developers/orgs/{org_id}", operation_id = "deleteOrg", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id")),
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 204, description = "Deleted (owners); every key and MCP token of the org revoked at once"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an owner"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.upstream.delete_org(&caller, DeleteOrgRequest { org_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/members", operation_id = "listOrgMembers", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id"), super::PageQuery),
    security(("session" = []), ("api_key" = ["read:orgs"])),
    responses(
        (status = 200, description = "The org's members", body = Paged<Member>),
        (status = 401, description = "No credential"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn members(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Member>>, ApiError> {
    let listed =
        state.upstream.list_members(&caller, ListMembersRequest { org_id, page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.members.into_iter().map(Member::from).collect(), listed.page)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    #[schema(value_type = super::dto::names::Role)]
    role: String,
}

#[utoipa::path(put, path = "/api/v1/developers/orgs/{org_id}/members/{user_id}", operation_id = "updateOrgMemberRole", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id"), ("user_id" = String, Path, description = "The member's user id")),
    request_body = RoleBody,
    security(("session" = [])),
    responses(
        (status = 200, description = "The member with its new role", body = Member),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin; making or unmaking an owner takes an owner's session"),
        (status = 404, description = "Not an org of the caller's, or not a member"),
        (status = 409, description = "The last owner cannot be demoted (`last_owner`)"),
    ))]
pub async fn update_member_role(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, user_id)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<Json<Member>, ApiError> {
    let request = UpdateMemberRoleRequest { org_id, user_id, role: role_of(&body.role).into() };
    Ok(Json(state.upstream.update_member_role(&caller, request).await?.into()))
}

/// A role as the contract spells it; anything else is for the service to refuse.
pub fn role_of(name: &str) -> Role {
    keyplane_common::authz::Role::to_proto(keyplane_common::authz::Role::parse(name))
}

#[utoipa::path(delete, path = "/api/v1/developers/orgs/{org_id}/members/{user_id}", operation_id = "removeOrgMember", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id"), ("user_id" = String, Path, description = "The member's user id")),
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 204, description = "Removed (admins; a member may remove itself)"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin; removing an owner takes an owner's session"),
        (status = 404, description = "Not an org of the caller's, or not a member"),
        (status = 409, description = "The last owner cannot be removed (`last_owner`)"),
    ))]
pub async fn remove_member(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, user_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    state.upstream.remove_member(&caller, RemoveMemberRequest { org_id, user_id }).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    action: Option<String>,
    actor: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/audit-log", operation_id = "listAuditEvents", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id"), AuditQuery),
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 200, description = "The org's audit events, newest first", body = Paged<AuditEvent>),
        (status = 400, description = "A bad time or limit"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn audit_log(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiQuery(query): ApiQuery<AuditQuery>,
) -> Result<Json<Paged<AuditEvent>>, ApiError> {
    let page = PageQuery { limit: query.limit, cursor: query.cursor };
    let request = ListAuditEventsRequest {
        org_id,
        from: query.from.map(keyplane_common::time::to_proto),
        to: query.to.map(keyplane_common::time::to_proto),
        action: query.action.unwrap_or_default(),
        actor: query.actor.unwrap_or_default(),
        page: Some(page.request()?),
    };
    let listed = state.upstream.list_audit_events(&caller, request).await?;
    Ok(Json(Paged::new(listed.events.into_iter().map(AuditEvent::from).collect(), listed.page)))
}
