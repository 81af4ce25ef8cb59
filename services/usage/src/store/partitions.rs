//! The monthly partitions of `usage_hourly` on PostgreSQL: made before the first write of
//! their month, dropped whole when the month falls out of retention (a `DROP TABLE`
//! instead of deleting millions of rows and vacuuming after).

use std::{collections::HashSet, sync::Arc};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, Statement};
use tokio::sync::Mutex;

use crate::domain::month::Month;

const PARENT: &str = "usage_hourly";

/// `usage_hourly_2026_03`.
fn table(month: Month) -> String {
    format!("{PARENT}_{:04}_{:02}", month.year, month.month)
}

fn month_of_table(name: &str) -> Option<Month> {
    let (year, month) = name.strip_prefix(PARENT)?.strip_prefix('_')?.split_once('_')?;
    Some(Month { year: year.parse().ok()?, month: month.parse().ok().filter(|m| (1..=12).contains(m))? })
}

/// The months known to have a partition, so a write checks the catalogue once a month.
#[derive(Clone, Default)]
pub struct Partitions {
    made: Arc<Mutex<HashSet<Month>>>,
}

impl Partitions {
    pub async fn ensure(&self, db: &DatabaseConnection, month: Month) -> Result<(), DbErr> {
        let mut made = self.made.lock().await;
        if made.contains(&month) {
            return Ok(());
        }
        // The bounds are our own timestamps, not input: formatting them into the DDL is safe
        // (DDL takes no bind parameters).
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS {} PARTITION OF {PARENT} FOR VALUES FROM ('{}') TO ('{}')",
            table(month),
            month.start().to_rfc3339(),
            month.next().start().to_rfc3339(),
        );
        if let Err(e) = db.execute_unprepared(&sql).await {
            // Another replica made it at the same moment: it is there, which is all we need.
            if !self.exists(db, month).await? {
                return Err(e);
            }
        }
        made.insert(month);
        Ok(())
    }

    async fn exists(&self, db: &DatabaseConnection, month: Month) -> Result<bool, DbErr> {
        Ok(self.list(db).await?.contains(&month))
    }

    /// The months that have a partition in this service's schema.
    async fn list(&self, db: &DatabaseConnection) -> Result<Vec<Month>, DbErr> {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT c.relname AS name FROM pg_inherits i \
                 JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent \
                 JOIN pg_namespace n ON n.oid = p.relnamespace \
                 WHERE p.relname = 'usage_hourly' AND n.nspname = current_schema()",
            ))
            .await?;
        let mut months = Vec::new();
        for row in rows {
            let name: String = row.try_get("", "name")?;
            months.extend(month_of_table(&name));
        }
        Ok(months)
    }

    /// Drops every partition of a month before `oldest_kept`; answers which.
    pub async fn drop_before(&self, db: &DatabaseConnection, oldest_kept: Month) -> Result<Vec<Month>, DbErr> {
        let mut made = self.made.lock().await;
        let mut dropped = Vec::new();
        for month in self.list(db).await?.into_iter().filter(|m| *m < oldest_kept) {
            db.execute_unprepared(&format!("DROP TABLE IF EXISTS {}", table(month))).await?;
            made.remove(&month);
            dropped.push(month);
        }
        dropped.sort();
        Ok(dropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_names_read_back_as_their_month() {
        let month = Month { year: 2026, month: 3 };
        assert_eq!(table(month), "usage_hourly_2026_03");
        assert_eq!(month_of_table(&table(month)), Some(month));
        assert_eq!(month_of_table("usage_hourly_2026_13"), None);
        assert_eq!(month_of_table("usage_batches"), None);
    }
}
