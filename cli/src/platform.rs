//! `keyplane up`: every service and the gateway in one process, each on its own port,
//! talking gRPC over loopback exactly as they do when deployed apart.

use std::{collections::HashSet, net::SocketAddr, time::Duration};

use futures_util::future::BoxFuture;

use keyplane_common::{
    config::{CommonConfig, ConfigError, Env, Mode, Target},
    runtime::Shared,
};
use keyplane_gateway::Peers;
use tokio::{net::TcpListener, sync::mpsc};
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
        let dataplane_secrets = keyplane_common::dataplane::secrets(&mut env, mode);
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
            identity: keyplane_identity::Config::from_env(
                &mut env,
                &common,
                mode,
                url(Target::Keys),
                url(Target::Orgs),
            ),
            keys: keyplane_keys::Config::from_env(&mut env, &common, mode, url(Target::Orgs)),
            orgs: keyplane_orgs::Config::from_env(&mut env, &common, mode, url(Target::Identity), url(Target::Keys)),
            usage: keyplane_usage::Config::from_env(&mut env, &common, mode, url(Target::Orgs)),
            advisors: keyplane_advisors::Config::from_env(&mut env, &common, mode, url(Target::Orgs)),
            families: keyplane_families::Config::from_env(&mut env, &common, mode, dataplane_secrets.clone()),
            gateway: keyplane_gateway::Config::from_env(&mut env, &common, mode, peers, dataplane_secrets),
            common,
        };
        env.finish()?;
        Ok(config)
    }

    pub fn databases(&self) -> Vec<(Target, String)> {
        vec![
            (Target::Identity, self.identity.base.database_url.clone()),
            (Target::Keys, self.keys.base.database_url.clone()),
            (Target::Orgs, self.orgs.base.database_url.clone()),
            (Target::Usage, self.usage.base.database_url.clone()),
            (Target::Advisors, self.advisors.base.database_url.clone()),
            (Target::Families, self.families.base.database_url.clone()),
        ]
    }
}

/// How long one stage of the shutdown may take before the next stage starts anyway.
const STAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the whole platform until `shutdown` (or until one part fails, which stops the rest).
///
/// Shutdown goes in stages, so nothing in flight is lost: first the gateway and the
/// backends (they drain requests and flush key use to the keys service), then the
/// services (the keys outbox delivers its last audit events to orgs), then orgs.
pub async fn run(config: PlatformConfig, listeners: Listeners, shutdown: CancellationToken) -> anyhow::Result<()> {
    if config.migrate_on_start {
        crate::migrate::run(&config.databases()).await?;
    }
    let shared = Shared::new(config.common.clone())?;
    if let Some(addr) = config.common.metrics_listen {
        crate::metrics_port::spawn(&shared, addr, shutdown.clone()).await?;
    }
    let (front, middle, back) = (shutdown.clone(), CancellationToken::new(), CancellationToken::new());
    let (done, mut finished) = mpsc::unbounded_channel();
    let spawn = |name: &'static str, task: BoxFuture<'static, anyhow::Result<()>>| {
        let done = done.clone();
        tokio::spawn(async move {
            let result = task.await.map_err(|e| e.context(format!("{name} failed")));
            let _ = done.send((name, result));
        });
    };
    spawn(
        "gateway",
        Box::pin(keyplane_gateway::serve(config.gateway, shared.clone(), listeners.gateway, front.clone())),
    );
    spawn("families", Box::pin(keyplane_families::serve(config.families, listeners.families, front.clone())));
    spawn(
        "identity",
        Box::pin(keyplane_identity::serve(config.identity, shared.clone(), listeners.identity, middle.clone())),
    );
    spawn("keys", Box::pin(keyplane_keys::serve(config.keys, shared.clone(), listeners.keys, middle.clone())));
    spawn("usage", Box::pin(keyplane_usage::serve(config.usage, shared.clone(), listeners.usage, middle.clone())));
    spawn(
        "advisors",
        Box::pin(keyplane_advisors::serve(config.advisors, shared.clone(), listeners.advisors, middle.clone())),
    );
    spawn("orgs", Box::pin(keyplane_orgs::serve(config.orgs, shared, listeners.orgs, back.clone())));
    drop(done);

    let mut stopped = HashSet::new();
    let mut first_error = None;
    let mut note = |name: &'static str, result: anyhow::Result<()>, stopped: &mut HashSet<&'static str>| {
        stopped.insert(name);
        if let Err(e) = result {
            tracing::error!(error = %format!("{e:#}"), "a part of the platform failed");
            first_error.get_or_insert(e);
        }
    };
    tokio::select! {
        biased;
        () = shutdown.cancelled() => {}
        Some((name, result)) = finished.recv() => {
            if result.is_ok() && !shutdown.is_cancelled() {
                tracing::error!(part = name, "a part of the platform stopped unexpectedly; stopping the rest");
            }
            note(name, result, &mut stopped);
        }
    }
    let stages: [(&CancellationToken, &[&str]); 3] =
        [(&front, &["gateway", "families"]), (&middle, &["identity", "keys", "usage", "advisors"]), (&back, &["orgs"])];
    for (token, parts) in stages {
        token.cancel();
        let deadline = tokio::time::sleep(STAGE_TIMEOUT);
        tokio::pin!(deadline);
        while !parts.iter().all(|p| stopped.contains(p)) {
            tokio::select! {
                () = &mut deadline => {
                    tracing::warn!(?parts, "shutdown stage timed out");
                    break;
                }
                next = finished.recv() => match next {
                    Some((name, result)) => note(name, result, &mut stopped),
                    None => break,
                },
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}
