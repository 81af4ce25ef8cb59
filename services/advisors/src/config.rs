//! The advisors service's settings.

use keyplane_common::config::{CommonConfig, Env, Mode, ServiceBase, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub orgs_addr: String,
    /// Deliver to endpoints on loopback and private networks (a laptop's `keyplane up`);
    /// off in a deployment, where an org's endpoint must not reach the platform's inside.
    pub private_endpoints: bool,
    /// Where advisors reach the platform, for the response link in a delivery.
    pub public_url: Option<String>,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, orgs_addr: Option<String>) -> Self {
        common.require_encryption_key(env);
        Self {
            base: ServiceBase::from_env(env, common, Target::Advisors, mode),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
            private_endpoints: env.bool_or("KEYPLANE_ADVISOR_PRIVATE_ENDPOINTS", mode == Mode::AllInOne),
            public_url: env.get("KEYPLANE_PUBLIC_URL").map(str::to_owned),
        }
    }
}
