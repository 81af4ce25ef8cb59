use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Grows with every change of a credential; caches never keep a record older than
        // a change they were told about.
        manager
            .alter_table(Table::alter().table("credentials").add_column(big_integer("revision").default(1)).to_owned())
            .await?;
        // Batches of key use applied already: a gateway's retried flush is applied once.
        manager
            .create_table(
                Table::create()
                    .table("use_batches")
                    .col(pk_uuid("batch_id"))
                    .col(timestamp_with_time_zone("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("use_batches_received").table("use_batches").col("received_at").to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager.drop_table(Table::drop().table("use_batches").to_owned()).await?;
        manager.alter_table(Table::alter().table("credentials").drop_column("revision").to_owned()).await?;
        Ok(())
    }
}
