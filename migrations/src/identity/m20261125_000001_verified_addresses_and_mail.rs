use sea_orm_migration::{prelude::*, schema::*};

use crate::common;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Set when a verification mail's token is spent, or an external issuer says
        // email_verified; only a verified address can accept an invitation.
        manager
            .alter_table(
                Table::alter().table("users").add_column(timestamp_with_time_zone_null("email_verified_at")).to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("email_verifications")
                    // SHA-256 of the single-use token, hex.
                    .col(string_len("token_hash", 64).primary_key())
                    .col(uuid("user_id"))
                    // The address the mail went to: verifying it verifies only this one.
                    .col(string("email"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("email_verifications_user").table("email_verifications").col("user_id").to_owned(),
            )
            .await?;
        // Mail leaves through the outbox: committed with the change that sends it.
        manager.create_table(common::create_outbox()).await?;
        manager.create_index(common::index_outbox_due()).await?;
        // The development mailbox of `keyplane up`: what the mailer would have sent.
        manager
            .create_table(
                Table::create()
                    .table("dev_mailbox")
                    .col(pk_uuid("id"))
                    .col(string("to_address"))
                    .col(string_len("kind", 32))
                    .col(string("subject"))
                    .col(text("body"))
                    .col(string_null("token"))
                    .col(uuid_null("invitation_id"))
                    .col(timestamp_with_time_zone("sent_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("dev_mailbox_to").table("dev_mailbox").col("to_address").col("id").to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["dev_mailbox", "outbox", "email_verifications"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        manager.alter_table(Table::alter().table("users").drop_column("email_verified_at").to_owned()).await?;
        Ok(())
    }
}
