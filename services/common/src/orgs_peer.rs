//! What every service asks of the orgs service: whether a principal may act on an org
//! (the rules live there, in one place), and the delivery of its audit events to the one
//! audit log. Written once here, since keys, usage, identity and advisors all need it.
//!
//! Authorization is not cached: a member removed or demoted loses the power at its very
//! next call, and the answer is needed only on management calls, never on the data
//! plane's hot path.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use keyplane_proto::orgs::v1::{AppendAuditRequest, AuthorizeRequest, orgs_service_client::OrgsServiceClient};
use tonic::{Status, transport::Channel};
use uuid::Uuid;

use crate::{
    audit::AuditRecord,
    authz::{Action, Role},
    grpc::Outbound,
    outbox,
    principal::Principal,
    time,
};

/// The orgs service's yes: the role the principal acts with (a key's or token's creator's;
/// none for services) and since when the membership that gives it exists.
#[derive(Clone, Copy, Debug)]
pub struct Authorized {
    pub role: Option<Role>,
    pub member_since: Option<DateTime<Utc>>,
}

#[derive(Clone)]
pub struct OrgsPeer {
    client: OrgsServiceClient<Channel>,
    outbound: Outbound,
}

impl OrgsPeer {
    pub fn new(channel: Channel, outbound: Outbound) -> Self {
        Self { client: OrgsServiceClient::new(channel), outbound }
    }

    /// Ok, or the orgs service's refusal as it is: NOT_FOUND for another tenant's org,
    /// PERMISSION_DENIED for too little role or scope.
    pub async fn authorize(&self, principal: &Principal, org_id: Uuid, action: Action) -> Result<Authorized, Status> {
        let request = self.outbound.request(
            AuthorizeRequest {
                principal: Some(principal.into()),
                org_id: org_id.to_string(),
                action: action.as_str().to_owned(),
            },
            None,
        );
        let answer = self.client.clone().authorize(request).await?.into_inner();
        Ok(Authorized {
            role: Role::from_proto(answer.role),
            member_since: answer.member_since.as_ref().and_then(time::from_proto),
        })
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
