//! The gateway's Prometheus metrics, served as text at `GET /metrics`.

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, gauge::Gauge},
    registry::Registry,
};

/// Handles the components update; the registry renders them.
pub struct Metrics {
    registry: Registry,
    /// 1 while rate limits hold across replicas (Redis answers), 0 while each replica
    /// limits on its own.
    pub rate_limit_global: Gauge,
    /// Requests counted and not yet delivered to the usage service.
    pub usage_backlog: Gauge,
    /// Requests not counted: the usage counter was full.
    pub usage_dropped: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("keyplane");
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
        rate_limit_global.set(1);
        Self { registry, rate_limit_global, usage_backlog, usage_dropped }
    }
}

impl Metrics {
    /// The registry in Prometheus' text format.
    pub fn render(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}
