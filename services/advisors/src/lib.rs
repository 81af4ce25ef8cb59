//! The advisors service. Its RPCs are in the contract and answer UNIMPLEMENTED until the
//! issue that builds them; the service already runs, migrates and answers health checks.

use keyplane_common::{
    config::{CommonConfig, Env, Mode, Target},
    db, grpc as kgrpc,
    runtime::Shared,
};
use keyplane_proto::advisors::v1::advisors_service_server::{AdvisorsService, AdvisorsServiceServer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: std::net::SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode) -> Self {
        Self {
            listen: common.listen_addr(env, Target::Advisors, mode),
            database_url: common.database_url(env, Target::Advisors),
            db_max_connections: env.parse_or("KEYPLANE_ADVISORS_DB_MAX_CONNECTIONS", 10),
        }
    }
}

struct AdvisorsGrpc;

#[tonic::async_trait]
impl AdvisorsService for AdvisorsGrpc {}

/// Runs the advisors service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let _database = db::connect(&config.database_url, "advisors", config.db_max_connections).await?;
    kgrpc::serve_guarded(
        AdvisorsServiceServer::new(AdvisorsGrpc),
        shared.internal_auth("advisors"),
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
