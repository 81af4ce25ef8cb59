//! A stand-in OpenTelemetry collector: it receives the spans every test platform exports,
//! so a test can check that one trace runs through the gateway and every service.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, OnceLock},
};

use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
};
use tonic::{Request, Response, Status};

/// One exported span, reduced to what tests look at.
#[derive(Clone, Debug)]
pub struct ExportedSpan {
    pub trace_id: String,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

impl ExportedSpan {
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
}

#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<ExportedSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("collector lock");
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                for span in scope.spans {
                    let attributes = span
                        .attributes
                        .iter()
                        .map(|a| {
                            let value = match a.value.as_ref().and_then(|v| v.value.as_ref()) {
                                Some(Value::StringValue(s)) => s.clone(),
                                Some(other) => format!("{other:?}"),
                                None => String::new(),
                            };
                            (a.key.clone(), value)
                        })
                        .collect();
                    spans.push(ExportedSpan { trace_id: hex::encode(&span.trace_id), name: span.name, attributes });
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse { partial_success: None }))
    }
}

/// The process-wide telemetry of the test binary, exporting to the stand-in collector.
pub struct Observability {
    collector: Collector,
    telemetry: keyplane_common::telemetry::Telemetry,
}

static OBSERVABILITY: OnceLock<Observability> = OnceLock::new();

/// Installs telemetry once for the whole test binary. The collector and the exporter live
/// on a runtime of their own: each test's runtime ends with the test.
pub fn observability() -> &'static Observability {
    OBSERVABILITY.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime =
                tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().expect("runtime");
            runtime.block_on(async move {
                let listener =
                    tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
                let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
                let collector = Collector::default();
                let server = tonic::transport::Server::builder()
                    .add_service(TraceServiceServer::new(collector.clone()))
                    .serve_with_incoming(tonic::transport::server::TcpIncoming::from(listener));
                tokio::spawn(server);
                let telemetry = keyplane_common::telemetry::init_with(
                    "keyplane-e2e",
                    "warn",
                    Some(endpoint),
                    Some(crate::logs::capture_layer()),
                )
                .expect("telemetry");
                let _ = tx.send(Observability { collector, telemetry });
                std::future::pending::<()>().await;
            });
        });
        rx.recv().expect("telemetry starts")
    })
}

impl Observability {
    /// Exports what is finished and answers every span received so far.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.telemetry.flush();
        self.collector.spans.lock().expect("collector lock").clone()
    }
}
