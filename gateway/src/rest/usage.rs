//! An org's hourly usage, as the gateways counted it.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::{Path, State},
};
use chrono::{DateTime, Utc};
use keyplane_common::time;
use keyplane_proto::usage::v1::{QueryRequest, QueryResponse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{error::ApiError, extract::ApiQuery, extract::Calling, state::AppState};

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct UsageQuery {
    /// The window's start (RFC 3339).
    #[param(required = true)]
    from: Option<DateTime<Utc>>,
    /// The window's end, after `from`, at most 93 days on.
    #[param(required = true)]
    to: Option<DateTime<Utc>>,
    /// Only this key's (or MCP token's) requests.
    key_id: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct Usage {
    org_id: String,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    granularity: &'static str,
    data: Vec<Hour>,
}

#[derive(Serialize, ToSchema)]
pub struct Hour {
    hour: Option<DateTime<Utc>>,
    requests: u64,
    errors: u64,
    /// Requests per status class: `{"2xx": 9, "4xx": 1}`.
    by_status: BTreeMap<String, u64>,
}

/// `GET /api/v1/developers/orgs/{orgId}/usage?from&to&key_id`.
#[utoipa::path(get, path = "/api/v1/developers/orgs/{org_id}/usage", operation_id = "getOrgUsage", tag = "usage",
    params(("org_id" = String, Path, description = "The org's id"), UsageQuery),
    security(("session" = []), ("api_key" = ["read:usage"])),
    responses(
        (status = 200, description = "One row per hour that had requests", body = Usage),
        (status = 400, description = "`from` and `to` missing, out of order, or more than 93 days apart"),
        (status = 401, description = "No credential"),
        (status = 403, description = "A key without `read:usage`"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn get(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(org_id): Path<String>,
    ApiQuery(query): ApiQuery<UsageQuery>,
) -> Result<Json<Usage>, ApiError> {
    let request = QueryRequest {
        org_id,
        from: query.from.map(time::to_proto),
        to: query.to.map(time::to_proto),
        key_id: query.key_id.unwrap_or_default(),
    };
    Ok(Json(state.upstream.query_usage(&caller, request).await?.into()))
}

impl From<QueryResponse> for Usage {
    fn from(answer: QueryResponse) -> Self {
        let at = |t: Option<prost_types::Timestamp>| t.as_ref().and_then(time::from_proto);
        Self {
            org_id: answer.org_id,
            from: at(answer.from),
            to: at(answer.to),
            granularity: "hour",
            data: answer
                .data
                .into_iter()
                .map(|h| Hour {
                    hour: at(h.hour),
                    requests: h.requests,
                    errors: h.errors,
                    by_status: h.by_status.into_iter().map(|s| (s.status_class, s.count)).collect(),
                })
                .collect(),
        }
    }
}
