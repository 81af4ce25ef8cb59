//! `make bench`: Keyplane's hot path measured against a bare hyper server (the ceiling) and
//! nginx (the peer), side by side in one run, on PostgreSQL and Redis; the servers on one
//! core, the load generator on the other. `--smoke` runs every row for a second, to keep
//! the harness from rotting (it runs in `make test`).
//!
//! Usage: `keyplane-bench [--smoke | --rows-only] [--bin <dir with keyplane and bench-bare>] [--out <dir>]`
//! (`--rows-only`: the throughput rows alone, nothing written, to compare two builds.)
//! `keyplane-bench --latency <host:port>[/path] <req/s> [connections]`: the open-loop client
//! alone, a GET for 10 s against any server, from the load core; with the bearer in
//! `KEYPLANE_BENCH_BEARER` if set (an argument would show the key to anyone running `ps`).

mod client;
mod openloop;
mod procs;
mod report;
mod stage;
mod wrk;

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use bytes::Bytes;

use crate::{
    client::Client,
    procs::Cores,
    report::{Figures, Row},
    stage::Stage,
    wrk::Target,
};

/// How much of everything: the real run, or the smoke run.
struct Plan {
    smoke: bool,
    /// Only the throughput rows, nothing written: for an A/B of two builds.
    rows_only: bool,
    rounds: usize,
    seconds: u64,
    connections: u32,
    miss_samples: usize,
    revocations: usize,
    usage_requests: usize,
    cached_keys: usize,
}

impl Plan {
    fn new(smoke: bool) -> Self {
        if smoke {
            Self {
                smoke,
                rows_only: false,
                rounds: 1,
                seconds: 1,
                connections: 16,
                miss_samples: 20,
                revocations: 5,
                usage_requests: 200,
                cached_keys: 200,
            }
        } else {
            Self {
                smoke,
                rows_only: false,
                rounds: 3,
                seconds: 10,
                connections: 64,
                miss_samples: 300,
                revocations: 100,
                usage_requests: 10_000,
                cached_keys: 100_000,
            }
        }
    }
}

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

fn main() -> anyhow::Result<()> {
    procs::ensure_tools()?;
    let cores = Cores::detect();
    // The harness is load too (the open-loop client, the latency samples): it runs on the
    // load core, never beside the servers it measures. Pinned before the runtime starts,
    // so the runtime sizes itself to that one core.
    procs::pin_self(cores.load)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    match arg("--latency") {
        Some(authority) => runtime.block_on(latency(authority)),
        None => runtime.block_on(run(cores)),
    }
}

/// `--latency <host:port>[/path] <req/s> [connections]`: p50 and p99 of a GET at that
/// rate, with `KEYPLANE_BENCH_BEARER` as its bearer if set.
async fn latency(target: String) -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let at = args.iter().position(|a| a == "--latency").unwrap_or_default();
    let rate: f64 = args.get(at + 2).map(|r| r.parse()).transpose()?.unwrap_or(10_000.0);
    let connections: usize = args.get(at + 3).map(|c| c.parse()).transpose()?.unwrap_or(64);
    let (authority, path) = target.find('/').map_or((target.as_str(), "/"), |i| target.split_at(i));
    let shot = openloop::Shot {
        method: hyper::Method::GET,
        authority: authority.to_owned(),
        path: path.to_owned(),
        headers: std::env::var("KEYPLANE_BENCH_BEARER")
            .ok()
            .filter(|key| !key.is_empty())
            .map(|key| ("authorization".to_owned(), format!("Bearer {key}")))
            .into_iter()
            .collect(),
        body: Bytes::new(),
    };
    let run = openloop::run(shot, rate, connections, Duration::from_secs(10)).await?;
    println!(
        "{rate:.0} req/s over {connections} connections: p50 {:.2} ms, p99 {:.2} ms, {} not 2xx",
        run.p50_ms, run.p99_ms, run.failed
    );
    Ok(())
}

async fn run(cores: Cores) -> anyhow::Result<()> {
    let mut plan = Plan::new(std::env::args().any(|a| a == "--smoke"));
    plan.rows_only = std::env::args().any(|a| a == "--rows-only");
    let bin = PathBuf::from(arg("--bin").unwrap_or_else(|| "target/release".into()));
    let out = PathBuf::from(arg("--out").unwrap_or_else(|| "bench/results".into()));
    let scratch = std::env::temp_dir().join(format!("keyplane-bench-{}", std::process::id()));
    std::fs::create_dir_all(&scratch)?;
    eprintln!(
        "bench: {} cores; servers on {:?}, load on {:?}; logs in {}",
        cores.count,
        cores.servers,
        cores.load,
        scratch.display()
    );
    let mut stage = Stage::start(&bin, cores, scratch.clone()).await?;
    let result = measure(&plan, cores, &mut stage).await;
    let cleaned = stage.forget_in_redis("").await;
    stage.finish().await?;
    let figures = result?;
    cleaned?;
    let table = report::render(&figures);
    println!("{table}");
    if !plan.smoke && !plan.rows_only {
        std::fs::create_dir_all(&out)?;
        std::fs::write(out.join("latest.md"), &table)?;
        std::fs::write(out.join("latest.json"), serde_json::to_string_pretty(&figures)?)?;
        eprintln!("bench: written to {}", out.join("latest.md").display());
    }
    std::fs::remove_dir_all(&scratch).ok();
    Ok(())
}

async fn measure(plan: &Plan, cores: Cores, stage: &mut Stage) -> anyhow::Result<Figures> {
    let client = Client::new();
    let account = client.account(&stage.gateway_a).await?;
    let key = account.key.clone();
    stage.start_nginx(cores, std::slice::from_ref(&key))?;
    let (a, b) = (stage.gateway_a.clone(), stage.gateway_b.clone());
    // Warm: the key's verdict cached on gateway B, every route answering. An older build
    // compared with `--rows-only` may lack a route: its row is left out, and said so.
    let mut missing = Vec::new();
    for url in [
        format!("{b}/api/v1/developer/static/x"),
        format!("{b}/api/v1/developer/families"),
        format!("{b}/api/v1/auth/me"),
        format!("{b}/api/v1/keys/self"),
    ] {
        let status = client.get(url.clone(), &key).await?;
        if status != 200 && plan.rows_only {
            eprintln!("bench: {url} answered {status}: its row is left out");
            missing.push(url);
            continue;
        }
        anyhow::ensure!(status == 200, "{url} answered {status}");
    }
    anyhow::ensure!(client.verify(&b, &key).await?.0, "the key does not verify");
    anyhow::ensure!(client.verify(&stage.gateway_c, &key).await?.0, "the key does not verify on gateway C");

    let auth = || vec![("Authorization", format!("Bearer {key}"))];
    let rows: Vec<(Row, Target<'_>)> = vec![
        (Row::Ceiling, Target { method: "GET", url: format!("{}/", stage.bare), headers: vec![], body: None }),
        (Row::AxumFloor, Target { method: "GET", url: format!("{}/", stage.axum), headers: vec![], body: None }),
        (Row::NginxMap, Target { method: "GET", url: format!("{}/map", stage.nginx), headers: auth(), body: None }),
        (
            Row::NginxProxy,
            Target {
                method: "GET",
                url: format!("{}/api/v1/developer/static/x", stage.nginx),
                headers: auth(),
                body: None,
            },
        ),
        (
            Row::Verify,
            Target {
                method: "POST",
                url: format!("{b}/api/v1/keys/verify"),
                headers: vec![("Content-Type", "application/json".into())],
                body: Some(serde_json::json!({"key": key}).to_string()),
            },
        ),
        (
            Row::VerifyLogged,
            Target {
                method: "POST",
                url: format!("{}/api/v1/keys/verify", stage.gateway_c),
                headers: vec![("Content-Type", "application/json".into())],
                body: Some(serde_json::json!({"key": key}).to_string()),
            },
        ),
        (
            Row::Authenticated,
            Target { method: "GET", url: format!("{b}/api/v1/keys/self"), headers: auth(), body: None },
        ),
        (
            Row::Forward,
            Target { method: "GET", url: format!("{b}/api/v1/developer/static/x"), headers: auth(), body: None },
        ),
        (
            Row::Families,
            Target { method: "GET", url: format!("{b}/api/v1/developer/families"), headers: auth(), body: None },
        ),
        (Row::Whoami, Target { method: "GET", url: format!("{b}/api/v1/auth/me"), headers: auth(), body: None }),
    ];
    let rows: Vec<_> = rows.into_iter().filter(|(_, target)| !missing.contains(&target.url)).collect();
    let mut figures = Figures::new(plan.smoke, cores, plan.connections, plan.seconds, plan.rounds);
    // Rounds alternate the order of the rows, so no row always runs hottest or coldest.
    for round in 0..plan.rounds {
        let order: Vec<usize> =
            if round % 2 == 0 { (0..rows.len()).collect() } else { (0..rows.len()).rev().collect() };
        for i in order {
            let (row, target) = &rows[i];
            let load = wrk::run(cores, target, plan.connections, Duration::from_secs(plan.seconds), &stage.scratch)?;
            eprintln!(
                "bench: round {} {:<14} {:>9.0} req/s  p50 {:.2} ms  p99 {:.2} ms",
                round + 1,
                row.name(),
                load.requests_per_second,
                load.p50_ms,
                load.p99_ms
            );
            figures.add(*row, load);
        }
    }

    if plan.rows_only {
        return Ok(figures);
    }
    // p99 at half of the cache-hit peak, open loop.
    let peak = figures.median(Row::Verify).map_or(1000.0, |l| l.requests_per_second);
    let verify_shot = openloop::Shot {
        method: hyper::Method::POST,
        authority: b.trim_start_matches("http://").to_owned(),
        path: "/api/v1/keys/verify".into(),
        headers: vec![("content-type".into(), "application/json".into())],
        body: Bytes::from(serde_json::json!({"key": key}).to_string()),
    };
    let ceiling_shot = openloop::Shot {
        method: hyper::Method::GET,
        authority: stage.bare.trim_start_matches("http://").to_owned(),
        path: "/".into(),
        headers: vec![],
        body: Bytes::new(),
    };
    // Like the rows, over the rounds, alternating which goes first; each percentile is the
    // median of the rounds' (every round's p99 is in the report too).
    let at_half = |shot: &openloop::Shot| {
        openloop::run(shot.clone(), peak / 2.0, plan.connections as usize, Duration::from_secs(plan.seconds))
    };
    let (mut verify_runs, mut ceiling_runs) = (Vec::new(), Vec::new());
    for round in 0..plan.rounds {
        if round % 2 == 0 {
            verify_runs.push(at_half(&verify_shot).await?);
            ceiling_runs.push(at_half(&ceiling_shot).await?);
        } else {
            ceiling_runs.push(at_half(&ceiling_shot).await?);
            verify_runs.push(at_half(&verify_shot).await?);
        }
        let (verify, ceiling) = (verify_runs[round], ceiling_runs[round]);
        eprintln!(
            "bench: round {} half peak     verify p50 {:.2} ms  p99 {:.2} ms  non-2xx {}; bare hyper p50 {:.2} ms  p99 {:.2} ms  non-2xx {}",
            round + 1,
            verify.p50_ms,
            verify.p99_ms,
            verify.failed,
            ceiling.p50_ms,
            ceiling.p99_ms,
            ceiling.failed
        );
    }
    // A refusal answers fast: latencies with refusals among them would flatter.
    let refused: u64 = verify_runs.iter().chain(&ceiling_runs).map(|r| r.failed).sum();
    anyhow::ensure!(refused == 0, "{refused} answers at half peak were not 2xx: their latencies mean nothing");
    figures.half_peak = Some(report::HalfPeak::of(peak / 2.0, &verify_runs, &ceiling_runs));

    // Cache misses on gateway B: Redis has the record (gateway A looked it up), or only
    // PostgreSQL has it (Redis forgot every record).
    let warm = client.keys(&a, &account, plan.miss_samples, 16).await?;
    for (_, secret) in &warm {
        client.verify(&a, secret).await?;
    }
    figures.miss_redis = Some(report::latencies(sample(&client, &b, &warm).await?));
    let cold = client.keys(&a, &account, plan.miss_samples, 16).await?;
    stage.forget_in_redis("cred:").await?;
    figures.miss_postgres = Some(report::latencies(sample(&client, &b, &cold).await?));

    figures.revocation = Some(revocations(plan, &client, &account, &a, &b).await?);
    figures.usage = Some(usage_exactness(plan, &client, &account, &a, &b).await?);
    figures.memory = Some(memory(plan, &client, &account, stage).await?);
    Ok(figures)
}

/// Each key verified once on `gateway`: the latencies.
async fn sample(client: &Client, gateway: &str, keys: &[(String, String)]) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(keys.len());
    for (_, secret) in keys {
        let (valid, took) = client.verify(gateway, secret).await?;
        anyhow::ensure!(valid, "a fresh key did not verify");
        latencies.push(took);
    }
    Ok(latencies)
}

/// Time from the revoke's answer (on gateway A) to the first refusal on gateway B, which
/// had the key's verdict cached.
async fn revocations(
    plan: &Plan,
    client: &Client,
    account: &client::Account,
    a: &str,
    b: &str,
) -> anyhow::Result<Vec<Duration>> {
    let mut times = Vec::with_capacity(plan.revocations);
    for i in 0..plan.revocations {
        let (id, secret) = client.key(a, account, &format!("revoked-{i}")).await?;
        anyhow::ensure!(client.verify(b, &secret).await?.0, "a new key did not verify");
        client.revoke(a, account, &id).await?;
        let revoked = Instant::now();
        loop {
            if !client.verify(b, &secret).await?.0 {
                times.push(revoked.elapsed());
                break;
            }
            anyhow::ensure!(revoked.elapsed() < Duration::from_secs(10), "a revoked key still verified after 10 s");
        }
    }
    Ok(times)
}

/// Requests sent through gateway B with one key, and what the usage service counted.
async fn usage_exactness(
    plan: &Plan,
    client: &Client,
    account: &client::Account,
    a: &str,
    b: &str,
) -> anyhow::Result<(u64, u64)> {
    use futures_util::{StreamExt, stream};
    let (id, secret) = client.key(a, account, "usage").await?;
    let url = format!("{b}/api/v1/developer/static/x");
    let sent = stream::iter(0..plan.usage_requests)
        .map(|_| client.get(url.clone(), &secret))
        .buffer_unordered(64)
        .filter(|status| std::future::ready(matches!(status, Ok(200))))
        .count()
        .await as u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counted = client.counted(a, account, &id).await?;
        if counted >= sent || Instant::now() > deadline {
            // A little longer: anything counted twice would show now.
            tokio::time::sleep(Duration::from_secs(2)).await;
            return Ok((sent, client.counted(a, account, &id).await?));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Gateway B's memory before and after it caches `cached_keys` distinct keys.
async fn memory(
    plan: &Plan,
    client: &Client,
    account: &client::Account,
    stage: &Stage,
) -> anyhow::Result<report::Memory> {
    use futures_util::{StreamExt, TryStreamExt, stream};
    let before = stage.gateway_b_process.rss_kib().unwrap_or(0);
    let started = Instant::now();
    let keys = client.keys(&stage.gateway_a, account, plan.cached_keys, 32).await?;
    let created_in = started.elapsed();
    let b = stage.gateway_b.clone();
    let valid: Vec<bool> = stream::iter(keys.iter())
        .map(|(_, secret)| {
            let b = b.clone();
            async move { client.verify(&b, secret).await.map(|(valid, _)| valid) }
        })
        .buffer_unordered(64)
        .try_collect()
        .await?;
    anyhow::ensure!(valid.iter().all(|v| *v), "a key did not verify");
    Ok(report::Memory {
        keys: plan.cached_keys,
        rss_before_kib: before,
        rss_after_kib: stage.gateway_b_process.rss_kib().unwrap_or(0),
        created_in_ms: created_in.as_millis() as u64,
    })
}
