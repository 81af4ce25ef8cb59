//! Faults: the platform without Redis.

use keyplane_e2e::Platform;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_keys_are_checked_against_postgresql_and_revocation_holds() {
    let p = Platform::start_with(&[("KEYPLANE_REDIS_URL", "redis://127.0.0.1:1".to_owned())]).await;
    let ready = p.api.get("/ready", None).await;
    assert_eq!(
        (ready.status, ready.body["status"].clone(), ready.body["cache"].clone()),
        (200, json!("degraded"), json!("down"))
    );

    let user = p.api.signup().await;
    let (org, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);
    let keys = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)).await;
    let id = keys.body[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await.status, 200);
    // No cache is trusted without its revocation feed: the very next call is refused.
    let after = p.api.get("/api/v1/developer/families", Some(&key)).await;
    assert_eq!((after.status, after.error_code()), (401, "key_revoked"));
    let out = p.api.post("/api/v1/auth/logout", Some(&user.token), json!({})).await;
    assert_eq!(out.status, 204);
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&user.token)).await.status, 401);
}

/// Redis behind Sentinel: the platform finds the master through it, and follows a failover
/// (the cache and the revocation bus move to the promoted replica).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_failover_is_followed_by_the_cache_and_the_revocation_bus() {
    use std::time::Duration;

    use keyplane_e2e::{eventually, sentinel::SentinelSet};

    let mut redis = SentinelSet::start().await;
    let p = Platform::start_with(&[("KEYPLANE_REDIS_URL", redis.url())]).await;
    let (replica, _stop) = p.gateway_replica().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;

    // A revocation reaches the other replica through the bus; the record is in Redis.
    let revoked_everywhere = |port: u16| {
        let (p, replica, user, org) = (&p, &replica, &user, &org);
        async move {
            let prefix = p.setting("KEYPLANE_REDIS_PREFIX");
            let before = redis_keys(port, &prefix).await;
            let (id, key) = p.api.key(&user.token, org, json!({"name": "k", "environment": "test"})).await;
            for _ in 0..2 {
                assert_eq!(replica.get("/api/v1/developer/families", Some(&key)).await.status, 200);
            }
            // This key's record is written now, on this master (not replicated from before).
            let after = redis_keys(port, &prefix).await;
            assert!(after.iter().any(|k| !before.contains(k)), "nothing new was written on the master at {port}");
            let revoke = p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
            assert_eq!(revoke.status, 200);
            eventually(Duration::from_secs(3), || async {
                replica.get("/api/v1/developer/families", Some(&key)).await.status == 401
            })
            .await
        }
    };
    assert!(revoked_everywhere(redis.master).await, "the revocation did not reach the other replica");

    redis.fail_over().await;
    // Every process moves to the new master within a few seconds: its feed comes back.
    let followed = eventually(Duration::from_secs(15), || async {
        let metrics = p.api.get("/metrics", None).await.text;
        p.api.get("/ready", None).await.body["cache"] == json!("ok")
            && metrics.contains(r#"keyplane_revocation_feed_up{layer="gateway"} 1"#)
    })
    .await;
    assert!(followed, "the platform did not follow the failover");
    assert!(revoked_everywhere(redis.replica).await, "after the failover, a revocation did not reach the replica");
}

async fn redis_keys(port: u16, prefix: &str) -> Vec<String> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS").arg(format!("{prefix}*")).query_async(&mut connection).await.unwrap_or_default()
}
