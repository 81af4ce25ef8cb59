use sea_orm_migration::prelude::*;

mod m20261124_000001_create_keys;
mod m20261125_000001_revisions_and_use_batches;
mod m20261125_000002_fences;
mod m20261126_000001_rate_limits;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_keys::Migration),
            Box::new(m20261125_000001_revisions_and_use_batches::Migration),
            Box::new(m20261125_000002_fences::Migration),
            Box::new(m20261126_000001_rate_limits::Migration),
        ]
    }
}
