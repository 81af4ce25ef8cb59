//! The identity service: users and passwords (argon2id), sessions and refresh tokens,
//! the keys that sign session bearers, external OIDC issuers, and `Authenticate`, which
//! answers who any credential stands for.

pub mod config;
mod domain;
mod error;
mod failed_logins;
mod grpc;
mod hashing;
mod jwt;
mod key_lookup;
mod mailer;
mod service;
mod store;

use std::{sync::Arc, time::Duration};

use keyplane_common::{
    credential_cache::LocalCredentialCache, db, grpc as kgrpc, mail::MAIL_TOPIC, orgs_peer::OrgsPeer, outbox,
    runtime::Shared,
};
use keyplane_proto::{
    identity::v1::identity_service_server::IdentityServiceServer, keys::v1::keys_service_client::KeysServiceClient,
};
use tokio::{net::TcpListener, sync::Notify};
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Runs the identity service on `listener` until `shutdown`.
pub async fn serve(
    config: Config,
    shared: Shared,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let database = db::connect(&config.base.database_url, "identity", config.base.db_max_connections).await?;
    let store = store::Store::new(database.clone());
    // A retired key verifies until every token it signed has expired.
    let retire_for = config.access_token_ttl + config.jwt_leeway + Duration::from_secs(60);
    let ring = jwt::keyring::KeyRing::load(store.clone(), retire_for, shared.config.sealer()?).await?;
    let mailer = Arc::new(mailer::Mailer::new(&config.mail, store.clone())?);
    let mail_relay = Arc::new(Notify::new());
    let relay_task = outbox::spawn_relay(
        database.clone(),
        MAIL_TOPIC,
        mailer.deliver_fn(),
        Arc::clone(&mail_relay),
        shared.metrics.outbox_backlog("identity", MAIL_TOPIC),
        shutdown.clone(),
    );
    // Audit events (signing keys, failed sign-ins) go to the orgs service's log.
    let orgs = OrgsPeer::new(shared.channel(&config.orgs_addr)?, shared.outbound("identity"));
    let audit_relay = Arc::new(Notify::new());
    let audit_task = outbox::spawn_relay(
        database,
        outbox::AUDIT_TOPIC,
        orgs.deliver_audit(),
        Arc::clone(&audit_relay),
        shared.metrics.outbox_backlog("identity", outbox::AUDIT_TOPIC),
        shutdown.clone(),
    );
    let failed_logins = Arc::new(failed_logins::FailedLogins::default());
    // Stopped after the server, so the last failures are written.
    let flusher_stop = CancellationToken::new();
    let flusher = failed_logins.spawn_flusher(store.clone(), Arc::clone(&audit_relay), flusher_stop.clone());
    ring.refresh_periodically(shutdown.clone());
    tokio::task::spawn_blocking(domain::password::warm_up);

    let local = LocalCredentialCache::new(key_lookup::LOCAL_CACHE_BYTES, shared.metrics.cache_layer("identity"));
    local.follow(&shared.cache, shutdown.clone());
    let outbound = shared.outbound("identity");
    let keys = key_lookup::KeyLookup {
        format: shared.config.key_format.clone(),
        local,
        cache: shared.cache.clone(),
        cache_stats: shared.metrics.cache_layer("redis"),
        keys: KeysServiceClient::new(shared.channel(&config.keys_addr)?),
        outbound,
        clock: shared.clock().clone(),
    };
    let bearer = jwt::BearerVerifier {
        ring,
        sessions: jwt::session::SessionTokens::new(
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
            config.jwt_leeway,
        ),
        external: jwt::external::ExternalIssuers::new(
            config.external_issuers.clone(),
            config.jwks_max_age,
            config.jwt_leeway,
        ),
    };
    // A revoked session stays marked longer than any of its access tokens lives.
    let revoked_for = config.access_token_ttl + Duration::from_secs(300);
    let service = Arc::new(service::Service {
        store,
        bearer,
        keys,
        cache: shared.cache.clone(),
        refresh_token_ttl: config.refresh_token_ttl,
        external_users: moka::future::Cache::builder()
            .max_capacity(100_000)
            .time_to_live(Duration::from_secs(600))
            .build(),
        hashing: hashing::HashingPool::new(config.hash_concurrency, config.hash_wait),
        mail_relay,
        public_url: config.public_url.clone(),
        dev_mailbox: config.mail.dev_mailbox,
        revocations: service::SessionRevocations::start(shared.cache.clone(), revoked_for, shutdown.clone()),
        failed_logins,
        audit_relay,
    });
    let server = IdentityServiceServer::new(grpc::IdentityGrpc::new(service));
    kgrpc::serve_guarded(server, &shared, "identity", listener, shutdown).await?;
    flusher_stop.cancel();
    let _ = flusher.await;
    let _ = relay_task.await;
    let _ = audit_task.await;
    Ok(())
}
