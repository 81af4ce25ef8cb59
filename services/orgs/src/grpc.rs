//! The OrgsService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{
    audit::{AuditRecord, json_to_proto},
    authz::{Action, Role},
    ids::Page,
    internal_auth::caller,
    principal::Principal,
    time,
};
use keyplane_proto::orgs::v1::{self as pb, orgs_service_server::OrgsService};
use prost_types::value::Kind as ValueKind;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    error::Error,
    service::{InvitationView, MemberView, OrgInput, Service},
    store::{OrgChanges, audit_events, orgs, status_of},
};

pub struct OrgsGrpc {
    service: Arc<Service>,
}

impl OrgsGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

fn page(p: Option<&keyplane_proto::types::v1::PageRequest>) -> Result<Page, Status> {
    Page::from_proto(p).map_err(|v| Error::Validation(vec![v]).into())
}

fn org(o: &orgs::Model) -> pb::Org {
    pb::Org {
        id: o.id.to_string(),
        name: o.name.clone(),
        slug: o.slug.clone(),
        description: o.description.clone(),
        website_url: o.website_url.clone(),
        created_at: Some(time::to_proto(o.created_at)),
        updated_at: Some(time::to_proto(o.updated_at)),
    }
}

fn role_to_proto(role: Option<Role>) -> pb::Role {
    match role {
        Some(Role::Owner) => pb::Role::Owner,
        Some(Role::Admin) => pb::Role::Admin,
        Some(Role::Member) => pb::Role::Member,
        None => pb::Role::Unspecified,
    }
}

fn role_from_proto(value: i32) -> Option<Role> {
    match pb::Role::try_from(value).ok()? {
        pb::Role::Owner => Some(Role::Owner),
        pb::Role::Admin => Some(Role::Admin),
        pb::Role::Member => Some(Role::Member),
        pb::Role::Unspecified => None,
    }
}

fn member(view: &MemberView) -> pb::Member {
    let user = view.user.clone().unwrap_or_default();
    pb::Member {
        user_id: view.member.user_id.to_string(),
        email: user.email,
        name: user.name,
        role: role_to_proto(Role::parse(&view.member.role)).into(),
        joined_at: Some(time::to_proto(view.member.joined_at)),
    }
}

fn invitation(view: &InvitationView) -> pb::Invitation {
    let i = &view.invitation;
    pb::Invitation {
        id: i.id.to_string(),
        org_id: i.org_id.to_string(),
        email: i.email.clone(),
        role: role_to_proto(Role::parse(&i.role)).into(),
        status: status_of(i, time::now()).to_owned(),
        invited_by: i.invited_by.clone(),
        created_at: Some(time::to_proto(i.created_at)),
        expires_at: Some(time::to_proto(i.expires_at)),
        responded_at: i.responded_at.map(time::to_proto),
        org_name: view.org_name.clone(),
    }
}

fn audit_event(e: &audit_events::Model) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id.to_string(),
        org_id: e.org_id.to_string(),
        at: Some(time::to_proto(e.at)),
        actor: Some(pb::Actor { r#type: e.actor_type.clone(), id: e.actor_id.clone() }),
        action: e.action.clone(),
        target: Some(pb::Target { r#type: e.target_type.clone(), id: e.target_id.clone() }),
        ip: e.ip.clone(),
        user_agent: e.user_agent.clone(),
        metadata: match json_to_proto(&e.metadata).kind {
            Some(ValueKind::StructValue(s)) => Some(s),
            _ => None,
        },
    }
}

#[tonic::async_trait]
impl OrgsService for OrgsGrpc {
    async fn ensure_dev_org(
        &self,
        request: Request<pb::EnsureDevOrgRequest>,
    ) -> Result<Response<pb::EnsureDevOrgResponse>, Status> {
        let caller = caller(&request)?.clone();
        let (o, created) = self.service.ensure_dev_org(&caller, &request.into_inner().name).await?;
        Ok(Response::new(pb::EnsureDevOrgResponse { org: Some(org(&o)), created }))
    }

    async fn create_org(&self, request: Request<pb::CreateOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let input = OrgInput { name: r.name, description: r.description, website_url: r.website_url };
        Ok(Response::new(org(&self.service.create_org(&caller, input).await?)))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Result<Response<pb::ListOrgsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let page = page(request.get_ref().page.as_ref())?;
        let rows = self.service.list_orgs(&caller, page).await?;
        let (rows, info) = page.split(rows, |o| o.id);
        Ok(Response::new(pb::ListOrgsResponse { orgs: rows.iter().map(org).collect(), page: Some(info) }))
    }

    async fn get_org(&self, request: Request<pb::GetOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let caller = caller(&request)?.clone();
        Ok(Response::new(org(&self.service.get_org(&caller, &request.into_inner().org_id).await?)))
    }

    async fn update_org(&self, request: Request<pb::UpdateOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let changes = OrgChanges { name: r.name, description: r.description, website_url: r.website_url };
        Ok(Response::new(org(&self.service.update_org(&caller, &r.org_id, changes).await?)))
    }

    async fn delete_org(
        &self,
        request: Request<pb::DeleteOrgRequest>,
    ) -> Result<Response<pb::DeleteOrgResponse>, Status> {
        let caller = caller(&request)?.clone();
        self.service.delete_org(&caller, &request.into_inner().org_id).await?;
        Ok(Response::new(pb::DeleteOrgResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let page = page(r.page.as_ref())?;
        let views = self.service.list_members(&caller, &r.org_id, page).await?;
        let (views, info) = page.split(views, |v| v.member.user_id);
        Ok(Response::new(pb::ListMembersResponse { members: views.iter().map(member).collect(), page: Some(info) }))
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let view = self.service.update_member_role(&caller, &r.org_id, &r.user_id, role_from_proto(r.role)).await?;
        Ok(Response::new(member(&view)))
    }

    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let view = self.service.create_invitation(&caller, &r.org_id, &r.email, role_from_proto(r.role)).await?;
        Ok(Response::new(invitation(&view)))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let page = page(r.page.as_ref())?;
        let views = self.service.list_invitations(&caller, &r.org_id, page).await?;
        let (views, info) = page.split(views, |v| v.invitation.id);
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: views.iter().map(invitation).collect(),
            page: Some(info),
        }))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        Ok(Response::new(invitation(&self.service.revoke_invitation(&caller, &r.org_id, &r.invitation_id).await?)))
    }

    async fn list_my_invitations(
        &self,
        request: Request<pb::ListMyInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let page = page(request.get_ref().page.as_ref())?;
        let views = self.service.list_my_invitations(&caller, page).await?;
        let (views, info) = page.split(views, |v| v.invitation.id);
        Ok(Response::new(pb::ListInvitationsResponse {
            invitations: views.iter().map(invitation).collect(),
            page: Some(info),
        }))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let caller = caller(&request)?.clone();
        let view = self.service.accept_invitation(&caller, &request.into_inner().invitation_id).await?;
        Ok(Response::new(member(&view)))
    }

    async fn decline_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let caller = caller(&request)?.clone();
        Ok(Response::new(invitation(
            &self.service.decline_invitation(&caller, &request.into_inner().invitation_id).await?,
        )))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        self.service.remove_member(&caller, &r.org_id, &r.user_id).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let r = request.into_inner();
        let principal = r
            .principal
            .ok_or_else(|| {
                Error::Validation(vec![keyplane_common::error::FieldViolation::new("principal", "is required")])
            })
            .and_then(|p| {
                Principal::try_from(p).map_err(|e| {
                    Error::Validation(vec![keyplane_common::error::FieldViolation::new("principal", e.to_string())])
                })
            })?;
        let action = Action::parse(&r.action).ok_or_else(|| {
            Error::Validation(vec![keyplane_common::error::FieldViolation::new("action", "is not a known action")])
        })?;
        let org_id = Uuid::parse_str(&r.org_id).map_err(|_| Error::OrgNotFound)?;
        let role = self.service.authorize(&principal, org_id, action).await?;
        Ok(Response::new(pb::AuthorizeResponse { role: role_to_proto(role).into() }))
    }

    async fn append_audit(
        &self,
        request: Request<pb::AppendAuditRequest>,
    ) -> Result<Response<pb::AppendAuditResponse>, Status> {
        let events: Vec<AuditRecord> = request.into_inner().events.iter().filter_map(AuditRecord::from_proto).collect();
        let stored = self.service.append_audit(events).await?;
        Ok(Response::new(pb::AppendAuditResponse { stored: u32::try_from(stored).unwrap_or(u32::MAX) }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let page = page(r.page.as_ref())?;
        let action = Some(r.action).filter(|a| !a.is_empty());
        let from = r.from.as_ref().and_then(time::from_proto);
        let to = r.to.as_ref().and_then(time::from_proto);
        let events = self.service.audit_log(&caller, &r.org_id, from, to, action, page).await?;
        let (events, info) = page.split(events, |e| e.id);
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(audit_event).collect(),
            page: Some(info),
        }))
    }
}
