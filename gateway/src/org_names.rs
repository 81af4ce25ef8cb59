//! The names of orgs, as a key's whoami shows them. A name changes rarely and is no
//! security decision (the key's verdict is the verifier's), so it is kept for a short while
//! rather than asked of the orgs service on every whoami: a rename shows within `FRESH_FOR`.

use std::time::Duration;

use keyplane_common::internal_auth::Caller;
use keyplane_proto::orgs::v1::GetOrgRequest;
use moka::future::Cache;
use uuid::Uuid;

use crate::{error::ApiError, upstream::Upstream};

const FRESH_FOR: Duration = Duration::from_secs(30);
const CAPACITY: u64 = 100_000;

/// What whoami shows of an org.
#[derive(Clone, Debug, serde::Serialize, utoipa::ToSchema)]
pub struct OrgName {
    pub id: String,
    pub name: String,
    pub slug: String,
}

pub struct OrgNames {
    cache: Cache<Uuid, OrgName>,
}

impl Default for OrgNames {
    fn default() -> Self {
        Self { cache: Cache::builder().max_capacity(CAPACITY).time_to_live(FRESH_FOR).build() }
    }
}

impl OrgNames {
    /// The org's name, asked as the gateway itself (a key may read it whatever its scopes).
    /// Concurrent misses for one org make one call.
    pub async fn get(&self, upstream: &Upstream, caller: &Caller, org_id: Uuid) -> Result<OrgName, ApiError> {
        self.cache
            .try_get_with(org_id, async move {
                // Made only on a miss: a hit costs no copy of the caller.
                let as_gateway = caller.as_service("gateway");
                let org = upstream.get_org(&as_gateway, GetOrgRequest { org_id: org_id.to_string() }).await?;
                Ok::<_, ApiError>(OrgName { id: org.id, name: org.name, slug: org.slug })
            })
            .await
            .map_err(|e: std::sync::Arc<ApiError>| (*e).clone())
    }
}
