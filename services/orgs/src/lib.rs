//! The orgs service: organizations and their slugs, members and roles, the one place
//! that decides who may do what (`Authorize`), and the audit log.

pub mod config;
mod domain;
mod error;
mod grpc;
mod service;
mod store;

use std::sync::Arc;

use keyplane_common::{db, grpc as kgrpc, runtime::Shared};
use keyplane_proto::{
    identity::v1::identity_service_client::IdentityServiceClient, keys::v1::keys_service_client::KeysServiceClient,
    orgs::v1::orgs_service_server::OrgsServiceServer,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Runs the orgs service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.database_url, "orgs", config.db_max_connections).await?;
    let service = Arc::new(service::Service {
        store: store::Store::new(database),
        identity: IdentityServiceClient::new(shared.channel(&config.identity_addr)?),
        keys: KeysServiceClient::new(shared.channel(&config.keys_addr)?),
        outbound: shared.outbound("orgs"),
    });
    let server = OrgsServiceServer::new(grpc::OrgsGrpc::new(service));
    kgrpc::serve_guarded(server, shared.internal_auth("orgs"), listener, shutdown).await?;
    Ok(())
}
