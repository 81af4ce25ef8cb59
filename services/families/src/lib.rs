//! The families backend: the small data-plane service that ships with Keyplane, so that a
//! fresh key has something to call (`GET /api/v1/developer/families`). It trusts only the
//! identity the gateway signed, keeps test and live data apart, and honours key pinning.

mod error;
mod routes;
mod store;

use std::sync::Arc;

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use keyplane_common::{
    config::{CommonConfig, Env, Mode, ServiceBase, Target},
    db,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Config {
    pub base: ServiceBase,
    /// Shared with the gateway: verify the identity headers it signs.
    pub dataplane_secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config").field("base", &self.base).finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, dataplane_secrets: Vec<Vec<u8>>) -> Self {
        Self { base: ServiceBase::from_env(env, common, Target::Families, mode), dataplane_secrets }
    }
}

pub(crate) struct AppState {
    store: store::Store,
    secrets: Vec<Vec<u8>>,
}

/// Runs the families backend on `listener` until `shutdown`.
pub async fn serve(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "families", config.base.db_max_connections).await?;
    let state = Arc::new(AppState { store: store::Store::new(database), secrets: config.dataplane_secrets });
    let app = Router::new()
        .route("/api/v1/developer/families", get(routes::list).post(routes::create))
        .route("/api/v1/developer/families/{id}", get(routes::get))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), routes::verified_identity))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        // Probes: outside the signature check, added after its layer.
        .route("/health", get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }))
        .with_state(state);
    tracing::info!(addr = ?listener.local_addr().ok(), "families backend listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}
