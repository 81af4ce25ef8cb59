//! The advisors service: advisor agents of an org, consultations delivered to them and
//! answered with RFC 9421 signatures by their declared Ed25519 payload keys.

pub mod config;
mod delivery;
mod delivery_keys;
mod domain;
mod error;
mod grpc;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

use keyplane_common::{db, grpc as kgrpc, orgs_peer::OrgsPeer, outbox, runtime::Shared};
use keyplane_proto::advisors::v1::advisors_service_server::AdvisorsServiceServer;
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Runs the advisors service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "advisors", config.base.db_max_connections).await?;
    let store = store::Store::new(database.clone());
    let orgs = OrgsPeer::new(shared.channel(&config.orgs_addr)?, shared.outbound("advisors"));
    let relay = Arc::new(Notify::new());
    let relay_task = outbox::spawn_relay(
        database,
        outbox::AUDIT_TOPIC,
        orgs.deliver_audit(),
        Arc::clone(&relay),
        shared.metrics.outbox_backlog("advisors", outbox::AUDIT_TOPIC),
        shutdown.clone(),
    );
    let delivery_keys = Arc::new(delivery_keys::DeliveryKeys::load(&store, &shared.config.sealer()?).await?);
    let deliveries = Arc::new(Notify::new());
    let deliverer = Arc::new(delivery::Deliverer {
        store: store.clone(),
        keys: Arc::clone(&delivery_keys),
        clock: shared.clock().clone(),
        private_endpoints: config.private_endpoints,
        public_url: config.public_url.clone(),
    })
    .spawn(Arc::clone(&deliveries), shutdown.clone());
    let service =
        Arc::new(service::Service { store, orgs, clock: shared.clock().clone(), delivery_keys, deliveries, relay });
    let sweeper = {
        let (service, shutdown) = (Arc::clone(&service), shutdown.clone());
        tokio::spawn(async move {
            loop {
                if let Err(e) = service.forget_old_nonces().await {
                    tracing::warn!(error = %e, "forgetting old nonces failed");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
            }
        })
    };
    let server = AdvisorsServiceServer::new(grpc::AdvisorsGrpc::new(service));
    kgrpc::serve_guarded(server, &shared, "advisors", listener, shutdown).await?;
    let _ = relay_task.await;
    deliverer.abort();
    sweeper.abort();
    Ok(())
}
