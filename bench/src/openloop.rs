//! Latency at a fixed rate (open loop): requests are released on a schedule whatever the
//! server does, and a latency runs from when the request was due, so a stall counts
//! against every request it held back (no coordinated omission, unlike a closed loop such
//! as wrk). A pacer woken late counts too: up to the kernel's timer slack (50 µs), the
//! same for every server measured.
//!
//! The schedule is kept by a thread of its own sleeping with the kernel's high-resolution
//! timers, not by tokio's timer: that one fires on millisecond ticks, which turns a steady
//! rate into a burst of every request due in the millisecond (40 at once at 40k req/s).
//! Bursts measured the load generator's queue, not the server's.

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

/// Sends `rate` requests a second over `connections` connections for `duration`; answers
/// the latencies' (p50, p99) in milliseconds and how many answers were not 2xx.
pub async fn run(shot: Shot, rate: f64, connections: usize, duration: Duration) -> anyhow::Result<(f64, f64, u64)> {
    anyhow::ensure!(connections > 0, "an open loop needs a connection");
    let mut releases = Vec::with_capacity(connections);
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let sender = connect(&shot).await?;
        let (release, released) = mpsc::unbounded_channel();
        releases.push(release);
        tasks.push(tokio::spawn(connection(shot.clone(), sender, released)));
    }
    let interval = Duration::from_secs_f64(1.0 / rate.max(1e-3));
    let pacer = std::thread::spawn(move || pace(&releases, interval, duration));
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
    pacer.join().map_err(|_| anyhow::anyhow!("the pacer panicked"))?;
    outcome?;
    anyhow::ensure!(!latencies.is_empty(), "no request was answered");
    latencies.sort_unstable();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    Ok((at(0.50), at(0.99), failed))
}

/// Releases one request every `interval`, to the connections in turn, for `duration`;
/// after a wake-up it releases every request then due, each stamped with when it was due.
/// Dropping the senders at the end tells the connections to finish; a connection
/// that broke (its receiver gone) ends the schedule for all.
fn pace(releases: &[mpsc::UnboundedSender<Instant>], interval: Duration, duration: Duration) {
    let start = Instant::now() + Duration::from_millis(10);
    let end = start + duration;
    let mut due = start;
    let mut turn = 0;
    while due < end {
        let now = Instant::now();
        if now < due {
            std::thread::sleep(due - now);
        }
        let now = Instant::now();
        while due <= now && due < end {
            if releases[turn].send(due).is_err() {
                return;
            }
            turn = (turn + 1) % releases.len();
            due += interval;
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
