//! Latency at a fixed rate (open loop): requests are sent on a schedule whatever the server
//! does, and a latency runs from when the request was due whenever the server's previous
//! answer held it back, so a stall counts against every request it delayed (no coordinated
//! omission, unlike a closed loop such as wrk). A request that waited only for its turn runs
//! from when it left: tokio's timer wakes up to a millisecond late, and that is the load
//! generator's lateness, not the server's.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send, again and again.
#[derive(Clone)]
pub struct Shot {
    pub method: hyper::Method,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Sends `rate` requests a second over `connections` connections for `duration`; answers
/// the latencies' (p50, p99) in milliseconds and how many answers were not 2xx.
pub async fn run(shot: Shot, rate: f64, connections: usize, duration: Duration) -> anyhow::Result<(f64, f64, u64)> {
    let per_connection = rate / connections as f64;
    let interval = Duration::from_secs_f64(1.0 / per_connection.max(1e-3));
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let shot = shot.clone();
        // Connections start spread over one interval, so the requests interleave.
        let offset = interval.mul_f64(c as f64 / connections as f64);
        tasks.push(tokio::spawn(async move { connection(shot, start + offset, interval, duration).await }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    for task in tasks {
        let (l, f) = task.await??;
        latencies.extend(l);
        failed += f;
    }
    anyhow::ensure!(!latencies.is_empty(), "no request was answered");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok((at(0.50), at(0.99), failed))
}

async fn connection(
    shot: Shot,
    first: Instant,
    interval: Duration,
    duration: Duration,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let stream = TcpStream::connect(&shot.authority).await?;
    stream.set_nodelay(true)?;
    let (mut sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut due = first;
    let end = first + duration;
    while due < end {
        let ready = Instant::now();
        if ready < due {
            tokio::time::sleep_until(due.into()).await;
        }
        let start = if ready < due { Instant::now() } else { due };
        let mut request =
            Request::builder().method(shot.method.clone()).uri(&shot.path).header("host", &shot.authority);
        for (name, value) in &shot.headers {
            request = request.header(name, value);
        }
        let response = sender.send_request(request.body(Full::new(shot.body.clone()))?).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        latencies.push(start.elapsed());
        failed += u64::from(!ok);
        due += interval;
    }
    Ok((latencies, failed))
}
