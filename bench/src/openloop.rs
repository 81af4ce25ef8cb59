//! Latency at a fixed rate (open loop): requests are released on a schedule whatever the
//! server does, and a latency runs from when the request was due, so a stall counts
//! against every request it held back (no coordinated omission, unlike a closed loop such
//! as wrk).
//!
//! The whole client is one thread: a current-thread runtime whose pacer spins (yielding
//! to the connections between looks at the clock) rather than sleeps. It runs on the load
//! core, away from the servers measured, and it keeps the schedule to a few microseconds.
//! (Redis and PostgreSQL are not pinned: the gateway's background calls to them may wait
//! behind the spinning client, or run beside the servers; a cost to the gateway's rows
//! only.) Two earlier pacers measured themselves instead: tokio's timer fires on
//! millisecond ticks, turning a steady rate into bursts of every request due in the
//! millisecond; a pacer thread sleeping on the kernel's high-resolution timers shared the
//! core with the runtime's thread, and each of its wake-ups waited for the scheduler to
//! take the core from the other (bare hyper, at half the verify peak, read 1.7 to 2.6 ms
//! p99 through it).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, client::conn::http1};
use hyper_util::rt::TokioIo;
use tokio::{net::TcpStream, sync::mpsc};

/// One request to send, again and again.
#[derive(Clone)]
pub struct Shot {
    pub method: hyper::Method,
    pub authority: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// What one open-loop run measured.
#[derive(Clone, Copy, Debug)]
pub struct Run {
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Answers that were not 2xx.
    pub failed: u64,
}

/// Sends `rate` requests a second over `connections` connections for `duration`.
pub async fn run(shot: Shot, rate: f64, connections: usize, duration: Duration) -> anyhow::Result<Run> {
    anyhow::ensure!(connections > 0, "an open loop needs a connection");
    // A thread of its own (it inherits the harness's pin to the load core), so that the
    // pacer and the connections share one runtime and wake each other without the kernel.
    tokio::task::spawn_blocking(move || {
        tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(measure(
            shot,
            rate,
            connections,
            duration,
        ))
    })
    .await?
}

async fn measure(shot: Shot, rate: f64, connections: usize, duration: Duration) -> anyhow::Result<Run> {
    let mut releases = Vec::with_capacity(connections);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let sender = connect(&shot).await?;
        let (release, released) = mpsc::unbounded_channel();
        releases.push(release);
        tasks.push(tokio::spawn(connection(shot.clone(), sender, released)));
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    pace(releases, interval, duration).await;
    let mut latencies = Vec::new();
    let mut failed = 0;
    let mut outcome = Ok(());
    for task in tasks {
        match task.await? {
            Ok((l, f)) => {
                latencies.extend(l);
                failed += f;
            }
            Err(e) => outcome = outcome.and(Err(e)),
        }
    }
    outcome?;
    anyhow::ensure!(!latencies.is_empty(), "no request was answered");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok(Run { p50_ms: at(0.50), p99_ms: at(0.99), failed })
}

/// Releases one request every `interval`, to the connections in turn, for `duration`;
/// each look at the clock releases every request then due, stamped with when it was due.
/// Between looks it yields, so the connections run; it sleeps only when the next is due
/// in more than a timer tick. Dropping the senders at the end tells the connections to
/// finish; a connection that broke (its receiver gone) ends the schedule for all.
async fn pace(releases: Vec<mpsc::UnboundedSender<Instant>>, interval: Duration, duration: Duration) {
    const TICK: Duration = Duration::from_millis(2);
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + duration;
    let mut due = start;
    let mut turn = 0;
    while due < end {
        let now = Instant::now();
        while due <= now && due < end {
            if releases[turn].send(due).is_err() {
                return;
            }
            turn = (turn + 1) % releases.len();
            due += interval;
        }
        if due >= end {
            break;
        }
        // tokio's timer (and epoll) round a sleep up to the next millisecond: a tick early.
        match due.checked_duration_since(Instant::now()) {
            Some(wait) if wait > TICK => tokio::time::sleep(wait - TICK).await,
            _ => tokio::task::yield_now().await,
        }
    }
}

async fn connect(shot: &Shot) -> anyhow::Result<http1::SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(&shot.authority).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    Ok(sender)
}

/// Sends one request per release, in order; a request released while the one before is
/// still out waits its turn, and its latency counts the wait.
async fn connection(
    shot: Shot,
    mut sender: http1::SendRequest<Full<Bytes>>,
    mut released: mpsc::UnboundedReceiver<Instant>,
) -> anyhow::Result<(Vec<Duration>, u64)> {
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(due) = released.recv().await {
        let mut request =
            Request::builder().method(shot.method.clone()).uri(&shot.path).header("host", &shot.authority);
        for (name, value) in &shot.headers {
            request = request.header(name, value);
        }
        sender.ready().await?;
        let response = sender.send_request(request.body(Full::new(shot.body.clone()))?).await?;
        let ok = response.status().is_success();
        response.into_body().collect().await?;
        latencies.push(due.elapsed());
        failed += u64::from(!ok);
    }
    Ok((latencies, failed))
}
