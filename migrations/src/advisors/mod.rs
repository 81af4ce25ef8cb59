use sea_orm_migration::prelude::*;

/// The advisors service's tables arrive with the advisors and MCP issue.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }
}
