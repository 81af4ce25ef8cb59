//! The data plane's handler: whether the key may make the call (its scope for the method,
//! and its pins), then the call, through the forwarder.

use std::sync::Arc;

use axum::{
    Extension,
    extract::{Request, State},
    http::{Method, StatusCode},
    response::Response,
};
use keyplane_common::{
    dataplane::Identity,
    principal::{KeyPrincipal, Principal},
};

use crate::{config::DataRoute, error::ApiError, extract::Calling, forwarder::Call, state::AppState, verifier::Grant};

/// Whether `key` may call `route` with `method`, on `resource` (the id the path names).
/// A pinned key reaches its resources and nothing else: not another resource, and no write
/// to the collection (a new resource is not one it is pinned to); reads of the collection
/// are narrowed to its pins by the backend.
pub fn access(key: &KeyPrincipal, route: &DataRoute, method: &Method, resource: Option<&str>) -> Result<(), ApiError> {
    let is_read = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let scope = if is_read { &route.read_scope } else { &route.write_scope };
    if !key.scopes.allows(scope) {
        return Err(ApiError::forbidden("insufficient_scope", format!("the key lacks the {scope} scope")));
    }
    if key.resource_ids.is_empty() {
        return Ok(());
    }
    match resource {
        Some(resource) if !key.resource_ids.iter().any(|r| r == resource) => {
            Err(ApiError::forbidden("resource_not_allowed", "the key is not pinned to this resource"))
        }
        None if !is_read => {
            Err(ApiError::forbidden("resource_not_allowed", "a pinned key cannot write to the collection"))
        }
        _ => Ok(()),
    }
}

/// What a forwarded request tells its backend about the key: the same for every request
/// of a grant, so built once and kept with it.
fn identity_of(key: &KeyPrincipal) -> Identity {
    Identity {
        org_id: key.org_id.to_string(),
        key_id: key.key_id.to_string(),
        environment: key.environment.as_str().to_owned(),
        scopes: key.scopes.effective(),
        resource_ids: key.resource_ids.clone(),
    }
}

pub async fn forward(
    State(state): State<AppState>,
    Calling(caller): Calling,
    grant: Option<Extension<Arc<Grant>>>,
    request: Request,
) -> Result<Response, ApiError> {
    let Some(grant) = grant else { return Err(ApiError::unauthorized("use_api_key", "use an API key")) };
    let (Principal::ApiKey(key), Some(identity)) = (grant.principal().as_ref(), grant.identity(identity_of)) else {
        return Err(ApiError::unauthorized("use_api_key", "use an API key"));
    };
    let (parts, body) = request.into_parts();
    if parts.method == Method::CONNECT {
        // hyper's client takes any 2xx to CONNECT for a tunnel, which the data plane does not carry.
        return Err(ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "the data plane does not take CONNECT",
        ));
    }
    let path = parts.uri.path();
    let (route, resource) = state.forwarder.route(path).ok_or_else(|| ApiError::not_found("no such route"))?;
    access(key, &route.config, &parts.method, resource)?;
    let body = crate::extract::whole_body(body).await?;
    let path_and_query = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    state
        .forwarder
        .forward(Call {
            route,
            method: &parts.method,
            path_and_query,
            headers: &parts.headers,
            body,
            identity,
            request_id: &caller.request_id,
        })
        .await
}

#[cfg(test)]
mod tests {
    use keyplane_common::{credential::Environment, scope::Scopes};
    use uuid::Uuid;

    use super::*;

    fn key(scopes: &[&str], pins: &[&str]) -> KeyPrincipal {
        KeyPrincipal {
            key_id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            name: "k".into(),
            prefix: "p".into(),
            environment: Environment::Test,
            scopes: Scopes::parse(scopes).unwrap(),
            resource_ids: pins.iter().map(|s| (*s).to_owned()).collect(),
            expires_at: None,
            grace_ends_at: None,
            created_by: None,
            revision: 1,
            rate_limit: None,
        }
    }

    fn code(result: Result<(), ApiError>) -> Option<String> {
        result.err().map(|e| e.code)
    }

    #[test]
    fn reads_and_writes_take_their_own_scope() {
        let route = DataRoute::families("http://f".into());
        let reader = key(&["read:families"], &[]);
        assert_eq!(code(access(&reader, &route, &Method::GET, None)), None);
        assert_eq!(code(access(&reader, &route, &Method::HEAD, Some("f1"))), None);
        assert_eq!(code(access(&reader, &route, &Method::POST, None)).as_deref(), Some("insufficient_scope"));
        assert_eq!(code(access(&reader, &route, &Method::DELETE, Some("f1"))).as_deref(), Some("insufficient_scope"));
    }

    #[test]
    fn a_pinned_key_reaches_its_resources_and_nothing_else() {
        let route = DataRoute::families("http://f".into());
        let pinned = key(&["read:families", "write:families"], &["f1"]);
        assert_eq!(code(access(&pinned, &route, &Method::GET, Some("f1"))), None);
        assert_eq!(code(access(&pinned, &route, &Method::PUT, Some("f1"))), None);
        assert_eq!(code(access(&pinned, &route, &Method::GET, None)), None, "the backend narrows the list");
        assert_eq!(code(access(&pinned, &route, &Method::GET, Some("f2"))).as_deref(), Some("resource_not_allowed"));
        assert_eq!(code(access(&pinned, &route, &Method::POST, None)).as_deref(), Some("resource_not_allowed"));
    }
}

/// The data plane as shipped: the families backend behind the default route table. These
/// describe what [`forward`] carries there; an operator's own routes add their own.
#[allow(dead_code)] // read by the OpenAPI derive, never called
pub mod described {
    use chrono::{DateTime, Utc};
    use serde::{Deserialize, Serialize};
    use utoipa::ToSchema;

    /// A family of the sample backend, visible only to keys of its org and environment.
    #[derive(Serialize, ToSchema)]
    pub struct Family {
        id: String,
        name: String,
        /// `test` or `live`: the environment of the key that made it.
        environment: String,
        created_at: DateTime<Utc>,
    }

    #[derive(Deserialize, ToSchema)]
    pub struct NewFamily {
        name: String,
    }

    #[utoipa::path(
        get,
        path = "/api/v1/developer/families",
        operation_id = "listFamilies",
        tag = "data-plane",
        params(super::super::PageQuery),
        security(("api_key" = ["read:families"])),
        responses(
            (status = 200, description = "The org's families in the key's environment (a pinned key: its pins); the next page in a `Link` header", body = Vec<Family>),
            (status = 401, description = "No key, or a session bearer (`use_api_key`)"),
            (status = 403, description = "The key lacks `read:families`"),
        )
    )]
    pub fn list_families() {}

    #[utoipa::path(
        post,
        path = "/api/v1/developer/families",
        operation_id = "createFamily",
        tag = "data-plane",
        request_body = NewFamily,
        security(("api_key" = ["write:families"])),
        responses(
            (status = 201, description = "The family", body = Family),
            (status = 400, description = "Not JSON, or no name"),
            (status = 401, description = "No key"),
            (status = 403, description = "The key lacks `write:families`, or is pinned"),
        )
    )]
    pub fn create_family() {}

    #[utoipa::path(
        get,
        path = "/api/v1/developer/families/{id}",
        operation_id = "getFamily",
        tag = "data-plane",
        params(("id" = String, Path, description = "The family's id")),
        security(("api_key" = ["read:families"])),
        responses(
            (status = 200, description = "The family", body = Family),
            (status = 401, description = "No key"),
            (status = 403, description = "The key lacks `read:families`, or is pinned elsewhere (`resource_not_allowed`)"),
            (status = 404, description = "No such family in the key's org and environment"),
        )
    )]
    pub fn get_family() {}
}
