//! Every gRPC call a service serves: a server span named by the OpenTelemetry RPC
//! conventions (joined to the caller's trace), and its count and latency by method and
//! status code.

use std::{
    collections::HashSet,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use futures_util::future::BoxFuture;
use prost::Message;
use tracing::Instrument;

use crate::{internal_auth::REQUEST_ID_KEY, metrics::Metrics, telemetry};

/// gRPC's status codes by number, as Prometheus labels.
const CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];
/// The codes that mark a server span as failed (the conventions' list for servers).
const SERVER_ERRORS: [&str; 6] =
    ["UNKNOWN", "DEADLINE_EXCEEDED", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS"];

#[derive(Clone)]
pub struct MeteredLayer {
    metrics: Arc<Metrics>,
    known: Arc<HashSet<Arc<str>>>,
    unknown: Arc<str>,
}

impl MeteredLayer {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics, known: Arc::new(known_methods()), unknown: Arc::from("unknown") }
    }
}

impl<S> tower::Layer<S> for MeteredLayer {
    type Service = Metered<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Metered {
            inner,
            metrics: Arc::clone(&self.metrics),
            known: Arc::clone(&self.known),
            unknown: Arc::clone(&self.unknown),
        }
    }
}

/// Every method the services, health and reflection serve (`package.Service/Method`): a
/// label is one of these or `unknown`, so no caller can make a series of its own.
fn known_methods() -> HashSet<Arc<str>> {
    let mut known = HashSet::new();
    for encoded in [keyplane_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
        let Ok(set) = prost_types::FileDescriptorSet::decode(encoded) else { continue };
        for file in set.file {
            let package = file.package();
            for service in &file.service {
                for method in &service.method {
                    known.insert(Arc::from(format!("{package}.{}/{}", service.name(), method.name())));
                }
            }
        }
    }
    known.insert(Arc::from("grpc.reflection.v1.ServerReflection/ServerReflectionInfo"));
    known.insert(Arc::from("grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"));
    known
}

#[derive(Clone)]
pub struct Metered<S> {
    inner: S,
    metrics: Arc<Metrics>,
    known: Arc<HashSet<Arc<str>>>,
    unknown: Arc<str>,
}

impl<S, B, R> tower::Service<http::Request<B>> for Metered<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let rpc = request.uri().path().trim_start_matches('/');
        let (service, method) = rpc.rsplit_once('/').unwrap_or((rpc, ""));
        let request_id = request.headers().get(REQUEST_ID_KEY).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let exporting = telemetry::exporting();
        let span = if exporting {
            tracing::info_span!(
                "grpc",
                otel.name = %rpc,
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = service,
                rpc.method = method,
                rpc.grpc.status_code = tracing::field::Empty,
                otel.status_code = tracing::field::Empty,
                request_id,
                trace_id = tracing::field::Empty,
            )
        } else {
            // What a log line needs, no more.
            tracing::info_span!("grpc", rpc = %rpc, request_id, trace_id = tracing::field::Empty)
        };
        telemetry::set_parent_from(&span, request.headers());
        let metrics = Arc::clone(&self.metrics);
        // The label is the known method's own `Arc`, or one shared `unknown`: no allocation.
        let label = self.known.get(rpc).cloned().unwrap_or_else(|| Arc::clone(&self.unknown));
        let answer = span.in_scope(|| self.inner.call(request));
        let recorder = span.clone();
        Box::pin(
            async move {
                let response = answer.await;
                // A unary call that failed answers its status in the head (trailers-only);
                // one that succeeded answers OK in the trailers.
                let code = match &response {
                    Ok(response) => response
                        .headers()
                        .get("grpc-status")
                        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
                        .and_then(|n| CODES.get(n).copied())
                        .unwrap_or(CODES[0]),
                    Err(_) => "UNKNOWN",
                };
                if exporting {
                    let number = CODES.iter().position(|c| *c == code).unwrap_or(2);
                    recorder.record("rpc.grpc.status_code", i64::try_from(number).unwrap_or(2));
                    if SERVER_ERRORS.contains(&code) {
                        recorder.record("otel.status_code", "ERROR");
                    }
                }
                metrics.observe_rpc(label, code, started.elapsed());
                response
            }
            .instrument(span),
        )
    }
}
