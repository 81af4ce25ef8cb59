//! The keys service: API keys and MCP tokens, stored only as SHA-256, with the record
//! lookup behind the credential hot path and the propagation of every change to caches.

pub mod config;
mod domain;
mod error;
mod grpc;
mod orgs;
mod propagate;
mod service;
mod store;

use std::sync::Arc;

use keyplane_common::{db, grpc as kgrpc, orgs_peer::OrgsPeer, outbox, runtime::Shared};
use keyplane_proto::keys::v1::keys_service_server::KeysServiceServer;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Runs the keys service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "keys", config.base.db_max_connections).await?;
    let orgs = orgs::Orgs { peer: OrgsPeer::new(shared.channel(&config.orgs_addr)?, shared.outbound("keys")) };
    let relay = Arc::new(Notify::new());
    let relay_task = outbox::spawn_relay(
        database.clone(),
        outbox::AUDIT_TOPIC,
        orgs.peer.deliver_audit(),
        Arc::clone(&relay),
        shared.metrics.outbox_backlog("keys", outbox::AUDIT_TOPIC),
        shutdown.clone(),
    );
    let store = store::Store::new(database);
    let service = Arc::new(service::Service {
        propagator: propagate::Propagator::start(shared.cache.clone(), store.clone(), shutdown.clone()),
        store,
        orgs,
        format: shared.config.key_format.clone(),
        relay,
        clock: shared.clock().clone(),
        max_key_rate: config.max_key_rate,
        default_key_rate: config.default_key_rate,
    });
    let server = KeysServiceServer::new(grpc::KeysGrpc::new(service, shared.clock().clone()));
    kgrpc::serve_guarded(server, &shared, "keys", listener, shutdown).await?;
    let _ = relay_task.await;
    Ok(())
}
