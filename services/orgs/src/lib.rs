//! The orgs service: organizations and their slugs, members and roles, the one place
//! that decides who may do what (`Authorize`), and the audit log.

pub mod config;
mod domain;
mod error;
mod grpc;
mod peers;
mod service;
mod store;

use std::sync::Arc;

use domain::revocation::CREDENTIALS_TOPIC;
use keyplane_common::{db, grpc as kgrpc, mail::MAIL_TOPIC, outbox, runtime::Shared};
use keyplane_proto::{
    identity::v1::identity_service_client::IdentityServiceClient, keys::v1::keys_service_client::KeysServiceClient,
    orgs::v1::orgs_service_server::OrgsServiceServer,
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Runs the orgs service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "orgs", config.base.db_max_connections).await?;
    let outbound = shared.outbound("orgs");
    let identity =
        peers::Identity::new(IdentityServiceClient::new(shared.channel(&config.identity_addr)?), outbound.clone());
    // Invitation mail leaves through the outbox, so a mail is never lost to an identity
    // service that is briefly away.
    let mail_relay = Arc::new(Notify::new());
    let relay_task = outbox::spawn_relay(
        database.clone(),
        MAIL_TOPIC,
        identity.deliver_mail(),
        Arc::clone(&mail_relay),
        shared.metrics.outbox_backlog("orgs", MAIL_TOPIC),
        shutdown.clone(),
    );
    // Revocations are decided with the change that causes them, and delivered at once;
    // this relay delivers what keys could not take at that moment.
    let keys = peers::Keys::new(KeysServiceClient::new(shared.channel(&config.keys_addr)?), outbound);
    let revocation_relay = Arc::new(Notify::new());
    let revocation_task = outbox::spawn_relay(
        database.clone(),
        CREDENTIALS_TOPIC,
        keys.deliver_revocations(),
        Arc::clone(&revocation_relay),
        shared.metrics.outbox_backlog("orgs", CREDENTIALS_TOPIC),
        shutdown.clone(),
    );
    let service = Arc::new(service::Service {
        store: store::Store::new(database),
        identity,
        keys,
        mail_relay,
        revocation_relay,
        public_url: config.public_url,
    });
    let server = OrgsServiceServer::new(grpc::OrgsGrpc::new(service));
    kgrpc::serve_guarded(server, &shared, "orgs", listener, shutdown).await?;
    let _ = relay_task.await;
    let _ = revocation_task.await;
    Ok(())
}
