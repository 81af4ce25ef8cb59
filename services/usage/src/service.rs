//! The usage use cases: add the gateways' counts, answer an org's hourly usage, and keep
//! the rollups inside their retention.

use chrono::{DateTime, Utc};
use keyplane_common::{authz::Action, internal_auth::Caller, orgs_peer::OrgsPeer, time::Clock};
use uuid::Uuid;

use crate::{
    domain::{
        month::Month,
        rollup::{self, Count, Hourly},
        window::Window,
    },
    error::Error,
    store::{Store, Swept},
};

pub struct Service {
    pub store: Store,
    pub orgs: OrgsPeer,
    pub clock: Clock,
    pub retention_months: u32,
}

impl Service {
    /// Adds a batch once per id. Counts of months already out of retention are dropped
    /// (and logged): the next sweep would remove them anyway.
    pub async fn record(&self, batch_id: Uuid, counts: Vec<Count>) -> Result<(), Error> {
        let now = self.clock.now();
        let oldest_kept = Month::oldest_kept(now, self.retention_months).start();
        let (kept, expired): (Vec<Count>, Vec<Count>) =
            rollup::merge(counts).into_iter().partition(|c| c.hour >= oldest_kept);
        if !expired.is_empty() {
            let requests: u64 = expired.iter().map(|c| c.requests).sum();
            tracing::warn!(%batch_id, requests, "usage counts older than the retention were dropped");
        }
        if !self.store.add(batch_id, &kept, now).await? {
            tracing::debug!(%batch_id, "usage batch already added");
        }
        Ok(())
    }

    /// An org's usage in `window`, of one key or all: a member, or a key with `read:usage`.
    pub async fn query(
        &self,
        caller: &Caller,
        org_id: &str,
        window: Window,
        key_id: Option<Uuid>,
    ) -> Result<Vec<Hourly>, Error> {
        // A malformed org id names no org: the same answer as another tenant's.
        let org_id = Uuid::parse_str(org_id).map_err(|_| Error::OrgNotFound)?;
        self.orgs.authorize(caller.principal()?, org_id, Action::UsageRead).await.map_err(Error::upstream)?;
        // Rows are the org's own: another tenant's key, or none, is an empty series.
        Ok(rollup::hourly(self.store.hourly(org_id, window, key_id).await?))
    }

    /// One retention sweep at `now`.
    pub async fn sweep(&self, now: DateTime<Utc>) -> Result<Swept, Error> {
        let swept = self.store.sweep(now, Month::oldest_kept(now, self.retention_months)).await?;
        if !swept.months_dropped.is_empty() || swept.rows_deleted > 0 {
            tracing::info!(months = ?swept.months_dropped, rows = swept.rows_deleted, "usage past retention removed");
        }
        Ok(swept)
    }
}
