//! The stage of a run: a fresh PostgreSQL database and Redis prefix; `keyplane up` (every
//! service and gateway A); the gateway under test (B) and its own identity process, so a
//! cache miss on B really goes to Redis or PostgreSQL; the bare hyper server (ceiling and
//! static upstream); nginx (the peer). Everything is stopped, and the database dropped,
//! when the stage is dropped.

use std::path::{Path, PathBuf};

use sqlx::{Connection, Executor, PgConnection};

use crate::procs::{Cores, Running, free_port, pinned, wait_listening};

/// Far above any load here: the limiter still runs on every request, as in production.
const NO_LIMIT: &str = "10000000/60";

pub struct Stage {
    pub scratch: PathBuf,
    pub gateway_a: String,
    pub gateway_b: String,
    /// Gateway B's twin, logging as in production (`info`, JSON).
    pub gateway_c: String,
    pub bare: String,
    /// The same answer through an axum router with no middleware: the framework's floor.
    pub axum: String,
    pub nginx: String,
    pub redis_url: String,
    pub redis_prefix: String,
    /// The gateway under test, to read its memory.
    pub gateway_b_process: Running,
    // Dropped in this order: the gateway B and its identity, nginx, the bare server, up.
    _rest: Vec<Running>,
    admin_url: String,
    database: String,
}

/// A fresh 32-byte secret, hex, from the OS (as the platform makes its own).
fn random_hex() -> String {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 32];
    SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
    hex::encode(bytes)
}

/// Waits until the gateway at `url` is ready and reports every service serving.
async fn wait_ready(url: &str) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        if let Ok(answer) = reqwest::get(format!("{url}/ready")).await
            && let Ok(body) = answer.json::<serde_json::Value>().await
            && body["status"] == "ready"
        {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    anyhow::bail!("{url} did not become ready")
}

impl Stage {
    pub async fn start(bin: &Path, cores: Cores, scratch: PathBuf) -> anyhow::Result<Self> {
        let admin_url =
            std::env::var("TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
        let redis_url = std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        let database = format!("keyplane_bench_{}", std::process::id());
        let mut admin = PgConnection::connect(&admin_url).await?;
        let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        admin.execute(sqlx::AssertSqlSafe(drop)).await?;
        let create = format!("CREATE DATABASE {database}");
        admin.execute(sqlx::AssertSqlSafe(create)).await?;
        let database_url = match admin_url.rsplit_once('/') {
            Some((server, _)) => format!("{server}/{database}"),
            None => anyhow::bail!("TEST_DATABASE_URL has no database name"),
        };
        let redis_prefix = format!("{database}:");
        let secrets = [
            ("KEYPLANE_INTERNAL_SECRET", random_hex()),
            ("KEYPLANE_DATAPLANE_SECRET", random_hex()),
            ("KEYPLANE_ENCRYPTION_KEY", random_hex()),
        ];
        let common: Vec<(String, String)> = [
            ("KEYPLANE_DATABASE_URL", database_url.clone()),
            ("KEYPLANE_REDIS_URL", redis_url.clone()),
            ("KEYPLANE_REDIS_PREFIX", redis_prefix.clone()),
            ("KEYPLANE_RATE_LIMIT_KEY", NO_LIMIT.into()),
            ("KEYPLANE_RATE_LIMIT_SESSION", NO_LIMIT.into()),
            ("KEYPLANE_RATE_LIMIT_SIGN_IN", NO_LIMIT.into()),
            ("KEYPLANE_RATE_LIMIT_VERIFY", NO_LIMIT.into()),
            ("KEYPLANE_RATE_LIMIT_KEY_MAX", NO_LIMIT.into()),
            ("KEYPLANE_DATA_DIR", scratch.join("data").display().to_string()),
            ("RUST_LOG", "warn".into()),
            // `serve` would take 9464 in every process; each takes a port of its own here.
            ("KEYPLANE_METRICS_LISTEN", "127.0.0.1:0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .chain(secrets.iter().map(|(k, v)| ((*k).to_owned(), v.clone())))
        .collect();
        let keyplane = bin.join("keyplane").display().to_string();
        let mut rest = Vec::new();

        let bare_port = free_port()?;
        let mut bare = pinned(cores.servers, &bin.join("bench-bare").display().to_string());
        bare.arg(format!("127.0.0.1:{bare_port}"));
        rest.push(Running::start("bench-bare", bare, &scratch.join("bare.log"))?);
        wait_listening(bare_port, "the bare server")?;
        let axum_port = free_port()?;
        let mut axum = pinned(cores.servers, &bin.join("bench-bare").display().to_string());
        axum.arg(format!("127.0.0.1:{axum_port}")).arg("--axum");
        rest.push(Running::start("bench-bare --axum", axum, &scratch.join("axum.log"))?);
        wait_listening(axum_port, "the bare axum server")?;

        // Every service of `keyplane up` on a port of its own.
        let targets = ["IDENTITY", "KEYS", "ORGS", "USAGE", "ADVISORS", "FAMILIES", "GATEWAY"];
        let mut ports = std::collections::HashMap::new();
        let mut up = pinned(cores.servers, &keyplane);
        up.arg("up").envs(common.iter().cloned());
        for target in targets {
            let port = free_port()?;
            ports.insert(target, port);
            up.env(format!("KEYPLANE_{target}_LISTEN"), format!("127.0.0.1:{port}"));
        }
        rest.push(Running::start("keyplane up", up, &scratch.join("up.log"))?);
        for target in targets {
            wait_listening(ports[target], &format!("keyplane up's {target}"))?;
        }
        let addr = |target: &str| format!("http://127.0.0.1:{}", ports[target]);
        // Listening comes before migrating: ready means migrated and serving.
        wait_ready(&addr("GATEWAY")).await?;

        // Gateway B's own identity: its caches are its own, so B's misses are real ones.
        let identity_b = free_port()?;
        let mut identity = pinned(cores.servers, &keyplane);
        identity
            .args(["serve", "--target", "identity"])
            .envs(common.iter().cloned())
            .env("KEYPLANE_IDENTITY_LISTEN", format!("127.0.0.1:{identity_b}"))
            .env("KEYPLANE_KEYS_ADDR", addr("KEYS"))
            .env("KEYPLANE_ORGS_ADDR", addr("ORGS"));
        let identity = Running::start("identity B", identity, &scratch.join("identity-b.log"))?;
        wait_listening(identity_b, "identity B")?;

        let gateway_b_port = free_port()?;
        let routes = serde_json::json!([
            {"prefix": "/api/v1/developer/families", "upstream": addr("FAMILIES"), "read_scope": "read:families", "write_scope": "write:families"},
            {"prefix": "/api/v1/developer/static", "upstream": format!("http://127.0.0.1:{bare_port}"), "read_scope": "read:families", "write_scope": "write:families"},
        ]);
        let gateway = |port: u16| {
            let mut gateway = pinned(cores.servers, &keyplane);
            gateway
                .args(["serve", "--target", "gateway"])
                .envs(common.iter().cloned())
                .env("KEYPLANE_GATEWAY_LISTEN", format!("127.0.0.1:{port}"))
                .env("KEYPLANE_IDENTITY_ADDR", format!("http://127.0.0.1:{identity_b}"))
                .env("KEYPLANE_KEYS_ADDR", addr("KEYS"))
                .env("KEYPLANE_ORGS_ADDR", addr("ORGS"))
                .env("KEYPLANE_USAGE_ADDR", addr("USAGE"))
                .env("KEYPLANE_ADVISORS_ADDR", addr("ADVISORS"))
                .env("KEYPLANE_GATEWAY_ROUTES", routes.to_string());
            gateway
        };
        let gateway_b_process = Running::start("gateway B", gateway(gateway_b_port), &scratch.join("gateway-b.log"))?;
        wait_listening(gateway_b_port, "gateway B")?;
        wait_ready(&format!("http://127.0.0.1:{gateway_b_port}")).await?;
        // Gateway C: B as the manifests run it, logging at `info` in JSON (a span per request,
        // no exporter), so the cost of that is measured beside B in the same run.
        let gateway_c_port = free_port()?;
        let mut logged = gateway(gateway_c_port);
        logged.env("RUST_LOG", "info").env("KEYPLANE_LOG_FORMAT", "json");
        rest.push(Running::start("gateway C", logged, &scratch.join("gateway-c.log"))?);
        wait_listening(gateway_c_port, "gateway C")?;
        wait_ready(&format!("http://127.0.0.1:{gateway_c_port}")).await?;

        let nginx_port = free_port()?;
        rest.insert(0, identity);
        let stage = Self {
            gateway_a: addr("GATEWAY"),
            gateway_b: format!("http://127.0.0.1:{gateway_b_port}"),
            gateway_c: format!("http://127.0.0.1:{gateway_c_port}"),
            bare: format!("http://127.0.0.1:{bare_port}"),
            axum: format!("http://127.0.0.1:{axum_port}"),
            nginx: format!("http://127.0.0.1:{nginx_port}"),
            redis_url,
            redis_prefix,
            gateway_b_process,
            _rest: rest,
            admin_url,
            database,
            scratch,
        };
        Ok(stage)
    }

    /// nginx with one worker on the servers' core: a static `map` of keys, answering
    /// itself, or proxying to the bare upstream over kept-alive connections.
    pub fn start_nginx(&mut self, cores: Cores, keys: &[String]) -> anyhow::Result<()> {
        let dir = self.scratch.join("nginx");
        std::fs::create_dir_all(&dir)?;
        let port = self.nginx.rsplit(':').next().unwrap_or_default().to_owned();
        let upstream = self.bare.trim_start_matches("http://").to_owned();
        let map: String = keys.iter().map(|k| format!("    \"Bearer {k}\" 1;\n")).collect();
        let affinity = cores.servers.map(|c| format!("worker_cpu_affinity {:b};\n", 1u64 << c)).unwrap_or_default();
        let config = format!(
            "worker_processes 1;\n{affinity}daemon off;\npid {dir}/nginx.pid;\nerror_log {dir}/error.log warn;\n\
             events {{ worker_connections 4096; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {dir}/body;\n  proxy_temp_path {dir}/proxy;\n\
               fastcgi_temp_path {dir}/fastcgi;\n  uwsgi_temp_path {dir}/uwsgi;\n  scgi_temp_path {dir}/scgi;\n\
               keepalive_requests 100000;\n  map_hash_bucket_size 256;\n\
               map $http_authorization $known {{\n    default 0;\n{map}  }}\n\
               upstream static {{ server {upstream}; keepalive 64; }}\n\
               server {{\n    listen 127.0.0.1:{port};\n\
                 location = /map {{ if ($known = 0) {{ return 401; }} return 200 '{{}}'; }}\n\
                 location /api/v1/developer/static {{ if ($known = 0) {{ return 401; }}\n\
                   proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_pass http://static; }}\n\
               }}\n}}\n",
            dir = dir.display()
        );
        let file = dir.join("nginx.conf");
        std::fs::write(&file, config)?;
        let nginx = crate::procs::which("nginx").ok_or_else(|| anyhow::anyhow!("nginx is not installed"))?;
        // The master too: the harness runs pinned to the load core, and children inherit it.
        let mut command = pinned(cores.servers, &nginx.display().to_string());
        command.arg("-c").arg(&file).arg("-p").arg(&dir);
        self._rest.insert(0, Running::start("nginx", command, &dir.join("stdout.log"))?);
        wait_listening(port.parse()?, "nginx")
    }

    /// Deletes the Redis keys under the run's prefix that start with `pattern`.
    pub async fn forget_in_redis(&self, pattern: &str) -> anyhow::Result<usize> {
        let client = redis::Client::open(self.redis_url.as_str())?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        let keys: Vec<String> =
            redis::cmd("KEYS").arg(format!("{}{pattern}*", self.redis_prefix)).query_async(&mut connection).await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut connection).await?;
        }
        Ok(keys.len())
    }

    /// Stops every process, then drops the run's database and Redis keys.
    pub async fn finish(self) -> anyhow::Result<()> {
        let Self { gateway_b_process, _rest, admin_url, database, .. } = self;
        drop(gateway_b_process);
        drop(_rest);
        let mut admin = PgConnection::connect(&admin_url).await?;
        let drop = format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)");
        admin.execute(sqlx::AssertSqlSafe(drop)).await?;
        Ok(())
    }
}
