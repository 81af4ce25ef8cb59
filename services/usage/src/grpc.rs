//! The UsageService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{error::FieldViolation, internal_auth::split, time};
use keyplane_proto::usage::v1::{self as pb, usage_service_server::UsageService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{
        rollup::{Count, StatusClass},
        window::Window,
    },
    error::Error,
    service::Service,
};

pub struct UsageGrpc {
    service: Arc<Service>,
}

impl UsageGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

/// A count as sent, or None for one no gateway of ours would send (logged by the caller).
fn count(c: &pb::UsageCount) -> Option<Count> {
    Some(Count {
        org_id: Uuid::parse_str(&c.org_id).ok()?,
        key_id: if c.key_id.is_empty() { None } else { Some(Uuid::parse_str(&c.key_id).ok()?) },
        hour: c.hour.as_ref().and_then(time::from_proto)?,
        class: StatusClass::new(c.status_class)?,
        requests: c.count,
    })
}

#[tonic::async_trait]
impl UsageService for UsageGrpc {
    async fn record(&self, request: Request<pb::RecordRequest>) -> Result<Response<pb::RecordResponse>, Status> {
        let r = request.into_inner();
        let batch_id = FieldViolation::uuid("batch_id", &r.batch_id).map_err(Error::from)?;
        let counts: Vec<Count> = r.counts.iter().filter_map(count).collect();
        if counts.len() < r.counts.len() {
            // Refusing the batch would make its sender retry it forever; the rest is good.
            tracing::warn!(%batch_id, malformed = r.counts.len() - counts.len(), "malformed usage counts skipped");
        }
        self.service.record(batch_id, counts).await?;
        Ok(Response::new(pb::RecordResponse {}))
    }

    async fn query(&self, request: Request<pb::QueryRequest>) -> Result<Response<pb::QueryResponse>, Status> {
        let (caller, r) = split(request)?;
        let from = r.from.as_ref().and_then(time::from_proto);
        let to = r.to.as_ref().and_then(time::from_proto);
        let window = Window::new(from, to).map_err(Error::Validation)?;
        let key_id = match r.key_id.as_str() {
            "" => None,
            id => Some(FieldViolation::uuid("key_id", id).map_err(Error::from)?),
        };
        let hours = self.service.query(&caller, &r.org_id, window, key_id).await?;
        Ok(Response::new(pb::QueryResponse {
            org_id: r.org_id,
            from: Some(time::to_proto(window.from)),
            to: Some(time::to_proto(window.to)),
            data: hours
                .into_iter()
                .map(|h| pb::HourlyUsage {
                    hour: Some(time::to_proto(h.hour)),
                    requests: h.requests,
                    errors: h.errors,
                    by_status: h
                        .by_status
                        .into_iter()
                        .map(|(class, count)| pb::StatusCount { status_class: class.label(), count })
                        .collect(),
                })
                .collect(),
        }))
    }
}
