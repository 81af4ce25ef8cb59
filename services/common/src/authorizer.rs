//! Asking the orgs service whether a principal may act on an org, cached briefly: a
//! service authorizes its own operations, but the rules live in one place.

use std::time::Duration;

use keyplane_proto::orgs::v1::{AuthorizeRequest, Role as PbRole, orgs_service_client::OrgsServiceClient};
use tonic::{Status, transport::Channel};
use uuid::Uuid;

use crate::{
    authz::{Action, Role},
    grpc::Outbound,
    principal::Principal,
};

/// How long an allowed answer is reused: a removed member keeps access this long at most.
const ALLOWED_TTL: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct Authorizer {
    orgs: OrgsServiceClient<Channel>,
    outbound: Outbound,
    allowed: moka::future::Cache<(String, Uuid, Action), Option<Role>>,
}

impl Authorizer {
    pub fn new(orgs: OrgsServiceClient<Channel>, outbound: Outbound) -> Self {
        let allowed = moka::future::Cache::builder().max_capacity(100_000).time_to_live(ALLOWED_TTL).build();
        Self { orgs, outbound, allowed }
    }

    /// Ok with the member's role (None for keys and tokens), or the orgs service's refusal:
    /// NOT_FOUND for another tenant's org, PERMISSION_DENIED for too little role or scope.
    pub async fn require(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Option<Role>, Status> {
        let key = (principal.cache_key(), org_id, action);
        if let Some(role) = self.allowed.get(&key).await {
            return Ok(role);
        }
        let request = self.outbound.request(
            AuthorizeRequest {
                principal: Some(principal.into()),
                org_id: org_id.to_string(),
                action: action.as_str().to_owned(),
            },
            None,
        );
        let answer = self.orgs.clone().authorize(request).await?.into_inner();
        let role = match PbRole::try_from(answer.role).unwrap_or(PbRole::Unspecified) {
            PbRole::Owner => Some(Role::Owner),
            PbRole::Admin => Some(Role::Admin),
            PbRole::Member => Some(Role::Member),
            PbRole::Unspecified => None,
        };
        self.allowed.insert(key, role).await;
        Ok(role)
    }
}
