use sea_orm_migration::prelude::*;

mod m20261124_000001_create_orgs;
mod m20261125_000001_invitations_and_audit_order;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_orgs::Migration),
            Box::new(m20261125_000001_invitations_and_audit_order::Migration),
        ]
    }
}
