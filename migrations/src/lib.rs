//! Database migrations of Keyplane: one [`MigratorTrait`] per service, since each service
//! owns its tables and its own database (or PostgreSQL schema). They run on PostgreSQL and
//! on SQLite alike, so they use sea-query's schema builder; the one exception is the
//! PostgreSQL usage table, partitioned by month, which sea-query cannot say.

pub use sea_orm_migration::MigratorTrait;

mod common;

pub mod advisors;
pub mod families;
pub mod identity;
pub mod keys;
pub mod orgs;
pub mod usage;

use sea_orm_migration::sea_orm::{DatabaseConnection, DbErr};

/// The services that own tables, in the order `keyplane migrate` runs them.
pub const SERVICES: &[&str] = &["identity", "keys", "orgs", "usage", "advisors", "families"];

/// Applies a service's pending migrations to its database.
pub async fn migrate(service: &str, db: &DatabaseConnection) -> Result<(), DbErr> {
    match service {
        "identity" => identity::Migrator::up(db, None).await,
        "keys" => keys::Migrator::up(db, None).await,
        "orgs" => orgs::Migrator::up(db, None).await,
        "usage" => usage::Migrator::up(db, None).await,
        "advisors" => advisors::Migrator::up(db, None).await,
        "families" => families::Migrator::up(db, None).await,
        other => Err(DbErr::Migration(format!("no migrations for {other:?}"))),
    }
}

/// How many of a service's migrations its database has not applied yet.
pub async fn pending(service: &str, db: &DatabaseConnection) -> Result<usize, DbErr> {
    let pending = match service {
        "identity" => identity::Migrator::get_pending_migrations(db).await?,
        "keys" => keys::Migrator::get_pending_migrations(db).await?,
        "orgs" => orgs::Migrator::get_pending_migrations(db).await?,
        "usage" => usage::Migrator::get_pending_migrations(db).await?,
        "advisors" => advisors::Migrator::get_pending_migrations(db).await?,
        "families" => families::Migrator::get_pending_migrations(db).await?,
        other => return Err(DbErr::Migration(format!("no migrations for {other:?}"))),
    };
    Ok(pending.len())
}

/// The names of every migration of every service: a fingerprint of the schema.
pub fn fingerprint() -> Vec<String> {
    let mut names = Vec::new();
    for (service, migrations) in [
        ("identity", identity::Migrator::migrations()),
        ("keys", keys::Migrator::migrations()),
        ("orgs", orgs::Migrator::migrations()),
        ("usage", usage::Migrator::migrations()),
        ("advisors", advisors::Migrator::migrations()),
        ("families", families::Migrator::migrations()),
    ] {
        names.extend(migrations.iter().map(|m| format!("{service}/{}", m.name())));
    }
    names
}
