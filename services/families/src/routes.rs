//! The families routes, and the middleware that admits only requests the gateway signed.

use std::sync::Arc;

use axum::{
    Json,
    body::{Body, to_bytes},
    extract::{Path, Query, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use keyplane_common::{dataplane, error_body::REQUEST_ID_HEADER, page::Page, text};
use uuid::Uuid;

use crate::{
    AppState,
    error::ApiError,
    store::{Tenant, families},
};

const MAX_BODY: usize = 1024 * 1024;

/// The verified caller of a request.
#[derive(Clone)]
pub struct Caller {
    identity: dataplane::Identity,
    org_id: Uuid,
    key_id: Uuid,
    request_id: Option<String>,
}

impl Caller {
    fn tenant(&self) -> Tenant<'_> {
        Tenant { org_id: self.org_id, environment: &self.identity.environment, pinned: &self.identity.resource_ids }
    }

    fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.identity.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(self.error(StatusCode::FORBIDDEN, "insufficient_scope", format!("the key lacks the {scope} scope")))
        }
    }

    fn error(&self, status: StatusCode, code: &str, message: impl Into<String>) -> ApiError {
        ApiError::new(status, code, message).with_request_id(self.request_id.clone())
    }
}

/// The gateway's request id, or a new one for a caller that came some other way.
fn request_id(headers: &HeaderMap) -> Option<String> {
    let given = headers.get(REQUEST_ID_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
    Some(given.unwrap_or_else(|| Uuid::now_v7().to_string()))
}

/// Admits a request only with an identity the gateway signed over this very request.
pub async fn verified_identity(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let (parts, body) = request.into_parts();
    let request_id = request_id(&parts.headers);
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the body is over 1 MiB")
            .with_request_id(request_id)
            .into_response();
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let now = chrono::Utc::now().timestamp();
    let verified = dataplane::verify(&state.secrets, &parts.headers, parts.method.as_str(), path, &body, now);
    let caller = verified.ok().and_then(|identity| {
        Some(Caller {
            org_id: Uuid::parse_str(&identity.org_id).ok()?,
            key_id: Uuid::parse_str(&identity.key_id).ok()?,
            identity,
            request_id: request_id.clone(),
        })
    });
    let Some(caller) = caller else {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "call this through the Keyplane gateway with an API key",
        )
        .with_request_id(request_id)
        .into_response();
    };
    let mut request = Request::from_parts(parts, Body::from(body));
    request.extensions_mut().insert(caller);
    let mut response = next.run(request).await;
    if let Some(value) = request_id.and_then(|id| HeaderValue::from_str(&id).ok()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[derive(serde::Serialize)]
pub struct Family {
    id: Uuid,
    name: String,
    environment: String,
    created_at: chrono::DateTime<chrono::Utc>,
}

impl From<families::Model> for Family {
    fn from(m: families::Model) -> Self {
        Self { id: m.id, name: m.name, environment: m.environment, created_at: m.created_at }
    }
}

#[derive(serde::Deserialize)]
pub struct ListQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/developer/families`: a plain array, the next page in a `Link` header.
pub async fn list(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require("read:families")?;
    let Query(query) = query.map_err(|e| caller.error(StatusCode::BAD_REQUEST, "invalid_query", e.body_text()))?;
    let page = Page::parse(query.limit.unwrap_or(0), query.cursor.as_deref().unwrap_or(""))
        .map_err(|v| ApiError::invalid(v).with_request_id(caller.request_id.clone()))?;
    let rows = state.store.list(&caller.tenant(), &page).await?;
    let (rows, next_cursor) = page.split(rows, |r| r.id);
    let body: Vec<Family> = rows.into_iter().map(Family::from).collect();
    let mut response = Json(body).into_response();
    if !next_cursor.is_empty() {
        let link = format!("</api/v1/developer/families?limit={}&cursor={next_cursor}>; rel=\"next\"", page.limit);
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewFamily {
    name: String,
}

pub async fn create(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    body: Result<Json<NewFamily>, axum::extract::rejection::JsonRejection>,
) -> Result<(StatusCode, Json<Family>), ApiError> {
    caller.require("write:families")?;
    let Json(new) = body.map_err(|e| caller.error(StatusCode::BAD_REQUEST, "invalid_json", e.body_text()))?;
    let name = text::display_text("name", &new.name, 100)
        .map_err(|v| ApiError::invalid(v).with_request_id(caller.request_id.clone()))?;
    let family = state.store.create(&caller.tenant(), caller.key_id, name).await?;
    tracing::info!(family_id = %family.id, org_id = %caller.org_id, "family created");
    Ok((StatusCode::CREATED, Json(family.into())))
}

pub async fn get(
    State(state): State<Arc<AppState>>,
    axum::Extension(caller): axum::Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Family>, ApiError> {
    caller.require("read:families")?;
    let not_found = || caller.error(StatusCode::NOT_FOUND, "not_found", "no such family");
    let id = Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !caller.identity.resource_ids.is_empty() && !caller.identity.resource_ids.contains(&id.to_string()) {
        return Err(caller.error(
            StatusCode::FORBIDDEN,
            "resource_not_allowed",
            "the key is not pinned to this resource",
        ));
    }
    let family = state.store.get(&caller.tenant(), id).await?.ok_or_else(not_found)?;
    Ok(Json(family.into()))
}

pub async fn not_found(axum::Extension(caller): axum::Extension<Caller>) -> ApiError {
    caller.error(StatusCode::NOT_FOUND, "not_found", "no such route")
}
