use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // A key's own rate limit: both columns, or neither (the gateway's default).
        for column in ["rate_limit_requests", "rate_limit_per_seconds"] {
            manager
                .alter_table(Table::alter().table("credentials").add_column(big_integer_null(column)).to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["rate_limit_per_seconds", "rate_limit_requests"] {
            manager.alter_table(Table::alter().table("credentials").drop_column(column).to_owned()).await?;
        }
        Ok(())
    }
}
