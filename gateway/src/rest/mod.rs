//! The public REST surface: routes grouped by the credential they accept.

pub mod advisors;
pub mod auth;
pub mod dataplane;
pub mod dto;
pub mod invitations;
pub mod keys;
pub mod openapi;
pub mod orgs;
pub mod platform;
pub mod secret_scanning;
pub mod usage;

use axum::{
    Router,
    body::Bytes,
    http::{HeaderValue, header},
    middleware::from_fn_with_state,
    response::{IntoResponse, Response},
    routing::{any, get, post},
};
use keyplane_common::error::FieldViolation;
use keyplane_proto::types::v1::PageRequest;
use serde::Deserialize;
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{auth as guard, error::ApiError, state::AppState, throttle};

/// `limit` and `cursor` of a list.
#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1 to 100; 50 when omitted.
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The previous page's `next_cursor`.
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

/// A JSON body written before (a grant's kept answer), as the answer.
pub fn json_answer(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response()
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
    let mut public = OpenApiRouter::with_openapi(openapi::Document::openapi())
        .routes(routes!(platform::health))
        .routes(routes!(platform::ready))
        .routes(routes!(platform::jwks));
    // Metrics are the operator's: on the public port only in `keyplane up`, which has no
    // metrics port (a deployment scrapes KEYPLANE_METRICS_LISTEN, behind its network policy).
    if state.public_metrics {
        public = public.routes(routes!(platform::metrics));
    }
    if state.dev_mailbox {
        public = public.routes(routes!(platform::dev_mailbox));
    }

    // Anyone may call these: each source address has a budget.
    let sign_in = OpenApiRouter::new()
        .routes(routes!(auth::signup))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::verify_email))
        .route_layer(from_fn_with_state(state.clone(), throttle::sign_in));
    // Checked by signature (or for anyone): each source address has a budget.
    let verify = OpenApiRouter::new()
        .routes(routes!(auth::verify))
        .routes(routes!(advisors::delivery_keys))
        .routes(routes!(advisors::keys))
        .routes(routes!(advisors::respond))
        .route_layer(throttle::PerAddress::verify(state.clone()));
    // GitHub's signature is the credential; each source address has a budget.
    let secret_scanning = OpenApiRouter::new()
        .routes(routes!(secret_scanning::github))
        .route_layer(throttle::PerAddress::secret_scanning(state.clone()));
    let session = OpenApiRouter::new()
        .routes(routes!(orgs::ensure_dev_org))
        // The seed's address for it; the document lists both under one path.
        .route("/api/ensure-dev-org", post(orgs::ensure_dev_org))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::resend_verification))
        .routes(routes!(invitations::mine))
        .routes(routes!(invitations::accept))
        .routes(routes!(invitations::decline))
        .routes(routes!(keys::list_mcp_tokens, keys::create_mcp_token))
        .routes(routes!(keys::revoke_mcp_token))
        .routes(routes!(advisors::list))
        .routes(routes!(advisors::register))
        .routes(routes!(advisors::consult))
        .routes(routes!(advisors::consultation))
        .routes(routes!(advisors::declare_key))
        .routes(routes!(advisors::retire_key))
        .route_layer(from_fn_with_state(state.clone(), guard::session));

    let identify =
        OpenApiRouter::new().routes(routes!(auth::me)).route_layer(from_fn_with_state(state.clone(), guard::identify));

    let management = OpenApiRouter::new()
        .routes(routes!(orgs::list, orgs::create))
        .routes(routes!(orgs::get, orgs::update, orgs::delete))
        .routes(routes!(orgs::members, invitations::invite_member))
        .routes(routes!(orgs::update_member_role, orgs::remove_member))
        .routes(routes!(invitations::list, invitations::create))
        .routes(routes!(invitations::revoke))
        .routes(routes!(orgs::audit_log))
        .routes(routes!(usage::get))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::get, keys::update, keys::revoke))
        .routes(routes!(keys::regenerate))
        .route_layer(from_fn_with_state(state.clone(), guard::management));

    // The data plane's routes come from the route table; the document describes the
    // shipped families backend's (see `dataplane`).
    let data_plane = OpenApiRouter::new()
        .routes(routes!(auth::key_self))
        .route("/api/v1/developer/{*path}", any(dataplane::forward))
        .route_layer(from_fn_with_state(state.clone(), guard::key));

    // The MCP server: MCP tokens only, checked on every request.
    let mcp = Router::new()
        .nest_service("/mcp", crate::mcp::service(state.clone()))
        .layer(axum::middleware::from_fn(crate::mcp::whole_body))
        .layer(from_fn_with_state(state.clone(), guard::mcp));

    let census = Router::new()
        .route("/api/v1/ocss/census/{*path}", any(not_found))
        .route_layer(from_fn_with_state(state.clone(), guard::signature));

    let (documented, document) = public
        .merge(sign_in)
        .merge(verify)
        .merge(secret_scanning)
        .merge(session)
        .merge(identify)
        .merge(management)
        .merge(data_plane)
        .split_for_parts();
    let published = openapi::Published::new(document);
    let serve_document = get(move || std::future::ready(published.clone()));

    documented
        .route("/openapi.json", serve_document.clone())
        .route("/api/v1/openapi.json", serve_document)
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
