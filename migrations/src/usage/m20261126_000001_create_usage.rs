use sea_orm_migration::{prelude::*, schema::*, sea_orm::DbBackend};

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Hourly rollups, keyed the way they are read: an org's hours, then its keys. On
/// PostgreSQL the table is partitioned by month, so retention drops a partition instead
/// of deleting rows; the usage service creates the partitions it writes to. sea-query has
/// no `PARTITION BY`, hence the one raw statement of the migrations.
const PARTITIONED: &str = "
CREATE TABLE usage_hourly (
    org_id uuid NOT NULL,
    key_id uuid NOT NULL,
    hour timestamptz NOT NULL,
    status_class smallint NOT NULL,
    requests bigint NOT NULL,
    PRIMARY KEY (org_id, hour, key_id, status_class)
) PARTITION BY RANGE (hour)";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() == DbBackend::Postgres {
            manager.get_connection().execute_unprepared(PARTITIONED).await?;
        } else {
            manager
                .create_table(
                    Table::create()
                        .table("usage_hourly")
                        .col(uuid("org_id"))
                        .col(uuid("key_id"))
                        .col(timestamp_with_time_zone("hour"))
                        .col(small_integer("status_class"))
                        .col(big_integer("requests"))
                        .primary_key(Index::create().col("org_id").col("hour").col("key_id").col("status_class"))
                        .to_owned(),
                )
                .await?;
        }
        // Batches of counts added already: a gateway's retried flush is added once.
        manager
            .create_table(
                Table::create()
                    .table("usage_batches")
                    .col(pk_uuid("batch_id"))
                    .col(timestamp_with_time_zone("received_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("usage_batches_received").table("usage_batches").col("received_at").to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["usage_batches", "usage_hourly"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
