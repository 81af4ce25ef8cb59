//! `keyplane migrate`: applies every service's migrations to its own database.

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
