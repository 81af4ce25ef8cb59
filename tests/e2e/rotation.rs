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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grace_periods_end() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let regenerate = |id: String, grace: i64| {
        let (api, token, org) = (p.api.clone(), user.token.clone(), org.clone());
        async move {
            let reply = api
                .post(
                    &format!("/api/v1/developers/orgs/{org}/keys/{id}/regenerate"),
                    Some(&token),
                    json!({"grace_period_seconds": grace}),
                )
                .await;
            assert_eq!(reply.status, 200, "{}", reply.text);
            reply.str("key")
        }
    };

    // Grace 0: the old secret is refused at once.
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "a", "environment": "test"})).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&old)).await.status, 200);
    let new = regenerate(id, 0).await;
    let refused = p.api.get("/api/v1/developer/families", Some(&old)).await;
    assert_eq!(refused.status, 401, "{}", refused.text);
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&new)).await.status, 200);

    // Grace 1 s: works, then one second after, refused.
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "b", "environment": "test"})).await;
    let _new = regenerate(id.clone(), 1).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&old)).await.status, 200);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let late = p.api.get("/api/v1/developer/families", Some(&old)).await;
    assert_eq!((late.status, late.error_code()), (401, "key_revoked"));

    // Twice inside a grace period: only the newest secret and its predecessor work.
    let (id, first) = p.api.key(&user.token, &org, json!({"name": "c", "environment": "test"})).await;
    let second = regenerate(id.clone(), 3600).await;
    let third = regenerate(id.clone(), 3600).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&first)).await.status, 401);
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&second)).await.status, 200);
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&third)).await.status, 200);

    let out_of_range = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/keys/{id}/regenerate"),
            Some(&user.token),
            json!({"grace_period_seconds": 604_801}),
        )
        .await;
    assert_eq!((out_of_range.status, out_of_range.error_code()), (400, "validation_failed"));

    // A revoked key cannot be brought back by regenerating it.
    p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    let after_revoke =
        p.api.post(&format!("/api/v1/developers/orgs/{org}/keys/{id}/regenerate"), Some(&user.token), json!({})).await;
    assert_eq!((after_revoke.status, after_revoke.error_code()), (409, "key_revoked"));
    assert_eq!(
        p.api.get("/api/v1/developer/families", Some(&second)).await.status,
        401,
        "revocation ends the grace too"
    );
}
