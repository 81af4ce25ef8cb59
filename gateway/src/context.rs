//! The outermost middleware: gives every request an id (the caller's, if sane), records
//! where it came from in the request's [`Caller`] (the one name handlers know the caller
//! by; the auth middleware adds the principal), and writes every error response in the
//! contract's JSON shape.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
    time::Instant,
};

use axum::{
    body::Body,
    extract::{ConnectInfo, MatchedPath, Request, connect_info::Connected},
    http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header},
    response::{IntoResponse, Response},
    serve::IncomingStream,
};
use keyplane_common::{
    error_body::{ErrorBody, REQUEST_ID_HEADER},
    internal_auth::Caller,
};

use crate::{
    config::TrustedProxies,
    error::ApiError,
    finishing::{self, Middleware, MiddlewareLayer},
    idle::{IdleBound, Side},
    state::AppState,
};

/// Marks a backend's answer that `render_error` would otherwise take for the gateway's
/// own (a 504 is the gateway's deadline only when the gateway wrote it). Set only where
/// it matters, so that forwarding pays nothing for it.
#[derive(Clone, Copy, Debug)]
pub struct Relayed;

/// A request id the caller sent is kept if it is short and plain.
fn sane(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

/// A connection's TCP peer, its address written out once per connection rather than on
/// every request (formatting it was 2% of a verify's instructions).
#[derive(Clone, Debug)]
pub struct Peer {
    addr: SocketAddr,
    ip: Arc<str>,
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Self {
        Self { addr, ip: addr.ip().to_string().into() }
    }
}

/// The gateway's listener: each accepted connection sends at once (no Nagle), so that a
/// streamed answer's small writes do not wait for the client's delayed ACK. (axum's
/// `tap_io` would do, but its `Connected` impl leaves no room for [`Peer`]'s.)
pub struct NoDelayListener(pub tokio::net::TcpListener);

impl axum::serve::Listener for NoDelayListener {
    type Io = tokio::net::TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.0).await;
        if let Err(e) = stream.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.0.local_addr()
    }
}

impl Connected<IncomingStream<'_, NoDelayListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, NoDelayListener>) -> Self {
        Self::from(*stream.remote_addr())
    }
}

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// The client's address: the TCP peer, or behind trusted proxies the address the
/// outermost of them saw. `X-Forwarded-For` is read from the right: each proxy appends
/// the address it saw, and everything left of the trusted hops is the client's to forge.
fn client_ip(headers: &HeaderMap, peer: Option<&Peer>, trusted: &TrustedProxies) -> String {
    let Some(connection) = peer else { return String::new() };
    let peer = connection.addr.ip();
    let forwarded = || -> Vec<Option<IpAddr>> {
        headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|hop| hop.trim().parse::<IpAddr>().ok())
            .collect()
    };
    let client = match trusted {
        TrustedProxies::None => Some(peer),
        TrustedProxies::Count(proxies) => {
            // The chain of hops, the peer last; the last `proxies` of them are ours.
            let mut chain = forwarded();
            chain.push(Some(peer));
            let index = chain.len().saturating_sub(proxies + 1);
            chain[index]
        }
        TrustedProxies::Networks(networks) => {
            let ours = |ip: &IpAddr| networks.iter().any(|n| n.contains(ip));
            if ours(&peer) {
                // The first hop from the right that is not one of ours; a hop that is not
                // an address at all ends the walk (we cannot tell who added it).
                let hops = forwarded();
                let mut client = Some(peer);
                for hop in hops.into_iter().rev() {
                    client = hop;
                    if !hop.as_ref().is_some_and(ours) {
                        break;
                    }
                }
                client
            } else {
                Some(peer)
            }
        }
    };
    match client {
        Some(client) if client != peer => client.to_string(),
        _ => connection.ip.to_string(),
    }
}

/// Refuses paths that could read differently here and at a backend: empty segments
/// (`//`), dot segments (`.`, `..`), encoded slashes, backslashes and encoded dots. Checked
/// before routing, so that a pin on `/families/{id}` cannot be stepped around with
/// `/families//{id}` or `/families/%2F..`.
pub fn is_canonical_path(path: &str) -> bool {
    if path == "/" {
        return true;
    }
    let Some(rest) = path.strip_prefix('/') else { return false };
    let encoded_separator =
        |w: &[u8]| w[0] == b'%' && matches!((w[1], w[2].to_ascii_lowercase()), (b'2', b'f' | b'e') | (b'5', b'c'));
    let bytes = rest.as_bytes();
    if bytes.windows(3).any(encoded_separator) || bytes.contains(&b'\\') {
        return false;
    }
    // A trailing slash is one empty segment too. (Split as bytes: `str::split` cost 1% of
    // a verify.)
    bytes.split(|&b| b == b'/').all(|segment| !matches!(segment, b"" | b"." | b".."))
}

/// A fresh request id: a UUIDv7, so ids sort by time. Encoded into a buffer rather than
/// formatted: this runs on every request.
fn new_request_id() -> String {
    let mut buffer = uuid::Uuid::encode_buffer();
    uuid::Uuid::now_v7().hyphenated().encode_lower(&mut buffer).to_owned()
}

/// Methods as metric labels; anything unusual is one label.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}

/// The outermost layer: [`Context`] around the rest of the stack.
pub fn layer(state: AppState) -> MiddlewareLayer<Context> {
    MiddlewareLayer(Context(state))
}

/// Gives the request its id and [`Caller`], refuses a non-canonical path, then writes the
/// answer's error body, request id and metrics. A [`Middleware`] with one unboxed future
/// rather than a `from_fn`, which boxes twice on every request.
#[derive(Clone)]
pub struct Context(AppState);

impl Middleware for Context {
    type Finish = Finish;

    fn start(&self, request: &mut Request) -> (Finish, Option<Response>) {
        let started = Instant::now();
        let method = method_label(request.method());
        // The route's template, so that ids do not make a series each.
        let route = request.extensions().get::<MatchedPath>().cloned();
        let request_id = request
            .headers()
            .get(REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| sane(id))
            .map_or_else(new_request_id, str::to_owned);
        // Written once for the answer: a sane id and a UUID are always a header's value.
        let id_header = HeaderValue::from_str(&request_id).ok();
        let peer = request.extensions().get::<ConnectInfo<Peer>>().map(|c| &c.0);
        let caller = Caller {
            service: "gateway".into(),
            principal: None,
            client_ip: client_ip(request.headers(), peer, &self.0.trusted_proxies),
            user_agent: request
                .headers()
                .get(header::USER_AGENT)
                .and_then(|v| v.to_str().ok())
                // `to_str` admits visible ASCII only: any byte is a character's boundary.
                .map(|ua| ua[..ua.len().min(256)].to_owned())
                .unwrap_or_default(),
            request_id,
        };
        request.extensions_mut().insert(caller);
        if !axum::body::HttpBody::is_end_stream(request.body()) {
            // A body that stops before its end is refused when it has been silent this long
            // (`extract`), not held to the request's deadline. A request without one pays nothing.
            let body = std::mem::take(request.body_mut());
            *request.body_mut() = Body::new(IdleBound::new(body, self.0.body_idle, Side::Client));
        }
        let console = request.uri().path().starts_with("/console");
        let refusal = (!is_canonical_path(request.uri().path())).then(|| {
            ApiError::bad_request(
                "invalid_path",
                "the path has an empty segment, a dot segment, or an encoded slash or dot",
            )
            .into_response()
        });
        (Finish { state: self.0.clone(), started, method, route, request_id: id_header, console }, refusal)
    }
}

/// What the answer needs from the request once it is written.
pub struct Finish {
    state: AppState,
    started: Instant,
    method: &'static str,
    route: Option<MatchedPath>,
    request_id: Option<HeaderValue>,
    console: bool,
}

impl finishing::Finish for Finish {
    fn finish(self, response: Response) -> Response {
        let mut response = render_error(response, self.request_id.as_ref());
        if self.console {
            crate::console::secure_headers(response.headers_mut());
        }
        if let Some(value) = self.request_id {
            response.headers_mut().insert(REQUEST_ID_HEADER, value);
        }
        let route = self.route.as_ref().map_or("unmatched", MatchedPath::as_str);
        self.state.metrics.observe_http(self.method, route, response.status().as_u16(), self.started.elapsed());
        response
    }
}

/// Writes the JSON body of an error: ours from its [`ApiError`], and a plain one for any
/// error response that has no JSON body (a layer's 413 or 408, say). Bodies that are
/// already JSON (a data-plane backend's) pass through.
fn render_error(response: Response, request_id: Option<&HeaderValue>) -> Response {
    let status = response.status();
    let error = response.extensions().get::<ApiError>().cloned();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let body = match error {
        Some(error) => error.body(),
        None if (status.is_client_error() || status.is_server_error()) && !is_json => {
            // Looked up only here: a successful answer pays nothing for the mark.
            default_body(status, response.extensions().get::<Relayed>().is_some())
        }
        None => return response,
    };
    let request_id = request_id.and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body = ErrorBody { request_id, ..body };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    parts.headers.remove(header::CONTENT_LENGTH);
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    Response::from_parts(parts, Body::from(bytes))
}

fn default_body(status: StatusCode, relayed: bool) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the request body is over 1 MiB"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        // The request timeout's answer (`lib.rs`), not a backend's.
        StatusCode::GATEWAY_TIMEOUT if !relayed => ("timeout", "the request took too long"),
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "this route does not take that method"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "send application/json"),
        s if s.is_server_error() => ("internal_error", "internal error"),
        _ => ("bad_request", "the request is not valid"),
    };
    ErrorBody::new(status, code, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_request_ids_are_kept() {
        assert!(sane("req-123_abc.def:1"));
        assert!(!sane(""));
        assert!(!sane("has space"));
        assert!(!sane(&"x".repeat(200)));
        assert!(!sane("<script>"));
    }

    #[test]
    fn forwarded_for_is_read_from_the_right() {
        let mut headers = HeaderMap::new();
        // The client forged the first entry; the trusted proxy appended the real one.
        headers.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.66, 203.0.113.7"));
        let peer = Peer::from(SocketAddr::from(([10, 0, 0, 2], 1234)));
        let peer = Some(&peer);
        assert_eq!(client_ip(&headers, peer, &TrustedProxies::None), "10.0.0.2");
        assert_eq!(client_ip(&headers, peer, &TrustedProxies::Count(1)), "203.0.113.7");
        assert_eq!(client_ip(&headers, peer, &TrustedProxies::Count(2)), "198.51.100.66");
        assert_eq!(client_ip(&HeaderMap::new(), peer, &TrustedProxies::Count(3)), "10.0.0.2");
        let ours = TrustedProxies::parse("10.0.0.0/8").unwrap();
        assert_eq!(client_ip(&headers, peer, &ours), "203.0.113.7");
        let outside = Peer::from(SocketAddr::from(([192, 0, 2, 1], 1234)));
        let outside = Some(&outside);
        assert_eq!(client_ip(&headers, outside, &ours), "192.0.2.1", "an untrusted peer's header is ignored");
        let mut chained = HeaderMap::new();
        chained.insert("x-forwarded-for", HeaderValue::from_static("198.51.100.66, 203.0.113.7, 10.1.2.3"));
        assert_eq!(client_ip(&chained, peer, &ours), "203.0.113.7", "trusted hops are skipped");
    }

    #[test]
    fn only_canonical_paths_are_routed() {
        for good in ["/", "/health", "/api/v1/developer/families/fam_1", "/api/v1/x.y", "/a%20b", "/a%2", "/%"] {
            assert!(is_canonical_path(good), "{good}");
        }
        for bad in [
            "/api/v1/developer/families//fam_1",
            "/api/v1/developer/families/./fam_1",
            "/api/v1/developer/families/../keys",
            "/api/v1/developer/families/a%2Fb",
            "/api/v1/developer/families/%2e%2e",
            "/api/v1/developer/families/%2E%2E",
            "/api/v1/developer/families/a%2fb",
            "/api/v1/developer/families/a%5Cb",
            "/api/v1/developer/families/a%5cb",
            "/api/v1/developer/families/",
            "/api/v1/developer\\families",
        ] {
            assert!(!is_canonical_path(bad), "{bad}");
        }
    }
}
