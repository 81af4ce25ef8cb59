//! The keys service's settings.

use std::net::SocketAddr;

use keyplane_common::config::{CommonConfig, Env, Mode, Target};

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    pub orgs_addr: String,
    pub db_max_connections: u32,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, orgs_addr: Option<String>) -> Self {
        Self {
            listen: common.listen_addr(env, Target::Keys, mode),
            database_url: common.database_url(env, Target::Keys),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
            db_max_connections: env.parse_or("KEYPLANE_KEYS_DB_MAX_CONNECTIONS", 10),
        }
    }
}
