//! The orgs service's settings.

use std::net::SocketAddr;

use keyplane_common::config::{CommonConfig, Env, Mode, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub identity_addr: String,
    pub keys_addr: String,
    pub db_max_connections: u32,
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
            listen: common.listen_addr(env, Target::Orgs, mode),
            database_url: common.database_url(env, Target::Orgs),
            identity_addr: env.peer_addr(Target::Identity, identity_addr),
            keys_addr: env.peer_addr(Target::Keys, keys_addr),
            db_max_connections: env.parse_or("KEYPLANE_ORGS_DB_MAX_CONNECTIONS", 10),
            public_url: env.get("KEYPLANE_PUBLIC_URL").map(str::to_owned),
        }
    }
}
