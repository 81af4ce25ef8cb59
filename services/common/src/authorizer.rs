//! Asking the orgs service whether a principal may act on an org: a service authorizes
//! its own operations, but the rules live in one place.
//!
//! Not cached: a member removed or demoted loses the power at its very next call, and the
//! answer is needed only on management calls, never on the data plane's hot path.

use keyplane_proto::orgs::v1::{AuthorizeRequest, Role as PbRole, orgs_service_client::OrgsServiceClient};
use tonic::{Status, transport::Channel};
use uuid::Uuid;

use crate::{
    authz::{Action, Role},
    grpc::Outbound,
    principal::Principal,
};

#[derive(Clone)]
pub struct Authorizer {
    orgs: OrgsServiceClient<Channel>,
    outbound: Outbound,
}

impl Authorizer {
    pub fn new(orgs: OrgsServiceClient<Channel>, outbound: Outbound) -> Self {
        Self { orgs, outbound }
    }

    /// Ok with the role the principal acts with (a user's own; a key's or token's
    /// creator's), or the orgs service's refusal: NOT_FOUND for another tenant's org,
    /// PERMISSION_DENIED for too little role or scope.
    pub async fn require(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Option<Role>, Status> {
        let request = self.outbound.request(
            AuthorizeRequest {
                principal: Some(principal.into()),
                org_id: org_id.to_string(),
                action: action.as_str().to_owned(),
            },
            None,
        );
        let answer = self.orgs.clone().authorize(request).await?.into_inner();
        Ok(match PbRole::try_from(answer.role).unwrap_or(PbRole::Unspecified) {
            PbRole::Owner => Some(Role::Owner),
            PbRole::Admin => Some(Role::Admin),
            PbRole::Member => Some(Role::Member),
            PbRole::Unspecified => None,
        })
    }
}
