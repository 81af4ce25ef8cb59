//! Logs and traces: `tracing` everywhere, OpenTelemetry spans exported over OTLP when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and W3C trace context carried across every hop.

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::{
    global,
    propagation::{Extractor, Injector},
    trace::{TraceContextExt, TraceId, TracerProvider as _},
};
use opentelemetry_sdk::{Resource, propagation::TraceContextPropagator, trace::SdkTracerProvider};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, filter::LevelFilter, layer::SubscriberExt, util::SubscriberInitExt};

/// Whether spans are exported: the first initialisation decides (tests start many
/// platforms in one process under one subscriber).
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans leave the process. Spans only OpenTelemetry reads (client calls to Redis
/// and the database) are not made otherwise, and request spans carry only what logs need:
/// every field of a span is formatted for the log at `info`, request after request.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Flushes and stops the trace exporter when dropped.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Installs the global subscriber. Log format: `KEYPLANE_LOG_FORMAT=json` for production,
/// human-readable otherwise; level from `RUST_LOG` (default `info`); traces exported to
/// `OTEL_EXPORTER_OTLP_ENDPOINT` when it is set. Call it inside a Tokio runtime (the OTLP
/// exporter's gRPC client lives there).
pub fn init(service_name: &str) -> anyhow::Result<Telemetry> {
    let endpoint = std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok().filter(|v| !v.is_empty());
    init_with(service_name, "info", endpoint, None)
}

/// One more place logs go, beside the console (the test kit reads every line with it).
pub type ExtraLayer = Box<dyn Layer<tracing_subscriber::Registry> + Send + Sync>;

/// Like [`init`], with the level used when `RUST_LOG` is unset and the OTLP endpoint given.
///
/// Spans become OpenTelemetry spans only when there is somewhere to export them: without
/// an exporter they would cost every request (ids, attributes, a record at every close)
/// for nothing. A caller's `traceparent` still reaches the data-plane backends, with the
/// request's other headers.
pub fn init_with(
    service_name: &str,
    default_filter: &str,
    otlp_endpoint: Option<String>,
    extra: Option<ExtraLayer>,
) -> anyhow::Result<Telemetry> {
    global::set_text_map_propagator(TraceContextPropagator::new());
    let exporting = otlp_endpoint.is_some();
    // Every request is traced: a caller's `traceparent` joins its trace, but its sampled flag
    // does not decide whether we record ours.
    let mut provider = SdkTracerProvider::builder()
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_resource(Resource::builder().with_service_name(service_name.to_owned()).build());
    if let Some(endpoint) = otlp_endpoint {
        use opentelemetry_otlp::WithExportConfig;
        let exporter = opentelemetry_otlp::SpanExporter::builder().with_tonic().with_endpoint(endpoint).build()?;
        provider = provider.with_batch_exporter(exporter);
    }
    let provider = provider.build();
    let tracer = provider.tracer("keyplane");
    global::set_tracer_provider(provider.clone());

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let json = std::env::var("KEYPLANE_LOG_FORMAT").is_ok_and(|v| v == "json");
    let fmt = if json {
        tracing_subscriber::fmt::layer().json().with_current_span(true).boxed()
    } else {
        tracing_subscriber::fmt::layer().compact().boxed()
    };
    // The log level filters logs only: spans reach OpenTelemetry at `info` whatever it is,
    // or trace context would stop flowing whenever logs are quiet.
    let traces = exporting.then(|| tracing_opentelemetry::layer().with_tracer(tracer).with_filter(LevelFilter::INFO));
    // A second initialisation (tests start many platforms in one process) keeps the first.
    if tracing_subscriber::registry().with(extra).with(fmt.with_filter(filter)).with(traces).try_init().is_ok() {
        EXPORTING.store(exporting, Ordering::Relaxed);
    }
    Ok(Telemetry { provider })
}

impl Telemetry {
    /// Exports every finished span now.
    pub fn flush(&self) {
        let _ = self.provider.force_flush();
    }
}

struct MetadataInjector<'a>(&'a mut MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (MetadataKey::from_bytes(key.as_bytes()), MetadataValue::try_from(&value)) {
            self.0.insert(key, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

struct HeaderInjector<'a>(&'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) =
            (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value))
        {
            self.0.insert(name, value);
        }
    }
}

/// Puts the current span's trace context into outgoing gRPC metadata.
pub fn inject(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut MetadataInjector(metadata)));
}

/// Puts the current span's trace context into outgoing HTTP headers.
pub fn inject_headers(headers: &mut http::HeaderMap) {
    let context = tracing::Span::current().context();
    global::get_text_map_propagator(|p| p.inject_context(&context, &mut HeaderInjector(headers)));
}

/// Makes `span` a child of the trace context in incoming headers, if any, and records
/// its trace id in the span's `trace_id` field, so every log line within carries it: the
/// span's own when traces are exported, else the caller's.
pub fn set_parent_from(span: &tracing::Span, headers: &http::HeaderMap) {
    // Neither logged nor exported (a quiet gateway): nothing to join or record, per request.
    if span.is_disabled() {
        return;
    }
    let parent = global::get_text_map_propagator(|p| p.extract(&HeaderExtractor(headers)));
    let callers = parent.span().span_context().trace_id();
    let _ = span.set_parent(parent);
    let own = span.context().span().span_context().trace_id();
    let id = if own == TraceId::INVALID { callers } else { own };
    if id != TraceId::INVALID {
        span.record("trace_id", tracing::field::display(id));
    }
}
