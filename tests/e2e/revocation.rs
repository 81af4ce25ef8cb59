//! Revocation is immediate on every replica, and PostgreSQL stays the truth.

use std::time::{Duration, Instant};

use keyplane_e2e::{Platform, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_by_every_replica_within_a_second() {
    let p = Platform::start().await;
    let (replica, _stop) = p.gateway_replica().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, key) = p.api.key(&user.token, &org, json!({"name": "doomed", "environment": "live"})).await;
    // Both replicas have the key's verdict cached.
    for _ in 0..3 {
        assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);
        assert_eq!(replica.get("/api/v1/developer/families", Some(&key)).await.status, 200);
    }

    let revoke = p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    assert_eq!(revoke.status, 200);
    let answered = Instant::now();
    let refused = eventually(Duration::from_secs(1), || async {
        replica.get("/api/v1/developer/families", Some(&key)).await.status == 401
    })
    .await;
    let elapsed = answered.elapsed();
    assert!(refused, "the other replica still accepts the key after 1 s");
    eprintln!("revocation visible on the second replica {elapsed:?} after the revoke's response");
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_stays_revoked_when_redis_forgets() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, key) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "test"})).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);
    p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    p.flush_redis().await;
    // A replica that never saw the key, asking a Redis that forgot it: only PostgreSQL knows.
    let (fresh, _stop) = p.gateway_replica().await;
    let reply = fresh.get("/api/v1/developer/families", Some(&key)).await;
    assert_eq!((reply.status, reply.error_code()), (401, "key_revoked"));
}
