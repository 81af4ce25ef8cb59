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
