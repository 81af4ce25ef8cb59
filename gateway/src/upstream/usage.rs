//! The usage service's RPCs, named for whose they are (`record` alone says little here).

use keyplane_common::internal_auth::Caller;
use keyplane_proto::usage::v1::*;

use super::Upstream;
use crate::error::ApiError;

impl Upstream {
    pub async fn record_usage(&self, caller: &Caller, request: RecordRequest) -> Result<RecordResponse, ApiError> {
        Ok(self.usage.clone().record(self.request(request, caller)).await?.into_inner())
    }

    pub async fn query_usage(&self, caller: &Caller, request: QueryRequest) -> Result<QueryResponse, ApiError> {
        Ok(self.usage.clone().query(self.request(request, caller)).await?.into_inner())
    }
}
