//! `keyplane migrate`: applies every service's migrations to its own database.

use std::time::{Duration, Instant};

use keyplane_common::{config::Target, db};

/// Migrates the given services' databases (each in its own PostgreSQL schema).
pub async fn run(targets: &[(Target, String)]) -> anyhow::Result<()> {
    for (target, url) in targets {
        let database = db::connect(url, target.name(), 2).await?;
        keyplane_migrations::migrate(target.name(), &database)
            .await
            .map_err(|e| anyhow::anyhow!("migrating {target}: {e}"))?;
        database.close().await?;
        tracing::info!(service = %target, database = %keyplane_common::config::redact_url(url), "migrated");
    }
    Ok(())
}

/// Waits until every given database has had all of this binary's migrations applied (by
/// the migrations Job), so a pod never serves an older schema; fails after `timeout`.
pub async fn wait(targets: &[(Target, String)], timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    for (target, url) in targets {
        loop {
            let behind = match db::connect(url, target.name(), 1).await {
                Ok(database) => {
                    let pending = keyplane_migrations::pending(target.name(), &database).await;
                    let _ = database.close().await;
                    pending.map_err(|e| e.to_string())
                }
                Err(e) => Err(e.to_string()),
            };
            match behind {
                Ok(0) => break,
                Ok(n) => tracing::info!(service = %target, pending = n, "waiting for the migrations job"),
                Err(e) => tracing::info!(service = %target, error = %e, "waiting for the database"),
            }
            anyhow::ensure!(Instant::now() < deadline, "{target}: migrations still pending after {timeout:?}");
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }
    tracing::info!("every schema is current");
    Ok(())
}
