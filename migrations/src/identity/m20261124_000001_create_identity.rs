use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(pk_uuid("id"))
                    .col(string("email"))
                    .col(string("name"))
                    // "keyplane" for password accounts, else the external OIDC issuer.
                    .col(string("issuer"))
                    // The lower-cased email for password accounts, else the issuer's `sub`.
                    .col(string("subject"))
                    .col(string_null("password_hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_issuer_subject")
                    .table("users")
                    .col("issuer")
                    .col("subject")
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("users_email").table("users").col("email").to_owned()).await?;

        manager
            .create_table(
                Table::create()
                    .table("sessions")
                    .col(pk_uuid("id"))
                    .col(uuid("user_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(string_null("revoked_reason"))
                    .to_owned(),
            )
            .await?;
        manager.create_index(Index::create().name("sessions_user").table("sessions").col("user_id").to_owned()).await?;

        manager
            .create_table(
                Table::create()
                    .table("refresh_tokens")
                    // SHA-256 of the token, hex.
                    .col(string_len("hash", 64).primary_key())
                    .col(uuid("session_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("spent_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("refresh_tokens_session").table("refresh_tokens").col("session_id").to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table("signing_keys")
                    .col(string_len("kid", 64).primary_key())
                    // PKCS#8 DER of the Ed25519 private key.
                    .col(blob("private_pkcs8"))
                    // The public key, base64url (JWK `x`).
                    .col(string("public_x"))
                    .col(timestamp_with_time_zone("created_at"))
                    // Stops signing from then on.
                    .col(timestamp_with_time_zone_null("retired_at"))
                    // Stops being published (and verifying) from then on.
                    .col(timestamp_with_time_zone_null("unpublish_at"))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in ["signing_keys", "refresh_tokens", "sessions", "users"] {
            manager.drop_table(Table::drop().table(table).to_owned()).await?;
        }
        Ok(())
    }
}
