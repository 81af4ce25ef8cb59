//! The process's Prometheus metrics: one registry per process (the gateway serves it at
//! `/metrics`, every process on `KEYPLANE_METRICS_LISTEN`), with the figures the operator
//! runs the platform by: request rate, errors and latency per route and per RPC, credential
//! cache hits per layer, the revocation feed, the usage and outbox backlogs, the limiter.

use std::{
    sync::{Arc, PoisonError, RwLock},
    time::Duration,
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: &'static str,
    /// The route's template (`/api/v1/developers/orgs/{org_id}/keys`), never the raw path:
    /// ids would make a series per resource.
    pub route: Arc<str>,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: &'static str,
    pub route: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    /// `keyplane.keys.v1.KeysService/ListKeys`.
    pub rpc: Arc<str>,
    /// The gRPC status name (`OK`, `PERMISSION_DENIED`, …).
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcNameLabels {
    pub rpc: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LayerLabels {
    /// `gateway` (its in-process cache), `identity` (ditto), `redis`.
    pub layer: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub service: &'static str,
    pub topic: &'static str,
}

/// How often one cache layer was asked, how often it had to ask the next one, and (for the
/// in-process layers) whether it hears the revocation feed.
#[derive(Clone, Default)]
pub struct CacheStats {
    pub lookups: Counter,
    pub misses: Counter,
    pub feed_up: Gauge,
}

/// Latency buckets from 100 µs to about 13 s: a cache hit and a slow backend both fall in
/// a bucket of their own.
fn latency_histogram() -> Histogram {
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0001, 2.0, 18))
}

type LatencyFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// One method's series on a route: its latency, and its count by status. (A clone of a
/// series shares its values with the family's.)
struct MethodSeries {
    method: &'static str,
    duration: Histogram,
    statuses: Vec<(u16, Counter)>,
}

pub struct Metrics {
    registry: Registry,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: LatencyFamily<RouteLabels>,
    /// The two families' series by route, found with one fast lookup a request (a family
    /// hashes its labels with SipHash, and a request touches two of them).
    http_series: RwLock<foldhash::HashMap<Arc<str>, Vec<MethodSeries>>>,
    pub rpc_requests: Family<RpcLabels, Counter>,
    pub rpc_duration: LatencyFamily<RpcNameLabels>,
    cache_lookups: Family<LayerLabels, Counter>,
    cache_misses: Family<LayerLabels, Counter>,
    revocation_feed_up: Family<LayerLabels, Gauge>,
    /// 1 while rate limits hold across gateway replicas (Redis answers), 0 while each
    /// replica limits on its own.
    pub rate_limit_global: Gauge,
    /// Requests counted and not yet delivered to the usage service.
    pub usage_backlog: Gauge,
    /// Requests not counted: the usage counter was full.
    pub usage_dropped: Counter,
    outbox_backlog: Family<TopicLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyplane");
        let http_requests = Family::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route, method and status",
            http_requests.clone(),
        );
        let http_duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "http_request_duration",
            "Time to the response's head, by route and method",
            prometheus_client::registry::Unit::Seconds,
            http_duration.clone(),
        );
        let rpc_requests = Family::default();
        registry.register("rpc_requests", "gRPC calls served, by method and status code", rpc_requests.clone());
        let rpc_duration = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        registry.register_with_unit(
            "rpc_duration",
            "Time to the response's head of a gRPC call served, by method",
            prometheus_client::registry::Unit::Seconds,
            rpc_duration.clone(),
        );
        let cache_lookups = Family::default();
        registry.register(
            "credential_cache_lookups",
            "Credential lookups asked of a cache layer (gateway, identity: in-process; redis)",
            cache_lookups.clone(),
        );
        let cache_misses = Family::default();
        registry.register(
            "credential_cache_misses",
            "Credential lookups a cache layer passed on to the next (hit ratio: 1 - misses / lookups)",
            cache_misses.clone(),
        );
        let revocation_feed_up = Family::default();
        registry.register(
            "revocation_feed_up",
            "1 while an in-process credential cache hears the revocation feed; 0 while it is bypassed",
            revocation_feed_up.clone(),
        );
        let rate_limit_global = Gauge::default();
        registry.register(
            "rate_limit_global",
            "1 while rate limits hold across gateway replicas, 0 while each limits on its own (Redis away)",
            rate_limit_global.clone(),
        );
        let usage_backlog = Gauge::default();
        registry.register(
            "usage_backlog_requests",
            "Requests counted and not yet delivered to the usage service",
            usage_backlog.clone(),
        );
        let usage_dropped = Counter::default();
        registry.register(
            "usage_dropped_requests",
            "Requests not counted because the usage counter was full",
            usage_dropped.clone(),
        );
        let outbox_backlog = Family::default();
        registry.register(
            "outbox_backlog_events",
            "Events written to a service's outbox and not yet delivered",
            outbox_backlog.clone(),
        );
        rate_limit_global.set(1);
        Self {
            registry,
            http_requests,
            http_duration,
            http_series: RwLock::default(),
            rpc_requests,
            rpc_duration,
            cache_lookups,
            cache_misses,
            revocation_feed_up,
            rate_limit_global,
            usage_backlog,
            usage_dropped,
            outbox_backlog,
        }
    }
}

impl Metrics {
    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }

    /// The registry as a scrape's answer: the text, and Prometheus' content type.
    pub fn response(&self) -> axum::response::Response {
        use axum::{http::header, response::IntoResponse};
        ([(header::CONTENT_TYPE, CONTENT_TYPE)], self.render()).into_response()
    }

    /// The counters of one credential cache layer.
    pub fn cache_layer(&self, layer: &'static str) -> CacheStats {
        let labels = LayerLabels { layer };
        CacheStats {
            lookups: self.cache_lookups.get_or_create(&labels).clone(),
            misses: self.cache_misses.get_or_create(&labels).clone(),
            feed_up: self.revocation_feed_up.get_or_create(&labels).clone(),
        }
    }

    /// The backlog gauge of one outbox topic.
    pub fn outbox_backlog(&self, service: &'static str, topic: &'static str) -> Gauge {
        self.outbox_backlog.get_or_create(&TopicLabels { service, topic }).clone()
    }

    /// Counts one HTTP request and its latency.
    pub fn observe_http(&self, method: &'static str, route: &str, status: u16, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        {
            // Past a poisoned lock: the map is only ever added to, whole entries at a time.
            let series = self.http_series.read().unwrap_or_else(PoisonError::into_inner);
            let known = series.get(route).and_then(|methods| {
                let series = methods.iter().find(|s| s.method == method)?;
                Some((&series.duration, &series.statuses.iter().find(|(s, _)| *s == status)?.1))
            });
            if let Some((duration, requests)) = known {
                duration.observe(seconds);
                requests.inc();
                return;
            }
        }
        let (duration, requests) = self.new_http_series(method, route, status);
        duration.observe(seconds);
        requests.inc();
    }

    /// The series of a (method, route, status) first seen: the families' own, kept by route.
    fn new_http_series(&self, method: &'static str, route: &str, status: u16) -> (Histogram, Counter) {
        let route: Arc<str> = route.into();
        let duration = self.http_duration.get_or_create(&RouteLabels { method, route: Arc::clone(&route) }).clone();
        let requests =
            self.http_requests.get_or_create(&HttpLabels { method, route: Arc::clone(&route), status }).clone();
        let mut series = self.http_series.write().unwrap_or_else(PoisonError::into_inner);
        let methods = series.entry(route).or_default();
        let index = methods.iter().position(|s| s.method == method).unwrap_or_else(|| {
            methods.push(MethodSeries { method, duration: duration.clone(), statuses: Vec::new() });
            methods.len() - 1
        });
        let statuses = &mut methods[index].statuses;
        if !statuses.iter().any(|(s, _)| *s == status) {
            statuses.push((status, requests.clone()));
        }
        (duration, requests)
    }

    /// Counts one gRPC call and its latency.
    pub fn observe_rpc(&self, rpc: Arc<str>, code: &'static str, elapsed: Duration) {
        self.rpc_duration.get_or_create(&RpcNameLabels { rpc: Arc::clone(&rpc) }).observe(elapsed.as_secs_f64());
        self.rpc_requests.get_or_create(&RpcLabels { rpc, code }).inc();
    }
}

/// Serves `GET /metrics` (and nothing else) on `listener` until `shutdown`.
pub async fn serve(metrics: Arc<Metrics>, listener: TcpListener, shutdown: CancellationToken) -> std::io::Result<()> {
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = Arc::clone(&metrics);
            async move { metrics.response() }
        }),
    );
    tracing::info!(addr = ?listener.local_addr().ok(), "metrics listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await
}

/// Prometheus' text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
