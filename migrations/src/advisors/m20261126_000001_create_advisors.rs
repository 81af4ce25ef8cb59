use sea_orm_migration::{prelude::*, schema::*};

use crate::common::{create_outbox, index_outbox_due};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("advisors")
                    .col(pk_uuid("id"))
                    .col(uuid("org_id"))
                    .col(string("name"))
                    .col(text("description"))
                    .col(string("endpoint_url"))
                    .col(string("status"))
                    .col(uuid_null("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("advisors_org").table("advisors").col("org_id").col("id").to_owned())
            .await?;
        // Declared Ed25519 public keys; a retired key stays listed and verifies nothing.
        manager
            .create_table(
                Table::create()
                    .table("payload_keys")
                    .col(uuid("advisor_id"))
                    .col(string("kid"))
                    // Raw 32 bytes, base64url without padding (as JWK `x`).
                    .col(string("public_x"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone("declared_at"))
                    .col(timestamp_with_time_zone_null("retired_at"))
                    .primary_key(Index::create().col("advisor_id").col("kid"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("consultations")
                    .col(pk_uuid("id"))
                    .col(uuid("advisor_id"))
                    .col(uuid("org_id"))
                    .col(text("question"))
                    .col(text("context_json"))
                    .col(string("status"))
                    .col(string("requested_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    // The signed answer, kept as it was signed so anyone can verify it again.
                    .col(timestamp_with_time_zone_null("answered_at"))
                    .col(text_null("answer"))
                    .col(string_null("response_key_id"))
                    .col(json_null("signed_request"))
                    // Delivery to the advisor's endpoint, when it has one.
                    .col(string_null("delivery_status"))
                    .col(integer("delivery_attempts").default(0))
                    .col(text_null("delivery_last_error"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone_null("next_delivery_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("consultations_due")
                    .table("consultations")
                    .col("delivery_status")
                    .col("next_delivery_at")
                    .to_owned(),
            )
            .await?;
        // Nonces seen in signatures, kept past the signatures' freshness window.
        manager
            .create_table(
                Table::create()
                    .table("seen_nonces")
                    .col(uuid("advisor_id"))
                    .col(string("kid"))
                    .col(string("nonce"))
                    .col(timestamp_with_time_zone("seen_at"))
                    .primary_key(Index::create().col("advisor_id").col("kid").col("nonce"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(Index::create().name("seen_nonces_at").table("seen_nonces").col("seen_at").to_owned())
            .await?;
        // The platform's own Ed25519 keys that sign deliveries; the private half sealed.
        manager
            .create_table(
                Table::create()
                    .table("delivery_keys")
                    .col(string("kid").primary_key())
                    .col(string("public_x"))
                    .col(blob("private_sealed"))
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager.create_table(create_outbox()).await?;
        manager.create_index(index_outbox_due()).await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["outbox", "delivery_keys", "seen_nonces", "consultations", "payload_keys", "advisors"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
