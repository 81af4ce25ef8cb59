//! `keyplane serve --target <name>`: one process of a deployment.

use keyplane_common::{
    config::{CommonConfig, ConfigError, Env, Mode, Target},
    runtime::Shared,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One target's settings, read and checked before anything starts.
pub enum TargetConfig {
    Identity(keyplane_identity::Config),
    Keys(keyplane_keys::Config),
    Orgs(keyplane_orgs::Config),
    Usage(keyplane_usage::Config),
    Advisors(keyplane_advisors::Config),
    Families(keyplane_families::Config),
    Gateway(keyplane_gateway::Config),
}

pub struct SingleConfig {
    pub common: CommonConfig,
    pub migrate_on_start: bool,
    pub target: TargetConfig,
}

impl SingleConfig {
    pub fn from_env(mut env: Env, target: Target) -> Result<Self, ConfigError> {
        let mode = Mode::Single;
        if target == Target::Families && env.get("KEYPLANE_INTERNAL_SECRET").is_none() {
            // The backend calls no service and is called only by the gateway, which signs
            // with the data-plane secret: it is not given the one that signs internal calls.
            env.set("KEYPLANE_INTERNAL_SECRET", String::from_utf8_lossy(&keyplane_common::config::random_secret()));
        }
        let common = CommonConfig::from_env(&mut env, mode);
        let config = match target {
            Target::Identity => {
                TargetConfig::Identity(keyplane_identity::Config::from_env(&mut env, &common, mode, None, None))
            }
            Target::Keys => TargetConfig::Keys(keyplane_keys::Config::from_env(&mut env, &common, mode, None)),
            Target::Orgs => TargetConfig::Orgs(keyplane_orgs::Config::from_env(&mut env, &common, mode, None, None)),
            Target::Usage => TargetConfig::Usage(keyplane_usage::Config::from_env(&mut env, &common, mode, None)),
            Target::Advisors => {
                TargetConfig::Advisors(keyplane_advisors::Config::from_env(&mut env, &common, mode, None))
            }
            Target::Families => {
                let secret = keyplane_common::dataplane::secrets(&mut env, mode);
                TargetConfig::Families(keyplane_families::Config::from_env(&mut env, &common, mode, secret))
            }
            Target::Gateway => {
                let secret = keyplane_common::dataplane::secrets(&mut env, mode);
                let peers = keyplane_gateway::Peers::default();
                TargetConfig::Gateway(keyplane_gateway::Config::from_env(&mut env, &common, mode, peers, secret))
            }
        };
        let migrate_on_start = env.bool_or("KEYPLANE_MIGRATE_ON_START", false);
        env.finish()?;
        Ok(Self { common, migrate_on_start, target: config })
    }

    fn listen_and_database(&self) -> (std::net::SocketAddr, Option<(Target, String)>) {
        match &self.target {
            TargetConfig::Identity(c) => (c.base.listen, Some((Target::Identity, c.base.database_url.clone()))),
            TargetConfig::Keys(c) => (c.base.listen, Some((Target::Keys, c.base.database_url.clone()))),
            TargetConfig::Orgs(c) => (c.base.listen, Some((Target::Orgs, c.base.database_url.clone()))),
            TargetConfig::Usage(c) => (c.base.listen, Some((Target::Usage, c.base.database_url.clone()))),
            TargetConfig::Advisors(c) => (c.base.listen, Some((Target::Advisors, c.base.database_url.clone()))),
            TargetConfig::Families(c) => (c.base.listen, Some((Target::Families, c.base.database_url.clone()))),
            TargetConfig::Gateway(c) => (c.listen, None),
        }
    }
}

pub async fn run(config: SingleConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let (listen, database) = config.listen_and_database();
    if config.migrate_on_start
        && let Some(database) = database
    {
        crate::migrate::run(&[database]).await?;
    }
    let listener = TcpListener::bind(listen).await.map_err(|e| anyhow::anyhow!("cannot listen on {listen}: {e}"))?;
    let metrics_listen = config.common.metrics_listen;
    let shared = Shared::new(config.common)?;
    if let Some(addr) = metrics_listen {
        crate::metrics_port::spawn(&shared, addr, shutdown.clone()).await?;
    }
    match config.target {
        TargetConfig::Identity(c) => keyplane_identity::serve(c, shared, listener, shutdown).await,
        TargetConfig::Keys(c) => keyplane_keys::serve(c, shared, listener, shutdown).await,
        TargetConfig::Orgs(c) => keyplane_orgs::serve(c, shared, listener, shutdown).await,
        TargetConfig::Usage(c) => keyplane_usage::serve(c, shared, listener, shutdown).await,
        TargetConfig::Advisors(c) => keyplane_advisors::serve(c, shared, listener, shutdown).await,
        TargetConfig::Families(c) => keyplane_families::serve(c, listener, shutdown).await,
        TargetConfig::Gateway(c) => keyplane_gateway::serve(c, shared, listener, shutdown).await,
    }
}
