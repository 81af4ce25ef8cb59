use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Nobody joins an org without accepting an invitation from a verified address.
        manager
            .create_table(
                Table::create()
                    .table("invitations")
                    .col(pk_uuid("id"))
                    .col(uuid("org_id"))
                    // Lower-cased, as accounts are keyed.
                    .col(string("email"))
                    .col(string_len("role", 16))
                    // "pending", "accepted", "declined" or "revoked"; "expired" is derived.
                    .col(string_len("status", 16))
                    // The user behind the principal that invited.
                    .col(string("invited_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("responded_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create().name("invitations_org").table("invitations").col("org_id").col("id").to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("invitations_email")
                    .table("invitations")
                    .col("email")
                    .col("status")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        // The audit log is read newest first by id (ids are time-ordered), optionally for
        // one action: indexes in that order, so no page needs a sort.
        manager
            .create_index(
                Index::create().name("audit_events_org_id").table("audit_events").col("org_id").col("id").to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_org_action_id")
                    .table("audit_events")
                    .col("org_id")
                    .col("action")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for index in ["audit_events_org_action_id", "audit_events_org_id"] {
            manager.drop_index(Index::drop().name(index).table("audit_events").to_owned()).await?;
        }
        manager.drop_table(Table::drop().table("invitations").to_owned()).await?;
        Ok(())
    }
}
