//! The OrgsService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{
    audit::AuditRecord,
    authz::{Action, Role},
    error::FieldViolation,
    internal_auth::split,
    page::Page,
    principal::Principal,
    time,
};
use keyplane_proto::{
    orgs::v1::{self as pb, orgs_service_server::OrgsService},
    types::v1::{PageInfo, PageRequest},
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::org::Org,
    error::Error,
    service::{InvitationView, MemberView, OrgInput, Service},
    store::{AuditFilter, OrgChanges},
};

pub struct OrgsGrpc {
    service: Arc<Service>,
}

impl OrgsGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

fn page(p: Option<&PageRequest>) -> Result<Page, Status> {
    Page::from_proto(p).map_err(|v| Error::Validation(vec![v]).into())
}

fn org(o: &Org) -> pb::Org {
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

fn member(view: &MemberView) -> pb::Member {
    let (email, name) = view.user.as_ref().map(|u| (u.email.clone(), u.name.clone())).unwrap_or_default();
    pb::Member {
        user_id: view.member.user_id.to_string(),
        email,
        name,
        role: Role::to_proto(Some(view.member.role)).into(),
        joined_at: Some(time::to_proto(view.member.joined_at)),
    }
}

fn invitation(view: &InvitationView) -> pb::Invitation {
    let i = &view.invitation;
    pb::Invitation {
        id: i.id.to_string(),
        org_id: i.org_id.to_string(),
        email: i.email.clone(),
        role: Role::to_proto(Some(i.role)).into(),
        status: i.status_at(time::now()).to_owned(),
        invited_by: i.invited_by.map(|u| u.to_string()).unwrap_or_default(),
        created_at: Some(time::to_proto(i.created_at)),
        expires_at: Some(time::to_proto(i.expires_at)),
        responded_at: i.responded_at.map(time::to_proto),
        org_name: view.org_name.clone(),
    }
}

fn invitations(views: &[InvitationView], next_cursor: String) -> pb::ListInvitationsResponse {
    pb::ListInvitationsResponse {
        invitations: views.iter().map(invitation).collect(),
        page: Some(PageInfo { next_cursor }),
    }
}

#[tonic::async_trait]
impl OrgsService for OrgsGrpc {
    async fn ensure_dev_org(
        &self,
        request: Request<pb::EnsureDevOrgRequest>,
    ) -> Result<Response<pb::EnsureDevOrgResponse>, Status> {
        let (caller, r) = split(request)?;
        let (o, created) = self.service.ensure_dev_org(&caller, &r.name).await?;
        Ok(Response::new(pb::EnsureDevOrgResponse { org: Some(org(&o)), created }))
    }

    async fn create_org(&self, request: Request<pb::CreateOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let (caller, r) = split(request)?;
        let input = OrgInput { name: r.name, description: r.description, website_url: r.website_url };
        Ok(Response::new(org(&self.service.create_org(&caller, input).await?)))
    }

    async fn list_orgs(&self, request: Request<pb::ListOrgsRequest>) -> Result<Response<pb::ListOrgsResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let orgs = self.service.list_orgs(&caller, page).await?;
        let (orgs, next_cursor) = page.split(orgs, |o| o.id);
        Ok(Response::new(pb::ListOrgsResponse {
            orgs: orgs.iter().map(org).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }

    async fn get_org(&self, request: Request<pb::GetOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(org(&self.service.get_org(&caller, &r.org_id).await?)))
    }

    async fn update_org(&self, request: Request<pb::UpdateOrgRequest>) -> Result<Response<pb::Org>, Status> {
        let (caller, r) = split(request)?;
        let changes = OrgChanges { name: r.name, description: r.description, website_url: r.website_url };
        Ok(Response::new(org(&self.service.update_org(&caller, &r.org_id, changes).await?)))
    }

    async fn delete_org(
        &self,
        request: Request<pb::DeleteOrgRequest>,
    ) -> Result<Response<pb::DeleteOrgResponse>, Status> {
        let (caller, r) = split(request)?;
        self.service.delete_org(&caller, &r.org_id).await?;
        Ok(Response::new(pb::DeleteOrgResponse {}))
    }

    async fn list_members(
        &self,
        request: Request<pb::ListMembersRequest>,
    ) -> Result<Response<pb::ListMembersResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let views = self.service.list_members(&caller, &r.org_id, page).await?;
        let (views, next_cursor) = page.split(views, |v| v.member.user_id);
        Ok(Response::new(pb::ListMembersResponse {
            members: views.iter().map(member).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }

    async fn update_member_role(
        &self,
        request: Request<pb::UpdateMemberRoleRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let (caller, r) = split(request)?;
        let view = self.service.update_member_role(&caller, &r.org_id, &r.user_id, Role::from_proto(r.role)).await?;
        Ok(Response::new(member(&view)))
    }

    async fn remove_member(
        &self,
        request: Request<pb::RemoveMemberRequest>,
    ) -> Result<Response<pb::RemoveMemberResponse>, Status> {
        let (caller, r) = split(request)?;
        self.service.remove_member(&caller, &r.org_id, &r.user_id).await?;
        Ok(Response::new(pb::RemoveMemberResponse {}))
    }

    async fn create_invitation(
        &self,
        request: Request<pb::CreateInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let (caller, r) = split(request)?;
        let view = self.service.create_invitation(&caller, &r.org_id, &r.email, Role::from_proto(r.role)).await?;
        Ok(Response::new(invitation(&view)))
    }

    async fn list_invitations(
        &self,
        request: Request<pb::ListInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let views = self.service.list_invitations(&caller, &r.org_id, page).await?;
        let (views, next_cursor) = page.split(views, |v| v.invitation.id);
        Ok(Response::new(invitations(&views, next_cursor)))
    }

    async fn revoke_invitation(
        &self,
        request: Request<pb::RevokeInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(invitation(&self.service.revoke_invitation(&caller, &r.org_id, &r.invitation_id).await?)))
    }

    async fn list_my_invitations(
        &self,
        request: Request<pb::ListMyInvitationsRequest>,
    ) -> Result<Response<pb::ListInvitationsResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let views = self.service.list_my_invitations(&caller, page).await?;
        let (views, next_cursor) = page.split(views, |v| v.invitation.id);
        Ok(Response::new(invitations(&views, next_cursor)))
    }

    async fn accept_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Member>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(member(&self.service.accept_invitation(&caller, &r.invitation_id).await?)))
    }

    async fn decline_invitation(
        &self,
        request: Request<pb::RespondToInvitationRequest>,
    ) -> Result<Response<pb::Invitation>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(invitation(&self.service.decline_invitation(&caller, &r.invitation_id).await?)))
    }

    async fn authorize(
        &self,
        request: Request<pb::AuthorizeRequest>,
    ) -> Result<Response<pb::AuthorizeResponse>, Status> {
        let r = request.into_inner();
        let principal = r
            .principal
            .ok_or_else(|| FieldViolation::new("principal", "is required"))
            .and_then(|p| Principal::try_from(p).map_err(|e| FieldViolation::new("principal", e.to_string())))
            .map_err(Error::from)?;
        let action = Action::parse(&r.action)
            .ok_or_else(|| Error::from(FieldViolation::new("action", "is not a known action")))?;
        let org_id = Uuid::parse_str(&r.org_id).map_err(|_| Error::OrgNotFound)?;
        let membership = self.service.standing(&principal, org_id, action).await?;
        Ok(Response::new(pb::AuthorizeResponse {
            role: Role::to_proto(membership.as_ref().map(|m| m.role)).into(),
            member_since: membership.map(|m| time::to_proto(m.joined_at)),
        }))
    }

    async fn append_audit(
        &self,
        request: Request<pb::AppendAuditRequest>,
    ) -> Result<Response<pb::AppendAuditResponse>, Status> {
        let (caller, r) = split(request)?;
        let events: Vec<AuditRecord> = r.events.iter().filter_map(AuditRecord::from_proto).collect();
        let stored = self.service.append_audit(&caller, events).await?;
        Ok(Response::new(pb::AppendAuditResponse { stored: u32::try_from(stored).unwrap_or(u32::MAX) }))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<Response<pb::ListAuditEventsResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let filter = AuditFilter {
            from: r.from.as_ref().and_then(time::from_proto),
            to: r.to.as_ref().and_then(time::from_proto),
            action: Some(r.action).filter(|a| !a.is_empty()),
            // `type:id`, or an id of any type.
            actor: Some(r.actor).filter(|a| !a.is_empty()).map(|actor| match actor.split_once(':') {
                Some((kind, id)) => (Some(kind.to_owned()), id.to_owned()),
                None => (None, actor),
            }),
        };
        let events = self.service.audit_log(&caller, &r.org_id, filter, page).await?;
        let (events, next_cursor) = page.split(events, |e| e.id);
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.iter().map(AuditRecord::to_proto).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }
}
