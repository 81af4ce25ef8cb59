//! The advisors service. Its RPCs are in the contract and answer UNIMPLEMENTED until the
//! issue that builds them; the service already runs, migrates and answers health checks.

use keyplane_common::{
    config::{CommonConfig, Env, Mode, ServiceBase, Target},
    db, grpc as kgrpc,
    runtime::Shared,
};
use keyplane_proto::advisors::v1::advisors_service_server::{AdvisorsService, AdvisorsServiceServer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
}

impl Config {
    pub fn from_env(env: &mut Env, common: &CommonConfig, mode: Mode) -> Self {
        Self { base: ServiceBase::from_env(env, common, Target::Advisors, mode) }
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
    let _database = db::connect(&config.base.database_url, "advisors", config.base.db_max_connections).await?;
    kgrpc::serve_guarded(
        AdvisorsServiceServer::new(AdvisorsGrpc),
        shared.internal_auth("advisors"),
        listener,
        shutdown,
    )
    .await?;
    Ok(())
}
