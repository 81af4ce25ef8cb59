//! Usage: every request the gateways attribute to an org is counted, exactly, per key,
//! hour and status class, through flushes, restarts and a usage service that is away.

use std::time::Duration;

use chrono::{DurationRound, TimeDelta, Utc};
use futures_util::{StreamExt, stream};
use keyplane_common::{config::Target, time};
use keyplane_e2e::{Api, Platform, eventually, proxy::Proxy};
use keyplane_proto::usage::v1::{RecordRequest, UsageCount, usage_service_client::UsageServiceClient};
use serde_json::{Value, json};
use tonic::Request;

const FAMILIES: &str = "/api/v1/developer/families";

/// The usage of `org` in the last and next day, as `bearer` reads it.
async fn usage(api: &Api, bearer: &str, org: &str, key: Option<&str>) -> Value {
    let now = Utc::now();
    let mut path = format!(
        "/api/v1/developers/orgs/{org}/usage?from={}&to={}",
        (now - TimeDelta::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        (now + TimeDelta::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    if let Some(key) = key {
        path.push_str(&format!("&key_id={key}"));
    }
    let reply = api.get(&path, Some(bearer)).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.body
}

fn total(usage: &Value) -> u64 {
    usage["data"].as_array().unwrap().iter().map(|h| h["requests"].as_u64().unwrap()).sum()
}

/// Waits until the usage reads `expected` requests, and answers what it read last.
async fn settles_at(api: &Api, bearer: &str, org: &str, key: Option<&str>, expected: u64) -> u64 {
    let last = std::sync::atomic::AtomicU64::new(0);
    eventually(Duration::from_secs(20), || async {
        let now = total(&usage(api, bearer, org, key).await);
        last.store(now, std::sync::atomic::Ordering::Relaxed);
        now == expected
    })
    .await;
    last.into_inner()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_per_key_hour_and_status_class() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let body = json!({"name": "k", "environment": "test", "scopes": ["read:families", "read:usage"]});
    let (key_id, key) = p.api.key(&user.token, &org, body).await;
    let (other_id, other) = p.api.key(&user.token, &org, json!({"name": "o", "environment": "test"})).await;
    for _ in 0..5 {
        assert_eq!(p.api.get(FAMILIES, Some(&key)).await.status, 200);
    }
    for _ in 0..2 {
        assert_eq!(p.api.get(&format!("{FAMILIES}/fam_missing"), Some(&key)).await.status, 404);
    }
    assert_eq!(p.api.post(FAMILIES, Some(&key), json!({"name": "x"})).await.status, 403, "no write scope");
    assert_eq!(p.api.get(FAMILIES, Some(&other)).await.status, 200);

    assert_eq!(settles_at(&p.api, &user.token, &org, Some(&key_id), 8).await, 8);
    let mine = usage(&p.api, &key, &org, Some(&key_id)).await;
    assert_eq!(mine["granularity"], "hour");
    assert_eq!(mine["org_id"], org.as_str());
    let hour = &mine["data"][0];
    let this_hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    assert_eq!(hour["hour"].as_str().unwrap().parse::<chrono::DateTime<Utc>>().unwrap(), this_hour);
    assert_eq!(hour["errors"], 3);
    assert_eq!(hour["by_status"], json!({"2xx": 5, "4xx": 3}));
    assert_eq!(total(&usage(&p.api, &user.token, &org, Some(&other_id)).await), 1, "each key its own");
    // The whole org: both keys, and the session's own successful calls to the org's routes.
    let all = total(&usage(&p.api, &user.token, &org, None).await);
    assert!(all >= 9, "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_usage_query_is_checked_and_authorized() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let path = format!("/api/v1/developers/orgs/{org}/usage");
    for (query, field) in [
        ("", "from"),
        ("?from=2026-01-01T00:00:00Z", "to"),
        ("?from=2026-01-02T00:00:00Z&to=2026-01-01T00:00:00Z", "to"),
        ("?from=2026-01-01T00:00:00Z&to=2026-04-05T00:00:00Z", "to"),
        ("?from=2026-01-01T00:00:00Z&to=2026-01-02T00:00:00Z&key_id=nope", "key_id"),
    ] {
        let reply = p.api.get(&format!("{path}{query}"), Some(&user.token)).await;
        assert_eq!((reply.status, reply.error_code()), (400, "validation_failed"), "{query}: {}", reply.text);
        assert_eq!(reply.body["details"][0]["field"], field, "{query}");
    }
    let window = "?from=2026-01-01T00:00:00Z&to=2026-04-04T00:00:00Z";
    assert_eq!(p.api.get(&format!("{path}{window}"), Some(&user.token)).await.status, 200, "93 days");
    let reply = p.api.get(&format!("{path}?from=yesterday&to=today"), Some(&user.token)).await;
    assert_eq!(reply.status, 400, "{}", reply.text);

    // A key needs read:usage; a stranger sees no such org.
    let (_, reader) =
        p.api.key(&user.token, &org, json!({"name": "r", "environment": "test", "scopes": ["read:keys"]})).await;
    let denied = p.api.get(&format!("{path}{window}"), Some(&reader)).await;
    assert_eq!((denied.status, denied.error_code()), (403, "insufficient_scope"));
    let stranger = p.api.signup().await;
    let hidden = p.api.get(&format!("{path}{window}"), Some(&stranger.token)).await;
    assert_eq!(hidden.status, 404);
    let (other_org, _) = p.api.dev_org(&stranger, false).await;
    let (_, strangers_key) = p
        .api
        .key(&stranger.token, &other_org, json!({"name": "s", "environment": "test", "scopes": ["read:usage"]}))
        .await;
    assert_eq!(p.api.get(&format!("{path}{window}"), Some(&strangers_key)).await.status, 404);
    // A member who is not an admin reads usage.
    let member = p.api.verified_signup().await;
    p.api.join(&user.token, &org, &member, "member").await;
    assert_eq!(p.api.get(&format!("{path}{window}"), Some(&member.token)).await.status, 200);
}

/// Issue 9's exact count: 10,000 requests through two gateways, one of them stopped
/// gracefully at the end, and not one request lost or counted twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_requests_through_two_gateways_are_counted_exactly() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (key_id, key) = p.api.key(&user.token, &org, json!({"name": "load", "environment": "test"})).await;
    let (replica, stop_replica) = p.gateway_replica().await;
    let gateways = [p.api.clone(), replica];
    let ok = stream::iter(0..10_000usize)
        .map(|i| {
            let (api, key) = (gateways[i % 2].clone(), key.clone());
            async move { api.get(FAMILIES, Some(&key)).await.status == 200 }
        })
        .buffer_unordered(32)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(ok, 10_000);
    // The replica's last counts leave with its graceful stop.
    stop_replica.cancel();
    assert_eq!(settles_at(&p.api, &user.token, &org, Some(&key_id), 10_000).await, 10_000);
    // And stay there: nothing arrives twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(total(&usage(&p.api, &user.token, &org, Some(&key_id)).await), 10_000);
}

/// With the usage service away the gateway keeps its counts, and delivers them when it
/// is back; batches in doubt are sent again under their id and added once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_wait_for_a_usage_service_that_is_away() {
    let p = Platform::start().await;
    let proxy = Proxy::start(p.addr(Target::Usage).to_string()).await;
    let (gateway, _g) = p.gateway_replica_with(|c| c.usage_addr = format!("http://{}", proxy.addr)).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (key_id, key) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await;

    proxy.cut();
    for _ in 0..50 {
        assert_eq!(gateway.get(FAMILIES, Some(&key)).await.status, 200, "counting never blocks a request");
    }
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(total(&usage(&p.api, &user.token, &org, Some(&key_id)).await), 0, "nothing arrived yet");
    for _ in 0..25 {
        gateway.get(FAMILIES, Some(&key)).await;
    }
    proxy.restore();
    assert_eq!(settles_at(&p.api, &user.token, &org, Some(&key_id), 75).await, 75);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(total(&usage(&p.api, &user.token, &org, Some(&key_id)).await), 75, "each batch once");
}

/// A batch the gateway sends twice (its answer lost) is added once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_sent_twice_is_added_once() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (key_id, _) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await;
    let mut usage_service = UsageServiceClient::new(p.channel(Target::Usage));
    let hour = Utc::now().duration_trunc(TimeDelta::hours(1)).unwrap();
    let batch = RecordRequest {
        batch_id: uuid::Uuid::now_v7().to_string(),
        counts: vec![UsageCount {
            org_id: org.clone(),
            key_id: key_id.clone(),
            hour: Some(time::to_proto(hour)),
            status_class: 2,
            count: 7,
        }],
    };
    let auth = p.internal_auth("gateway");
    for _ in 0..3 {
        let mut request = Request::new(batch.clone());
        auth.attach(request.metadata_mut(), None);
        usage_service.record(request).await.expect("recorded");
    }
    assert_eq!(total(&usage(&p.api, &user.token, &org, Some(&key_id)).await), 7);
    // Without the internal secret nobody adds usage.
    let forged = usage_service.record(Request::new(batch)).await.unwrap_err();
    assert_eq!(forged.code(), tonic::Code::Unauthenticated);
}

/// On PostgreSQL the rollups are partitioned by month, and retention drops whole months.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn months_past_retention_are_dropped_whole() {
    use sea_orm::{ConnectionTrait, Statement};
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (key_id, _) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await;
    let now = Utc::now();
    // A month before this one (or two), and the one after it.
    let last_month = now - TimeDelta::days(32);
    let next_month = chrono::Datelike::with_day(&now, 1).unwrap() + TimeDelta::days(32);
    let mut usage_service = UsageServiceClient::new(p.channel(Target::Usage));
    let mut request = Request::new(RecordRequest {
        batch_id: uuid::Uuid::now_v7().to_string(),
        counts: vec![UsageCount {
            org_id: org.clone(),
            key_id: key_id.clone(),
            hour: Some(time::to_proto(last_month.duration_trunc(TimeDelta::hours(1)).unwrap())),
            status_class: 2,
            count: 3,
        }],
    });
    p.internal_auth("gateway").attach(request.metadata_mut(), None);
    usage_service.record(request).await.expect("recorded");

    let database = p.database("usage").await;
    let partitions = || async {
        let rows = database
            .query_all_raw(Statement::from_string(
                database.get_database_backend(),
                "SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'usage_hourly' ORDER BY 1",
            ))
            .await
            .unwrap();
        rows.iter().map(|r| r.try_get::<String>("", "name").unwrap()).collect::<Vec<_>>()
    };
    let month_table = |at: chrono::DateTime<Utc>| at.format("usage_hourly_%Y_%m").to_string();
    let before = partitions().await;
    for month in [last_month, now, next_month] {
        assert!(before.contains(&month_table(month)), "{before:?} lacks {}", month_table(month));
    }
    let path = format!(
        "/api/v1/developers/orgs/{org}/usage?from={}&to={}",
        (last_month - TimeDelta::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        // Last month's hour alone: this hour has the session's own calls too.
        (last_month + TimeDelta::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
    );
    assert_eq!(total(&p.api.get(&path, Some(&user.token)).await.body), 3);

    // A usage replica keeping one month sweeps at start-up: last month goes, whole.
    let _replica = p.usage_replica(|c| c.retention_months = 1).await;
    let swept =
        eventually(Duration::from_secs(10), || async { !partitions().await.contains(&month_table(last_month)) }).await;
    let after = partitions().await;
    assert!(swept, "{after:?}");
    assert!(after.contains(&month_table(now)), "this month stays: {after:?}");
    assert_eq!(total(&p.api.get(&path, Some(&user.token)).await.body), 0);
}

/// A filter by an MCP token's id reads that token's requests, as by a key's; a filter by
/// another tenant's key reads nothing of that tenant (its rows are not the org's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_by_mcp_token_is_counted_and_another_tenants_key_reads_nothing() {
    let p = Platform::start().await;
    let alice = p.api.signup().await;
    let (org, _) = p.api.dev_org(&alice, false).await;
    let token = p.api.post("/api/v1/mcp-tokens", Some(&alice.token), json!({"name": "agent", "org_id": org})).await;
    assert_eq!(token.status, 201, "{}", token.text);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    for _ in 0..3 {
        let call = p
            .api
            .http
            .post(p.api.url("/mcp"))
            .bearer_auth(token.str("plain"))
            .header("accept", "application/json, text/event-stream")
            .json(&list);
        let reply = p.api.send(call).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    assert_eq!(settles_at(&p.api, &alice.token, &org, Some(&token.str("id")), 3).await, 3, "the token's requests");

    let bob = p.api.signup().await;
    let (bobs_org, _) = p.api.dev_org(&bob, false).await;
    let (bobs_key_id, bobs_key) = p.api.key(&bob.token, &bobs_org, json!({"name": "b", "environment": "test"})).await;
    for _ in 0..4 {
        assert_eq!(p.api.get(FAMILIES, Some(&bobs_key)).await.status, 200);
    }
    assert_eq!(settles_at(&p.api, &bob.token, &bobs_org, Some(&bobs_key_id), 4).await, 4);
    let read = usage(&p.api, &alice.token, &org, Some(&bobs_key_id)).await;
    assert_eq!((read["org_id"].clone(), total(&read)), (json!(org), 0), "Bob's usage through Alice's org");
}
