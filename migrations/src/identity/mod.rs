use sea_orm_migration::prelude::*;

mod m20261124_000001_create_identity;
mod m20261125_000001_verified_addresses_and_mail;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261124_000001_create_identity::Migration),
            Box::new(m20261125_000001_verified_addresses_and_mail::Migration),
        ]
    }
}
