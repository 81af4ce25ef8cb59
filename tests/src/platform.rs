//! The platform under test, started by the same code as `keyplane up`, on PostgreSQL
//! and Redis.

use std::{net::SocketAddr, time::Duration};

use keyplane_cli::platform::{Listeners, PlatformConfig, run};
use keyplane_common::{
    config::{CommonConfig, Env, Mode, Target},
    internal_auth::InternalAuth,
    runtime::Shared,
    testsuite::{TestEnv, listener},
};
use sea_orm::DatabaseConnection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::api::Api;

fn random_hex() -> String {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 32];
    SysRng.try_fill_bytes(&mut bytes).expect("random");
    hex::encode(bytes)
}

pub struct Platform {
    pub api: Api,
    /// The time expiry and grace periods are decided at: a test moves it forward rather
    /// than sleeping.
    pub clock: keyplane_common::time::Clock,
    pub env: TestEnv,
    pub config: PlatformConfig,
    pub internal_secret: String,
    addrs: Vec<(Target, SocketAddr)>,
    vars: Env,
    shutdown: CancellationToken,
    task: Option<JoinHandle<anyhow::Result<()>>>,
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// Starts with extra settings (`KEYPLANE_…` variables).
    pub async fn start_with(extra: &[(&str, String)]) -> Self {
        // One subscriber for the whole test binary (RUST_LOG picks the level).
        crate::otlp::observability();
        let env = TestEnv::new().await;
        let internal_secret = random_hex();
        let mut vars = Env::from_pairs([
            ("KEYPLANE_DATABASE_URL", env.database_url.clone()),
            ("KEYPLANE_REDIS_URL", env.redis_url.clone()),
            ("KEYPLANE_REDIS_PREFIX", env.redis_prefix.clone()),
            ("KEYPLANE_INTERNAL_SECRET", internal_secret.clone()),
            ("KEYPLANE_DATAPLANE_SECRET", random_hex()),
            ("KEYPLANE_ENCRYPTION_KEY", random_hex()),
            // The template database is migrated already.
            ("KEYPLANE_MIGRATE_ON_START", "false".to_owned()),
            // Tests call fast and from one address: limits far away, but for the tests
            // of limits, which set their own.
            ("KEYPLANE_RATE_LIMIT_KEY", "10000000/60".to_owned()),
            ("KEYPLANE_RATE_LIMIT_SESSION", "10000000/60".to_owned()),
            ("KEYPLANE_RATE_LIMIT_SIGN_IN", "10000000/60".to_owned()),
            ("KEYPLANE_RATE_LIMIT_VERIFY", "10000000/60".to_owned()),
        ]);
        for (name, value) in extra {
            vars.set(name, value.clone());
        }
        let listeners = Listeners::bind(|_| SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind");
        let addrs = Target::ALL.iter().map(|t| (*t, listeners.addr(*t))).collect::<Vec<_>>();
        let mut config =
            PlatformConfig::from_env(vars.clone(), |t| listeners.addr(t)).expect("a valid test configuration");
        let clock = keyplane_common::time::Clock::adjustable();
        config.common.clock = clock.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(run(config.clone(), listeners, shutdown.clone()));
        let gateway = addrs.iter().find(|(t, _)| *t == Target::Gateway).map(|(_, a)| *a).expect("gateway");
        let api = Api::new(format!("http://{gateway}"));
        let platform = Self { api, clock, env, config, internal_secret, addrs, vars, shutdown, task: Some(task) };
        platform.wait_ready().await;
        platform
    }

    /// Until the gateway reports every service serving (readiness itself does not wait for
    /// them: it is about the gateway alone).
    async fn wait_ready(&self) {
        let ready = crate::eventually(Duration::from_secs(20), || async {
            let reply = self.api.get("/ready", None).await;
            let services = reply.body["services"].as_object().cloned().unwrap_or_default();
            reply.status == 200 && !services.is_empty() && services.values().all(|s| s == "ok")
        })
        .await;
        assert!(ready, "the platform did not become ready");
    }

    pub fn addr(&self, target: Target) -> SocketAddr {
        self.addrs.iter().find(|(t, _)| *t == target).map(|(_, a)| *a).expect("every target has an address")
    }

    /// A setting the platform was started with.
    pub fn setting(&self, name: &str) -> String {
        self.vars.get(name).unwrap_or_default().to_owned()
    }

    /// The operator's keys this platform seals secrets with.
    pub fn sealer(&self) -> keyplane_common::crypto::Sealer {
        keyplane_common::crypto::Sealer::parse(self.vars.get("KEYPLANE_ENCRYPTION_KEY").expect("a key"))
            .expect("a valid key")
    }

    /// Signs internal calls as `service` would.
    pub fn internal_auth(&self, service: &str) -> InternalAuth {
        InternalAuth::new(service, &[self.internal_secret.clone().into_bytes()])
    }

    pub fn channel(&self, target: Target) -> tonic::transport::Channel {
        keyplane_common::grpc::channel(&format!("http://{}", self.addr(target)), Duration::from_secs(5))
            .expect("channel")
    }

    /// A service's own database (its PostgreSQL schema), for tests that need to look
    /// behind the API (stored hashes, signing keys).
    pub async fn database(&self, service: &str) -> DatabaseConnection {
        keyplane_common::db::connect(&self.env.database_url, service, 2).await.expect("connect")
    }

    /// What every process shares, with some settings changed (another Redis prefix or URL,
    /// another internal secret, another operator key), as a replica of a deployment has.
    pub fn shared_with(&self, settings: &[(&str, String)]) -> Shared {
        let mut vars = self.vars.clone();
        for (name, value) in settings {
            vars.set(name, value.clone());
        }
        let mut common = CommonConfig::from_env(&mut vars, Mode::AllInOne);
        vars.finish().expect("valid replica settings");
        common.clock = self.clock.clone();
        Shared::new(common).expect("cache")
    }

    /// The identity service's current session signing key (its `kid` and the key), read
    /// behind its back to forge bearers that differ from real ones in exactly one way.
    pub async fn session_signing_key(&self) -> (String, jsonwebtoken::EncodingKey) {
        use sea_orm::{ConnectionTrait, Statement};
        let db = self.database("identity").await;
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT kid, private_pkcs8 FROM signing_keys WHERE retired_at IS NULL".to_owned(),
            ))
            .await
            .unwrap()
            .expect("a signing key");
        let kid: String = row.try_get("", "kid").unwrap();
        let sealed: Vec<u8> = row.try_get("", "private_pkcs8").unwrap();
        let der = self.sealer().open(&sealed, &format!("signing_key:{kid}")).expect("sealed with the operator key");
        (kid, jsonwebtoken::EncodingKey::from_ed_der(&der))
    }

    /// Another gateway replica with its own Redis connections, as in a deployment.
    pub async fn gateway_replica(&self) -> (Api, CancellationToken) {
        self.gateway_replica_with(|_| {}).await
    }

    /// A gateway replica with changed settings (a peer that is down, another route table).
    pub async fn gateway_replica_with(
        &self,
        change: impl FnOnce(&mut keyplane_gateway::Config),
    ) -> (Api, CancellationToken) {
        self.gateway_replica_custom(&[], change).await
    }

    /// A gateway replica whose data plane is `routes` (prefix, upstream), read and written
    /// with the families scopes, with `change` made to its settings besides.
    pub async fn gateway_routing(
        &self,
        routes: &[(&str, &str)],
        change: impl FnOnce(&mut keyplane_gateway::Config),
    ) -> (Api, CancellationToken) {
        let routes = routes
            .iter()
            .map(|(prefix, upstream)| keyplane_gateway::config::DataRoute {
                prefix: (*prefix).into(),
                upstream: (*upstream).into(),
                read_scope: "read:families".into(),
                write_scope: "write:families".into(),
            })
            .collect();
        self.gateway_replica_with(|config| {
            config.routes = routes;
            change(config);
        })
        .await
    }

    /// A gateway replica with changed shared settings and configuration.
    pub async fn gateway_replica_custom(
        &self,
        settings: &[(&str, String)],
        change: impl FnOnce(&mut keyplane_gateway::Config),
    ) -> (Api, CancellationToken) {
        let shared = self.shared_with(settings);
        let mut config = self.config.gateway.clone();
        change(&mut config);
        let listener = listener().await;
        let addr = listener.local_addr().expect("addr");
        let stop = self.shutdown.child_token();
        tokio::spawn(keyplane_gateway::serve(config, shared, listener, stop.clone()));
        let api = Api::new(format!("http://{addr}"));
        let ready = crate::eventually(Duration::from_secs(10), || async {
            api.http.get(api.url("/health")).send().await.is_ok()
        })
        .await;
        assert!(ready, "the replica did not start");
        (api, stop)
    }

    /// Another identity replica on the same database, with changed shared settings; answers
    /// its gRPC address.
    pub async fn identity_replica(&self, settings: &[(&str, String)]) -> (String, CancellationToken) {
        self.identity_replica_with(settings, |_| {}).await
    }

    /// An identity replica with changed shared settings and configuration (other peers).
    pub async fn identity_replica_with(
        &self,
        settings: &[(&str, String)],
        change: impl FnOnce(&mut keyplane_identity::Config),
    ) -> (String, CancellationToken) {
        let mut config = self.config.identity.clone();
        change(&mut config);
        let shared = self.shared_with(settings);
        self.replica(None, |listener, stop| keyplane_identity::serve(config, shared, listener, stop)).await
    }

    /// Another keys replica on the same database, with changed shared settings.
    pub async fn keys_replica(&self, settings: &[(&str, String)]) -> (String, CancellationToken) {
        self.keys_replica_with(settings, |_| {}).await
    }

    pub async fn keys_replica_with(
        &self,
        settings: &[(&str, String)],
        change: impl FnOnce(&mut keyplane_keys::Config),
    ) -> (String, CancellationToken) {
        let mut config = self.config.keys.clone();
        change(&mut config);
        let shared = self.shared_with(settings);
        self.replica(None, |listener, stop| keyplane_keys::serve(config, shared, listener, stop)).await
    }

    /// An orgs process on the same database, at `at` (to start one again where a stopped
    /// one listened) or a fresh port.
    pub async fn orgs_replica(&self, at: Option<SocketAddr>) -> (String, CancellationToken) {
        let (config, shared) = (self.config.orgs.clone(), self.shared_with(&[]));
        self.replica(at, |listener, stop| keyplane_orgs::serve(config, shared, listener, stop)).await
    }

    /// Another usage replica on the same database, with a changed configuration; answers
    /// its gRPC address.
    pub async fn usage_replica(&self, change: impl FnOnce(&mut keyplane_usage::Config)) -> (String, CancellationToken) {
        let mut config = self.config.usage.clone();
        change(&mut config);
        let shared = self.shared_with(&[]);
        self.replica(None, |listener, stop| keyplane_usage::serve(config, shared, listener, stop)).await
    }

    /// Starts one service on its own listener, stopped with the answered token (or with
    /// the platform), and waits until it serves.
    async fn replica<F>(
        &self,
        at: Option<SocketAddr>,
        serve: impl FnOnce(tokio::net::TcpListener, CancellationToken) -> F,
    ) -> (String, CancellationToken)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = match at {
            Some(addr) => tokio::net::TcpListener::bind(addr).await.expect("the address is free again"),
            None => listener().await,
        };
        let addr = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = self.shutdown.child_token();
        tokio::spawn(serve(listener, stop.clone()));
        self.wait_serving(&addr).await;
        (addr, stop)
    }

    async fn wait_serving(&self, addr: &str) {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
        let serving = crate::eventually(Duration::from_secs(10), || async {
            let channel = keyplane_common::grpc::channel(addr, Duration::from_secs(1)).expect("channel");
            let answer = HealthClient::new(channel).check(HealthCheckRequest { service: String::new() }).await;
            answer.is_ok_and(|a| a.into_inner().status() == ServingStatus::Serving)
        })
        .await;
        assert!(serving, "the replica at {addr} did not start");
    }

    /// An address where nothing listens.
    pub async fn closed_address() -> String {
        let closed = listener().await;
        let addr = closed.local_addr().expect("addr");
        drop(closed);
        format!("http://{addr}")
    }

    /// `keyplane serve --target <target>` as a process of its own beside this platform
    /// (its Redis and internal secret), with `extra` settings.
    pub fn serve(&self, target: &str, extra: &[(&str, String)]) -> Process {
        let mut command = std::process::Command::new(crate::keyplane_binary());
        command
            .args(["serve", "--target", target])
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("KEYPLANE_REDIS_URL", &self.env.redis_url)
            .env("KEYPLANE_REDIS_PREFIX", &self.env.redis_prefix)
            .env("KEYPLANE_INTERNAL_SECRET", &self.internal_secret)
            .env("KEYPLANE_METRICS_LISTEN", format!("127.0.0.1:{}", crate::free_port()))
            .stdout(std::process::Stdio::null());
        for (name, value) in extra {
            command.env(name, value);
        }
        Process(command.spawn().unwrap_or_else(|e| panic!("start keyplane serve --target {target}: {e}")))
    }

    /// What a gateway process listening on `port` needs to join this platform.
    pub fn gateway_settings(&self, port: u16) -> Vec<(&'static str, String)> {
        let peer = |t: Target| format!("http://{}", self.addr(t));
        vec![
            ("KEYPLANE_DATAPLANE_SECRET", self.setting("KEYPLANE_DATAPLANE_SECRET")),
            ("KEYPLANE_ENCRYPTION_KEY", self.setting("KEYPLANE_ENCRYPTION_KEY")),
            ("KEYPLANE_IDENTITY_ADDR", peer(Target::Identity)),
            ("KEYPLANE_KEYS_ADDR", peer(Target::Keys)),
            ("KEYPLANE_ORGS_ADDR", peer(Target::Orgs)),
            ("KEYPLANE_USAGE_ADDR", peer(Target::Usage)),
            ("KEYPLANE_ADVISORS_ADDR", peer(Target::Advisors)),
            ("KEYPLANE_GATEWAY_LISTEN", format!("127.0.0.1:{port}")),
        ]
    }

    /// Deletes this test's keys from Redis, as a flush or restart would.
    pub async fn flush_redis(&self) {
        let client = redis::Client::open(self.env.redis_url.as_str()).expect("redis url");
        let mut connection = client.get_multiplexed_async_connection().await.expect("redis");
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.env.redis_prefix))
            .query_async(&mut connection)
            .await
            .expect("keys");
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut connection).await.expect("del");
        }
    }

    /// Stops the platform gracefully and answers how it ended.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        match self.task.take() {
            Some(task) => task.await?,
            None => Ok(()),
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A `keyplane` process a test started: killed when dropped, so a failing test leaves
/// none running.
pub struct Process(pub std::process::Child);

impl std::ops::Deref for Process {
    type Target = std::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for Process {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
