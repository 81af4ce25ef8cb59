//! The connections to one data-plane backend, each driven by the task of the request that
//! uses it.
//!
//! hyper's pooled client (`hyper_util::client::legacy`) runs every connection in a task of
//! its own, so a request and its answer cross to that task and back through channels on
//! every call: most of what a forwarded request cost beyond nginx's (`make bench`, the
//! forward row). Here a request takes an idle connection (hyper's connection-level API),
//! drives it itself while it writes the request and reads the answer, and puts it back
//! once the answer has been read to its end: the shape of Pingora's pool. What the legacy
//! client did besides, this does too: a connection the backend closed while it sat idle is
//! passed over, and a request it never received is sent again on another.

use std::{
    collections::VecDeque,
    future::poll_fn,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use axum::{
    body::Bytes,
    http::{HeaderValue, Request, Response, Uri, header, uri::Scheme},
};
use http_body_util::Full;
use hyper::{
    body::{Body, Frame, Incoming, SizeHint},
    client::conn::{
        TrySendError,
        http1::{self, Connection, SendRequest},
    },
};
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::{client::legacy::connect::HttpConnector, rt::TokioIo};
use tokio::net::TcpStream;
use tower::{BoxError, ServiceExt};

/// A connection idle longer than this is closed rather than used (the legacy client's
/// `pool_idle_timeout` was the same).
const IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Idle connections kept per backend; more than this are closed when their answer ends.
const MAX_IDLE: usize = 512;

type Io = MaybeHttpsStream<TokioIo<TcpStream>>;

/// One HTTP/1.1 connection: the handle that sends on it and the state machine that does
/// its reading and writing whenever it is polled. Kept boxed: with its buffers and TLS
/// state it is kilobytes, moved in and out of the pool and the request's future on every
/// call (a tenth of a forwarded request's instructions went to copying it).
struct Link {
    sender: SendRequest<Full<Bytes>>,
    connection: Connection<Io, Full<Bytes>>,
}

struct Idle {
    link: Box<Link>,
    since: Instant,
}

pub struct Backend {
    /// Where connections go: the upstream's scheme and authority.
    origin: Uri,
    /// The upstream's own path, with no trailing slash: requests' paths go under it.
    base_path: String,
    host: HeaderValue,
    connector: HttpsConnector<HttpConnector>,
    /// Most recently used last.
    idle: Mutex<VecDeque<Idle>>,
}

impl Backend {
    pub fn new(upstream: &str, connector: HttpsConnector<HttpConnector>) -> anyhow::Result<Arc<Self>> {
        let uri: Uri = upstream.parse()?;
        let (Some(scheme), Some(authority)) = (uri.scheme(), uri.authority()) else {
            anyhow::bail!("the upstream {upstream:?} has no scheme or host");
        };
        // The port only when it is not the scheme's own, as clients write it.
        let default_port = if scheme == &Scheme::HTTPS { 443 } else { 80 };
        let host = match authority.port_u16().filter(|port| *port != default_port) {
            Some(port) => format!("{}:{port}", authority.host()),
            None => authority.host().to_owned(),
        };
        Ok(Arc::new(Self {
            origin: Uri::builder().scheme(scheme.clone()).authority(authority.clone()).path_and_query("/").build()?,
            base_path: uri.path().trim_end_matches('/').to_owned(),
            host: HeaderValue::from_str(&host)?,
            connector,
            idle: Mutex::default(),
        }))
    }

    /// The request target for a caller's path and query: under the upstream's own path.
    pub fn target(&self, path_and_query: &str) -> Result<Uri, axum::http::uri::InvalidUri> {
        if self.base_path.is_empty() {
            return path_and_query.parse();
        }
        format!("{}{path_and_query}", self.base_path).parse()
    }

    /// Sends `request` (its URI made by [`Backend::target`]) and returns the answer's
    /// head; its body drives the connection while it is read, and gives it back at its end.
    pub async fn send(self: &Arc<Self>, mut request: Request<Full<Bytes>>) -> Result<Response<Answer>, BoxError> {
        request.headers_mut().insert(header::HOST, self.host.clone());
        loop {
            let (link, pooled) = match self.take_idle() {
                Some(link) => (link, true),
                None => (self.connect().await?, false),
            };
            match exchange(link, request).await {
                Ok((response, link)) => {
                    let backend = Arc::clone(self);
                    return Ok(response.map(|body| Answer { body, link, backend }));
                }
                // The backend closed an idle connection before it read the request: the
                // legacy client sent such a request again, and so does this.
                Err(mut refused) => match refused.take_message() {
                    Some(unsent) if pooled => request = unsent,
                    _ => return Err(refused.into_error().into()),
                },
            }
        }
    }

    async fn connect(&self) -> Result<Box<Link>, BoxError> {
        let io = self.connector.clone().oneshot(self.origin.clone()).await?;
        let (mut sender, mut connection) = http1::handshake(io).await?;
        // A new connection takes its first request once it has been polled.
        poll_fn(|cx| {
            if let Poll::Ready(ended) = Pin::new(&mut connection).poll(cx) {
                let error: BoxError = match ended {
                    Err(e) => e.into(),
                    Ok(()) => "the backend closed the connection".into(),
                };
                return Poll::Ready(Err(error));
            }
            sender.poll_ready(cx).map_err(BoxError::from)
        })
        .await?;
        Ok(Box::new(Link { sender, connection }))
    }

    /// The most recently used idle connection that is still open and ready.
    fn take_idle(&self) -> Option<Box<Link>> {
        let mut noop = Context::from_waker(Waker::noop());
        loop {
            let Idle { mut link, since } = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop_back()?;
            // Polled once without a waker: a backend's close or garbage ends it here.
            let open = Pin::new(&mut link.connection).poll(&mut noop).is_pending();
            if open
                && since.elapsed() < IDLE_TIMEOUT
                && matches!(link.sender.poll_ready(&mut noop), Poll::Ready(Ok(())))
            {
                return Some(link);
            }
        }
    }

    /// Closes the idle connections the backend closed, or that sat idle too long: unpolled,
    /// a closed one would hold its socket until the next request took it.
    pub fn sweep(&self) {
        let mut noop = Context::from_waker(Waker::noop());
        let now = Instant::now();
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).retain_mut(|idle| {
            now.duration_since(idle.since) < IDLE_TIMEOUT
                && Pin::new(&mut idle.link.connection).poll(&mut noop).is_pending()
        });
    }

    fn put_back(&self, link: Box<Link>) {
        let now = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        while idle.front().is_some_and(|oldest| now.duration_since(oldest.since) >= IDLE_TIMEOUT) {
            idle.pop_front();
        }
        if idle.len() < MAX_IDLE {
            idle.push_back(Idle { link, since: now });
        }
    }
}

/// Writes `request` on `link` and reads the answer's head, driving the connection here.
/// A connection that ends first is dropped, which fails the request: with the request
/// given back if it was never written.
async fn exchange(
    mut link: Box<Link>,
    request: Request<Full<Bytes>>,
) -> Result<(Response<Incoming>, Option<Box<Link>>), TrySendError<Request<Full<Bytes>>>> {
    let mut answer = std::pin::pin!(link.sender.try_send_request(request));
    let mut link = Some(link);
    let response = poll_fn(|cx| {
        if link.as_mut().is_some_and(|l| Pin::new(&mut l.connection).poll(cx).is_ready()) {
            link = None;
        }
        answer.as_mut().poll(cx)
    })
    .await?;
    Ok((response, link))
}

/// An answer's body, read from the connection it drives; the connection goes back to its
/// backend's pool once the body has been read to its end, and is closed otherwise.
pub struct Answer {
    body: Incoming,
    link: Option<Box<Link>>,
    backend: Arc<Backend>,
}

impl Answer {
    /// Polled once more, the connection finishes the answer and asks for the next request.
    /// Without a waker: an idle connection must not keep this request's task alive, nor
    /// wake it; the sweep and the next request that takes it poll it instead.
    fn give_back(&mut self) {
        if let Some(mut link) = self.link.take()
            && Pin::new(&mut link.connection).poll(&mut Context::from_waker(Waker::noop())).is_pending()
        {
            self.backend.put_back(link);
        }
    }
}

impl Body for Answer {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        if this.link.as_mut().is_some_and(|link| Pin::new(&mut link.connection).poll(cx).is_ready()) {
            this.link = None;
        }
        let frame = std::task::ready!(Pin::new(&mut this.body).poll_frame(cx));
        if frame.is_none() {
            this.give_back();
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Answer {
    /// A reader that stopped at `is_end_stream` without asking for the end still read it all.
    fn drop(&mut self) {
        if self.link.is_some() && self.body.is_end_stream() {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(upstream: &str) -> Arc<Backend> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(HttpConnector::new());
        Backend::new(upstream, connector).unwrap()
    }

    #[test]
    fn requests_go_under_the_upstream_path_with_its_host_as_clients_write_it() {
        let based = backend("http://backend.internal:80/base/");
        assert_eq!(based.host, "backend.internal", "the scheme's own port is left out");
        assert_eq!(based.target("/api/v1/developer/x?y=1").unwrap(), "/base/api/v1/developer/x?y=1");
        assert_eq!(backend("https://backend.internal:443").host, "backend.internal");
        let other_port = backend("https://backend.internal:8443");
        assert_eq!(other_port.host, "backend.internal:8443");
        assert_eq!(other_port.target("/api/v1/developer/x").unwrap(), "/api/v1/developer/x");
        assert_eq!(backend("http://[::1]:9000").host, "[::1]:9000");
    }
}
