use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::{
    Request, Status,
    server::NamedService,
    service::{Routes, interceptor::InterceptedService},
    transport::{Server, server::TcpIncoming},
};
use tonic_health::ServingStatus;

use crate::{internal_auth::InternalAuth, metrics::Metrics, runtime::Shared};

/// Serves one service's routes on an already-bound listener until `shutdown`, with the
/// gRPC health protocol and reflection beside it (both open to all: probes and grpcurl),
/// every call counted in `metrics`.
pub async fn serve(
    service_name: &'static str,
    routes: Routes,
    metrics: Arc<Metrics>,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status(service_name, ServingStatus::Serving).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(keyplane_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    // v1alpha beside v1: grpcio-reflection (Python) and older grpcurl speak only v1alpha.
    let reflection_v1 = reflection().build_v1().expect("the built-in descriptor sets are valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the built-in descriptor sets are valid");
    let routes = routes.add_service(health_service).add_service(reflection_v1).add_service(reflection_v1alpha);
    let draining = async move {
        shutdown.cancelled().await;
        health.set_service_status(service_name, ServingStatus::NotServing).await;
        health.set_service_status("", ServingStatus::NotServing).await;
    };
    tracing::info!(service = service_name, addr = ?listener.local_addr().ok(), "grpc server listening");
    Server::builder()
        .layer(super::metered::MeteredLayer::new(metrics))
        .add_routes(routes)
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), draining)
        .await
}

/// Serves one of our gRPC services behind the internal-auth guard (as `service`), with
/// health and reflection beside it.
pub async fn serve_guarded<S>(
    server: S,
    shared: &Shared,
    service: &str,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    S: tower::Service<
            http::Request<tonic::body::Body>,
            Response = http::Response<tonic::body::Body>,
            Error = std::convert::Infallible,
        > + NamedService
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
{
    let guarded = InterceptedService::new(server, internal_auth_interceptor(shared.internal_auth(service)));
    serve(S::NAME, Routes::new(guarded), Arc::clone(&shared.metrics), listener, shutdown).await
}

/// Refuses callers that do not prove they are inside the system, and hands the verified
/// caller (and the principal it acts for) to the handler in the request's extensions.
pub fn internal_auth_interceptor(
    auth: Arc<InternalAuth>,
) -> impl FnMut(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut request: Request<()>| {
        let caller = auth.verify_request(&request)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}
