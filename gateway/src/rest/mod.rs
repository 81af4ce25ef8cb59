//! The public REST surface: routes grouped by the credential they accept.

pub mod advisors;
pub mod auth;
pub mod dataplane;
pub mod dto;
pub mod invitations;
pub mod keys;
pub mod orgs;
pub mod platform;
pub mod secret_scanning;
pub mod usage;

use axum::{
    Router,
    http::{HeaderValue, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{any, delete, get, post},
};
use keyplane_common::error::FieldViolation;
use keyplane_proto::types::v1::PageRequest;
use serde::Deserialize;

use crate::{auth as guard, error::ApiError, state::AppState, throttle};

/// `limit` and `cursor` of a list.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    pub limit: Option<u32>,
    pub cursor: Option<String>,
}

impl PageQuery {
    /// The page request; a `limit` given must be 1 to 100 (omitted: 50).
    pub fn request(self) -> Result<PageRequest, ApiError> {
        if self.limit.is_some_and(|l| !(1..=100).contains(&l)) {
            return Err(ApiError::invalid(vec![FieldViolation::new("limit", "must be between 1 and 100")]));
        }
        Ok(PageRequest { limit: self.limit.unwrap_or(0), cursor: self.cursor.unwrap_or_default() })
    }
}

/// A response that carries a secret: no cache, shared or private, may keep it.
pub struct NoStore<T>(pub T);

impl<T: IntoResponse> IntoResponse for NoStore<T> {
    fn into_response(self) -> Response {
        let mut response = self.0.into_response();
        response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

pub fn router(state: &AppState) -> Router<AppState> {
    let mut public = Router::new()
        .route("/health", get(platform::health))
        .route("/ready", get(platform::ready))
        .route("/.well-known/jwks.json", get(platform::jwks));
    // Metrics are the operator's: on the public port only in `keyplane up`, which has no
    // metrics port (a deployment scrapes KEYPLANE_METRICS_LISTEN, behind its network policy).
    if state.public_metrics {
        public = public.route("/metrics", get(platform::metrics));
    }
    if state.dev_mailbox {
        public = public.route("/dev/mailbox", get(platform::dev_mailbox));
    }

    // Anyone may call these: each source address has a budget.
    let sign_in = Router::new()
        .route("/api/v1/auth/signup", post(auth::signup))
        .route("/api/v1/auth/login", post(auth::login))
        .route("/api/v1/auth/refresh", post(auth::refresh))
        .route("/api/v1/auth/verify-email", post(auth::verify_email))
        .route_layer(from_fn_with_state(state.clone(), throttle::sign_in));
    // Checked by signature (or for anyone): each source address has a budget.
    let verify = Router::new()
        .route("/api/v1/keys/verify", post(auth::verify))
        .route("/api/v1/advisors/delivery-keys", get(advisors::delivery_keys))
        .route("/api/v1/advisors/{id}/payload-keys", get(advisors::keys))
        .route("/api/v1/advisors/{id}/consultations/{consultation_id}/response", post(advisors::respond))
        .route_layer(from_fn_with_state(state.clone(), throttle::verify));
    // GitHub's signature is the credential; each source address has a budget.
    let secret_scanning = Router::new()
        .route("/api/v1/secret-scanning/github", post(secret_scanning::github))
        .route_layer(from_fn_with_state(state.clone(), throttle::secret_scanning));
    let session = Router::new()
        .route("/api/ensure-dev-org", post(orgs::ensure_dev_org))
        .route("/api/v1/auth/logout", post(auth::logout))
        .route("/api/v1/auth/verify-email/resend", post(auth::resend_verification))
        .route("/api/v1/invitations", get(invitations::mine))
        .route("/api/v1/invitations/{id}/accept", post(invitations::accept))
        .route("/api/v1/invitations/{id}/decline", post(invitations::decline))
        .route("/api/v1/mcp-tokens", get(keys::list_mcp_tokens).post(keys::create_mcp_token))
        .route("/api/v1/mcp-tokens/{id}", delete(keys::revoke_mcp_token))
        .route("/api/v1/advisors", get(advisors::list))
        .route("/api/v1/advisors/register", post(advisors::register))
        .route("/api/v1/advisors/consult", post(advisors::consult))
        .route("/api/v1/advisors/consultations/{id}", get(advisors::consultation))
        .route("/api/v1/advisors/{id}/payload-key", post(advisors::declare_key))
        .route("/api/v1/advisors/{id}/payload-keys/{key_id}", delete(advisors::retire_key))
        .route_layer(from_fn_with_state(state.clone(), guard::session));

    let identify = Router::new()
        .route("/api/v1/auth/me", get(auth::me))
        .route_layer(from_fn_with_state(state.clone(), guard::identify));

    let management = Router::new()
        .route("/api/v1/developers/orgs", get(orgs::list).post(orgs::create))
        .route("/api/v1/developers/orgs/{org_id}", get(orgs::get).put(orgs::update).delete(orgs::delete))
        .route("/api/v1/developers/orgs/{org_id}/members", get(orgs::members).post(invitations::invite_member))
        .route(
            "/api/v1/developers/orgs/{org_id}/members/{user_id}",
            axum::routing::put(orgs::update_member_role).delete(orgs::remove_member),
        )
        .route("/api/v1/developers/orgs/{org_id}/invitations", get(invitations::list).post(invitations::create))
        .route("/api/v1/developers/orgs/{org_id}/invitations/{id}", delete(invitations::revoke))
        .route("/api/v1/developers/orgs/{org_id}/audit-log", get(orgs::audit_log))
        .route("/api/v1/developers/orgs/{org_id}/usage", get(usage::get))
        .route("/api/v1/developers/orgs/{org_id}/keys", get(keys::list).post(keys::create))
        .route(
            "/api/v1/developers/orgs/{org_id}/keys/{key_id}",
            get(keys::get).patch(keys::update).delete(keys::revoke),
        )
        .route("/api/v1/developers/orgs/{org_id}/keys/{key_id}/regenerate", post(keys::regenerate))
        .route_layer(from_fn_with_state(state.clone(), guard::management));

    let data_plane = Router::new()
        .route("/api/v1/keys/self", get(auth::key_self))
        .route("/api/v1/developer/{*path}", any(dataplane::forward))
        .route_layer(from_fn_with_state(state.clone(), guard::key));

    // The MCP server: MCP tokens only, checked on every request.
    let mcp = Router::new()
        .nest_service("/mcp", crate::mcp::service(state.clone()))
        .layer(from_fn_with_state(state.clone(), guard::mcp));

    let census = Router::new()
        .route("/api/v1/ocss/census/{*path}", any(not_found))
        .route_layer(from_fn_with_state(state.clone(), guard::signature));

    public
        .merge(sign_in)
        .merge(verify)
        .merge(secret_scanning)
        .merge(session)
        .merge(identify)
        .merge(management)
        .merge(data_plane)
        .merge(mcp)
        .merge(census)
        .merge(crate::console::router())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
}

pub async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take that method",
    )
}
