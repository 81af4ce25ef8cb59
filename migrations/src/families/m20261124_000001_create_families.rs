use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("families")
                    .col(pk_uuid("id"))
                    .col(uuid("org_id"))
                    // Test and live data never see each other.
                    .col(string_len("environment", 8))
                    .col(string("name"))
                    .col(uuid("created_by_key"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("families_org_env")
                    .table("families")
                    .col("org_id")
                    .col("environment")
                    .col("id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("families").to_owned()).await
    }
}
