//! The KeysService gRPC surface: proto in, use case, proto out.

use std::sync::Arc;

use keyplane_common::{
    authz::Action,
    credential::{Environment, SecretHash},
    error::FieldViolation,
    internal_auth::split,
    page::Page,
    rate_limit::RateLimit,
    time::{self, Clock},
};
use keyplane_proto::{
    keys::v1::{self as pb, keys_service_server::KeysService},
    types::v1::{PageInfo, PageRequest},
};
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    domain::{
        key::{Credential, Status as KeyStatus},
        key_use::{KeyUse, RotatedUse},
        leak::Leak,
    },
    error::Error,
    service::{KeyChange, NewKey, NewToken, Service},
};

pub struct KeysGrpc {
    service: Arc<Service>,
    clock: Clock,
}

impl KeysGrpc {
    pub fn new(service: Arc<Service>, clock: Clock) -> Self {
        Self { service, clock }
    }

    fn api_key(&self, key: &Credential) -> pb::ApiKey {
        let now = self.clock.now();
        let status = match key.status(now) {
            KeyStatus::Active => pb::KeyStatus::Active,
            KeyStatus::Revoked => pb::KeyStatus::Revoked,
            KeyStatus::Expired => pb::KeyStatus::Expired,
        };
        pb::ApiKey {
            id: key.id.to_string(),
            org_id: key.org_id.to_string(),
            name: key.name.clone(),
            environment: key.environment.map(Environment::to_proto).unwrap_or_default().into(),
            prefix: key.prefix.clone(),
            scopes: key.scopes.effective(),
            full_access: key.scopes.is_full(),
            resource_ids: key.resource_ids.clone(),
            status: status.into(),
            created_at: Some(time::to_proto(key.created_at)),
            last_used_at: key.last_used_at.map(time::to_proto),
            expires_at: key.expires_at.map(time::to_proto),
            revoked_at: key.revoked_at.map(time::to_proto),
            grace_ends_at: key.grace_ends_at(now).map(time::to_proto),
            rate_limit: key.rate_limit.map(RateLimit::to_proto),
        }
    }

    fn key_with_secret(&self, (key, secret): (Credential, keyplane_common::credential::Secret)) -> pb::KeyWithSecret {
        pb::KeyWithSecret { key: Some(self.api_key(&key)), secret: secret.expose().to_owned() }
    }
}

/// A rate limit as sent, checked: out of bounds is a field violation, never dropped.
fn rate_limit(rate: Option<&keyplane_proto::types::v1::RateLimit>) -> Result<Option<RateLimit>, Error> {
    rate.map(|r| RateLimit::new("rate_limit", r.requests, r.per_seconds)).transpose().map_err(Error::from)
}

fn mcp_token(token: &Credential) -> pb::McpToken {
    pb::McpToken {
        id: token.id.to_string(),
        name: token.name.clone(),
        org_id: token.org_id.to_string(),
        user_id: token.created_by.map(|u| u.to_string()).unwrap_or_default(),
        prefix: token.prefix.clone(),
        scopes: token.scopes.effective(),
        full_access: token.scopes.is_full(),
        created_at: Some(time::to_proto(token.created_at)),
        expires_at: token.expires_at.map(time::to_proto),
        revoked_at: token.revoked_at.map(time::to_proto),
        last_used_at: token.last_used_at.map(time::to_proto),
    }
}

fn page(p: Option<&PageRequest>) -> Result<Page, Status> {
    Page::from_proto(p).map_err(|v| Error::Validation(vec![v]).into())
}

/// One batch of the gateways' counted uses; an entry that does not parse is dropped.
/// Each reported secret; one whose hash is not 32 bytes is refused, not skipped.
fn leaks(secrets: Vec<pb::LeakedSecret>) -> Result<Vec<Leak>, Error> {
    secrets
        .into_iter()
        .map(|s| {
            let hash =
                SecretHash::from_bytes(&s.hash).ok_or_else(|| FieldViolation::new("hash", "must be 32 bytes"))?;
            Ok(Leak { hash, url: s.url, source: s.source, reporter: s.reporter, prefix: s.prefix })
        })
        .collect()
}

fn key_uses(uses: Vec<pb::KeyUse>) -> Vec<KeyUse> {
    uses.into_iter()
        .filter_map(|u| {
            let rotated = u
                .rotated_uses
                .into_iter()
                .filter_map(|r| {
                    Some(RotatedUse {
                        event_id: Uuid::parse_str(&r.event_id).ok()?,
                        org_id: Uuid::parse_str(&r.org_id).ok()?,
                        first_at: r.first_at.as_ref().and_then(time::from_proto)?,
                        last_at: r.last_at.as_ref().and_then(time::from_proto)?,
                        count: r.count,
                        ip: r.ip,
                        user_agent: r.user_agent,
                        request_id: r.request_id,
                    })
                })
                .collect();
            Some(KeyUse {
                key_id: Uuid::parse_str(&u.key_id).ok()?,
                last_used_at: u.last_used_at.as_ref().and_then(time::from_proto)?,
                rotated,
            })
        })
        .collect()
}

#[tonic::async_trait]
impl KeysService for KeysGrpc {
    async fn create_key(&self, request: Request<pb::CreateKeyRequest>) -> Result<Response<pb::KeyWithSecret>, Status> {
        let (caller, r) = split(request)?;
        let new = NewKey {
            org_id: r.org_id,
            name: r.name,
            environment: Environment::from_proto(r.environment),
            scopes: r.scopes.map(|s| s.scopes),
            resource_ids: r.resource_ids,
            expires_at: r.expires_at.as_ref().and_then(time::from_proto),
            rate_limit: rate_limit(r.rate_limit.as_ref())?,
        };
        Ok(Response::new(self.key_with_secret(self.service.create_key(&caller, new).await?)))
    }

    async fn update_key(&self, request: Request<pb::UpdateKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let (caller, r) = split(request)?;
        let rate_limit = match (rate_limit(r.rate_limit.as_ref())?, r.clear_rate_limit) {
            (Some(_), true) => {
                return Err(
                    Error::from(FieldViolation::new("rate_limit", "give a rate limit or clear it, not both")).into()
                );
            }
            (Some(rate), false) => Some(Some(rate)),
            (None, true) => Some(None),
            (None, false) => None,
        };
        let change = KeyChange { name: r.name, rate_limit };
        Ok(Response::new(self.api_key(&self.service.update_key(&caller, &r.org_id, &r.key_id, change).await?)))
    }

    async fn list_keys(&self, request: Request<pb::ListKeysRequest>) -> Result<Response<pb::ListKeysResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let keys = self.service.list_keys(&caller, &r.org_id, page).await?;
        let (keys, next_cursor) = page.split(keys, |k| k.id);
        Ok(Response::new(pb::ListKeysResponse {
            keys: keys.iter().map(|k| self.api_key(k)).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }

    async fn get_key(&self, request: Request<pb::GetKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let (caller, r) = split(request)?;
        let key = self.service.get_key(&caller, &r.org_id, &r.key_id, Action::KeysRead).await?;
        Ok(Response::new(self.api_key(&key)))
    }

    async fn revoke_key(&self, request: Request<pb::RevokeKeyRequest>) -> Result<Response<pb::ApiKey>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(self.api_key(&self.service.revoke_key(&caller, &r.org_id, &r.key_id).await?)))
    }

    async fn regenerate_key(
        &self,
        request: Request<pb::RegenerateKeyRequest>,
    ) -> Result<Response<pb::KeyWithSecret>, Status> {
        let (caller, r) = split(request)?;
        let regenerated = self.service.regenerate_key(&caller, &r.org_id, &r.key_id, r.grace_period_seconds).await?;
        Ok(Response::new(self.key_with_secret(regenerated)))
    }

    async fn ensure_bootstrap_key(
        &self,
        request: Request<pb::EnsureBootstrapKeyRequest>,
    ) -> Result<Response<pb::EnsureBootstrapKeyResponse>, Status> {
        let (caller, r) = split(request)?;
        let created = self.service.ensure_bootstrap_key(&caller, &r.org_id).await?;
        Ok(Response::new(pb::EnsureBootstrapKeyResponse { key: created.map(|c| self.key_with_secret(c)) }))
    }

    async fn revoke_org_credentials(
        &self,
        request: Request<pb::RevokeOrgCredentialsRequest>,
    ) -> Result<Response<pb::RevokeOrgCredentialsResponse>, Status> {
        let (caller, r) = split(request)?;
        let revoked = self.service.revoke_org_credentials(&caller, &r.org_id).await?;
        Ok(Response::new(pb::RevokeOrgCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn revoke_member_credentials(
        &self,
        request: Request<pb::RevokeMemberCredentialsRequest>,
    ) -> Result<Response<pb::RevokeOrgCredentialsResponse>, Status> {
        let (caller, r) = split(request)?;
        let since = r.member_since.as_ref().and_then(time::from_proto);
        let revoked = self.service.revoke_member_credentials(&caller, &r.org_id, &r.user_id, since).await?;
        Ok(Response::new(pb::RevokeOrgCredentialsResponse { revoked: u32::try_from(revoked).unwrap_or(u32::MAX) }))
    }

    async fn lookup_by_hash(
        &self,
        request: Request<pb::LookupByHashRequest>,
    ) -> Result<Response<pb::LookupByHashResponse>, Status> {
        let record = self.service.lookup_by_hash(&request.into_inner().hash).await?;
        Ok(Response::new(pb::LookupByHashResponse { record: record.map(|r| r.to_proto()) }))
    }

    async fn record_use(
        &self,
        request: Request<pb::RecordUseRequest>,
    ) -> Result<Response<pb::RecordUseResponse>, Status> {
        let r = request.into_inner();
        let batch_id = FieldViolation::uuid("batch_id", &r.batch_id).map_err(Error::from)?;
        self.service.record_use(batch_id, key_uses(r.uses)).await?;
        Ok(Response::new(pb::RecordUseResponse {}))
    }

    async fn create_mcp_token(
        &self,
        request: Request<pb::CreateMcpTokenRequest>,
    ) -> Result<Response<pb::McpTokenWithSecret>, Status> {
        let (caller, r) = split(request)?;
        let new = NewToken {
            org_id: r.org_id,
            name: r.name,
            scopes: r.scopes.map(|s| s.scopes),
            expires_at: r.expires_at.as_ref().and_then(time::from_proto),
        };
        let (token, secret) = self.service.create_mcp_token(&caller, new).await?;
        Ok(Response::new(pb::McpTokenWithSecret { token: Some(mcp_token(&token)), secret: secret.expose().to_owned() }))
    }

    async fn list_mcp_tokens(
        &self,
        request: Request<pb::ListMcpTokensRequest>,
    ) -> Result<Response<pb::ListMcpTokensResponse>, Status> {
        let (caller, r) = split(request)?;
        let page = page(r.page.as_ref())?;
        let tokens = self.service.list_mcp_tokens(&caller, page).await?;
        let (tokens, next_cursor) = page.split(tokens, |t| t.id);
        Ok(Response::new(pb::ListMcpTokensResponse {
            tokens: tokens.iter().map(mcp_token).collect(),
            page: Some(PageInfo { next_cursor }),
        }))
    }

    async fn revoke_mcp_token(
        &self,
        request: Request<pb::RevokeMcpTokenRequest>,
    ) -> Result<Response<pb::McpToken>, Status> {
        let (caller, r) = split(request)?;
        Ok(Response::new(mcp_token(&self.service.revoke_mcp_token(&caller, &r.token_id).await?)))
    }

    async fn revoke_leaked(
        &self,
        request: Request<pb::RevokeLeakedRequest>,
    ) -> Result<Response<pb::RevokeLeakedResponse>, Status> {
        let (caller, r) = split(request)?;
        let verdicts = self.service.revoke_leaked(&caller, leaks(r.secrets)?).await?;
        let verdicts = verdicts
            .into_iter()
            .map(|v| pb::LeakVerdict {
                hash: v.hash.as_bytes().to_vec(),
                real: v.prefix.is_some(),
                prefix: v.prefix.unwrap_or_default(),
            })
            .collect();
        Ok(Response::new(pb::RevokeLeakedResponse { verdicts }))
    }
}
