//! `keyplane up`: every service and the gateway in one process, each on its own port,
//! talking gRPC over loopback exactly as they do when deployed apart.

use std::net::SocketAddr;

use keyplane_common::{
    config::{CommonConfig, ConfigError, Env, Mode, Target},
    runtime::Shared,
};
use keyplane_gateway::Peers;
use tokio::{net::TcpListener, task::JoinSet};
use tokio_util::sync::CancellationToken;

/// Every process's listener, bound before anything starts: peers learn the real ports,
/// and tests bind `127.0.0.1:0` with no race.
pub struct Listeners {
    pub identity: TcpListener,
    pub keys: TcpListener,
    pub orgs: TcpListener,
    pub usage: TcpListener,
    pub advisors: TcpListener,
    pub families: TcpListener,
    pub gateway: TcpListener,
}

impl Listeners {
    /// Binds every target at the address `addr_of` gives it.
    pub async fn bind(addr_of: impl Fn(Target) -> SocketAddr) -> std::io::Result<Self> {
        let bind = |t| TcpListener::bind(addr_of(t));
        Ok(Self {
            identity: bind(Target::Identity).await?,
            keys: bind(Target::Keys).await?,
            orgs: bind(Target::Orgs).await?,
            usage: bind(Target::Usage).await?,
            advisors: bind(Target::Advisors).await?,
            families: bind(Target::Families).await?,
            gateway: bind(Target::Gateway).await?,
        })
    }

    pub fn addr(&self, target: Target) -> SocketAddr {
        let listener = match target {
            Target::Identity => &self.identity,
            Target::Keys => &self.keys,
            Target::Orgs => &self.orgs,
            Target::Usage => &self.usage,
            Target::Advisors => &self.advisors,
            Target::Families => &self.families,
            Target::Gateway => &self.gateway,
        };
        listener.local_addr().expect("a bound listener has an address")
    }
}

/// The settings of every process of the platform.
#[derive(Debug, Clone)]
pub struct PlatformConfig {
    pub common: CommonConfig,
    pub migrate_on_start: bool,
    pub identity: keyplane_identity::Config,
    pub keys: keyplane_keys::Config,
    pub orgs: keyplane_orgs::Config,
    pub usage: keyplane_usage::Config,
    pub advisors: keyplane_advisors::Config,
    pub families: keyplane_families::Config,
    pub gateway: keyplane_gateway::Config,
}

impl PlatformConfig {
    /// Reads the settings of all-in-one mode; `addr_of` gives each process's address, which
    /// its peers call.
    pub fn from_env(mut env: Env, addr_of: impl Fn(Target) -> SocketAddr) -> Result<Self, ConfigError> {
        let mode = Mode::AllInOne;
        let url = |t| Some(format!("http://{}", addr_of(t)));
        let common = CommonConfig::from_env(&mut env, mode);
        let dataplane_secret = keyplane_gateway::config::dataplane_secret(&mut env, mode);
        let peers = Peers {
            identity: url(Target::Identity),
            keys: url(Target::Keys),
            orgs: url(Target::Orgs),
            usage: url(Target::Usage),
            advisors: url(Target::Advisors),
            families: url(Target::Families),
        };
        let config = Self {
            migrate_on_start: env.bool_or("KEYPLANE_MIGRATE_ON_START", true),
            identity: keyplane_identity::Config::from_env(&mut env, &common, mode, url(Target::Keys)),
            keys: keyplane_keys::Config::from_env(&mut env, &common, mode, url(Target::Orgs)),
            orgs: keyplane_orgs::Config::from_env(&mut env, &common, mode, url(Target::Identity), url(Target::Keys)),
            usage: keyplane_usage::Config::from_env(&mut env, &common, mode),
            advisors: keyplane_advisors::Config::from_env(&mut env, &common, mode),
            families: keyplane_families::Config::from_env(&mut env, &common, mode, dataplane_secret.clone()),
            gateway: keyplane_gateway::Config::from_env(&mut env, &common, mode, peers, dataplane_secret),
            common,
        };
        env.finish()?;
        Ok(config)
    }

    /// Where each process listens.
    pub fn listen_addr(&self, target: Target) -> SocketAddr {
        match target {
            Target::Identity => self.identity.listen,
            Target::Keys => self.keys.listen,
            Target::Orgs => self.orgs.listen,
            Target::Usage => self.usage.listen,
            Target::Advisors => self.advisors.listen,
            Target::Families => self.families.listen,
            Target::Gateway => self.gateway.listen,
        }
    }

    pub fn databases(&self) -> Vec<(Target, String)> {
        vec![
            (Target::Identity, self.identity.database_url.clone()),
            (Target::Keys, self.keys.database_url.clone()),
            (Target::Orgs, self.orgs.database_url.clone()),
            (Target::Usage, self.usage.database_url.clone()),
            (Target::Advisors, self.advisors.database_url.clone()),
            (Target::Families, self.families.database_url.clone()),
        ]
    }
}

/// Runs the whole platform until `shutdown` (or until one part fails, which stops the rest).
pub async fn run(config: PlatformConfig, listeners: Listeners, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.migrate_on_start {
        crate::migrate::run(&config.databases()).await?;
    }
    let shared = Shared::new(config.common.clone())?;
    let mut tasks = JoinSet::new();
    let stop = shutdown.clone();
    tasks.spawn(named(
        "identity",
        keyplane_identity::serve(config.identity, shared.clone(), listeners.identity, stop.clone()),
    ));
    tasks.spawn(named("keys", keyplane_keys::serve(config.keys, shared.clone(), listeners.keys, stop.clone())));
    tasks.spawn(named("orgs", keyplane_orgs::serve(config.orgs, shared.clone(), listeners.orgs, stop.clone())));
    tasks.spawn(named("usage", keyplane_usage::serve(config.usage, shared.clone(), listeners.usage, stop.clone())));
    tasks.spawn(named(
        "advisors",
        keyplane_advisors::serve(config.advisors, shared.clone(), listeners.advisors, stop.clone()),
    ));
    tasks.spawn(named("families", keyplane_families::serve(config.families, listeners.families, stop.clone())));
    tasks.spawn(named("gateway", keyplane_gateway::serve(config.gateway, shared, listeners.gateway, stop.clone())));
    let mut first_error = None;
    while let Some(finished) = tasks.join_next().await {
        let result = finished.map_err(anyhow::Error::from).and_then(|r| r);
        if let Err(e) = result {
            tracing::error!(error = %e, "a part of the platform stopped; stopping the rest");
            first_error.get_or_insert(e);
            shutdown.cancel();
        } else if !shutdown.is_cancelled() {
            tracing::error!("a part of the platform stopped unexpectedly; stopping the rest");
            shutdown.cancel();
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn named(name: &'static str, task: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    task.await.map_err(|e| e.context(format!("{name} failed")))
}
