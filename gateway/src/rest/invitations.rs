//! Invitations: how anybody joins an org. Admins invite an address; whoever has verified
//! that address may accept or decline.

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
};
use keyplane_common::internal_auth::Caller;
use keyplane_proto::orgs::v1::{
    CreateInvitationRequest, ListInvitationsRequest, ListMyInvitationsRequest, RespondToInvitationRequest,
    RevokeInvitationRequest,
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    PageQuery,
    dto::{Invitation, Member, Paged},
    orgs::role_of,
};
use crate::{
    error::ApiError,
    extract::Calling,
    extract::{ApiJson, ApiQuery},
    state::AppState,
};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    email: String,
    #[schema(value_type = super::dto::names::Role)]
    role: String,
}

async fn invite(
    state: &AppState,
    caller: &Caller,
    org_id: String,
    body: InvitationBody,
) -> Result<Invitation, ApiError> {
    let request = CreateInvitationRequest { org_id, email: body.email, role: role_of(&body.role).into() };
    Ok(state.upstream.create_invitation(caller, request).await?.into())
}

/// `POST …/members`: nobody joins without accepting, so adding a member invites it (202).
#[utoipa::path(post, path = "/api/v1/developers/orgs/{org_id}/members", operation_id = "inviteOrgMember", tag = "orgs",
    params(("org_id" = String, Path, description = "The org's id")),
    request_body = InvitationBody,
    security(("session" = [])),
    responses(
        (status = 202, description = "An invitation: nobody joins an org without accepting", body = Invitation),
        (status = 400, description = "A bad address or role"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin (an owner, to invite an owner)"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn invite_member(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(invite(&state, &caller, org_id, body).await?)))
}

#[utoipa::path(post, path = "/api/v1/developers/orgs/{org_id}/invitations", operation_id = "createInvitation", tag = "invitations",
    params(("org_id" = String, Path, description = "The org's id")),
    request_body = InvitationBody,
    security(("session" = [])),
    responses(
        (status = 201, description = "The invitation, pending for 7 days; the mailer tells the address", body = Invitation),
        (status = 400, description = "A bad address or role"),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin (an owner, to invite an owner)"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn create(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    Ok((StatusCode::CREATED, Json(invite(&state, &caller, org_id, body).await?)))
}

#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/invitations", operation_id = "listInvitations", tag = "invitations",
    params(("org_id" = String, Path, description = "The org's id"), super::PageQuery),
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 200, description = "Every invitation of the org, in every status", body = Paged<Invitation>),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Invitation>>, ApiError> {
    let listed = state
        .upstream
        .list_invitations(&caller, ListInvitationsRequest { org_id, page: Some(page.request()?) })
        .await?;
    Ok(Json(Paged::new(listed.invitations.into_iter().map(Invitation::from).collect(), listed.page)))
}

#[utoipa::path(delete, path = "/api/v1/developers/orgs/{org_id}/invitations/{id}", operation_id = "revokeInvitation", tag = "invitations",
    params(("org_id" = String, Path, description = "The org's id"), ("id" = String, Path, description = "The invitation's id")),
    security(("session" = []), ("api_key" = ["write:orgs"])),
    responses(
        (status = 200, description = "The invitation, revoked", body = Invitation),
        (status = 401, description = "No credential"),
        (status = 403, description = "Not an admin"),
        (status = 404, description = "Not an invitation of an org of the caller's"),
        (status = 409, description = "No longer pending"),
    ))]
pub async fn revoke(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((org_id, invitation_id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let request = RevokeInvitationRequest { org_id, invitation_id };
    Ok(Json(state.upstream.revoke_invitation(&caller, request).await?.into()))
}

/// `GET /api/v1/invitations`: the caller's pending invitations, to its verified address.
#[utoipa::path(get, path = "/api/v1/invitations", operation_id = "listMyInvitations", tag = "invitations",
    params(super::PageQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The caller's pending invitations, to its verified address", body = Paged<Invitation>),
        (status = 401, description = "No session"),
    ))]
pub async fn mine(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Invitation>>, ApiError> {
    let listed =
        state.upstream.list_my_invitations(&caller, ListMyInvitationsRequest { page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.invitations.into_iter().map(Invitation::from).collect(), listed.page)))
}

#[utoipa::path(post, path = "/api/v1/invitations/{id}/accept", operation_id = "acceptInvitation", tag = "invitations",
    params(("id" = String, Path, description = "The invitation's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The membership", body = Member),
        (status = 401, description = "No session"),
        (status = 403, description = "The address is not verified (`email_unverified`)"),
        (status = 404, description = "Not an invitation to the caller's address"),
        (status = 409, description = "No longer pending"),
    ))]
pub async fn accept(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(invitation_id): Path<String>,
) -> Result<Json<Member>, ApiError> {
    let request = RespondToInvitationRequest { invitation_id };
    Ok(Json(state.upstream.accept_invitation(&caller, request).await?.into()))
}

#[utoipa::path(post, path = "/api/v1/invitations/{id}/decline", operation_id = "declineInvitation", tag = "invitations",
    params(("id" = String, Path, description = "The invitation's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The invitation, declined", body = Invitation),
        (status = 401, description = "No session"),
        (status = 403, description = "The address is not verified (`email_unverified`)"),
        (status = 404, description = "Not an invitation to the caller's address"),
        (status = 409, description = "No longer pending"),
    ))]
pub async fn decline(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(invitation_id): Path<String>,
) -> Result<Json<Invitation>, ApiError> {
    let request = RespondToInvitationRequest { invitation_id };
    Ok(Json(state.upstream.decline_invitation(&caller, request).await?.into()))
}
