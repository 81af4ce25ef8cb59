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
mod idle;
mod limiter;
mod mcp;
mod meter;
mod org_names;
mod upstream;
mod usage_counter;
mod verifier;

mod state;

mod attribution;
mod auth;
mod console;
mod context;
mod extract;
mod finishing;
mod rest;
mod throttle;

use std::sync::Arc;

use axum::{
    Router,
    extract::Request,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use keyplane_common::{credential_cache::LocalCredentialCache, runtime::Shared};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;
use tower_http::{
    catch_panic::CatchPanicLayer, limit::RequestBodyLimitLayer, timeout::TimeoutLayer, trace::TraceLayer,
};

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
    let local = LocalCredentialCache::new(verifier::CACHE_BYTES, shared.metrics.cache_layer("gateway"));
    local.follow(&shared.cache, shutdown.clone());
    let meter = Arc::new(meter::UseMeter::new(meter::Bounds::default()));
    let metrics = Arc::clone(&shared.metrics);
    let usage = Arc::new(usage_counter::UsageCounter::new(
        usage_counter::Bounds::default(),
        shared.clock().clone(),
        Arc::clone(&metrics),
    ));
    // The flushers (and the idle-connection sweep) outlive the listener: they are cancelled
    // only after requests drained.
    let flusher_stop = CancellationToken::new();
    let forwarder = Arc::new(forwarder::Forwarder::new(
        config.routes.clone(),
        config.dataplane_secrets.clone(),
        config.request_timeout,
    )?);
    let flushers = [
        meter.spawn_flusher(upstream.clone(), flusher_stop.clone()),
        usage.spawn_flusher(upstream.clone(), config.usage_flush_every, flusher_stop.clone()),
        forwarder.spawn_sweeper(flusher_stop.clone()),
    ];
    let limiter =
        Arc::new(limiter::Limiter::new(shared.clock().clone(), &shared.cache, metrics.rate_limit_global.clone()));
    limiter.spawn_sync(config.limits.sync_every, shutdown.clone());
    let state = AppState(Arc::new(Inner {
        verifier: verifier::Verifier::new(local, upstream.clone(), shared.clock().clone()),
        upstream,
        meter,
        usage,
        forwarder,
        cache: shared.cache.clone(),
        key_format: shared.config.key_format.clone(),
        trusted_proxies: config.trusted_proxies.clone(),
        limiter,
        limits: config.limits,
        sealer: shared.config.sealer()?,
        metrics,
        request_timeout: config.request_timeout,
        body_idle: config.body_idle,
        dev_mailbox: config.dev_mailbox,
        public_metrics: config.public_metrics,
        org_names: org_names::OrgNames::default(),
        draining: shutdown.clone(),
        github_keys: github_keys::GithubKeys::new(config.github_keys_url.clone(), config.request_timeout),
    }));
    tracing::info!(addr = ?listener.local_addr().ok(), "gateway listening");
    let listener = context::NoDelayListener(listener);
    axum::serve(listener, app(state).into_make_service_with_connect_info::<context::Peer>())
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
        .layer(context::layer(state.clone()))
        // One span per request, joined to the caller's W3C trace context and named by the
        // OpenTelemetry HTTP conventions (`GET /api/v1/keys/self`).
        .layer(TraceLayer::new_for_http().make_span_with(http_span).on_response(
            |response: &Response, _: std::time::Duration, span: &tracing::Span| {
                if keyplane_common::telemetry::exporting() {
                    // An integer, as the conventions want (a u16 would reach OpenTelemetry as text).
                    span.record("http.response.status_code", i64::from(response.status().as_u16()));
                    if response.status().is_server_error() {
                        span.record("otel.status_code", "ERROR");
                    }
                }
            },
        ))
        // A bound on the whole request, so a slow backend cannot hold a client forever: 504,
        // its body written by `context`. (A layer, not a `from_fn`: that boxes the rest of
        // the stack and its future on every request.)
        .layer(TimeoutLayer::with_status_code(StatusCode::GATEWAY_TIMEOUT, state.request_timeout))
        // The timeout's 504 needs a body type with an empty value.
        .map_response(|response: Response<_>| response.map(axum::body::Body::new))
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

fn http_span(request: &Request) -> tracing::Span {
    let request_id = request
        .extensions()
        .get::<keyplane_common::internal_auth::Caller>()
        .map(|c| c.request_id.as_str())
        .unwrap_or_default();
    let method = request.method().as_str();
    let route = request.extensions().get::<axum::extract::MatchedPath>().map(axum::extract::MatchedPath::as_str);
    let span = if keyplane_common::telemetry::exporting() {
        tracing::info_span!(
            "http",
            otel.name = %format_args!("{method} {}", route.unwrap_or_default()),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            http.request.method = method,
            http.route = route,
            url.path = request.uri().path(),
            http.response.status_code = tracing::field::Empty,
            request_id,
            trace_id = tracing::field::Empty,
        )
    } else {
        // What a log line needs, no more: each field is formatted on every request.
        tracing::info_span!("http", method, route, request_id, trace_id = tracing::field::Empty)
    };
    keyplane_common::telemetry::set_parent_from(&span, request.headers());
    span
}
