use sea_orm_migration::{prelude::*, schema::*};

use crate::common;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("orgs")
                    .col(pk_uuid("id"))
                    .col(string("name"))
                    .col(string_uniq("slug"))
                    .col(string("description"))
                    .col(string("website_url"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("members")
                    .col(uuid("org_id"))
                    .col(uuid("user_id"))
                    // "owner", "admin" or "member".
                    .col(string_len("role", 16))
                    .col(timestamp_with_time_zone("joined_at"))
                    .primary_key(Index::create().col("org_id").col("user_id"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("members_user").table("members").col("user_id").to_owned()).await?;

        // A user's developer org: the primary key makes ensure-dev-org idempotent.
        manager
            .create_table(
                Table::create()
                    .table("dev_orgs")
                    .col(pk_uuid("user_id"))
                    .col(uuid("org_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(pk_uuid("id"))
                    .col(uuid("org_id"))
                    .col(timestamp_with_time_zone("at"))
                    .col(string_len("actor_type", 16))
                    .col(string("actor_id"))
                    .col(string("action"))
                    .col(string("target_type"))
                    .col(string("target_id"))
                    .col(string("ip"))
                    .col(string("user_agent"))
                    .col(json("metadata"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_org_at")
                    .table("audit_events")
                    .col("org_id")
                    .col("at")
                    .col("id")
                    .to_owned(),
            )
            .await?;

        manager.create_table(common::create_outbox()).await?;
        manager.create_index(common::index_outbox_due()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox", "audit_events", "dev_orgs", "members", "orgs"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
