//! The keys service's settings.

use keyplane_common::config::{CommonConfig, Env, Mode, ServiceBase, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub orgs_addr: String,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, orgs_addr: Option<String>) -> Self {
        Self {
            base: ServiceBase::from_env(env, common, Target::Keys, mode),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
        }
    }
}
