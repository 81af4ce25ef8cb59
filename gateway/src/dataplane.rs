//! Data-plane forwarding: `/api/v1/developer/*` goes to the platform's backends by a route
//! table, after the key check. The caller's `Authorization` never leaves the gateway; the
//! verified identity goes instead, signed (see `keyplane_common::dataplane`).

use axum::{
    body::{Body, to_bytes},
    extract::{Request, State},
    http::{HeaderMap, HeaderName, Method, header},
    response::Response,
};
use keyplane_common::{dataplane, principal::Principal, scope::CATALOGUE};

use crate::{auth::Ctx, error::ApiError, state::AppState};

const DATA_PLANE_PREFIX: &str = "/api/v1/developer/";
const MAX_BODY: usize = 1024 * 1024;

/// One entry of the route table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRoute {
    /// A path prefix under `/api/v1/developer/`; the next path segment is the resource id
    /// checked against a pinned key's `resource_ids`.
    pub prefix: String,
    /// Base URL of the backend; the request path is appended unchanged.
    pub upstream: String,
    /// Scope needed for GET, HEAD and OPTIONS.
    pub read_scope: String,
    /// Scope needed for every other method.
    pub write_scope: String,
}

impl DataRoute {
    pub fn families(upstream: String) -> Self {
        Self {
            prefix: "/api/v1/developer/families".into(),
            upstream,
            read_scope: "read:families".into(),
            write_scope: "write:families".into(),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !self.prefix.starts_with(DATA_PLANE_PREFIX) || self.prefix.ends_with('/') {
            return Err(format!(
                "route prefix {:?} must start with {DATA_PLANE_PREFIX} and not end with /",
                self.prefix
            ));
        }
        if !(self.upstream.starts_with("http://") || self.upstream.starts_with("https://")) {
            return Err(format!("route upstream {:?} must be an http(s) URL", self.upstream));
        }
        for scope in [&self.read_scope, &self.write_scope] {
            if !CATALOGUE.contains(&scope.as_str()) {
                return Err(format!("route scope {scope:?} is not in the catalogue"));
            }
        }
        Ok(())
    }

    /// The resource id a path names under this route, if it matches the route.
    fn matches<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        let rest = rest.strip_prefix('/')?;
        Some(rest.split('/').next().filter(|s| !s.is_empty()))
    }
}

pub struct Dataplane {
    /// Longest prefix first.
    routes: Vec<DataRoute>,
    http: reqwest::Client,
    /// The first signs.
    secrets: Vec<Vec<u8>>,
}

impl Dataplane {
    pub fn new(mut routes: Vec<DataRoute>, secrets: Vec<Vec<u8>>, timeout: std::time::Duration) -> Self {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("a plain HTTP client builds");
        Self { routes, http, secrets }
    }

    fn route<'p>(&self, path: &'p str) -> Option<(&DataRoute, Option<&'p str>)> {
        self.routes.iter().find_map(|r| r.matches(path).map(|resource| (r, resource)))
    }
}

/// Headers that describe one hop, not the message: never forwarded either way.
fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

pub async fn forward(State(state): State<AppState>, Ctx(caller): Ctx, request: Request) -> Result<Response, ApiError> {
    let Some(Principal::ApiKey(key)) = caller.principal.as_ref() else {
        return Err(ApiError::unauthorized("use_api_key", "use an API key"));
    };
    let (parts, body) = request.into_parts();
    let path = parts.uri.path();
    let (route, resource) = state.dataplane.route(path).ok_or_else(|| ApiError::not_found("no such route"))?;
    let is_read = matches!(parts.method, Method::GET | Method::HEAD | Method::OPTIONS);
    let scope = if is_read { &route.read_scope } else { &route.write_scope };
    if !key.scopes.allows(scope) {
        return Err(ApiError::forbidden("insufficient_scope", format!("the key lacks the {scope} scope")));
    }
    // A pinned key reaches its resources and nothing else: not another resource, and no
    // write to the collection (a new resource is not one it is pinned to). Reads of the
    // collection are narrowed to its pins by the backend.
    if !key.resource_ids.is_empty() {
        match resource {
            Some(resource) if !key.resource_ids.iter().any(|r| r == resource) => {
                return Err(ApiError::forbidden("resource_not_allowed", "the key is not pinned to this resource"));
            }
            None if !is_read => {
                return Err(ApiError::forbidden("resource_not_allowed", "a pinned key cannot write to the collection"));
            }
            _ => {}
        }
    }
    let body = to_bytes(body, MAX_BODY).await.map_err(|_| {
        ApiError::new(axum::http::StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is over 1 MiB")
    })?;
    let path_and_query = parts.uri.path_and_query().map_or(path, |p| p.as_str());
    let identity = dataplane::Identity {
        org_id: key.org_id.to_string(),
        key_id: key.key_id.to_string(),
        environment: key.environment.as_str().to_owned(),
        scopes: key.scopes.effective(),
        resource_ids: key.resource_ids.clone(),
    };
    let signed = dataplane::sign(
        &state.dataplane.secrets[0],
        chrono::Utc::now().timestamp(),
        parts.method.as_str(),
        path_and_query,
        &identity,
        &body,
    );

    let mut headers = HeaderMap::new();
    for (name, value) in &parts.headers {
        let from_client_identity = dataplane::ALL.contains(name);
        if !hop_by_hop(name) && name != header::AUTHORIZATION && !from_client_identity {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.extend(signed);
    if let Ok(value) = caller.request_id.parse() {
        headers.insert(keyplane_common::error_body::REQUEST_ID_HEADER, value);
    }
    keyplane_common::telemetry::inject_headers(&mut headers);

    let url = format!("{}{}", route.upstream.trim_end_matches('/'), path_and_query);
    let upstream =
        state.dataplane.http.request(parts.method.clone(), url).headers(headers).body(body).send().await.map_err(
            |e| {
                if e.is_timeout() {
                    ApiError::new(
                        axum::http::StatusCode::GATEWAY_TIMEOUT,
                        "timeout",
                        "the backend did not answer in time",
                    )
                } else {
                    // Without the URL: its query may carry what the caller meant for the backend only.
                    tracing::warn!(error = %e.without_url(), prefix = %route.prefix, "data-plane backend unreachable");
                    ApiError::new(axum::http::StatusCode::BAD_GATEWAY, "bad_gateway", "the backend is unavailable")
                }
            },
        )?;
    let mut response = Response::builder().status(upstream.status());
    for (name, value) in upstream.headers() {
        if !hop_by_hop(name) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from_stream(upstream.bytes_stream())).map_err(|_| ApiError::internal())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_prefix_and_name_the_resource() {
        let route = DataRoute::families("http://f".into());
        assert_eq!(route.matches("/api/v1/developer/families"), Some(None));
        assert_eq!(route.matches("/api/v1/developer/families/abc"), Some(Some("abc")));
        assert_eq!(route.matches("/api/v1/developer/families/abc/members"), Some(Some("abc")));
        assert_eq!(route.matches("/api/v1/developer/familiesx"), None);
        assert_eq!(route.matches("/api/v1/developer/policies"), None);
    }

    #[test]
    fn routes_are_checked() {
        assert!(DataRoute::families("http://f".into()).check().is_ok());
        let bad = DataRoute { prefix: "/admin".into(), ..DataRoute::families("http://f".into()) };
        assert!(bad.check().is_err());
        let bad = DataRoute { read_scope: "read:everything".into(), ..DataRoute::families("http://f".into()) };
        assert!(bad.check().is_err());
    }
}
