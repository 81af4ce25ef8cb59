//! The ceiling: a bare hyper HTTP/1.1 server that answers every request 200 `{}`. It is
//! also the static upstream both nginx and Keyplane forward to.
//!
//! `bench-bare <addr> --axum` answers the same through an axum `Router` with one route and
//! no middleware: the floor of the framework the gateway is built on, so that the bench
//! can tell the framework's cost from the gateway's own.

use std::convert::Infallible;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, server::conn::http1, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn ok(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut response = Response::new(Full::new(Bytes::from_static(b"{}")));
    response.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static("application/json"));
    Ok(response)
}

async fn axum_ok() -> ([(hyper::header::HeaderName, &'static str); 1], &'static str) {
    ([(hyper::header::CONTENT_TYPE, "application/json")], "{}")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:9000".to_owned());
    let listener = TcpListener::bind(&addr).await?;
    if args.next().as_deref() == Some("--axum") {
        use axum::serve::ListenerExt;
        let listener = listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        axum::serve(listener, axum::Router::new().fallback(axum_ok)).await?;
        return Ok(());
    }
    loop {
        let (stream, _) = listener.accept().await?;
        stream.set_nodelay(true)?;
        tokio::spawn(async move {
            let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service_fn(ok)).await;
        });
    }
}
