//! The test kit: each test gets a throwaway PostgreSQL database (copied from a template
//! migrated once) and its own Redis key prefix, both removed when it ends.
//!
//! Servers: `TEST_DATABASE_URL` (any database on the server, used to create others) and
//! `TEST_REDIS_URL`, defaulting to the local servers on their standard ports.

use std::{
    sync::OnceLock,
    time::{SystemTime, UNIX_EPOCH},
};

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbErr, Statement};
use sha2::{Digest, Sha256};
use tokio::{net::TcpListener, sync::Mutex};
use uuid::Uuid;

const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Databases of test runs that crashed are removed after this long.
const STALE_AFTER_SECS: u64 = 3600;

/// A listener on a free loopback port, bound before the server starts: no port races.
pub async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port")
}

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| DEFAULT_REDIS_URL.to_owned())
}

/// `url` with its database name replaced.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => &base[..i],
        _ => base,
    };
    match query {
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// One test's database and Redis prefix; both are removed on drop.
pub struct TestEnv {
    pub database_url: String,
    pub database_name: String,
    pub redis_url: String,
    pub redis_prefix: String,
}

impl TestEnv {
    pub async fn new() -> Self {
        let database_name = create_test_database().await;
        Self {
            database_url: with_database(&admin_database_url(), &database_name),
            database_name,
            redis_url: redis_url(),
            redis_prefix: format!("kp_test:{}:", Uuid::now_v7().simple()),
        }
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let name = self.database_name.clone();
        let redis_url = self.redis_url.clone();
        let prefix = self.redis_prefix.clone();
        // Drop runs inside the test's runtime, which cannot block on async work itself.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(admin_database_url()).await {
                    let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
                    let _ = admin.close().await;
                }
                let _ = delete_redis_prefix(&redis_url, &prefix).await;
            });
        });
        let _ = cleanup.join();
    }
}

async fn delete_redis_prefix(url: &str, prefix: &str) -> redis::RedisResult<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let mut cursor: u64 = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("{prefix}*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut connection)
            .await?;
        if !keys.is_empty() {
            redis::cmd("DEL").arg(&keys).query_async::<()>(&mut connection).await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// The name of the template for the current migrations.
fn template_name() -> String {
    let digest = Sha256::digest(keyplane_migrations::fingerprint().join("\n").as_bytes());
    format!("kp_tmpl_{}", &hex::encode(digest)[..16])
}

static TEMPLATE: OnceLock<String> = OnceLock::new();
/// CREATE DATABASE … TEMPLATE fails while another copy of the template is being made.
static CREATING: Mutex<()> = Mutex::const_new(());

async fn create_test_database() -> String {
    let _guard = CREATING.lock().await;
    // One connection: the advisory lock and its unlock must run on the same session.
    let mut options = sea_orm::ConnectOptions::new(admin_database_url());
    options.max_connections(1).sqlx_logging(false);
    let admin = Database::connect(options).await.unwrap_or_else(|e| {
        panic!(
            "cannot reach the test PostgreSQL at {} ({e}); run the tests with `make test`, which starts one",
            crate::config::redact_url(&admin_database_url())
        )
    });
    let template = match TEMPLATE.get() {
        Some(t) => t.clone(),
        None => {
            let t = ensure_template(&admin).await.expect("create the migrated template database");
            TEMPLATE.get_or_init(|| t).clone()
        }
    };
    let name = format!("kp_test_{}_{}", unix_now(), &Uuid::new_v4().simple().to_string()[..12]);
    let mut attempt = 0;
    loop {
        let created = admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"")).await;
        match created {
            Ok(_) => break,
            // Another test binary is copying the same template right now.
            Err(e) if attempt < 50 && e.to_string().contains("being accessed by other users") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("create test database {name}: {e}"),
        }
    }
    let _ = admin.close().await;
    name
}

/// Creates the migrated template once per schema version, under an advisory lock so that
/// concurrent test binaries agree; also removes what crashed runs left behind.
async fn ensure_template(admin: &DatabaseConnection) -> Result<String, DbErr> {
    const LOCK: i64 = 0x6b70_7465_6d70; // "kptemp"
    let name = template_name();
    admin.execute_unprepared(&format!("SELECT pg_advisory_lock({LOCK})")).await?;
    let result = async {
        remove_leftovers(admin, &name).await?;
        let exists = admin
            .query_one_raw(Statement::from_sql_and_values(
                admin.get_database_backend(),
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ))
            .await?
            .is_some();
        if !exists {
            let building = format!("{name}_building_{}", std::process::id());
            admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{building}\" WITH (FORCE)")).await?;
            admin.execute_unprepared(&format!("CREATE DATABASE \"{building}\"")).await?;
            let url = with_database(&admin_database_url(), &building);
            for service in keyplane_migrations::SERVICES {
                let db = crate::db::connect(&url, service, 1).await?;
                keyplane_migrations::migrate(service, &db).await?;
                db.close().await?;
            }
            // Renamed only when complete: a template is either whole or absent.
            admin.execute_unprepared(&format!("ALTER DATABASE \"{building}\" RENAME TO \"{name}\"")).await?;
        }
        Ok::<_, DbErr>(())
    }
    .await;
    admin.execute_unprepared(&format!("SELECT pg_advisory_unlock({LOCK})")).await?;
    result.map(|()| name)
}

/// Drops templates of older schemas and test databases of runs that died.
async fn remove_leftovers(admin: &DatabaseConnection, current_template: &str) -> Result<(), DbErr> {
    let rows = admin
        .query_all_raw(Statement::from_string(
            admin.get_database_backend(),
            "SELECT datname FROM pg_database WHERE datname LIKE 'kp\\_%'".to_owned(),
        ))
        .await?;
    let now = unix_now();
    for row in rows {
        let name: String = row.try_get("", "datname")?;
        let stale = if let Some(rest) = name.strip_prefix("kp_test_") {
            rest.split('_')
                .next()
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|t| now.saturating_sub(t) > STALE_AFTER_SECS)
        } else {
            name.starts_with("kp_tmpl_") && name != current_template && !name.contains("_building_")
        };
        if stale {
            let _ = admin.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")).await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::with_database;

    #[test]
    fn database_names_are_replaced() {
        assert_eq!(with_database("postgres://u@h:5432/postgres", "x"), "postgres://u@h:5432/x");
        assert_eq!(with_database("postgres://u@h/postgres?sslmode=disable", "x"), "postgres://u@h/x?sslmode=disable");
        assert_eq!(with_database("postgres://u@h:5432", "x"), "postgres://u@h:5432/x");
    }
}
