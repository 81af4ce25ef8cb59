//! What the usage service asks of the keys service: whether a key belongs to an org, so
//! that a filter on another tenant's key is a 404, as everywhere else.

use keyplane_common::{grpc::Outbound, principal::Principal};
use keyplane_proto::keys::v1::{GetKeyRequest, keys_service_client::KeysServiceClient};
use tonic::{Code, Status, transport::Channel};
use uuid::Uuid;

#[derive(Clone)]
pub struct KeysPeer {
    client: KeysServiceClient<Channel>,
    outbound: Outbound,
}

impl KeysPeer {
    pub fn new(channel: Channel, outbound: Outbound) -> Self {
        Self { client: KeysServiceClient::new(channel), outbound }
    }

    /// Whether `key_id` is an API key of `org_id` (asked as the usage service itself: the
    /// caller's own right to the org was decided already).
    pub async fn belongs(&self, org_id: Uuid, key_id: Uuid) -> Result<bool, Status> {
        let service = Principal::Service { name: "usage".into() };
        let request = self
            .outbound
            .request(GetKeyRequest { org_id: org_id.to_string(), key_id: key_id.to_string() }, Some(&service));
        match self.client.clone().get_key(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == Code::NotFound => Ok(false),
            Err(status) => Err(status),
        }
    }
}
