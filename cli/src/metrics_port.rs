//! The process's metrics on a port of their own, for Prometheus (`KEYPLANE_METRICS_LISTEN`).

use std::{net::SocketAddr, sync::Arc};

use keyplane_common::runtime::Shared;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Binds `addr` (a taken port stops start-up, as the main port does) and serves the
/// process's registry there until `shutdown`.
pub async fn spawn(shared: &Shared, addr: SocketAddr, shutdown: CancellationToken) -> anyhow::Result<()> {
    let listener =
        TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen for metrics on {addr}: {e}"))?;
    let metrics = Arc::clone(&shared.metrics);
    tokio::spawn(async move {
        if let Err(e) = keyplane_common::metrics::serve(metrics, listener, shutdown).await {
            tracing::warn!(error = %e, "the metrics listener stopped");
        }
    });
    Ok(())
}
