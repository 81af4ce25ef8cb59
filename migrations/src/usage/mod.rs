use sea_orm_migration::prelude::*;

/// The usage service's tables arrive with the usage and audit issue.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }
}
