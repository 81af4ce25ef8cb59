use keyplane_proto::orgs::v1::*;

super::rpcs!(orgs {
    ensure_dev_org(EnsureDevOrgRequest) -> EnsureDevOrgResponse;
    create_org(CreateOrgRequest) -> Org;
    list_orgs(ListOrgsRequest) -> ListOrgsResponse;
    get_org(GetOrgRequest) -> Org;
    update_org(UpdateOrgRequest) -> Org;
    delete_org(DeleteOrgRequest) -> DeleteOrgResponse;
    list_members(ListMembersRequest) -> ListMembersResponse;
    update_member_role(UpdateMemberRoleRequest) -> Member;
    create_invitation(CreateInvitationRequest) -> Invitation;
    list_invitations(ListInvitationsRequest) -> ListInvitationsResponse;
    revoke_invitation(RevokeInvitationRequest) -> Invitation;
    list_my_invitations(ListMyInvitationsRequest) -> ListInvitationsResponse;
    accept_invitation(RespondToInvitationRequest) -> Member;
    decline_invitation(RespondToInvitationRequest) -> Invitation;
    remove_member(RemoveMemberRequest) -> RemoveMemberResponse;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse;
});
