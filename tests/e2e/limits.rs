//! Rate limits: per key (a key's own, or the default), per session, per source address on
//! the routes anyone may call; the same budget across gateway replicas; and, with Redis
//! away, limits per replica rather than refusals.

use std::time::Duration;

use keyplane_e2e::{Api, Platform, eventually, logs, proxy::Proxy};
use serde_json::json;

const FAMILIES: &str = "/api/v1/developer/families";
const DAY: u64 = 86_400;

/// A platform whose limits are `settings`, a day long, with at least a minute of the
/// current window left (so no test straddles two windows).
async fn limited(settings: &[(&str, &str)]) -> Platform {
    let settings: Vec<(&str, String)> = settings.iter().map(|(k, v)| (*k, format!("{v}/{DAY}"))).collect();
    let p = Platform::start_with(&settings).await;
    let left = DAY - u64::try_from(p.clock.now().timestamp()).unwrap() % DAY;
    if left < 60 {
        p.clock.advance(Duration::from_secs(left + 1));
    }
    p
}

/// A new user's test key, in an org of its own.
async fn a_key(p: &Platform) -> String {
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await.1
}

/// How many of `n` calls to the data plane with `key` through `api` were let through.
async fn admitted(api: &Api, key: &str, n: usize) -> usize {
    let mut ok = 0;
    for _ in 0..n {
        let reply = api.get(FAMILIES, Some(key)).await;
        assert!(matches!(reply.status, 200 | 429), "{}", reply.text);
        ok += usize::from(reply.status == 200);
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_gets_its_budget_with_headers_then_429() {
    let p = limited(&[("KEYPLANE_RATE_LIMIT_KEY", "5")]).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, key) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await;
    let (_, other) = p.api.key(&user.token, &org, json!({"name": "o", "environment": "test"})).await;
    for remaining in (0..5).rev() {
        let reply = p.api.get(FAMILIES, Some(&key)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("ratelimit-limit"), Some("5"));
        assert_eq!(reply.header("ratelimit-remaining"), Some(remaining.to_string().as_str()));
        let reset: u64 = reply.header("ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=DAY).contains(&reset));
    }
    let refused = p.api.get(FAMILIES, Some(&key)).await;
    assert_eq!((refused.status, refused.error_code()), (429, "rate_limited"), "{}", refused.text);
    let retry: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!(retry >= 1 && refused.header("ratelimit-remaining") == Some("0"));
    // Management with the same key spends the same budget; another key has its own.
    let path = format!("/api/v1/developers/orgs/{org}/keys");
    assert_eq!(p.api.get(&path, Some(&key)).await.status, 429);
    assert_eq!(p.api.get(FAMILIES, Some(&other)).await.status, 200);
    // The window ends: the budget is back.
    p.clock.advance(Duration::from_secs(retry));
    assert_eq!(p.api.get(FAMILIES, Some(&key)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keys_own_limit_wins_is_changed_at_once_and_bounds_its_children() {
    let p = limited(&[]).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let body = json!({"name": "k", "environment": "test", "scopes": ["read:families", "write:keys", "read:keys"],
                      "rate_limit": {"requests": 3, "per_seconds": DAY}});
    let created = p.api.create_key(&user.token, &org, body).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["rate_limit"], json!({"requests": 3, "per_seconds": DAY}));
    let (id, key) = (created.str("id"), created.str("key"));
    assert_eq!(admitted(&p.api, &key, 4).await, 3);

    // Raised by an admin: every gateway uses the new limit at once.
    let path = format!("/api/v1/developers/orgs/{org}/keys/{id}");
    let raised = p
        .api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&user.token),
            Some(json!({"rate_limit": {"requests": 10, "per_seconds": DAY}})),
        )
        .await;
    assert_eq!((raised.status, raised.body["rate_limit"]["requests"].as_u64()), (200, Some(10)), "{}", raised.text);
    let applied =
        eventually(Duration::from_secs(2), || async { p.api.get(FAMILIES, Some(&key)).await.status == 200 }).await;
    assert!(applied, "the raised limit did not reach the gateway");

    // A child asks for more than its parent: refused; asking nothing, it inherits.
    let child = |rate: serde_json::Value| json!({"name": "c", "environment": "test", "scopes": ["read:families"], "rate_limit": rate});
    let greedy = p.api.create_key(&key, &org, child(json!({"requests": 100, "per_seconds": DAY}))).await;
    assert_eq!((greedy.status, greedy.error_code()), (403, "rate_limit_not_allowed"), "{}", greedy.text);
    let inherits =
        p.api.create_key(&key, &org, json!({"name": "c", "environment": "test", "scopes": ["read:families"]})).await;
    assert_eq!(inherits.body["rate_limit"], json!({"requests": 10, "per_seconds": DAY}), "{}", inherits.text);
    // The key cannot change its own limit at all: a new window would start its count
    // afresh (spend the budget, change the window, spend it again).
    for change in [json!({"rate_limit": null}), json!({"rate_limit": {"requests": 10, "per_seconds": DAY - 1}})] {
        let own = p.api.call(reqwest::Method::PATCH, &path, Some(&key), Some(change)).await;
        assert_eq!((own.status, own.error_code()), (403, "rate_limit_not_allowed"), "{}", own.text);
    }
    // Out of bounds, or over the operator's ceiling: 400 naming the field.
    for rate in [
        json!({"requests": 0, "per_seconds": 60}),
        json!({"requests": 1_000_000, "per_seconds": 1}),
        json!({"requests": 1}),
    ] {
        let reply = p.api.create_key(&user.token, &org, child(rate.clone())).await;
        assert_eq!(reply.status, 400, "{rate}: {}", reply.text);
    }
}

/// A key without a limit of its own has the default, and gives no more to a key it makes
/// or changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_without_its_own_limit_gives_no_more_than_the_default() {
    let p = limited(&[("KEYPLANE_RATE_LIMIT_KEY", "20")]).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let body = json!({"name": "k", "environment": "test", "scopes": ["write:keys", "read:keys"]});
    let (_, key) = p.api.key(&user.token, &org, body).await;
    let more = json!({"name": "c", "environment": "test", "scopes": ["read:keys"], "rate_limit": {"requests": 60_000, "per_seconds": 60}});
    let refused = p.api.create_key(&key, &org, more).await;
    assert_eq!((refused.status, refused.error_code()), (403, "rate_limit_not_allowed"), "{}", refused.text);
    let (child_id, _) =
        p.api.key(&user.token, &org, json!({"name": "c", "environment": "test", "scopes": ["read:keys"]})).await;
    let path = format!("/api/v1/developers/orgs/{org}/keys/{child_id}");
    let raise = p
        .api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"rate_limit": {"requests": 60_000, "per_seconds": 60}})),
        )
        .await;
    assert_eq!((raise.status, raise.error_code()), (403, "rate_limit_not_allowed"), "{}", raise.text);
    let slower = p
        .api
        .call(
            reqwest::Method::PATCH,
            &path,
            Some(&key),
            Some(json!({"rate_limit": {"requests": 10, "per_seconds": DAY}})),
        )
        .await;
    assert_eq!(slower.status, 200, "{}", slower.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_budget_holds_across_gateway_replicas() {
    let p = limited(&[("KEYPLANE_RATE_LIMIT_KEY", "10")]).await;
    let key = a_key(&p).await;
    let (other, _g) = p.gateway_replica().await;
    // Each replica tells Redis what it let through, and learns the total, every 100 ms
    // (and at once for a key it has not seen yet).
    let sync = || tokio::time::sleep(Duration::from_millis(400));
    assert_eq!(admitted(&p.api, &key, 6).await, 6);
    sync().await;
    assert_eq!(admitted(&other, &key, 1).await, 1);
    sync().await;
    assert_eq!(admitted(&other, &key, 6).await, 3, "the other replica counts the first one's six");
    sync().await;
    // The first replica used the key a while ago: its first call may pass on what it knew
    // then (the documented bound: one sync interval of use), and then no more.
    let stale = admitted(&p.api, &key, 1).await;
    sync().await;
    assert_eq!(admitted(&p.api, &key, 3).await, 0);
    assert!(stale <= 1);
}

/// A replica that meets a key for the first time learns the other replicas' count for it
/// at once, not at its next sync: here an hour away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_new_to_a_key_learns_its_count_at_once() {
    let p = limited(&[("KEYPLANE_RATE_LIMIT_KEY", "10")]).await;
    let key = a_key(&p).await;
    let (other, _g) = p.gateway_replica_with(|c| c.limits.sync_every = Duration::from_secs(3600)).await;
    assert_eq!(admitted(&p.api, &key, 9).await, 9);
    // The first replica tells Redis within its 100 ms.
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(admitted(&other, &key, 1).await, 1, "the tenth: the other replica knew nothing yet");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(admitted(&other, &key, 3).await, 0, "it learned the first one's nine with its first call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_and_source_addresses_have_budgets() {
    let p = limited(&[
        ("KEYPLANE_RATE_LIMIT_SESSION", "3"),
        ("KEYPLANE_RATE_LIMIT_SIGN_IN", "4"),
        ("KEYPLANE_RATE_LIMIT_VERIFY", "2"),
    ])
    .await;
    // One address: a signup and three wrong passwords spend the sign-in budget.
    let (proxied, _g) =
        p.gateway_replica_with(|c| c.trusted_proxies = keyplane_gateway::config::TrustedProxies::Count(1)).await;
    let from = |ip: &str| {
        let request = proxied.http.post(proxied.url("/api/v1/auth/login")).header("x-forwarded-for", ip);
        request.json(&json!({"email": "someone@example.com", "password": "wrong password!"}))
    };
    let user = p.api.signup().await;
    for _ in 0..4 {
        assert_eq!(proxied.send(from("203.0.113.7")).await.status, 401);
    }
    let refused = proxied.send(from("203.0.113.7")).await;
    assert_eq!((refused.status, refused.error_code()), (429, "rate_limited"));
    assert!(refused.header("retry-after").is_some());
    assert_eq!(proxied.send(from("198.51.100.2")).await.status, 401, "another address has its own budget");

    // /keys/verify has a budget of its own, per address, told on every answer.
    let verify = json!({"key": "phosra_test_not_a_real_key"});
    for remaining in ["1", "0"] {
        let reply = p.api.post("/api/v1/keys/verify", None, verify.clone()).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            (reply.header("ratelimit-limit"), reply.header("ratelimit-remaining")),
            (Some("2"), Some(remaining))
        );
    }
    let refused = p.api.post("/api/v1/keys/verify", None, verify.clone()).await;
    assert_eq!((refused.status, refused.error_code()), (429, "rate_limited"));
    assert!(refused.header("retry-after").is_some() && refused.header("ratelimit-remaining") == Some("0"));
    assert!(refused.header("x-request-id").is_some(), "a refusal carries its request id");
    let verify_from = |ip: &str| proxied.http.post(proxied.url("/api/v1/keys/verify")).header("x-forwarded-for", ip);
    let elsewhere = proxied.send(verify_from("198.51.100.3").json(&verify)).await;
    assert_eq!(elsewhere.status, 200, "another address has its own verify budget");
    let login = json!({"email": "someone@example.com", "password": "wrong password!"});
    let same_address = p.api.post("/api/v1/auth/login", None, login).await;
    assert_eq!(same_address.status, 401, "verify's budget is not sign-in's: {}", same_address.text);

    // A session: three calls, then 429.
    let statuses: Vec<u16> =
        futures_util::future::join_all((0..4).map(|_| p.api.get("/api/v1/auth/me", Some(&user.token))))
            .await
            .iter()
            .map(|r| r.status)
            .collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 1, "{statuses:?}");
}

/// Redis away: each replica limits on its own (never refusing everything), says so, and
/// adds up with the others again once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_each_replica_limits_on_its_own() {
    let p = limited(&[("KEYPLANE_RATE_LIMIT_KEY", "5")]).await;
    let redis = p.env.redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = Proxy::start(redis).await;
    let (gateway, _g) = p.gateway_replica_custom(&[("KEYPLANE_REDIS_URL", proxy.redis_url())], |_| {}).await;
    let key = a_key(&p).await;
    assert_eq!(gateway.get(FAMILIES, Some(&key)).await.status, 200, "the key is known (and cached)");

    proxy.cut();
    let per_replica = eventually(Duration::from_secs(5), || async {
        gateway.get("/ready", None).await.body["rate_limits"] == "per_replica"
    })
    .await;
    assert!(per_replica, "the replica says its limits are its own");
    assert_eq!(admitted(&gateway, &key, 6).await, 4, "five per replica: one spent above, four now, then 429");
    assert!(logs::all().contains("each gateway replica now limits on its own"));
    let metrics = gateway.get("/metrics", None).await;
    assert!(metrics.text.contains("keyplane_rate_limit_global 0"), "{}", metrics.text);

    proxy.restore();
    let global = eventually(Duration::from_secs(10), || async {
        gateway.get("/ready", None).await.body["rate_limits"] == "global"
    })
    .await;
    assert!(global, "limits hold across replicas again");
    assert!(gateway.get("/metrics", None).await.text.contains("keyplane_rate_limit_global 1"));
}
