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
                    .table("credentials")
                    .col(pk_uuid("id"))
                    // "api_key" or "mcp_token".
                    .col(string_len("kind", 16))
                    .col(uuid("org_id"))
                    .col(uuid_null("created_by"))
                    .col(string("name"))
                    // "test" or "live"; empty for MCP tokens.
                    .col(string_len("environment", 8))
                    .col(string_len("prefix", 16))
                    // SHA-256 of the current secret, hex.
                    .col(string_len("hash", 64))
                    // SHA-256 of the secret before the last regeneration, while it works.
                    .col(string_len_null("previous_hash", 64))
                    .col(timestamp_with_time_zone_null("previous_expires_at"))
                    // Null: full permission.
                    .col(json_null("scopes"))
                    .col(json("resource_ids"))
                    .col(boolean("bootstrap").default(false))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("credentials_hash").table("credentials").col("hash").unique().to_owned())
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_previous_hash")
                    .table("credentials")
                    .col("previous_hash")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_org")
                    .table("credentials")
                    .col("org_id")
                    .col("kind")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("credentials_creator")
                    .table("credentials")
                    .col("created_by")
                    .col("kind")
                    .col("id")
                    .to_owned(),
            )
            .await?;

        // One row per org that ever received its bootstrap key: the primary key is what
        // makes twenty concurrent ensure-dev-org calls mint one key.
        manager
            .create_table(
                Table::create()
                    .table("bootstrap_claims")
                    .col(pk_uuid("org_id"))
                    .col(uuid("key_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;

        manager.create_table(common::create_outbox()).await?;
        manager.create_index(common::index_outbox_due()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox", "bootstrap_claims", "credentials"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
