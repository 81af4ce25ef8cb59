//! Invitations: how anybody joins an org. Admins invite an address; whoever has verified
//! that address may accept or decline.

use axum::Extension;
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

use super::{
    PageQuery,
    dto::{Invitation, Member, Paged},
    orgs::role_of,
};
use crate::{
    error::ApiError,
    extract::{ApiJson, ApiQuery},
    state::AppState,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvitationBody {
    email: String,
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
pub async fn invite_member(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(invite(&state, &caller, org_id, body).await?)))
}

pub async fn create(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    ApiJson(body): ApiJson<InvitationBody>,
) -> Result<(StatusCode, Json<Invitation>), ApiError> {
    Ok((StatusCode::CREATED, Json(invite(&state, &caller, org_id, body).await?)))
}

pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org_id): Path<String>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Invitation>>, ApiError> {
    let listed = state
        .upstream
        .list_invitations(&caller, ListInvitationsRequest { org_id, page: Some(page.request()?) })
        .await?;
    Ok(Json(Paged::new(listed.invitations.into_iter().map(Invitation::from).collect(), listed.page)))
}

pub async fn revoke(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((org_id, invitation_id)): Path<(String, String)>,
) -> Result<Json<Invitation>, ApiError> {
    let request = RevokeInvitationRequest { org_id, invitation_id };
    Ok(Json(state.upstream.revoke_invitation(&caller, request).await?.into()))
}

/// `GET /api/v1/invitations`: the caller's pending invitations, to its verified address.
pub async fn mine(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(page): ApiQuery<PageQuery>,
) -> Result<Json<Paged<Invitation>>, ApiError> {
    let listed =
        state.upstream.list_my_invitations(&caller, ListMyInvitationsRequest { page: Some(page.request()?) }).await?;
    Ok(Json(Paged::new(listed.invitations.into_iter().map(Invitation::from).collect(), listed.page)))
}

pub async fn accept(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(invitation_id): Path<String>,
) -> Result<Json<Member>, ApiError> {
    let request = RespondToInvitationRequest { invitation_id };
    Ok(Json(state.upstream.accept_invitation(&caller, request).await?.into()))
}

pub async fn decline(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(invitation_id): Path<String>,
) -> Result<Json<Invitation>, ApiError> {
    let request = RespondToInvitationRequest { invitation_id };
    Ok(Json(state.upstream.decline_invitation(&caller, request).await?.into()))
}
