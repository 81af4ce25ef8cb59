//! The gateway: the public REST surface of Keyplane. It authenticates every credential
//! (through the identity service, with a small local cache), translates REST to gRPC, and
//! forwards data-plane calls to the platform's backends. It keeps nothing durable.

// Components (what the gateway holds and calls), then the state that bundles them, then
// the middleware and handlers that use the state: dependencies run one way.
pub mod config;
mod error;
mod forwarder;
mod github_keys;
mod idempotency;
mod limiter;
mod mcp;
mod meter;
mod metrics;
mod org_names;
mod upstream;
mod usage_counter;
mod verifier;

mod state;

mod attribution;
mod auth;
mod context;
mod extract;
mod rest;
mod throttle;

use std::{net::SocketAddr, sync::Arc};

use axum::{
    Router,
    extract::{Request, State},
    middleware::{Next, from_fn_with_state},
    response::{IntoResponse, Response},
};
use keyplane_common::{credential_cache::LocalCredentialCache, runtime::Shared};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer, trace::TraceLayer};

pub use config::{Config, Peers};
use error::ApiError;
use state::{AppState, Inner};

/// Request bodies over this are refused with 413 before they are buffered.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Runs the gateway on `listener` until `shutdown`, then drains in-flight requests and
/// flushes what it counted.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let upstream = upstream::Upstream::connect(&config, &shared)?;
    let local = LocalCredentialCache::new(100_000);
    local.follow(&shared.cache, shutdown.clone());
    let meter = Arc::new(meter::UseMeter::new(meter::Bounds::default()));
    let metrics = Arc::new(metrics::Metrics::default());
    let usage = Arc::new(usage_counter::UsageCounter::new(
        usage_counter::Bounds::default(),
        shared.clock().clone(),
        Arc::clone(&metrics),
    ));
    // The flushers outlive the listener: they are cancelled only after requests drained.
    let flusher_stop = CancellationToken::new();
    let flushers = [
        meter.spawn_flusher(upstream.clone(), flusher_stop.clone()),
        usage.spawn_flusher(upstream.clone(), config.usage_flush_every, flusher_stop.clone()),
    ];
    let limiter =
        Arc::new(limiter::Limiter::new(shared.clock().clone(), &shared.cache, metrics.rate_limit_global.clone()));
    limiter.spawn_sync(config.limits.sync_every, shutdown.clone());
    let state = AppState(Arc::new(Inner {
        verifier: verifier::Verifier::new(local, upstream.clone(), shared.clock().clone()),
        upstream,
        meter,
        usage,
        forwarder: forwarder::Forwarder::new(
            config.routes.clone(),
            config.dataplane_secrets.clone(),
            config.request_timeout,
        ),
        cache: shared.cache.clone(),
        key_format: shared.config.key_format.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        limiter,
        limits: config.limits,
        sealer: shared.config.sealer()?,
        metrics,
        request_timeout: config.request_timeout,
        dev_mailbox: config.dev_mailbox,
        org_names: org_names::OrgNames::default(),
        draining: shutdown.clone(),
        github_keys: github_keys::GithubKeys::new(config.github_keys_url.clone(), config.request_timeout),
    }));
    tracing::info!(addr = ?listener.local_addr().ok(), "gateway listening");
    axum::serve(listener, app(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await?;
    flusher_stop.cancel();
    for flusher in flushers {
        let _ = flusher.await;
    }
    Ok(())
}

/// The routes inside the middleware stack, outermost first.
fn app(state: AppState) -> Router {
    let stack = ServiceBuilder::new()
        // Outermost: every response, errors from the layers below included, gets the
        // request id and the contract's error body.
        .layer(from_fn_with_state(state.clone(), context::context))
        // One span per request, joined to the caller's W3C trace context.
        .layer(TraceLayer::new_for_http().make_span_with(|request: &Request| {
            let request_id = request
                .extensions()
                .get::<keyplane_common::internal_auth::Caller>()
                .map(|c| c.request_id.as_str())
                .unwrap_or_default();
            let span =
                tracing::info_span!("http", method = %request.method(), path = %request.uri().path(), request_id);
            keyplane_common::telemetry::set_parent_from(&span, request.headers());
            span
        }))
        // A bound on the whole request, so a slow backend cannot hold a client forever.
        .layer(from_fn_with_state(state.clone(), timeout))
        // A bug answers 500 in the contract's shape rather than dropping the connection.
        .layer(CatchPanicLayer::custom(|panic: Box<dyn std::any::Any + Send>| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned());
            tracing::error!(panic = message.as_deref().unwrap_or("?"), "handler panicked");
            ApiError::internal().into_response()
        }))
        // Bodies over 1 MiB: 413 from Content-Length alone, or as soon as the stream passes it.
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES));
    rest::router(&state).layer(stack).with_state(state)
}

async fn timeout(State(state): State<AppState>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(state.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ApiError::new(axum::http::StatusCode::GATEWAY_TIMEOUT, "timeout", "the request took too long")
            .into_response(),
    }
}
