//! The running system explains itself: one trace per request across every hop, named by
//! the OpenTelemetry conventions; Prometheus metrics on the gateway and on each service's
//! metrics port; JSON logs that carry trace and request ids and never a secret.

use std::time::Duration;

use keyplane_common::config::Target;
use keyplane_e2e::{Platform, eventually, free_port, logs, otlp::ExportedSpan};
use serde_json::{Value, json};

fn random_trace() -> (String, String) {
    let trace_id = format!("{:032x}", rand::random::<u128>() | 1);
    let traceparent = format!("00-{trace_id}-{:016x}-01", rand::random::<u64>() | 1);
    (trace_id, traceparent)
}

/// The spans of one trace, once every `wanted` name has arrived (or what did, after 10 s).
async fn spans_of(trace_id: &str, wanted: &[&str]) -> Vec<ExportedSpan> {
    let observability = keyplane_e2e::otlp::observability();
    let mut ours = Vec::new();
    eventually(Duration::from_secs(10), || {
        ours = observability.spans().into_iter().filter(|s| s.trace_id == trace_id).collect();
        let complete = wanted.iter().all(|name| ours.iter().any(|s| s.name == *name));
        async move { complete }
    })
    .await;
    ours
}

fn named<'a>(spans: &'a [ExportedSpan], name: &str) -> &'a ExportedSpan {
    spans.iter().find(|s| s.name == name).unwrap_or_else(|| {
        let seen: Vec<_> = spans.iter().map(|s| s.name.as_str()).collect();
        panic!("no span {name:?} in the trace; seen: {seen:?}")
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_miss_is_one_trace_from_the_gateway_to_the_database() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    // Nothing cached anywhere: the gateway and identity have never seen the key, and Redis
    // forgets what the keys service wrote.
    p.flush_redis().await;
    let (trace_id, traceparent) = random_trace();
    let reply = p
        .api
        .send(p.api.http.get(p.api.url("/api/v1/keys/self")).bearer_auth(&key).header("traceparent", &traceparent))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);

    let http = "GET /api/v1/keys/self";
    let authenticate = "keyplane.identity.v1.IdentityService/Authenticate";
    let lookup = "keyplane.keys.v1.KeysService/LookupByHash";
    let select = "SELECT credentials";
    let spans = spans_of(&trace_id, &[http, authenticate, lookup, select, "GET"]).await;

    let server = named(&spans, http);
    assert_eq!(server.attribute("http.request.method"), Some("GET"));
    assert_eq!(server.attribute("http.route"), Some("/api/v1/keys/self"));
    assert_eq!(server.attribute("url.path"), Some("/api/v1/keys/self"));
    assert_eq!(server.attribute("http.response.status_code"), Some("IntValue(200)"), "{server:?}");
    for (name, service, method) in [
        (authenticate, "keyplane.identity.v1.IdentityService", "Authenticate"),
        (lookup, "keyplane.keys.v1.KeysService", "LookupByHash"),
    ] {
        let rpc = named(&spans, name);
        assert_eq!(rpc.attribute("rpc.system"), Some("grpc"), "{rpc:?}");
        assert_eq!(rpc.attribute("rpc.service"), Some(service), "{rpc:?}");
        assert_eq!(rpc.attribute("rpc.method"), Some(method), "{rpc:?}");
        assert_eq!(rpc.attribute("rpc.grpc.status_code"), Some("IntValue(0)"), "OK: {rpc:?}");
    }
    let redis = spans.iter().find(|s| s.attribute("db.system.name") == Some("redis")).expect("a Redis span");
    assert_eq!(redis.attribute("db.operation.name"), Some("GET"));
    let database = named(&spans, select);
    assert_eq!(database.attribute("db.system.name"), Some("postgresql"));
    assert_eq!(database.attribute("db.operation.name"), Some("SELECT"));
    assert_eq!(database.attribute("db.collection.name"), Some("credentials"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_metrics_count_routes_rpcs_caches_and_backlogs() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    for _ in 0..3 {
        assert_eq!(p.api.get("/api/v1/keys/self", Some(&key)).await.status, 200);
    }
    let other_org = uuid::Uuid::now_v7();
    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{other_org}/keys"), Some(&user.token)).await.status, 404);
    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)).await.status, 200);
    assert_eq!(p.api.get("/api/v1/no-such-route", None).await.status, 404);

    let scrape = p.api.get("/metrics", None).await;
    assert_eq!(scrape.status, 200);
    assert!(scrape.header("content-type").is_some_and(|t| t.starts_with("text/plain")));
    let value = |series: &str| scrape.metric(series);
    let text = &scrape.text;
    // Per route, method and status; the route's template, never the org's id.
    assert_eq!(value(r#"keyplane_http_requests_total{method="GET",route="/api/v1/keys/self",status="200"}"#), 3.0);
    let keys_route = "/api/v1/developers/orgs/{org_id}/keys";
    // One route, two statuses: each counted in its own series.
    for status in [404, 200] {
        let series = format!(r#"keyplane_http_requests_total{{method="GET",route="{keys_route}",status="{status}"}}"#);
        assert_eq!(value(&series), 1.0, "{series}");
    }
    assert_eq!(value(r#"keyplane_http_requests_total{method="GET",route="unmatched",status="404"}"#), 1.0);
    assert!(!text.contains(&other_org.to_string()) && !text.contains(&org), "an id became a label");
    assert_eq!(
        value(&format!(r#"keyplane_http_request_duration_seconds_count{{method="GET",route="{keys_route}"}}"#)),
        2.0
    );
    // Per RPC and status code, with latency.
    assert!(value(r#"keyplane_rpc_requests_total{rpc="keyplane.keys.v1.KeysService/ListKeys",code="OK"}"#) >= 1.0);
    assert!(
        value(r#"keyplane_rpc_duration_seconds_count{rpc="keyplane.identity.v1.IdentityService/Authenticate"}"#) >= 1.0
    );
    // The other tenant's org: refused by orgs, and by keys after it.
    assert_eq!(
        value(r#"keyplane_rpc_requests_total{rpc="keyplane.orgs.v1.OrgsService/Authorize",code="NOT_FOUND"}"#),
        1.0
    );
    assert_eq!(
        value(r#"keyplane_rpc_requests_total{rpc="keyplane.keys.v1.KeysService/ListKeys",code="NOT_FOUND"}"#),
        1.0
    );
    // The credential caches: three uses of one key, the first a miss at every layer.
    let lookups = value(r#"keyplane_credential_cache_lookups_total{layer="gateway"}"#);
    let misses = value(r#"keyplane_credential_cache_misses_total{layer="gateway"}"#);
    assert!(lookups >= 3.0 && misses >= 1.0 && misses < lookups, "gateway: {misses} misses of {lookups}");
    assert!(value(r#"keyplane_credential_cache_lookups_total{layer="identity"}"#) >= 1.0);
    assert!(value(r#"keyplane_credential_cache_lookups_total{layer="redis"}"#) >= 1.0);
    assert_eq!(value(r#"keyplane_revocation_feed_up{layer="gateway"}"#), 1.0);
    assert_eq!(value(r#"keyplane_revocation_feed_up{layer="identity"}"#), 1.0);
    assert_eq!(value("keyplane_rate_limit_global"), 1.0);
    let _ = value("keyplane_usage_backlog_requests");
    // The keys service's audit outbox drains: its backlog is back to nothing.
    let drained = eventually(Duration::from_secs(10), || async {
        let text = p.api.get("/metrics", None).await.text;
        text.contains(r#"keyplane_outbox_backlog_events{service="keys",topic="audit"} 0"#)
    })
    .await;
    assert!(drained, "the keys outbox backlog is reported and drains");
}

async fn scrape(port: u16) -> String {
    let url = format!("http://127.0.0.1:{port}/metrics");
    for _ in 0..150 {
        if let Ok(reply) = reqwest::get(&url).await {
            return reply.text().await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("nothing answers at {url}")
}

/// Processes deployed alone (`keyplane serve`) serve their metrics on a port of their own,
/// and a deployed gateway keeps them off its public port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployed_processes_serve_metrics_on_their_metrics_port_only() {
    let p = Platform::start().await;
    let (grpc, keys_metrics) = (free_port(), free_port());
    let mut keys = p.serve(
        "keys",
        &[
            ("KEYPLANE_DATABASE_URL", p.env.database_url.clone()),
            ("KEYPLANE_ORGS_ADDR", format!("http://{}", p.addr(Target::Orgs))),
            ("KEYPLANE_KEYS_LISTEN", format!("127.0.0.1:{grpc}")),
            ("KEYPLANE_METRICS_LISTEN", format!("127.0.0.1:{keys_metrics}")),
        ],
    );
    let (http, gateway_metrics) = (free_port(), free_port());
    let mut settings = p.gateway_settings(http);
    settings.push(("KEYPLANE_METRICS_LISTEN", format!("127.0.0.1:{gateway_metrics}")));
    let mut gateway = p.serve("gateway", &settings);

    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{grpc}")).unwrap();
    let mut checked = false;
    for _ in 0..150 {
        if let Ok(channel) = endpoint.connect().await {
            let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
            let request = tonic_health::pb::HealthCheckRequest { service: "keyplane.keys.v1.KeysService".into() };
            checked = health.check(request).await.is_ok();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let keys_text = scrape(keys_metrics).await;
    let gateway_text = scrape(gateway_metrics).await;
    let public = keyplane_e2e::Api::new(format!("http://127.0.0.1:{http}"));
    let health = public.get("/health", None).await;
    let public_metrics = public.get("/metrics", None).await;
    let gateway_text_after = scrape(gateway_metrics).await;
    for child in [&mut keys, &mut gateway] {
        let _ = child.kill();
        let _ = child.wait();
    }

    assert!(checked, "the keys process answered its health check");
    let health_check = r#"keyplane_rpc_requests_total{rpc="grpc.health.v1.Health/Check",code="OK"} 1"#;
    assert!(keys_text.contains(health_check), "{keys_text}");
    assert!(keys_text.contains(r#"keyplane_outbox_backlog_events{service="keys",topic="audit"}"#), "{keys_text}");
    assert!(gateway_text.contains("keyplane_rate_limit_global"), "{gateway_text}");
    assert_eq!(health.status, 200);
    assert_eq!((public_metrics.status, public_metrics.error_code()), (404, "not_found"), "metrics on the public port");
    let counted = r#"keyplane_http_requests_total{method="GET",route="/health",status="200"} 1"#;
    assert!(gateway_text_after.contains(counted), "{gateway_text_after}");
}

/// Every secret the flow handled, and the places it could leak from.
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    fn add(&mut self, what: &'static str, secret: impl Into<String>) {
        let secret = secret.into();
        assert!(secret.len() >= 16, "{what} is a real secret");
        self.0.push((what, secret));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_flow_logs_json_with_ids_and_never_a_secret() {
    let p = Platform::start().await;
    let mut secrets = Secrets(Vec::new());
    secrets.add("internal secret", p.internal_secret.clone());
    secrets.add("data-plane secret", p.setting("KEYPLANE_DATAPLANE_SECRET"));
    secrets.add("encryption key", p.setting("KEYPLANE_ENCRYPTION_KEY"));

    let user = p.api.verified_signup().await;
    secrets.add("password", user.password.clone());
    secrets.add("access token", user.token.clone());
    secrets.add("refresh token", user.refresh_token.clone());
    let wrong = format!("wrong-{}", uuid::Uuid::new_v4().simple());
    let refused = p.api.post("/api/v1/auth/login", None, json!({"email": user.email, "password": wrong})).await;
    assert_eq!(refused.status, 401);
    secrets.add("wrong password", wrong);
    let login = p.api.post("/api/v1/auth/login", None, json!({"email": user.email, "password": user.password})).await;
    secrets.add("second access token", login.str("access_token"));
    let refreshed =
        p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": login.str("refresh_token")})).await;
    secrets.add("spent refresh token", login.str("refresh_token"));
    secrets.add("new refresh token", refreshed.str("refresh_token"));

    let (org, first) = p.api.dev_org(&user, true).await;
    secrets.add("bootstrap key", first.unwrap());
    let created = p
        .api
        .create_key(&user.token, &org, json!({"name": "ci", "environment": "live", "scopes": ["read:families"]}))
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let key = created.str("key");
    secrets.add("live key", key.clone());

    // Data plane, verify, whoami: with the caller's ids, which every line of the request keeps.
    let (trace_id, traceparent) = random_trace();
    let request_id = format!("req-{}", uuid::Uuid::new_v4().simple());
    let families = p
        .api
        .send(
            p.api
                .http
                .get(p.api.url("/api/v1/developer/families"))
                .bearer_auth(&key)
                .header("traceparent", &traceparent)
                .header("x-request-id", &request_id),
        )
        .await;
    assert_eq!(families.status, 200, "{}", families.text);
    assert_eq!(p.api.post("/api/v1/keys/verify", None, json!({"key": key})).await.status, 200);
    let forged = format!("{}x", &key[..key.len() - 1]);
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&forged)).await.status, 401);
    secrets.add("forged key", forged);

    let regenerated = p.api.regenerate(&user.token, &org, &created.str("id"), 60).await;
    secrets.add("regenerated key", regenerated.str("key"));
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200, "old secret in grace");
    let mcp = p.api.post("/api/v1/mcp-tokens", Some(&user.token), json!({"name": "agent", "org_id": org})).await;
    assert_eq!(mcp.status, 201, "{}", mcp.text);
    secrets.add("mcp token", mcp.str("plain"));
    let revoked =
        p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{}", created.str("id")), Some(&user.token)).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    let invite = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/invitations"),
            Some(&user.token),
            json!({"email": format!("i-{}@example.com", uuid::Uuid::new_v4().simple()), "role": "member"}),
        )
        .await;
    assert_eq!(invite.status, 201, "{}", invite.text);
    let logout = p.api.post("/api/v1/auth/logout", Some(&login.str("access_token")), json!({})).await;
    assert!(logout.status < 300, "{}", logout.text);

    // Lines of the data-plane request carry both ids, in the JSON of production.
    let lines: Vec<Value> = logs::all().lines().filter_map(|line| serde_json::from_str(line).ok()).collect();
    assert!(!lines.is_empty(), "log lines are JSON");
    let ours: Vec<&Value> = lines.iter().filter(|line| line["span"]["request_id"] == json!(request_id)).collect();
    assert!(!ours.is_empty(), "no line logged within request {request_id}");
    for line in &ours {
        assert_eq!(line["span"]["trace_id"], json!(trace_id), "{line}");
    }

    // And no line anywhere holds a secret, or the random half of one.
    let text = logs::all();
    for (what, secret) in &secrets.0 {
        let tail = &secret[secret.len() - 16..];
        assert!(!text.contains(secret.as_str()) && !text.contains(tail), "the {what} reached the logs");
    }
}
