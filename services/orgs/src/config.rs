//! The orgs service's settings.

use keyplane_common::config::{CommonConfig, Env, Mode, ServiceBase, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub identity_addr: String,
    pub keys_addr: String,
    /// Where users reach the console, for links in mail.
    pub public_url: Option<String>,
}

impl Config {
    pub fn from_env(
        env: &mut Env,
        common: &CommonConfig,
        mode: Mode,
        identity_addr: Option<String>,
        keys_addr: Option<String>,
    ) -> Self {
        Self {
            base: ServiceBase::from_env(env, common, Target::Orgs, mode),
            identity_addr: env.peer_addr(Target::Identity, identity_addr),
            keys_addr: env.peer_addr(Target::Keys, keys_addr),
            public_url: env.get("KEYPLANE_PUBLIC_URL").map(str::to_owned),
        }
    }
}
