//! Calls to the services: one thin function per RPC, each sending the caller's principal
//! and origin along (internal token, trace context, client address).

mod advisors;
mod identity;
mod keys;
mod orgs;
mod usage;

use keyplane_common::{config::Target, grpc::Outbound, internal_auth::Caller, runtime::Shared};
use keyplane_proto::{
    advisors::v1::advisors_service_client::AdvisorsServiceClient,
    identity::v1::identity_service_client::IdentityServiceClient, keys::v1::keys_service_client::KeysServiceClient,
    orgs::v1::orgs_service_client::OrgsServiceClient, usage::v1::usage_service_client::UsageServiceClient,
};
use tonic::{Request, transport::Channel};

use crate::config::Config;

#[derive(Clone)]
pub struct Upstream {
    pub identity: IdentityServiceClient<Channel>,
    pub keys: KeysServiceClient<Channel>,
    pub orgs: OrgsServiceClient<Channel>,
    pub usage: UsageServiceClient<Channel>,
    pub advisors: AdvisorsServiceClient<Channel>,
    /// Every service's channel, for readiness checks.
    pub channels: Vec<(Target, Channel)>,
    outbound: Outbound,
}

impl Upstream {
    pub fn connect(config: &Config, shared: &Shared) -> Result<Self, tonic::transport::Error> {
        let channels = vec![
            (Target::Identity, shared.channel(&config.identity_addr)?),
            (Target::Keys, shared.channel(&config.keys_addr)?),
            (Target::Orgs, shared.channel(&config.orgs_addr)?),
            (Target::Usage, shared.channel(&config.usage_addr)?),
            (Target::Advisors, shared.channel(&config.advisors_addr)?),
        ];
        let channel =
            |target| channels.iter().find(|(t, _)| *t == target).map(|(_, c)| c.clone()).expect("listed above");
        Ok(Self {
            identity: IdentityServiceClient::new(channel(Target::Identity)),
            keys: KeysServiceClient::new(channel(Target::Keys)),
            orgs: OrgsServiceClient::new(channel(Target::Orgs)),
            usage: UsageServiceClient::new(channel(Target::Usage)),
            advisors: AdvisorsServiceClient::new(channel(Target::Advisors)),
            channels,
            outbound: shared.outbound("gateway"),
        })
    }

    pub fn request<T>(&self, message: T, caller: &Caller) -> Request<T> {
        self.outbound.request_as(message, caller)
    }
}

/// Defines `Upstream::<rpc>(caller, request)` for each listed RPC of one client.
macro_rules! rpcs {
    ($client:ident { $( $rpc:ident($request:ty) -> $response:ty; )* }) => {
        impl crate::upstream::Upstream {
            $(
                pub async fn $rpc(
                    &self,
                    caller: &keyplane_common::internal_auth::Caller,
                    request: $request,
                ) -> Result<$response, crate::error::ApiError> {
                    let request = self.request(request, caller);
                    Ok(self.$client.clone().$rpc(request).await?.into_inner())
                }
            )*
        }
    };
}
pub(crate) use rpcs;
