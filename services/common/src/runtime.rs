//! What every service of one process shares: settings, the cache and bus, and the means
//! to call its peers.

use std::sync::Arc;

use tonic::transport::Channel;

use crate::{
    cache::{Cache, CacheError},
    config::CommonConfig,
    grpc::{self, Outbound},
    internal_auth::InternalAuth,
    metrics::Metrics,
};

#[derive(Clone)]
pub struct Shared {
    pub config: CommonConfig,
    pub cache: Cache,
    /// The process's metrics: every service of one process reports into one registry.
    pub metrics: Arc<Metrics>,
}

impl Shared {
    /// The time rules are decided at.
    pub fn clock(&self) -> &crate::time::Clock {
        &self.config.clock
    }
}

impl Shared {
    /// Redis when configured, else the in-process cache and bus.
    pub fn new(config: CommonConfig) -> Result<Self, CacheError> {
        let cache = match &config.redis_url {
            Some(url) => Cache::redis(url, &config.redis_prefix)?,
            None => Cache::memory(&config.redis_prefix),
        };
        Ok(Self { config, cache, metrics: Arc::default() })
    }

    pub fn internal_auth(&self, service: &str) -> Arc<InternalAuth> {
        Arc::new(InternalAuth::new(service, &self.config.internal_secrets))
    }

    pub fn outbound(&self, service: &str) -> Outbound {
        Outbound::new(self.internal_auth(service))
    }

    /// A channel to a peer, with the platform's per-call deadline.
    pub fn channel(&self, addr: &str) -> Result<Channel, tonic::transport::Error> {
        grpc::channel(addr, self.config.rpc_timeout)
    }
}
