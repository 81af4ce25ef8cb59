//! The Model Context Protocol server at `POST /mcp` (streamable HTTP, JSON-RPC 2.0), on the
//! official Rust SDK (rmcp). Only an MCP token authenticates there, checked on every
//! request by the same middleware as any credential (so a revoked token stops within a
//! second, like a key); the tools act on the token's org through the same gRPC calls as
//! the REST routes, and the services authorize them for the token (its scopes, and its
//! creator's role at that moment).
//!
//! Served statelessly: every request carries its own token, and no MCP session outlives
//! the request that made it.

use std::sync::Arc;

use axum::{
    body::Body,
    extract::Request,
    http::{Method, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use keyplane_common::{internal_auth::Caller, principal::Principal, time};
use keyplane_proto::{
    advisors::v1 as advisors, keys::v1 as keys, orgs::v1 as orgs, types::v1::PageRequest, usage::v1 as usage,
};
use rmcp::{
    ErrorData, ServerHandler,
    handler::server::{router::tool::ToolRouter, tool::Extension, wrapper::Parameters},
    model::{CallToolResult, ClientJsonRpcMessage, ContentBlock, ServerCapabilities, ServerConfig},
    schemars, tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
    },
};
use serde::{Deserialize, Serialize};

use crate::{
    error::ApiError,
    extract,
    rest::{advisors::Advisor, advisors::Consultation, dto::ApiKey, dto::CreatedKey},
    state::AppState,
};

/// The MCP service, to nest at `/mcp` behind the MCP-token guard.
pub fn service(state: AppState) -> StreamableHttpService<Tools, LocalSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(crate::MAX_BODY_BYTES)
        // Host checks guard servers without authentication against DNS rebinding; this
        // one answers only to a bearer token, and serves the platform's public name.
        .disable_allowed_hosts();
    // The router (every tool, its schema) is built once: rmcp asks for a handler per request.
    let tool_router = Arc::new(Tools::tool_router());
    let tools = move || Ok(Tools { state: state.clone(), tool_router: Arc::clone(&tool_router) });
    StreamableHttpService::new(tools, Arc::new(LocalSessionManager::default()), config)
}

/// A JSON call's body, read whole before rmcp sees it (rmcp reads it whole too): a body
/// that is over the limit, broke off, is not JSON or is not a JSON-RPC message gets the
/// contract's answer, where rmcp's own would be a 500 or a 415 that says to send the JSON
/// it was sent. Anything but a JSON POST is rmcp's to answer (405, 406, 415).
pub async fn whole_body(request: Request, next: Next) -> Response {
    let json = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(';').next().unwrap_or_default().trim().eq_ignore_ascii_case("application/json"));
    if request.method() != Method::POST || !json {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let read = async {
        let bytes = extract::whole_body(body).await?;
        extract::parse::<ClientJsonRpcMessage>(&bytes)?;
        Ok::<_, ApiError>(bytes)
    };
    match read.await {
        Ok(bytes) => next.run(Request::from_parts(parts, Body::from(bytes))).await,
        Err(e) => e.into_response(),
    }
}

#[derive(Clone)]
pub struct Tools {
    state: AppState,
    tool_router: Arc<ToolRouter<Self>>,
}

/// The authenticated caller the guard put on the HTTP request.
fn caller(parts: &axum::http::request::Parts) -> Result<(Caller, String), ErrorData> {
    let caller =
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| ErrorData::internal_error("no caller", None))?;
    match caller.principal.as_deref() {
        Some(Principal::McpToken(token)) => {
            let org = token.org_id.to_string();
            Ok((caller, org))
        }
        _ => Err(ErrorData::internal_error("not an MCP token", None)),
    }
}

/// A tool's answer: JSON on success, the contract's error (code and message) otherwise,
/// as a tool error the agent reads.
fn answer<T: Serialize>(result: Result<T, ApiError>) -> Result<CallToolResult, ErrorData> {
    Ok(match result {
        Ok(value) => {
            let text =
                serde_json::to_string_pretty(&value).map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
            CallToolResult::success(vec![ContentBlock::text(text)])
        }
        Err(error) => CallToolResult::error(vec![ContentBlock::text(
            serde_json::json!({"code": error.code, "message": error.message, "details": error.details}).to_string(),
        )]),
    })
}

fn page(limit: Option<u32>, cursor: Option<String>) -> Result<PageRequest, ApiError> {
    crate::rest::PageQuery { limit, cursor }.request()
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct PageArgs {
    /// 1 to 100 (default 50).
    limit: Option<u32>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct CreateKeyArgs {
    name: String,
    /// `test` or `live`.
    environment: String,
    /// Scopes of the new key: no more than the token holds.
    scopes: Vec<String>,
    #[serde(default)]
    resource_ids: Vec<String>,
    /// RFC 3339; no later than the token's own expiry.
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct KeyArgs {
    key_id: String,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct UsageArgs {
    /// RFC 3339.
    from: chrono::DateTime<chrono::Utc>,
    /// RFC 3339; at most 93 days after `from`.
    to: chrono::DateTime<chrono::Utc>,
    key_id: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct AuditArgs {
    from: Option<chrono::DateTime<chrono::Utc>>,
    to: Option<chrono::DateTime<chrono::Utc>>,
    action: Option<String>,
    /// `id` or `type:id`.
    actor: Option<String>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Deserialize, schemars::JsonSchema)]
pub struct ConsultArgs {
    advisor_id: String,
    question: String,
    /// A JSON object.
    context: Option<serde_json::Value>,
}

use crate::rest::dto::Paged;

#[tool_router]
impl Tools {
    #[tool(description = "Who this MCP token is: its org, name, scopes and expiry")]
    async fn whoami(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, _) = caller(&parts)?;
        let Some(Principal::McpToken(token)) = caller.principal.as_deref() else { unreachable!("checked by caller()") };
        answer(Ok::<_, ApiError>(serde_json::json!({
            "principal": "mcp_token",
            "token": {"id": token.token_id, "name": token.name, "prefix": token.prefix, "scopes": token.scopes.list(),
                      "expires_at": token.expires_at},
            "org_id": token.org_id,
            "user_id": token.user_id,
        })))
    }

    #[tool(description = "List the org's API keys (never their secrets); needs read:keys")]
    async fn list_keys(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<PageArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        answer(
            async {
                let listed = self
                    .state
                    .upstream
                    .list_keys(&caller, keys::ListKeysRequest { org_id, page: Some(page(args.limit, args.cursor)?) })
                    .await?;
                Ok(Paged::new(listed.keys.into_iter().map(ApiKey::from).collect(), listed.page))
            }
            .await,
        )
    }

    #[tool(
        description = "Create an API key in the org (its secret is shown once); needs write:keys, and grants no more than the token holds"
    )]
    async fn create_key(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<CreateKeyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        let environment = keyplane_common::credential::Environment::parse(&args.environment).map_or(
            keyplane_proto::types::v1::Environment::Unspecified,
            keyplane_common::credential::Environment::to_proto,
        );
        let request = keys::CreateKeyRequest {
            org_id,
            name: args.name,
            environment: environment.into(),
            scopes: Some(keys::ScopeList { scopes: args.scopes }),
            resource_ids: args.resource_ids,
            expires_at: args.expires_at.map(time::to_proto),
            rate_limit: None,
        };
        answer(self.state.upstream.create_key(&caller, request).await.map(CreatedKey::from))
    }

    #[tool(description = "Revoke one of the org's API keys at once; needs write:keys")]
    async fn revoke_key(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<KeyArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        let request = keys::RevokeKeyRequest { org_id, key_id: args.key_id };
        answer(self.state.upstream.revoke_key(&caller, request).await.map(ApiKey::from))
    }

    #[tool(
        description = "The org's hourly usage between from and to (at most 93 days), of one key or all; needs read:usage"
    )]
    async fn get_usage(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<UsageArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        let request = usage::QueryRequest {
            org_id,
            from: Some(time::to_proto(args.from)),
            to: Some(time::to_proto(args.to)),
            key_id: args.key_id.unwrap_or_default(),
        };
        answer(self.state.upstream.query_usage(&caller, request).await.map(crate::rest::usage::Usage::from))
    }

    #[tool(
        description = "The org's audit log, newest first, filtered by time, action or actor; needs write:orgs and an admin's token"
    )]
    async fn list_audit_events(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<AuditArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        answer(
            async {
                let request = orgs::ListAuditEventsRequest {
                    org_id,
                    from: args.from.map(time::to_proto),
                    to: args.to.map(time::to_proto),
                    action: args.action.unwrap_or_default(),
                    actor: args.actor.unwrap_or_default(),
                    page: Some(page(args.limit, args.cursor)?),
                };
                let listed = self.state.upstream.list_audit_events(&caller, request).await?;
                Ok(Paged::new(listed.events.into_iter().map(crate::rest::dto::AuditEvent::from).collect(), listed.page))
            }
            .await,
        )
    }

    #[tool(description = "The org's advisor agents; needs read:orgs")]
    async fn list_advisors(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<PageArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, org_id) = caller(&parts)?;
        answer(
            async {
                let request = advisors::ListAdvisorsRequest { org_id, page: Some(page(args.limit, args.cursor)?) };
                let listed = self.state.upstream.list_advisors(&caller, request).await?;
                Ok(Paged::new(listed.advisors.into_iter().map(Advisor::from).collect(), listed.page))
            }
            .await,
        )
    }

    #[tool(
        description = "Ask one of the org's advisors a question; the answer arrives later, signed (read it by the consultation's id); needs read:orgs"
    )]
    async fn consult_advisor(
        &self,
        Extension(parts): Extension<axum::http::request::Parts>,
        Parameters(args): Parameters<ConsultArgs>,
    ) -> Result<CallToolResult, ErrorData> {
        let (caller, _) = caller(&parts)?;
        let request = advisors::ConsultRequest {
            advisor_id: args.advisor_id,
            question: args.question,
            context_json: args.context.map(|c| c.to_string()).unwrap_or_default(),
        };
        answer(self.state.upstream.consult(&caller, request).await.map(Consultation::from))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_instructions("Keyplane: manage one org's API keys, usage, audit log and advisors with an MCP token.")
    }
}
