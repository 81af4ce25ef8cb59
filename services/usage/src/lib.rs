//! The usage service: hourly request rollups per org, key and status class, added to by
//! the gateways' flushes and kept for a retention of months.

pub mod config;
mod domain;
mod error;
mod grpc;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

use keyplane_common::{db, grpc as kgrpc, orgs_peer::OrgsPeer, runtime::Shared};
use keyplane_proto::usage::v1::usage_service_server::UsageServiceServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// How often retention is swept (and next month's partition made ahead of time).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// Runs the usage service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "usage", config.base.db_max_connections).await?;
    let service = Arc::new(service::Service {
        store: store::Store::new(database),
        orgs: OrgsPeer::new(shared.channel(&config.orgs_addr)?, shared.outbound("usage")),
        clock: shared.clock().clone(),
        retention_months: config.retention_months,
    });
    let sweeper = spawn_sweeper(Arc::clone(&service), shutdown.clone());
    kgrpc::serve_guarded(UsageServiceServer::new(grpc::UsageGrpc::new(service)), &shared, "usage", listener, shutdown)
        .await?;
    sweeper.abort();
    Ok(())
}

/// Sweeps at start-up, then every hour; a failed sweep is retried at the next.
fn spawn_sweeper(service: Arc<service::Service>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            if let Err(e) = service.sweep(service.clock.now()).await {
                tracing::warn!(error = %e, "usage retention sweep failed; will retry");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(SWEEP_EVERY) => {}
            }
        }
    })
}
