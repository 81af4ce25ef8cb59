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
    let output = pinned(cores.load, "wrk")
        .args(["-t1", &format!("-c{connections}"), &format!("-d{}s", duration.as_secs().max(1)), "--latency", "-s"])
        .arg(&script)
        .arg(&target.url)
        .output()?;
    anyhow::ensure!(output.status.success(), "wrk failed: {}", String::from_utf8_lossy(&output.stderr));
    parse(&String::from_utf8_lossy(&output.stdout))
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
            (load.requests_per_second, load.p50_ms, load.p99_ms, load.non_2xx, load.errors),
            (12345.67, 0.271, 3.27, 7, 3)
        );
    }
}
