//! The seed's conformance check, and the error contract of the gateway itself.

use keyplane_e2e::Platform;
use reqwest::Method;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_control_plane_is_live_and_auth_gated() {
    let p = Platform::start().await;
    let health = p.api.get("/health", None).await;
    assert_eq!((health.status, health.body.clone()), (200, json!({"status": "ok"})));

    let create = p.api.call(Method::POST, "/api/v1/developers/orgs", None, None).await;
    assert_eq!(create.status, 401, "not 404: the route exists and is gated");
    assert_eq!(create.error_code(), "unauthenticated");
    assert_eq!(create.header("www-authenticate"), Some("Bearer"));
    assert_eq!(create.body["error"], "Unauthorized");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateways_own_errors_have_the_contract_shape() {
    let p = Platform::start().await;
    let user = p.api.signup().await;

    let unknown = p.api.get("/api/v1/nothing-here", None).await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "not_found"));

    let wrong_method = p.api.call(Method::PATCH, "/health", None, None).await;
    assert_eq!((wrong_method.status, wrong_method.error_code()), (405, "method_not_allowed"));

    let bad_json = p
        .api
        .send(p.api.http.post(p.api.url("/api/v1/developers/orgs")).bearer_auth(&user.token).body("{\n  \"name\": }"))
        .await;
    assert_eq!((bad_json.status, bad_json.error_code()), (400, "invalid_json"));
    assert!(bad_json.body["message"].as_str().unwrap().contains("line 2 column"), "{}", bad_json.text);

    let unknown_field =
        p.api.post("/api/v1/developers/orgs", Some(&user.token), json!({"name": "x", "colour": "red"})).await;
    assert_eq!((unknown_field.status, unknown_field.error_code()), (400, "validation_failed"));
    assert_eq!(unknown_field.body["details"][0]["field"], "colour");

    // Refused from Content-Length alone, before a byte of the body is buffered. (A raw
    // socket: an HTTP client still writing a megabyte may not read an early answer.)
    let too_large = raw_request(
        &p,
        &format!(
            "POST /api/v1/developers/orgs HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{{",
            user.token,
            1024 * 1024 + 1
        ),
    )
    .await;
    assert!(too_large.starts_with("HTTP/1.1 413"), "{too_large}");
    assert!(too_large.contains(r#""code":"payload_too_large""#), "{too_large}");

    let nul = p.api.post("/api/v1/developers/orgs", Some(&user.token), json!({"name": "a\u{0}b"})).await;
    assert_eq!((nul.status, nul.error_code()), (400, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_carries_a_request_id() {
    let p = Platform::start().await;
    let mine = p.api.send(p.api.http.get(p.api.url("/health")).header("x-request-id", "trace-me-42")).await;
    assert_eq!(mine.header("x-request-id"), Some("trace-me-42"));
    let odd = p.api.send(p.api.http.get(p.api.url("/nope")).header("x-request-id", "<script>alert(1)</script>")).await;
    let given = odd.header("x-request-id").unwrap().to_owned();
    assert_ne!(given, "<script>alert(1)</script>");
    assert_eq!(odd.body["request_id"], given.as_str(), "the error body names the same id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_names_every_backing_service() {
    let p = Platform::start().await;
    let ready = p.api.get("/ready", None).await;
    assert_eq!(ready.status, 200, "{}", ready.text);
    for service in ["identity", "keys", "orgs", "usage", "advisors"] {
        assert_eq!(ready.body["services"][service], "ok", "{}", ready.text);
    }
    assert_eq!(ready.body["cache"], "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_route_takes_its_own_kind_of_credential() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.expect("bootstrap key");

    let session_on_data_plane = p.api.get("/api/v1/developer/families", Some(&user.token)).await;
    assert_eq!((session_on_data_plane.status, session_on_data_plane.error_code()), (401, "use_api_key"));
    assert_eq!(session_on_data_plane.body["message"], "use an API key");

    let key_on_session_route = p.api.post("/api/ensure-dev-org", Some(&key), json!({"name": "x"})).await;
    assert_eq!((key_on_session_route.status, key_on_session_route.error_code()), (401, "session_required"));

    for bearer in [Some(key.as_str()), Some(user.token.as_str()), None] {
        let census = p.api.post("/api/v1/ocss/census/rules", bearer, json!({})).await;
        assert_eq!((census.status, census.error_code()), (401, "signature_required"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_authorization_is_refused() {
    let p = Platform::start().await;
    let path = p.api.url("/api/v1/auth/me");
    let user = p.api.signup().await;

    let two = p
        .api
        .send(
            p.api
                .http
                .get(&path)
                .header("authorization", format!("Bearer {}", user.token))
                .header("authorization", "Bearer other"),
        )
        .await;
    assert_eq!((two.status, two.error_code()), (400, "multiple_authorization_headers"));

    for value in ["Basic dXNlcjpwYXNz", "Bearer ", "Bearer", "bearer  two spaces"] {
        let reply = p.api.send(p.api.http.get(&path).header("authorization", value)).await;
        assert_eq!(reply.status, 401, "{value:?}: {}", reply.text);
    }
    let foreign = p.api.get("/api/v1/auth/me", Some("ghp_0123456789abcdefghijklmnopqrstuvwxyz")).await;
    assert_eq!((foreign.status, foreign.error_code()), (401, "invalid_api_key"));
    let huge = p.api.get("/api/v1/auth/me", Some(&"a".repeat(9 * 1024))).await;
    assert_eq!(huge.status, 431, "{}", huge.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_reports_a_service_that_is_down_but_stays_in_the_pool_and_fails_while_draining() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    let closed = Platform::closed_address().await;
    let (gateway, stop) = p.gateway_replica_custom(&[], |config| config.keys_addr = closed).await;
    let ready = gateway.get("/ready", None).await;
    // One service's outage must not pull every gateway out of its Service.
    assert_eq!((ready.status, ready.body["status"].clone()), (200, json!("degraded")));
    assert_eq!(ready.body["services"]["keys"], "down");
    assert_eq!(ready.body["services"]["identity"], "ok");
    assert_eq!(gateway.get("/health", None).await.status, 200, "the gateway itself still serves");
    assert_eq!(p.api.get("/ready", None).await.body["status"], "ready");
    // The key verifies through identity, which still reaches keys.
    assert_eq!(gateway.get("/api/v1/developer/families", Some(&key)).await.status, 200);

    stop.cancel();
    let draining = gateway.http.get(gateway.url("/ready")).send().await;
    // Draining: a kept-alive connection hears 503, a new one finds nothing listening.
    assert!(draining.is_err() || draining.unwrap().status() == 503, "a draining gateway is not ready");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_backend_times_out_with_504() {
    use axum::{Router, http::StatusCode, routing::get};
    let slow = Router::new()
        .route(
            "/api/v1/developer/slow",
            get(|| async {
                tokio::time::sleep(std::time::Duration::from_secs(5)).await;
                "late"
            }),
        )
        // A backend that itself timed out on something behind it.
        .route("/api/v1/developer/slow/own-504", get(|| async { (StatusCode::GATEWAY_TIMEOUT, "upstream timed out") }));
    let upstream = keyplane_e2e::serve_backend(slow).await;

    let p = Platform::start().await;
    let (gateway, _stop) = p
        .gateway_routing(&[("/api/v1/developer/slow", &upstream)], |config| {
            config.request_timeout = std::time::Duration::from_secs(1);
        })
        .await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    let started = std::time::Instant::now();
    let reply = gateway.get("/api/v1/developer/slow", Some(&key)).await;
    assert_eq!(
        (reply.status, reply.error_code(), reply.body["message"].as_str()),
        (504, "timeout", Some("the request took too long")),
        "the whole request's deadline answers first: {}",
        reply.text
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(4), "answered at the deadline, not after the backend");
    let request_id = reply.headers.get("x-request-id").and_then(|v| v.to_str().ok());
    assert!(request_id.is_some_and(|id| Some(id) == reply.body["request_id"].as_str()), "{:?}", reply.headers);

    let own = gateway.get("/api/v1/developer/slow/own-504", Some(&key)).await;
    assert_eq!(own.status, 504);
    assert_ne!(own.error_code(), "timeout", "a backend's own 504 is not told as the gateway's deadline");
}

/// Sends raw bytes to the gateway and answers everything it says back.
async fn raw_request(p: &Platform, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(p.addr(keyplane_common::config::Target::Gateway)).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}
