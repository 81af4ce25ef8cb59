//! What every handler shares; cloned per request, so one `Arc`.

use std::{ops::Deref, sync::Arc, time::Duration};

use keyplane_common::{cache::Cache, credential::KeyFormat};

use crate::{
    forwarder::Forwarder, limiter::Limiter, meter::UseMeter, upstream::Upstream, usage_counter::UsageCounter,
    verifier::Verifier,
};

pub struct Inner {
    pub upstream: Upstream,
    pub verifier: Verifier,
    pub meter: Arc<UseMeter>,
    pub usage: Arc<UsageCounter>,
    pub forwarder: Arc<Forwarder>,
    pub cache: Cache,
    pub key_format: KeyFormat,
    pub trusted_proxies: crate::config::TrustedProxies,
    pub limiter: Arc<Limiter>,
    /// Seals the answers kept for `Idempotency-Key` replays.
    pub sealer: Arc<keyplane_common::crypto::Sealer>,
    pub metrics: Arc<keyplane_common::metrics::Metrics>,
    pub limits: crate::config::Limits,
    pub request_timeout: Duration,
    /// The longest a request's body may pause before its end.
    pub body_idle: Duration,
    pub dev_mailbox: bool,
    /// Serve `/metrics` on the public port (only where the process has no metrics port).
    pub public_metrics: bool,
    /// GitHub's secret-scanning signing keys.
    pub github_keys: crate::github_keys::GithubKeys,
    /// Cancelled when the gateway starts draining: readiness then fails.
    pub draining: tokio_util::sync::CancellationToken,
    /// Org names for a key's whoami.
    pub org_names: crate::org_names::OrgNames,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}
