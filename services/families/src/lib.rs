//! The families backend: the small data-plane service that ships with Keyplane, so that a
//! fresh key has something to call (`GET /api/v1/developer/families`). It trusts only the
//! identity the gateway signed, keeps test and live data apart, and honours key pinning.

mod error;
mod routes;
mod store;

use std::{net::SocketAddr, sync::Arc};

use axum::{Router, extract::DefaultBodyLimit, routing::get};
use keyplane_common::{
    config::{CommonConfig, Env, Mode, Target},
    db,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub database_url: String,
    /// Shared with the gateway: verifies the identity headers it signs.
    pub dataplane_secret: Vec<u8>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("database_url", &self.database_url)
            .finish_non_exhaustive()
    }
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode, dataplane_secret: Vec<u8>) -> Self {
        Self {
            listen: common.listen_addr(env, Target::Families, mode),
            database_url: common.database_url(env, Target::Families),
            dataplane_secret,
        }
    }
}

pub(crate) struct AppState {
    store: store::Store,
    secret: Vec<u8>,
}

/// Runs the families backend on `listener` until `shutdown`.
pub async fn serve(config: Config, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let database = db::connect(&config.database_url, "families", 10).await?;
    let state = Arc::new(AppState { store: store::Store::new(database), secret: config.dataplane_secret });
    let app = Router::new()
        .route("/api/v1/developer/families", get(routes::list).post(routes::create))
        .route("/api/v1/developer/families/{id}", get(routes::get))
        .fallback(routes::not_found)
        .layer(axum::middleware::from_fn_with_state(Arc::clone(&state), routes::verified_identity))
        .layer(DefaultBodyLimit::max(1024 * 1024))
        .with_state(state);
    tracing::info!(addr = ?listener.local_addr().ok(), "families backend listening");
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await?;
    Ok(())
}
