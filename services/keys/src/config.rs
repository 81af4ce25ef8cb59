//! The keys service's settings.

use keyplane_common::{
    config::{CommonConfig, Env, Mode, ServiceBase, Target},
    rate_limit::RateLimit,
};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub orgs_addr: String,
    /// The most a key's own rate limit may allow.
    pub max_key_rate: RateLimit,
    /// The gateway's limit for keys without their own (the same setting): what a key
    /// without a limit of its own may give another.
    pub default_key_rate: RateLimit,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, orgs_addr: Option<String>) -> Self {
        Self {
            base: ServiceBase::from_env(env, common, Target::Keys, mode),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
            max_key_rate: env.rate_or("KEYPLANE_RATE_LIMIT_KEY_MAX", RateLimit { requests: 60_000, per_seconds: 60 }),
            default_key_rate: env.rate_or("KEYPLANE_RATE_LIMIT_KEY", RateLimit { requests: 6_000, per_seconds: 60 }),
        }
    }
}
