//! The transactional outbox: an event is written in the same transaction as the change it
//! describes, and a relay delivers it at least once afterwards. Nothing is lost while the
//! consumer is down; the consumer de-duplicates by event id.

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::future::BoxFuture;
use prometheus_client::metrics::gauge::Gauge;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::audit::AuditRecord;

/// Audit events, delivered to `orgs.AppendAudit`.
pub const AUDIT_TOPIC: &str = "audit";
const BATCH: u64 = 100;

pub mod entity {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub topic: String,
        pub payload: Json,
        pub created_at: DateTimeUtc,
        pub attempts: i32,
        pub next_attempt_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Writes audit events into the outbox, inside the caller's transaction.
pub async fn enqueue_audit<C: ConnectionTrait>(db: &C, records: &[AuditRecord]) -> Result<(), DbErr> {
    let items: Vec<(Uuid, serde_json::Value)> =
        records.iter().map(|r| (r.id, serde_json::to_value(r).expect("audit records serialize"))).collect();
    enqueue(db, AUDIT_TOPIC, &items).await
}

/// Writes events of `topic` into the outbox, inside the caller's transaction. An id
/// already queued is queued once.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    topic: &str,
    items: &[(Uuid, serde_json::Value)],
) -> Result<(), DbErr> {
    if items.is_empty() {
        return Ok(());
    }
    let now = Utc::now();
    let rows = items.iter().map(|(id, payload)| entity::ActiveModel {
        id: sea_orm::Set(*id),
        topic: sea_orm::Set(topic.to_owned()),
        payload: sea_orm::Set(payload.clone()),
        created_at: sea_orm::Set(now),
        attempts: sea_orm::Set(0),
        next_attempt_at: sea_orm::Set(now),
    });
    let inserted = entity::Entity::insert_many(rows)
        .on_conflict(sea_orm::sea_query::OnConflict::column(entity::Column::Id).do_nothing().to_owned())
        .exec_without_returning(db)
        .await;
    match inserted {
        Ok(_) | Err(DbErr::RecordNotInserted) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes an event off the outbox: it was delivered another way (at once, by its writer).
pub async fn forget<C: ConnectionTrait>(db: &C, id: Uuid) -> Result<(), DbErr> {
    entity::Entity::delete_by_id(id).exec(db).await?;
    Ok(())
}

/// Delivers one batch of payloads; an error means "try again later".
pub type Deliver = Arc<dyn Fn(Vec<serde_json::Value>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Relays due events of `topic` until `shutdown`, then makes one last attempt.
/// `wake` lets the writer ask for delivery now rather than at the next tick; `backlog`
/// shows how many events wait.
pub fn spawn_relay(
    db: DatabaseConnection,
    topic: &'static str,
    deliver: Deliver,
    wake: Arc<Notify>,
    backlog: Gauge,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let delivered_full_batch = match relay_once(&db, topic, &deliver).await {
                Ok(n) => n == BATCH,
                Err(e) => {
                    tracing::warn!(topic, error = %e, "outbox relay failed; will retry");
                    false
                }
            };
            if let Ok(waiting) = entity::Entity::find().filter(entity::Column::Topic.eq(topic)).count(&db).await {
                backlog.set(i64::try_from(waiting).unwrap_or(i64::MAX));
            }
            if delivered_full_batch {
                continue;
            }
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = wake.notified() => {}
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(2), relay_once(&db, topic, &deliver)).await;
    })
}

/// Delivers up to one batch; answers how many events it took off the outbox.
async fn relay_once(db: &DatabaseConnection, topic: &str, deliver: &Deliver) -> Result<u64, DbErr> {
    let now = Utc::now();
    let due = entity::Entity::find()
        .filter(entity::Column::Topic.eq(topic))
        .filter(entity::Column::NextAttemptAt.lte(now))
        .order_by_asc(entity::Column::CreatedAt)
        .limit(BATCH)
        .all(db)
        .await?;
    if due.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = due.iter().map(|m| m.id).collect();
    let payloads = due.iter().map(|m| m.payload.clone()).collect();
    match deliver(payloads).await {
        Ok(()) => {
            entity::Entity::delete_many().filter(entity::Column::Id.is_in(ids.clone())).exec(db).await?;
            Ok(ids.len() as u64)
        }
        Err(e) => {
            let attempts = due.iter().map(|m| m.attempts).max().unwrap_or(0) + 1;
            let backoff = Duration::from_secs(1u64 << attempts.clamp(0, 6) as u32);
            tracing::warn!(topic, attempts, error = %e, "outbox delivery failed");
            entity::Entity::update_many()
                .col_expr(entity::Column::Attempts, sea_orm::sea_query::Expr::value(attempts))
                .col_expr(
                    entity::Column::NextAttemptAt,
                    sea_orm::sea_query::Expr::value(now + chrono::Duration::from_std(backoff).unwrap_or_default()),
                )
                .filter(entity::Column::Id.is_in(ids))
                .exec(db)
                .await?;
            Ok(0)
        }
    }
}
