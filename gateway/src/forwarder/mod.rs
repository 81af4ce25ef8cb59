//! Data-plane forwarding: `/api/v1/developer/*` goes to the platform's backends by a route
//! table. The caller's `Authorization` never leaves the gateway; the verified identity goes
//! instead, signed (see `keyplane_common::dataplane`). Whether the key may make the call is
//! the handler's to decide (`rest::dataplane`); this is how the call is made.
//!
//! The client is hyper's connection-level HTTP/1.1, pooled per backend in [`backend`], not
//! a general-purpose one: the upstreams are a fixed table of HTTP/1 backends, so there is
//! no URL parsing, redirect, decoding or body re-wrapping to pay for on every call (see
//! `make bench`, the forward row).

mod backend;

use std::{sync::Arc, time::Duration};

use axum::{
    body::{Body, Bytes},
    http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode, header},
    response::Response,
};
use http_body_util::Full;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use keyplane_common::{dataplane, error_body::REQUEST_ID_HEADER};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_util::sync::CancellationToken;

use crate::{
    config::DataRoute,
    error::ApiError,
    idle::{IdleBound, Side},
};

pub struct Forwarder {
    /// Longest prefix first.
    routes: Vec<Route>,
    /// Keyed with the first secret (the others are for backends still verifying with them).
    signer: dataplane::Signer,
    /// The longest a streamed answer may wait for its backend's next bytes.
    idle: Duration,
}

/// A route of the table, with its backend's connections.
pub struct Route {
    pub config: DataRoute,
    backend: Arc<backend::Backend>,
}

/// One call to forward: where it goes, what it is, and who it is for.
pub struct Call<'a> {
    pub route: &'a Route,
    pub method: &'a Method,
    pub path_and_query: &'a str,
    pub headers: &'a HeaderMap,
    pub body: Bytes,
    pub identity: &'a dataplane::PreparedIdentity,
    pub request_id: &'a str,
}

impl Forwarder {
    /// `timeout` (the gateway's request timeout) bounds a new connection to a backend, and
    /// each wait for the next bytes of a streamed answer; the request's own deadline bounds
    /// the rest.
    pub fn new(mut routes: Vec<DataRoute>, secrets: Vec<Vec<u8>>, timeout: Duration) -> anyhow::Result<Self> {
        routes.sort_by_key(|r| std::cmp::Reverse(r.prefix.len()));
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(timeout));
        // https:// upstreams are checked against the system's roots (SSL_CERT_FILE adds one).
        connector.enforce_http(false);
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_platform_verifier()?
            .with_no_client_auth();
        let connector: HttpsConnector<HttpConnector> =
            HttpsConnectorBuilder::new().with_tls_config(tls).https_or_http().enable_http1().wrap_connector(connector);
        let routes = routes
            .into_iter()
            .map(|config| {
                let backend = backend::Backend::new(&config.upstream, connector.clone())?;
                Ok(Route { config, backend })
            })
            .collect::<anyhow::Result<_>>()?;
        let secret = secrets.first().ok_or_else(|| anyhow::anyhow!("no data-plane secret to sign identities with"))?;
        let signer = dataplane::Signer::new(secret);
        Ok(Self { routes, signer, idle: timeout })
    }

    /// Every second, lets go of the idle backend connections that were closed or are too old.
    pub fn spawn_sweeper(self: &Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let forwarder = Arc::clone(self);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(SWEEP_EVERY);
            every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while stop.run_until_cancelled(every.tick()).await.is_some() {
                for route in &forwarder.routes {
                    route.backend.sweep();
                }
            }
        })
    }

    /// The route a path takes, and the resource id it names under it.
    pub fn route<'p>(&self, path: &'p str) -> Option<(&Route, Option<&'p str>)> {
        self.routes.iter().find_map(|r| r.config.matches(path).map(|resource| (r, resource)))
    }

    pub async fn forward(&self, call: Call<'_>) -> Result<Response, ApiError> {
        let signed =
            self.signer.sign(unix_seconds(), call.method.as_str(), call.path_and_query, call.identity, &call.body);
        let backend = &call.route.backend;
        let uri = backend.target(call.path_and_query).map_err(|_| ApiError::internal())?;
        let mut request = Request::new(Full::new(call.body));
        *request.method_mut() = call.method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = outgoing_headers(call.headers, signed, call.request_id);
        // The request's deadline (the gateway's timeout layer, `lib.rs`) bounds the answer's
        // start and, for a small answer, its end: a timer of the forwarder's own, as long
        // and started later, could never fire first.
        let upstream = match backend.send(request).await {
            Ok(upstream) => upstream,
            Err(e) => {
                // Without the URL: its query may carry what the caller meant for the backend only.
                // The cause too (refused, TLS, DNS): hyper's own text stops at "client error".
                let cause = std::error::Error::source(e.as_ref()).map(ToString::to_string).unwrap_or_default();
                tracing::warn!(error = %e, cause, prefix = %call.route.config.prefix, "data-plane backend unreachable");
                return Err(ApiError::new(StatusCode::BAD_GATEWAY, "bad_gateway", "the backend is unavailable"));
            }
        };
        let (mut parts, body) = upstream.into_parts();
        if parts.status.is_informational() {
            // A 101 (hyper has taken in any other 1xx): the gateway never passes `Upgrade` on
            // and carries HTTP alone, so the switch is one the client cannot make.
            tracing::warn!(status = %parts.status, prefix = %call.route.config.prefix, "data-plane backend switched protocols");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bad_gateway",
                "the backend answered with another protocol",
            ));
        }
        if parts.status == StatusCode::GATEWAY_TIMEOUT {
            // The backend's own 504: not to be read as this gateway's deadline.
            parts.extensions.insert(crate::context::Relayed);
        }
        // An answer to HEAD has no body to frame anew: its length is the GET's, as sent.
        let head = call.method == Method::HEAD;
        let listed = connection_options(&parts.headers);
        for name in HOP_BY_HOP.iter().chain(&listed).filter(|name| !(head && *name == header::CONTENT_LENGTH)) {
            parts.headers.remove(name);
        }
        // A small answer of known length is read whole first, so that one breaking off is a
        // 502 in the contract's shape rather than a truncated 200; anything else streams
        // through as it comes. (Measured: no change in throughput either way.) Its length is
        // the body's: Content-Length went with the hop-by-hop headers (but for HEAD), as
        // hyper frames the answer anew.
        let length = axum::body::HttpBody::size_hint(&body).exact();
        if length.is_some_and(|length| length <= BUFFERED_ANSWER as u64) {
            let whole = match http_body_util::BodyExt::collect(body).await {
                Ok(whole) => whole,
                Err(e) => {
                    tracing::warn!(error = %e, prefix = %call.route.config.prefix, "data-plane backend's answer broke off");
                    return Err(ApiError::new(
                        StatusCode::BAD_GATEWAY,
                        "bad_gateway",
                        "the backend's answer broke off",
                    ));
                }
            };
            return Ok(Response::from_parts(parts, Body::from(whole.to_bytes())));
        }
        // Streamed: the request's deadline ended with the head, so a backend that stalls
        // mid-answer would hold the client and the connection for ever. Each wait for its
        // next bytes is bounded instead (a client slow to read does not count: the wait
        // starts when the answer asks for more), and one that runs out breaks the answer off.
        Ok(Response::from_parts(
            parts,
            Body::new(IdleBound::new(body, self.idle, Side::Backend(call.route.config.prefix.clone()))),
        ))
    }
}

/// Now, in whole seconds since the Unix epoch (without chrono's calendar arithmetic).
fn unix_seconds() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// How often idle backend connections are checked for a close.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Answers up to this long (by their Content-Length) are read whole before they are sent on.
const BUFFERED_ANSWER: usize = 64 * 1024;

/// Headers that describe one hop, not the message: never forwarded either way. Names, not
/// strings: removing by a `&str` parses it again on every call (a tenth of the
/// instructions a forwarded answer cost).
const HOP_BY_HOP: [HeaderName; 10] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    header::HOST,
    header::CONTENT_LENGTH,
];

fn hop_by_hop(name: &HeaderName) -> bool {
    HOP_BY_HOP.contains(name)
}

/// The names a message's `Connection` header lists: hop-by-hop for that message too (RFC
/// 9110 §7.6.1), so they go no further than the hop they came on.
fn connection_options(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

/// The gateway has read the whole body before it forwards: a backend is never asked to
/// wait for one, and an `Expect` cannot make it answer before reading what was sent.
fn already_handled(name: &HeaderName) -> bool {
    name == header::EXPECT
}

/// What goes upstream: the client's headers, less hop-by-hop ones, its credential and any
/// identity header it made up; then the signed identity, the request id and trace context.
fn outgoing_headers(incoming: &HeaderMap, signed: [(HeaderName, HeaderValue); 7], request_id: &str) -> HeaderMap {
    // Sized once for the signed identity, the request id and trace context too: grown on
    // the way, the map rehashed twice on every forwarded request.
    let mut headers = HeaderMap::with_capacity(incoming.len() + 12);
    let listed = connection_options(incoming);
    for (name, value) in incoming {
        let made_up_identity = dataplane::ALL.contains(name);
        let hop = hop_by_hop(name) || listed.contains(name);
        if !hop && !already_handled(name) && name != header::AUTHORIZATION && !made_up_identity {
            headers.append(name.clone(), value.clone());
        }
    }
    headers.extend(signed);
    if let Ok(value) = request_id.parse() {
        headers.insert(REQUEST_ID_HEADER, value);
    }
    keyplane_common::telemetry::inject_headers(&mut headers);
    headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> dataplane::Identity {
        dataplane::Identity {
            org_id: "org".into(),
            key_id: "key".into(),
            environment: "test".into(),
            scopes: vec!["read:families".into()],
            resource_ids: vec![],
        }
    }

    #[test]
    fn the_credential_and_made_up_identity_never_go_upstream() {
        let mut incoming = HeaderMap::new();
        incoming.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer phosra_test_secret"));
        incoming.insert("x-keyplane-org-id", HeaderValue::from_static("someone-else"));
        incoming.insert(header::CONNECTION, HeaderValue::from_static("keep-alive, X-Private-Hop"));
        incoming.insert("x-private-hop", HeaderValue::from_static("for the gateway alone"));
        incoming.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        incoming.insert(header::EXPECT, HeaderValue::from_static("100-continue"));
        let prepared = dataplane::PreparedIdentity::new(identity());
        let signed = dataplane::Signer::new(b"secret").sign(1000, "GET", "/x", &prepared, b"");
        let out = outgoing_headers(&incoming, signed, "req-1");
        assert!(out.get(header::AUTHORIZATION).is_none());
        assert!(out.get(header::CONNECTION).is_none());
        assert!(out.get("x-private-hop").is_none(), "a header the Connection header names is hop-by-hop too");
        assert!(out.get(header::EXPECT).is_none(), "the body is already read");
        assert_eq!(out.get("x-keyplane-org-id").unwrap(), "org", "the signed identity replaces the made-up one");
        assert_eq!(out.get_all("x-keyplane-org-id").iter().count(), 1);
        assert_eq!(out.get(header::ACCEPT).unwrap(), "application/json");
        assert_eq!(out.get(REQUEST_ID_HEADER).unwrap(), "req-1");
        let verified = dataplane::verify(&[b"secret".to_vec()], &out, "GET", "/x", b"", 1000);
        assert_eq!(verified.unwrap(), identity(), "what a backend receives verifies");
    }

    #[test]
    fn the_longest_prefix_takes_the_call() {
        let route = |prefix: &str| DataRoute {
            prefix: prefix.into(),
            upstream: "http://u".into(),
            read_scope: "read:families".into(),
            write_scope: "write:families".into(),
        };
        let forwarder = Forwarder::new(
            vec![route("/api/v1/developer/families"), route("/api/v1/developer/families/special")],
            vec![b"s".to_vec()],
            std::time::Duration::from_secs(1),
        )
        .unwrap();
        let (taken, resource) = forwarder.route("/api/v1/developer/families/special/x").unwrap();
        assert_eq!((taken.config.prefix.as_str(), resource), ("/api/v1/developer/families/special", Some("x")));
        assert!(forwarder.route("/api/v1/developer/policies").is_none());
    }
}
