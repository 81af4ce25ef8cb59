//! The figures of a run, their medians and ratios against the ceiling and the peer, set
//! beside the targets: as a Markdown table and as JSON.

use std::{collections::BTreeMap, time::Duration};

use serde::Serialize;

use crate::{procs::Cores, wrk::Load};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Row {
    Ceiling,
    AxumFloor,
    NginxMap,
    NginxProxy,
    Verify,
    VerifyLogged,
    Authenticated,
    Forward,
    Families,
    Whoami,
}

impl Row {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ceiling => "ceiling",
            Self::AxumFloor => "axum floor",
            Self::NginxMap => "nginx map",
            Self::NginxProxy => "nginx proxy",
            Self::Verify => "verify",
            Self::VerifyLogged => "verify, info",
            Self::Authenticated => "keys/self",
            Self::Forward => "forward",
            Self::Families => "families",
            Self::Whoami => "whoami",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Self::Ceiling => "bare hyper, 200 OK",
            Self::AxumFloor => "the same through an axum `Router`, no middleware: the gateway's framework alone",
            Self::NginxMap => "nginx: static key `map`, 200",
            Self::NginxProxy => "nginx: key `map` + `proxy_pass` to the static upstream",
            Self::Verify => "Keyplane `POST /api/v1/keys/verify`, cache hit",
            Self::VerifyLogged => {
                "the same on a twin gateway logging as in production (`info` spans, JSON, no exporter)"
            }
            Self::Authenticated => "Keyplane `GET /api/v1/keys/self` (authenticated, no forwarding)",
            Self::Forward => "Keyplane data plane forwarded to the static upstream",
            Self::Families => "Keyplane `GET /api/v1/developer/families` (sample backend, PostgreSQL)",
            Self::Whoami => "Keyplane `GET /api/v1/auth/me` with a key",
        }
    }
}

#[derive(Serialize)]
pub struct HalfPeak {
    pub rate: f64,
    /// Medians over the rounds.
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Bare hyper at the same rate through the same client: the floor the harness itself sets.
    pub ceiling_p50_ms: f64,
    pub ceiling_p99_ms: f64,
    /// Each round's p99, in the order run: the median hides a bad round, this does not.
    pub p99_ms_rounds: Vec<f64>,
    pub ceiling_p99_ms_rounds: Vec<f64>,
}

impl HalfPeak {
    pub fn of(rate: f64, verify: &[crate::openloop::Run], ceiling: &[crate::openloop::Run]) -> Self {
        let median = |runs: &[crate::openloop::Run], pick: fn(&crate::openloop::Run) -> f64| {
            let mut values: Vec<f64> = runs.iter().map(pick).collect();
            values.sort_by(f64::total_cmp);
            values.get(values.len() / 2).copied().unwrap_or_default()
        };
        Self {
            rate,
            p50_ms: median(verify, |r| r.p50_ms),
            p99_ms: median(verify, |r| r.p99_ms),
            ceiling_p50_ms: median(ceiling, |r| r.p50_ms),
            ceiling_p99_ms: median(ceiling, |r| r.p99_ms),
            p99_ms_rounds: verify.iter().map(|r| r.p99_ms).collect(),
            ceiling_p99_ms_rounds: ceiling.iter().map(|r| r.p99_ms).collect(),
        }
    }
}

#[derive(Serialize)]
pub struct Latencies {
    pub samples: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub fn latencies(mut samples: Vec<Duration>) -> Latencies {
    samples.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| samples.get(((samples.len().saturating_sub(1)) as f64 * q) as usize).copied().map_or(0.0, ms);
    Latencies {
        samples: samples.len(),
        p50_ms: at(0.5),
        p99_ms: at(0.99),
        max_ms: samples.last().copied().map_or(0.0, ms),
    }
}

#[derive(Serialize)]
pub struct Memory {
    pub keys: usize,
    pub rss_before_kib: u64,
    pub rss_after_kib: u64,
    pub created_in_ms: u64,
}

#[derive(Serialize)]
pub struct Figures {
    /// A smoke run checks the harness; its figures are no measurement.
    pub smoke: bool,
    pub at: String,
    pub cores: usize,
    pub pinned: bool,
    pub connections: u32,
    pub seconds_per_row: u64,
    pub rounds: usize,
    pub loads: BTreeMap<Row, Vec<Load>>,
    pub half_peak: Option<HalfPeak>,
    pub miss_redis: Option<Latencies>,
    pub miss_postgres: Option<Latencies>,
    #[serde(serialize_with = "millis")]
    pub revocation: Option<Vec<Duration>>,
    /// (sent, counted)
    pub usage: Option<(u64, u64)>,
    pub memory: Option<Memory>,
}

fn millis<S: serde::Serializer>(value: &Option<Vec<Duration>>, s: S) -> Result<S::Ok, S::Error> {
    let ms: Option<Vec<f64>> = value.as_ref().map(|v| v.iter().map(|d| d.as_secs_f64() * 1000.0).collect());
    ms.serialize(s)
}

impl Figures {
    pub fn new(smoke: bool, cores: Cores, connections: u32, seconds: u64, rounds: usize) -> Self {
        Self {
            smoke,
            at: chrono::Utc::now().to_rfc3339(),
            cores: cores.count,
            pinned: cores.servers.is_some(),
            connections,
            seconds_per_row: seconds,
            rounds,
            loads: BTreeMap::new(),
            half_peak: None,
            miss_redis: None,
            miss_postgres: None,
            revocation: None,
            usage: None,
            memory: None,
        }
    }

    pub fn add(&mut self, row: Row, load: Load) {
        self.loads.entry(row).or_default().push(load);
    }

    /// The round with the median rate.
    pub fn median(&self, row: Row) -> Option<Load> {
        let mut loads = self.loads.get(&row)?.clone();
        loads.sort_by(|a, b| a.requests_per_second.total_cmp(&b.requests_per_second));
        loads.get(loads.len() / 2).cloned()
    }

    fn ratio(&self, over: Row, under: Row) -> Option<f64> {
        Some(self.median(over)?.requests_per_second / self.median(under)?.requests_per_second)
    }

    /// The same ratio read from the servers' core time per request: what the rates would
    /// give if both rows kept the core full (a load generator that cannot keep up with the
    /// faster server no longer sets it).
    fn cost_ratio(&self, over: Row, under: Row) -> Option<f64> {
        Some(self.median(under)?.server_core_us_per_request? / self.median(over)?.server_core_us_per_request?)
    }
}

/// Milliseconds, as a comma-separated list.
fn list(values: &[f64]) -> String {
    values.iter().map(|v| format!("{v:.2}")).collect::<Vec<_>>().join(", ")
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "**missed**" }
}

pub fn render(f: &Figures) -> String {
    let mut out = if f.smoke {
        "> Smoke run: the harness checked, a second a row. These figures are no measurement; `make bench` measures.\n\n"
            .to_owned()
    } else {
        String::new()
    };
    out += &format!(
        "# Keyplane bench\n\n{} · {} cores ({}) · wrk, {} connections, {} s per row, {} rounds (medians)\n\n",
        f.at,
        f.cores,
        if f.pinned { "servers on core 0, load on core 1" } else { "not pinned" },
        f.connections,
        f.seconds_per_row,
        f.rounds
    );
    out.push_str(
        "| row | what | req/s | p50 ms | p99 ms | non-2xx | server core busy | µs of it a request |\n\
         |---|---|---:|---:|---:|---:|---:|---:|\n",
    );
    let share = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{:.0}%", v * 100.0));
    let micros = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    for row in f.loads.keys() {
        if let Some(load) = f.median(*row) {
            out.push_str(&format!(
                "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} |\n",
                row.name(),
                row.what(),
                load.requests_per_second,
                load.p50_ms,
                load.p99_ms,
                load.non_2xx + load.errors,
                share(load.server_core_busy),
                micros(load.server_core_us_per_request),
            ));
        }
    }
    if f.pinned {
        out.push_str(
            "\nServer core: the busy share of the servers' core during the row, and its busy time \
             per request (kernel included). A row that leaves the core far from full was held back \
             by the load generator; the figures by core time a request compare it as if it had not.\n",
        );
    }
    out.push_str("\n| figure | value | target | |\n|---|---:|---:|---|\n");
    let mut figure = |name: &str, value: Option<f64>, target: &str, ok: &dyn Fn(f64) -> bool, unit: &str| {
        if let Some(v) = value {
            out.push_str(&format!("| {name} | {v:.2}{unit} | {target} | {} |\n", verdict(ok(v))));
        }
    };
    // A target ratio, by rate and by core time a request.
    type Figure<'a> = dyn FnMut(&str, Option<f64>, &str, &dyn Fn(f64) -> bool, &str) + 'a;
    let targeted = |figure: &mut Figure<'_>, name: &str, over: Row, under: Row, least: f64| {
        let target = format!("≥ {least}");
        figure(name, f.ratio(over, under), &target, &|v| v >= least, "");
        figure(&format!("{name}, by core time a request"), f.cost_ratio(over, under), &target, &|v| v >= least, "");
    };
    targeted(&mut figure, "verify / ceiling", Row::Verify, Row::Ceiling, 0.6);
    figure("verify / nginx map", f.ratio(Row::Verify, Row::NginxMap), "", &|_| true, "");
    figure("axum floor / ceiling", f.ratio(Row::AxumFloor, Row::Ceiling), "", &|_| true, "");
    figure("verify / axum floor", f.ratio(Row::Verify, Row::AxumFloor), "", &|_| true, "");
    targeted(&mut figure, "forward / nginx proxy", Row::Forward, Row::NginxProxy, 0.8);
    figure("keys/self / verify", f.ratio(Row::Authenticated, Row::Verify), "≥ 0.9", &|v| v >= 0.9, "");
    // What a span per request costs without an exporter: no target, a figure to keep.
    figure("verify at info / verify", f.ratio(Row::VerifyLogged, Row::Verify), "", &|_| true, "");
    figure("whoami / verify", f.ratio(Row::Whoami, Row::Verify), "≥ 0.5", &|v| v >= 0.5, "");
    figure("p99 at half the verify peak", f.half_peak.as_ref().map(|h| h.p99_ms), "≤ 1 ms", &|v| v <= 1.0, " ms");
    figure("p99 cache miss, Redis", f.miss_redis.as_ref().map(|m| m.p99_ms), "≤ 2 ms", &|v| v <= 2.0, " ms");
    figure("p99 cache miss, PostgreSQL", f.miss_postgres.as_ref().map(|m| m.p99_ms), "≤ 5 ms", &|v| v <= 5.0, " ms");
    if let Some(times) = &f.revocation {
        let worst = times.iter().max().copied().unwrap_or_default().as_secs_f64() * 1000.0;
        let median = latencies(times.clone()).p50_ms;
        out.push_str(&format!(
            "| revocation on the other replica ({} trials) | median {median:.2} ms, worst {worst:.2} ms | ≤ 1 s each | {} |\n",
            times.len(),
            verdict(worst <= 1000.0)
        ));
    }
    if let Some((sent, counted)) = f.usage {
        out.push_str(&format!(
            "| usage: answered 200 / counted | {sent} / {counted} | equal | {} |\n",
            verdict(sent == counted)
        ));
    }
    if let Some(m) = &f.memory {
        let after = m.rss_after_kib as f64 / 1024.0;
        out.push_str(&format!(
            "| gateway RSS with {} keys cached | {after:.0} MiB (from {:.0} MiB) | ≤ 128 MiB | {} |\n",
            m.keys,
            m.rss_before_kib as f64 / 1024.0,
            verdict(after <= 128.0)
        ));
    }
    if let Some(h) = &f.half_peak {
        out.push_str(&format!(
            "\nHalf peak: {:.0} req/s open loop, every answer 2xx; verify p50 {:.2} ms; bare hyper at the same \
             rate through the same client: p50 {:.2} ms, p99 {:.2} ms (medians over the rounds). Each round's \
             p99: verify {}, bare hyper {} ms.\n",
            h.rate,
            h.p50_ms,
            h.ceiling_p50_ms,
            h.ceiling_p99_ms,
            list(&h.p99_ms_rounds),
            list(&h.ceiling_p99_ms_rounds)
        ));
    }
    for (name, m) in [("Redis", &f.miss_redis), ("PostgreSQL", &f.miss_postgres)] {
        if let Some(m) = m {
            out.push_str(&format!(
                "Cache miss ({name}): {} samples, p50 {:.2} ms, max {:.2} ms.\n",
                m.samples, m.p50_ms, m.max_ms
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openloop::Run;

    #[test]
    fn half_peak_is_the_median_round_and_keeps_every_rounds_tail() {
        let run = |p50_ms, p99_ms| Run { p50_ms, p99_ms, failed: 0 };
        let verify = [run(0.03, 2.07), run(0.05, 25.94), run(0.02, 2.12)];
        let ceiling = [run(0.03, 1.55), run(0.03, 1.18), run(0.04, 1.38)];
        let half = HalfPeak::of(44_000.0, &verify, &ceiling);
        assert_eq!((half.p50_ms, half.p99_ms), (0.03, 2.12), "one stalled round moves no median");
        assert_eq!((half.ceiling_p50_ms, half.ceiling_p99_ms), (0.03, 1.38));
        assert_eq!(half.p99_ms_rounds, [2.07, 25.94, 2.12], "the stalled round is still shown");
        assert_eq!(half.ceiling_p99_ms_rounds, [1.55, 1.18, 1.38]);
    }
}
