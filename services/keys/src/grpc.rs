//! The KeysService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{ids::Page, internal_auth::caller, principal::environment_from_proto, time};
use keyplane_proto::keys::v1::{self as pb, keys_service_server::KeysService};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    error::Error,
    records,
    service::{NewKey, NewToken, Service},
};

pub struct KeysGrpc {
    service: Arc<Service>,
}

impl KeysGrpc {
    pub fn new(service: Arc<Service>) -> Self {
        Self { service }
    }
}

fn page(p: Option<&keyplane_proto::types::v1::PageRequest>) -> Result<Page, Status> {
    Page::from_proto(p).map_err(|v| Error::Validation(vec![v]).into())
}

#[tonic::async_trait]
impl KeysService for KeysGrpc {
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Result<Response<pb::KeyWithSecret>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let new = NewKey {
            org_id: r.org_id,
            name: r.name,
            environment: environment_from_proto(r.environment),
            scopes: r.scopes.map(|s| s.scopes),
            resource_ids: r.resource_ids,
            expires_at: r.expires_at.as_ref().and_then(time::from_proto),
        };
        let (row, secret) = self.service.create_key(&caller, new).await?;
        Ok(Response::new(pb::KeyWithSecret { key: Some(records::api_key(&row)), secret: secret.expose().to_owned() }))
    }

    async fn list_keys(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let page = page(r.page.as_ref())?;
        let rows = self.service.list_keys(&caller, &r.org_id, page).await?;
        let (rows, info) = page.split(rows, |row| row.id);
        Ok(Response::new(pb::ListKeysResponse { keys: rows.iter().map(records::api_key).collect(), page: Some(info) }))
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let row = self.service.get_key(&caller, &r.org_id, &r.key_id, keyplane_common::authz::Action::KeysRead).await?;
        Ok(Response::new(records::api_key(&row)))
    }

    async fn revoke_key(&self, request: Request<pb::RevokeKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        Ok(Response::new(records::api_key(&self.service.revoke_key(&caller, &r.org_id, &r.key_id).await?)))
    }

    async fn regenerate_key(
        &self,
        request: Request<pb::RegenerateKeyRequest>,
    ) -> Result<Response<pb::KeyWithSecret>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let (row, secret) = self.service.regenerate_key(&caller, &r.org_id, &r.key_id, r.grace_period_seconds).await?;
        Ok(Response::new(pb::KeyWithSecret { key: Some(records::api_key(&row)), secret: secret.expose().to_owned() }))
    }

    async fn ensure_bootstrap_key(
        &self,
        request: Request<pb::EnsureBootstrapKeyRequest>,
    ) -> Result<Response<pb::EnsureBootstrapKeyResponse>, Status> {
        let caller = caller(&request)?.clone();
        let created = self.service.ensure_bootstrap_key(&caller, &request.into_inner().org_id).await?;
        let key = created.map(|(row, secret)| pb::KeyWithSecret {
            key: Some(records::api_key(&row)),
            secret: secret.expose().to_owned(),
        });
        Ok(Response::new(pb::EnsureBootstrapKeyResponse { key }))
    }

    async fn revoke_org_credentials(
        &self,
        request: Request<pb::RevokeOrgCredentialsRequest>,
    ) -> Result<Response<pb::RevokeOrgCredentialsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let revoked = self.service.revoke_org_credentials(&caller, &request.into_inner().org_id).await?;
        Ok(Response::new(pb::RevokeOrgCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn lookup_by_hash(
        &self,
        request: Request<pb::LookupByHashRequest>,
    ) -> Result<Response<pb::LookupByHashResponse>, Status> {
        let record = self.service.lookup_by_hash(&request.into_inner().hash).await?;
        Ok(Response::new(pb::LookupByHashResponse { record }))
    }

    async fn revoke_member_credentials(
        &self,
        request: Request<pb::RevokeMemberCredentialsRequest>,
    ) -> Result<Response<pb::RevokeOrgCredentialsResponse>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let revoked = self.service.revoke_member_credentials(&caller, &r.org_id, &r.user_id).await?;
        Ok(Response::new(pb::RevokeOrgCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn record_use(
        &self,
        request: Request<pb::RecordUseRequest>,
    ) -> Result<Response<pb::RecordUseResponse>, Status> {
        let r = request.into_inner();
        let batch_id = keyplane_common::ids::parse_uuid("batch_id", &r.batch_id).map_err(Error::from)?;
        let uses = r
            .uses
            .into_iter()
            .filter_map(|u| {
                let id = Uuid::parse_str(&u.key_id).ok()?;
                let at = u.last_used_at.as_ref().and_then(time::from_proto)?;
                Some((id, at, u.rotated_uses))
            })
            .collect();
        self.service.record_use(batch_id, uses).await?;
        Ok(Response::new(pb::RecordUseResponse {}))
    }

    async fn create_mcp_token(
        &self,
        request: Request<pb::CreateMcpTokenRequest>,
    ) -> Result<Response<pb::McpTokenWithSecret>, Status> {
        let caller = caller(&request)?.clone();
        let r = request.into_inner();
        let new = NewToken {
            org_id: r.org_id,
            name: r.name,
            scopes: r.scopes.map(|s| s.scopes),
            expires_at: r.expires_at.as_ref().and_then(time::from_proto),
        };
        let (row, secret) = self.service.create_mcp_token(&caller, new).await?;
        Ok(Response::new(pb::McpTokenWithSecret {
            token: Some(records::mcp_token(&row)),
            secret: secret.expose().to_owned(),
        }))
    }

    async fn list_mcp_tokens(
        &self,
        request: Request<pb::ListMcpTokensRequest>,
    ) -> Result<Response<pb::ListMcpTokensResponse>, Status> {
        let caller = caller(&request)?.clone();
        let page = page(request.get_ref().page.as_ref())?;
        let rows = self.service.list_mcp_tokens(&caller, page).await?;
        let (rows, info) = page.split(rows, |row| row.id);
        Ok(Response::new(pb::ListMcpTokensResponse {
            tokens: rows.iter().map(records::mcp_token).collect(),
            page: Some(info),
        }))
    }

    async fn revoke_mcp_token(
        &self,
        request: Request<pb::RevokeMcpTokenRequest>,
    ) -> Result<Response<pb::McpToken>, Status> {
        let caller = caller(&request)?.clone();
        let row = self.service.revoke_mcp_token(&caller, &request.into_inner().token_id).await?;
        Ok(Response::new(records::mcp_token(&row)))
    }
}
