use keyplane_proto::orgs::v1::*;

super::rpcs!(orgs {
    ensure_dev_org(EnsureDevOrgRequest) -> EnsureDevOrgResponse;
    create_org(CreateOrgRequest) -> Org;
    list_orgs(ListOrgsRequest) -> ListOrgsResponse;
    get_org(GetOrgRequest) -> Org;
    update_org(UpdateOrgRequest) -> Org;
    delete_org(DeleteOrgRequest) -> DeleteOrgResponse;
    list_members(ListMembersRequest) -> ListMembersResponse;
    add_member(AddMemberRequest) -> Member;
    remove_member(RemoveMemberRequest) -> RemoveMemberResponse;
    list_audit_events(ListAuditEventsRequest) -> ListAuditEventsResponse;
});
