//! Load from `wrk` (closed loop: a fixed number of connections, as fast as they go): its
//! requests per second and latency percentiles.

use std::{path::Path, time::Duration};

use serde::Serialize;

use crate::procs::{Cores, pinned};

/// One wrk run's figures.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Load {
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub non_2xx: u64,
    pub errors: u64,
    /// Requests answered in the run (wrk's count).
    pub requests: u64,
    /// How busy the servers' core was during the run (0 to 1), and its busy time per
    /// request in µs, kernel included; None when the servers are not pinned. A core far
    /// from full means the load generator, not the server, set the rate.
    pub server_core_busy: Option<f64>,
    pub server_core_us_per_request: Option<f64>,
}

/// What to load: a method, a URL, headers and a body.
pub struct Target<'a> {
    pub method: &'a str,
    pub url: String,
    pub headers: Vec<(&'a str, String)>,
    pub body: Option<String>,
}

pub fn run(
    cores: Cores,
    target: &Target<'_>,
    connections: u32,
    duration: Duration,
    scratch: &Path,
) -> anyhow::Result<Load> {
    let script = scratch.join("request.lua");
    let escape = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
    let mut lua = format!("wrk.method = \"{}\"\n", target.method);
    for (name, value) in &target.headers {
        lua.push_str(&format!("wrk.headers[\"{}\"] = \"{}\"\n", escape(name), escape(value)));
    }
    if let Some(body) = &target.body {
        lua.push_str(&format!("wrk.body = \"{}\"\n", escape(body)));
    }
    std::fs::write(&script, lua)?;
    let before = cores.servers.map(core_ticks).transpose()?;
    let output = pinned(cores.load, "wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs().max(1)), "--latency", "-s"])
        .arg(&script)
        .arg(&target.url)
        .output()?;
    anyhow::ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    let after = cores.servers.map(core_ticks).transpose()?;
    let mut load = parse(&String::from_utf8_lossy(&output.stdout))?;
    if let (Some(before), Some(after)) = (before, after) {
        let busy = after.busy.saturating_sub(before.busy) as f64;
        let all = after.all.saturating_sub(before.all).max(1) as f64;
        load.server_core_busy = Some(busy / all);
        load.server_core_us_per_request = Some(busy / USER_HZ * 1e6 / load.requests.max(1) as f64);
    }
    Ok(load)
}

/// `/proc/stat` counts in USER_HZ ticks, 100 a second on Linux whatever the kernel's HZ.
const USER_HZ: f64 = 100.0;

/// A core's time from `/proc/stat`: busy (user, nice, system, irq, softirq) and all of it
/// (idle, iowait and the hypervisor's steal besides).
struct Ticks {
    busy: u64,
    all: u64,
}

fn core_ticks(core: usize) -> anyhow::Result<Ticks> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let name = format!("cpu{core}");
    let line = stat
        .lines()
        .find(|line| line.split_whitespace().next() == Some(name.as_str()))
        .ok_or_else(|| anyhow::anyhow!("/proc/stat has no {name}"))?;
    let ticks = |line: &str| -> Vec<u64> { line.split_whitespace().skip(1).filter_map(|t| t.parse().ok()).collect() };
    Ok(core_time(&ticks(line)))
}

/// user nice system idle iowait irq softirq steal (guest time is within user's already).
fn core_time(t: &[u64]) -> Ticks {
    let at = |i: usize| t.get(i).copied().unwrap_or(0);
    let busy = at(0) + at(1) + at(2) + at(5) + at(6);
    Ticks { busy, all: busy + at(3) + at(4) + at(7) }
}

fn millis(text: &str) -> Option<f64> {
    let (number, unit) = text.find(|c: char| c.is_ascii_alphabetic()).map(|i| text.split_at(i))?;
    let number: f64 = number.parse().ok()?;
    Some(match unit {
        "us" => number / 1000.0,
        "ms" => number,
        "s" => number * 1000.0,
        "m" => number * 60_000.0,
        _ => return None,
    })
}

fn parse(out: &str) -> anyhow::Result<Load> {
    let mut load = Load::default();
    for line in out.lines().map(str::trim) {
        let mut words = line.split_whitespace();
        match (words.next(), words.next()) {
            (Some("Requests/sec:"), Some(rps)) => load.requests_per_second = rps.parse()?,
            (Some("50%"), Some(latency)) => load.p50_ms = millis(latency).unwrap_or_default(),
            (Some("99%"), Some(latency)) => load.p99_ms = millis(latency).unwrap_or_default(),
            (Some("Non-2xx"), _) => load.non_2xx = line.rsplit(' ').next().and_then(|n| n.parse().ok()).unwrap_or(0),
            (Some(count), Some("requests")) => load.requests = count.parse().unwrap_or(0),
            (Some("Socket"), Some("errors:")) => {
                load.errors =
                    line.split(',').filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok()).sum();
            }
            _ => {}
        }
    }
    anyhow::ensure!(load.requests_per_second > 0.0, "wrk printed no rate:\n{out}");
    Ok(load)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrk_output_is_read() {
        let out = "Running 1s test @ http://127.0.0.1:1/\n  Latency Distribution\n     50%  271.00us\n     75%  1.10ms\n     90%  2.00ms\n     99%    3.27ms\n  12345 requests in 1.00s, 1.00MB read\n  Socket errors: connect 0, read 2, write 0, timeout 1\n  Non-2xx or 3xx responses: 7\nRequests/sec:  12345.67\n";
        let load = parse(out).unwrap();
        assert_eq!(
            (load.requests_per_second, load.p50_ms, load.p99_ms, load.non_2xx, load.errors, load.requests),
            (12345.67, 0.271, 3.27, 7, 3, 12345)
        );
    }

    #[test]
    fn a_core_is_busy_outside_idle_iowait_and_steal() {
        // user nice system idle iowait irq softirq steal guest guest_nice
        let time = core_time(&[100, 1, 50, 800, 9, 2, 20, 18, 7, 0]);
        assert_eq!((time.busy, time.all), (173, 1000));
    }
}
