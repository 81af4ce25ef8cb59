//! The orgs service: organizations and their slugs, members and roles, the one place
//! that decides who may do what (`Authorize`), and the audit log.

pub mod config;
mod domain;
mod error;
mod grpc;
mod service;
mod store;

use std::sync::Arc;

use keyplane_common::{
    db,
    grpc::{self as kgrpc, Outbound},
    mail::{MAIL_TOPIC, OutgoingMail},
    outbox,
    runtime::Shared,
};
use keyplane_proto::{
    identity::v1::{SendMailRequest, identity_service_client::IdentityServiceClient},
    keys::v1::keys_service_client::KeysServiceClient,
    orgs::v1::orgs_service_server::OrgsServiceServer,
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub use config::Config;

/// Runs the orgs service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.database_url, "orgs", config.db_max_connections).await?;
    let identity = IdentityServiceClient::new(shared.channel(&config.identity_addr)?);
    let outbound = shared.outbound("orgs");
    // Invitation mail leaves through the outbox, so a mail is never lost to an identity
    // service that is briefly away.
    let mail_relay = Arc::new(Notify::new());
    let relay_task = outbox::spawn_relay(
        database.clone(),
        MAIL_TOPIC,
        deliver_mail(identity.clone(), outbound.clone()),
        Arc::clone(&mail_relay),
        shutdown.clone(),
    );
    let service = Arc::new(service::Service {
        store: store::Store::new(database),
        identity,
        keys: KeysServiceClient::new(shared.channel(&config.keys_addr)?),
        outbound,
        mail_relay,
        public_url: config.public_url,
    });
    let server = OrgsServiceServer::new(grpc::OrgsGrpc::new(service));
    kgrpc::serve_guarded(server, shared.internal_auth("orgs"), listener, shutdown).await?;
    let _ = relay_task.await;
    Ok(())
}

/// Hands queued mail to the identity service's mailer, which sends each id once.
fn deliver_mail(identity: IdentityServiceClient<Channel>, outbound: Outbound) -> outbox::Deliver {
    Arc::new(move |payloads| {
        let (identity, outbound) = (identity.clone(), outbound.clone());
        Box::pin(async move {
            for payload in payloads {
                let Ok(mail) = serde_json::from_value::<OutgoingMail>(payload) else { continue };
                let request = outbound.request(SendMailRequest { mail: Some(mail.to_proto()) }, None);
                identity.clone().send_mail(request).await.map_err(|status| status.to_string())?;
            }
            Ok(())
        })
    })
}
