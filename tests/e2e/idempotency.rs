//! Idempotency-Key on creating POSTs: a retry gets the first answer (its secret too, from
//! sealed storage), another request under the key is 422, a retry while the first runs is
//! 409, and what was kept survives the gateway that kept it.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, http::StatusCode, routing::post};
use keyplane_e2e::{Api, Platform, Reply};
use serde_json::{Value, json};
use tokio::sync::Notify;

async fn create_key(api: &Api, bearer: &str, org: &str, idempotency_key: &str, body: Value) -> Reply {
    let request = api
        .http
        .post(api.url(&format!("/api/v1/developers/orgs/{org}/keys")))
        .bearer_auth(bearer)
        .header("idempotency-key", idempotency_key)
        .json(&body);
    api.send(request).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_gets_the_first_answer_byte_for_byte_and_nothing_twice() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let body = json!({"name": "ci", "environment": "live"});
    let first = create_key(&p.api, &user.token, &org, "create-ci-1", body.clone()).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = create_key(&p.api, &user.token, &org, "create-ci-1", body.clone()).await;
    assert_eq!((again.status, again.text.as_str()), (201, first.text.as_str()), "the same status and bytes");
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.header("cache-control"), Some("no-store"));
    let keys = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 1, "one key, however many retries");
    // The replayed secret is the key's own.
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&again.str("key"))).await.status, 200);

    // Kept sealed: nowhere in Redis is the secret in the clear.
    let client = redis::Client::open(p.env.redis_url.as_str()).unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let kept: Vec<String> =
        redis::cmd("KEYS").arg(format!("{}idem:*", p.env.redis_prefix)).query_async(&mut redis).await.unwrap();
    assert_eq!(kept.len(), 1);
    let stored: Vec<u8> = redis::cmd("GET").arg(&kept[0]).query_async(&mut redis).await.unwrap();
    let secret = first.str("key");
    assert!(!String::from_utf8_lossy(&stored).contains(&secret[secret.len() - 20..]), "the secret is sealed");
    let ttl: i64 = redis::cmd("TTL").arg(&kept[0]).query_async(&mut redis).await.unwrap();
    assert!((86_000..=86_400).contains(&ttl), "kept for 24 hours: {ttl}");

    // Another body under the key: 422. Another principal with the same key: its own.
    let other =
        create_key(&p.api, &user.token, &org, "create-ci-1", json!({"name": "other", "environment": "live"})).await;
    assert_eq!((other.status, other.error_code()), (422, "idempotency_key_reused"), "{}", other.text);
    let stranger = p.api.signup().await;
    let (their_org, _) = p.api.dev_org(&stranger, false).await;
    let theirs = create_key(&p.api, &stranger.token, &their_org, "create-ci-1", body).await;
    assert_eq!((theirs.status, theirs.header("idempotent-replayed")), (201, None), "{}", theirs.text);
    assert_ne!(theirs.str("id"), first.str("id"));
    // A bad key is refused plainly.
    let bad =
        create_key(&p.api, &user.token, &org, &"k".repeat(256), json!({"name": "x", "environment": "live"})).await;
    assert_eq!((bad.status, bad.error_code()), (400, "invalid_idempotency_key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_while_the_first_runs_is_409_and_a_failure_is_not_kept() {
    // A backend that holds its first answer until told, and fails the first call it gets.
    let release = Arc::new(Notify::new());
    let calls = Arc::new(AtomicUsize::new(0));
    let backend = {
        let (release, calls) = (Arc::clone(&release), Arc::clone(&calls));
        Router::new().route(
            "/api/v1/developer/orders",
            post(move || {
                let (release, calls) = (Arc::clone(&release), Arc::clone(&calls));
                async move {
                    let call = calls.fetch_add(1, Ordering::SeqCst);
                    if call == 0 {
                        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"error": "try again"})));
                    }
                    if call >= 1 {
                        release.notified().await;
                    }
                    (StatusCode::CREATED, axum::Json(json!({"id": format!("ord_{call}")})))
                }
            }),
        )
    };
    let upstream = keyplane_e2e::serve_backend(backend).await;
    let p = Platform::start().await;
    let (gateway, _g) = p.gateway_routing(&[("/api/v1/developer/orders", &upstream)], |_| {}).await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    let order = |api: Api, key: String| async move {
        let request = api
            .http
            .post(api.url("/api/v1/developer/orders"))
            .bearer_auth(key)
            .header("idempotency-key", "order-42")
            .json(&json!({"sku": "x"}));
        api.send(request).await
    };

    // The backend fails: nothing is kept, and the retry runs again.
    assert_eq!(order(gateway.clone(), key.clone()).await.status, 503);
    let first = tokio::spawn(order(gateway.clone(), key.clone()));
    let reached =
        keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async { calls.load(Ordering::SeqCst) == 2 })
            .await;
    assert!(reached, "the first order reached the backend");
    // It is held there: a retry now finds it running.
    let running = order(gateway.clone(), key.clone()).await;
    assert_eq!((running.status, running.error_code()), (409, "idempotency_in_progress"), "{}", running.text);
    assert_eq!(running.header("retry-after"), Some("1"));
    release.notify_one();
    let first = first.await.unwrap();
    assert_eq!((first.status, first.str("id")), (201, "ord_1".to_owned()), "{}", first.text);
    let replay = order(gateway.clone(), key.clone()).await;
    assert_eq!((replay.status, replay.text), (201, first.text));
    assert_eq!(calls.load(Ordering::SeqCst), 2, "the backend ran the order once (after one failure)");

    // A client that hangs up while its request runs: the request runs to its end, the
    // answer is kept, and the retry gets it (the backend is not asked twice).
    let hasty = reqwest::Client::builder().timeout(std::time::Duration::from_millis(300)).build().unwrap();
    let request = hasty
        .post(gateway.url("/api/v1/developer/orders"))
        .bearer_auth(&key)
        .header("idempotency-key", "order-43")
        .json(&json!({"sku": "y"}));
    let held = tokio::spawn(request.send());
    let reached =
        keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async { calls.load(Ordering::SeqCst) == 3 })
            .await;
    assert!(reached);
    assert!(held.await.unwrap().is_err(), "the client gave up");
    release.notify_one();
    let retry = |gateway: Api, key: String| async move {
        let request = gateway
            .http
            .post(gateway.url("/api/v1/developer/orders"))
            .bearer_auth(key)
            .header("idempotency-key", "order-43")
            .json(&json!({"sku": "y"}));
        gateway.send(request).await
    };
    let kept = keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async {
        retry(gateway.clone(), key.clone()).await.header("idempotent-replayed") == Some("true")
    })
    .await;
    assert!(kept, "the answer of the request whose client hung up was kept");
    assert_eq!(calls.load(Ordering::SeqCst), 3, "and the backend ran it once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_one_gateway_kept_another_replays_after_it_stopped() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (first_gateway, stop) = p.gateway_replica().await;
    let body = json!({"name": "deploy", "environment": "test"});
    let first = create_key(&first_gateway, &user.token, &org, "deploy-7", body.clone()).await;
    assert_eq!(first.status, 201);
    stop.cancel();
    let (restarted, _g) = p.gateway_replica().await;
    let replay = create_key(&restarted, &user.token, &org, "deploy-7", body).await;
    assert_eq!(
        (replay.status, replay.text.as_str(), replay.header("idempotent-replayed")),
        (201, first.text.as_str(), Some("true"))
    );
    // Signup, anonymous, is kept per source address: the retry gets the same account.
    let signup = |api: Api| async move {
        let request = api
            .http
            .post(api.url("/api/v1/auth/signup"))
            .header("idempotency-key", "signup-1")
            .json(&json!({"email": "retry@example.com", "password": "Correct-Horse-9!x"}));
        api.send(request).await
    };
    let (a, b) = (signup(p.api.clone()).await, signup(restarted.clone()).await);
    assert_eq!((a.status, b.status), (201, 201), "{} / {}", a.text, b.text);
    assert_eq!(a.body["user"]["id"], b.body["user"]["id"]);
}
