//! What the keys service asks of the orgs service: whether a principal may act on an org
//! (the rules live there, in one place), and the delivery of its audit events.
//!
//! Authorization is not cached: a member removed or demoted loses the power at its very
//! next call, and the answer is needed only on management calls, never on the data
//! plane's hot path.

use std::sync::Arc;

use keyplane_common::{
    audit::AuditRecord,
    authz::{Action, Role},
    grpc::Outbound,
    outbox,
    principal::Principal,
    time,
};
use keyplane_proto::orgs::v1::{AppendAuditRequest, AuthorizeRequest, orgs_service_client::OrgsServiceClient};
use tonic::transport::Channel;
use uuid::Uuid;

use crate::{domain::grant::Membership, error::Error};

/// Who a principal acts as in an org: its role (a key's or token's creator's), and the
/// membership that gives it (None for services).
#[derive(Clone, Copy, Debug)]
pub struct Standing {
    pub role: Option<Role>,
    pub membership: Option<Membership>,
}

#[derive(Clone)]
pub struct Orgs {
    client: OrgsServiceClient<Channel>,
    outbound: Outbound,
}

impl Orgs {
    pub fn new(client: OrgsServiceClient<Channel>, outbound: Outbound) -> Self {
        Self { client, outbound }
    }

    /// Ok with the standing the principal acts on (a user's own membership; a key's or
    /// token's creator's), or the orgs service's refusal as it is: NOT_FOUND for another
    /// tenant's org, PERMISSION_DENIED for too little role or scope.
    pub async fn require(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Standing, Error> {
        let request = self.outbound.request(
            AuthorizeRequest {
                principal: Some(principal.into()),
                org_id: org_id.to_string(),
                action: action.as_str().to_owned(),
            },
            None,
        );
        let answer = self.client.clone().authorize(request).await.map_err(Error::upstream)?.into_inner();
        let since = answer.member_since.as_ref().and_then(time::from_proto);
        let membership = principal.user_id().zip(since).map(|(user_id, since)| Membership { user_id, since });
        Ok(Standing { role: Role::from_proto(answer.role), membership })
    }

    /// The outbox relay's delivery of audit events to `orgs.AppendAudit`, which stores each
    /// event id once.
    pub fn deliver_audit(&self) -> outbox::Deliver {
        let orgs = self.clone();
        Arc::new(move |payloads| {
            let orgs = orgs.clone();
            Box::pin(async move {
                let events = payloads
                    .iter()
                    .filter_map(|p| serde_json::from_value::<AuditRecord>(p.clone()).ok())
                    .map(|r| r.to_proto())
                    .collect();
                let request = orgs.outbound.request(AppendAuditRequest { events }, None);
                orgs.client.clone().append_audit(request).await.map(|_| ()).map_err(|status| status.to_string())
            })
        })
    }
}
