//! Regeneration with a grace period: the old secret works for a while, and every use of
//! it is audit-logged.

use std::time::Duration;

use keyplane_e2e::{Platform, eventually};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_secret_works_in_its_grace_period_and_each_use_is_audited() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "rotating", "environment": "test"})).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&old)).await.status, 200);

    let regenerated =
        p.api.post(&format!("/api/v1/developers/orgs/{org}/keys/{id}/regenerate"), Some(&user.token), json!({})).await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.text);
    assert_eq!(regenerated.str("id"), id, "same key, new secret");
    let new = regenerated.str("key");
    assert_ne!(new, old);
    let grace_end = chrono::DateTime::parse_from_rfc3339(&regenerated.str("grace_ends_at")).unwrap();
    let expected = chrono::Utc::now() + chrono::Duration::seconds(86_400);
    assert!((grace_end.timestamp() - expected.timestamp()).abs() < 60, "default grace is 24 h");

    assert_eq!(p.api.get("/api/v1/developer/families", Some(&new)).await.status, 200, "the new secret works at once");
    for _ in 0..3 {
        let used = p
            .api
            .send(
                p.api
                    .http
                    .get(p.api.url("/api/v1/developer/families"))
                    .bearer_auth(&old)
                    .header("user-agent", "straggler/1.0"),
            )
            .await;
        assert_eq!(used.status, 200, "the old secret works in grace: {}", used.text);
    }
    let me = p.api.get("/api/v1/auth/me", Some(&old)).await;
    assert_eq!(me.body["key"]["in_grace"], true);

    let audit = format!("/api/v1/developers/orgs/{org}/audit-log?action=rotated_key_used");
    let rotated_uses = || async {
        let reply = p.api.get(&audit, Some(&user.token)).await;
        let count: u64 = reply.body["data"]
            .as_array()
            .map_or(0, |d| d.iter().map(|e| e["metadata"]["count"].as_u64().unwrap_or(0)).sum());
        (count, reply.body)
    };
    let logged = eventually(Duration::from_secs(10), || async { rotated_uses().await.0 >= 4 }).await;
    let events = rotated_uses().await.1;
    assert!(logged, "every use of the old secret is in the audit log: {events}");
    let event = events["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["user_agent"] == "straggler/1.0")
        .expect("the straggler's uses");
    assert_eq!((event["target"]["id"].clone(), event["actor"]["type"].clone()), (json!(id), json!("api_key")));
    assert_eq!(event["metadata"]["count"], 3, "three uses from that source, one event");
    assert!(!event["ip"].as_str().unwrap().is_empty());

    // The creation and the regeneration themselves are audited too.
    let all = p.api.get(&format!("/api/v1/developers/orgs/{org}/audit-log"), Some(&user.token)).await;
    let actions: Vec<&str> =
        all.body["data"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(actions.contains(&"api_key.created") && actions.contains(&"api_key.regenerated"), "{actions:?}");
}

/// A test key of a new user's org, with its org and a way to regenerate it.
struct Rotating {
    p: Platform,
    token: String,
    org: String,
}

impl Rotating {
    async fn start() -> Self {
        let p = Platform::start().await;
        let user = p.api.signup().await;
        let (org, _) = p.api.dev_org(&user, false).await;
        Self { p, token: user.token, org }
    }

    async fn key(&self) -> (String, String) {
        self.p.api.key(&self.token, &self.org, json!({"name": "k", "environment": "test"})).await
    }

    async fn regenerate(&self, id: &str, grace: i64) -> keyplane_e2e::Reply {
        self.p.api.regenerate(&self.token, &self.org, id, grace).await
    }

    async fn status(&self, secret: &str) -> u16 {
        self.p.api.get("/api/v1/developer/families", Some(secret)).await.status
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_no_grace_period_the_old_secret_stops_at_once() {
    let r = Rotating::start().await;
    let (id, old) = r.key().await;
    assert_eq!(r.status(&old).await, 200, "its verdict is cached");
    let new = r.regenerate(&id, 0).await.str("key");
    assert_eq!(r.status(&old).await, 401);
    assert_eq!(r.status(&new).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_secret_stops_when_its_grace_period_ends() {
    let r = Rotating::start().await;
    let (id, old) = r.key().await;
    let regenerated = r.regenerate(&id, 60).await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.text);
    assert_eq!(r.status(&old).await, 200, "inside the grace period");
    r.p.clock.advance(std::time::Duration::from_secs(61));
    let late = r.p.api.get("/api/v1/developer/families", Some(&old)).await;
    assert_eq!((late.status, late.error_code()), (401, "key_revoked"));
    assert_eq!(r.status(&regenerated.str("key")).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerating_twice_leaves_the_newest_secret_and_its_predecessor() {
    let r = Rotating::start().await;
    let (id, first) = r.key().await;
    let second = r.regenerate(&id, 3600).await.str("key");
    let third = r.regenerate(&id, 3600).await.str("key");
    assert_eq!(r.status(&first).await, 401);
    assert_eq!(r.status(&second).await, 200);
    assert_eq!(r.status(&third).await, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grace_period_is_at_most_a_week() {
    let r = Rotating::start().await;
    let (id, _) = r.key().await;
    let out_of_range = r.regenerate(&id, 604_801).await;
    assert_eq!((out_of_range.status, out_of_range.error_code()), (400, "validation_failed"));
    assert_eq!(out_of_range.body["details"][0]["field"], "grace_period_seconds");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_not_brought_back_and_its_grace_ends_too() {
    let r = Rotating::start().await;
    let (id, _) = r.key().await;
    let in_grace = r.regenerate(&id, 3600).await.str("key");
    let _newest = r.regenerate(&id, 3600).await;
    r.p.api.delete(&format!("/api/v1/developers/orgs/{}/keys/{id}", r.org), Some(&r.token)).await;
    let after_revoke = r.regenerate(&id, 0).await;
    assert_eq!((after_revoke.status, after_revoke.error_code()), (409, "key_revoked"));
    assert_eq!(r.status(&in_grace).await, 401, "revocation ends the grace too");
}
