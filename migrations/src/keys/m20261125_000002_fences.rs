use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per org that every new credential and every bulk revocation of the org
        // locks, so the two never interleave; `closed_at` is set when the org is deleted.
        manager
            .create_table(
                Table::create()
                    .table("org_fences")
                    .col(pk_uuid("org_id"))
                    .col(timestamp_with_time_zone_null("closed_at"))
                    .to_owned(),
            )
            .await?;
        // Memberships that ended: a credential authorized on one of them is not stored.
        manager
            .create_table(
                Table::create()
                    .table("membership_fences")
                    .col(uuid("org_id"))
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("member_since"))
                    .col(timestamp_with_time_zone("closed_at"))
                    .primary_key(Index::create().col("org_id").col("user_id").col("member_since"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["membership_fences", "org_fences"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
