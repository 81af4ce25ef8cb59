//! Where the rollups live: one row per (org, hour, key, status class), added to by an
//! upsert (`requests = requests + excluded.requests`), so concurrent batches from many
//! gateways never read, modify and write the same row.
//!
//! This store is the seam a bigger deployment replaces: `add`, `hourly` and `sweep` are
//! all the service asks of it. Past what one PostgreSQL holds (see the README), a
//! ClickHouse `SummingMergeTree` table answers the same three calls.

mod entities;
mod partitions;

use chrono::{DateTime, Utc};
use keyplane_common::db::is_unique_violation;
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
    TransactionTrait,
    sea_query::{Expr, OnConflict},
};
use uuid::Uuid;

use entities::{usage_batches, usage_hourly};

use crate::{
    domain::{
        month::Month,
        rollup::{Count, StatusClass},
        window::Window,
    },
    error::Error,
};

/// How long a batch id is remembered: far longer than a gateway retries one.
const BATCH_MEMORY: chrono::Duration = chrono::Duration::hours(24);

/// What one retention sweep removed.
#[derive(Debug, Default)]
pub struct Swept {
    pub months_dropped: Vec<Month>,
    pub rows_deleted: u64,
}

#[derive(Clone)]
pub struct Store {
    db: DatabaseConnection,
    partitions: Option<partitions::Partitions>,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        let partitions = (db.get_database_backend() == DbBackend::Postgres).then(partitions::Partitions::default);
        Self { db, partitions }
    }

    /// Adds a batch of counts, once per batch id; answers whether it was new.
    pub async fn add(&self, batch_id: Uuid, counts: &[Count], now: DateTime<Utc>) -> Result<bool, Error> {
        if let Some(partitions) = &self.partitions {
            for month in counts.iter().map(|c| Month::of(c.hour)).collect::<std::collections::BTreeSet<_>>() {
                partitions.ensure(&self.db, month).await?;
            }
        }
        let txn = self.db.begin().await?;
        let claim = usage_batches::ActiveModel { batch_id: Set(batch_id), received_at: Set(now) };
        match usage_batches::Entity::insert(claim).exec_without_returning(&txn).await {
            Ok(_) => {}
            Err(e) if is_unique_violation(&e) => return Ok(false),
            Err(e) => return Err(e.into()),
        }
        // Far under PostgreSQL's 65 535 bind parameters per statement.
        for chunk in counts.chunks(1000) {
            let rows = chunk.iter().map(|c| usage_hourly::ActiveModel {
                org_id: Set(c.org_id),
                hour: Set(c.hour),
                key_id: Set(c.key_id.unwrap_or(Uuid::nil())),
                status_class: Set(i16::from(c.class.digit())),
                requests: Set(i64::try_from(c.requests).unwrap_or(i64::MAX)),
            });
            usage_hourly::Entity::insert_many(rows)
                .on_conflict(
                    OnConflict::columns([
                        usage_hourly::Column::OrgId,
                        usage_hourly::Column::Hour,
                        usage_hourly::Column::KeyId,
                        usage_hourly::Column::StatusClass,
                    ])
                    .value(usage_hourly::Column::Requests, Expr::cust("usage_hourly.requests + excluded.requests"))
                    .to_owned(),
                )
                .exec_without_returning(&txn)
                .await?;
        }
        txn.commit().await?;
        Ok(true)
    }

    /// Request sums per (hour, class) of an org's window, of one key or all.
    pub async fn hourly(
        &self,
        org_id: Uuid,
        window: Window,
        key_id: Option<Uuid>,
    ) -> Result<Vec<(DateTime<Utc>, StatusClass, u64)>, Error> {
        let mut query = usage_hourly::Entity::find()
            .select_only()
            .column(usage_hourly::Column::Hour)
            .column(usage_hourly::Column::StatusClass)
            // SUM of a bigint is a numeric on PostgreSQL.
            .column_as(Expr::cust("CAST(SUM(requests) AS BIGINT)"), "requests")
            .filter(usage_hourly::Column::OrgId.eq(org_id))
            .filter(usage_hourly::Column::Hour.gte(crate::domain::rollup::hour_of(window.from)))
            .filter(usage_hourly::Column::Hour.lt(window.to));
        if let Some(key_id) = key_id {
            query = query.filter(usage_hourly::Column::KeyId.eq(key_id));
        }
        let rows: Vec<(DateTime<Utc>, i16, i64)> = query
            .group_by(usage_hourly::Column::Hour)
            .group_by(usage_hourly::Column::StatusClass)
            .order_by_asc(usage_hourly::Column::Hour)
            .into_tuple()
            .all(&self.db)
            .await?;
        rows.into_iter()
            .map(|(hour, class, requests)| {
                let class = u32::try_from(class).ok().and_then(StatusClass::new);
                let class = class.ok_or_else(|| Error::internal("a usage row has a bad status class"))?;
                Ok((hour, class, u64::try_from(requests).unwrap_or_default()))
            })
            .collect()
    }

    /// Drops the rollups of months before `oldest_kept`, forgets old batch ids, and makes
    /// the partitions of this month and the next ahead of their first write.
    pub async fn sweep(&self, now: DateTime<Utc>, oldest_kept: Month) -> Result<Swept, Error> {
        let mut swept = Swept::default();
        match &self.partitions {
            Some(partitions) => {
                for month in [Month::of(now), Month::of(now).next()] {
                    partitions.ensure(&self.db, month).await?;
                }
                swept.months_dropped = partitions.drop_before(&self.db, oldest_kept).await?;
            }
            None => {
                let cutoff = oldest_kept.start();
                swept.rows_deleted = usage_hourly::Entity::delete_many()
                    .filter(usage_hourly::Column::Hour.lt(cutoff))
                    .exec(&self.db)
                    .await?
                    .rows_affected;
            }
        }
        usage_batches::Entity::delete_many()
            .filter(usage_batches::Column::ReceivedAt.lt(now - BATCH_MEMORY))
            .exec(&self.db)
            .await?;
        Ok(swept)
    }
}
