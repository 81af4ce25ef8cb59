//! The usage service's settings.

use keyplane_common::config::{CommonConfig, Env, Mode, ServiceBase, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub orgs_addr: String,
    /// Months of rollups kept, the current one included; older ones are dropped.
    pub retention_months: u32,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, orgs_addr: Option<String>) -> Self {
        let retention_months = env.parse_or("KEYPLANE_USAGE_RETENTION_MONTHS", 13u32);
        if !(1..=120).contains(&retention_months) {
            env.problem("KEYPLANE_USAGE_RETENTION_MONTHS", "must be 1 to 120");
        }
        Self {
            base: ServiceBase::from_env(env, common, Target::Usage, mode),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
            retention_months,
        }
    }
}
