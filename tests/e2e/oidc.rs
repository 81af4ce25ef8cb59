//! External OIDC issuers: a valid token is a session, and its first use provisions the user.

use std::sync::atomic::Ordering;

use keyplane_e2e::{Platform, oidc::FakeIssuer};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_token_is_a_session_and_provisions_its_user_once() {
    let issuer = FakeIssuer::start().await;
    let (name, value) = issuer.setting();
    let p = Platform::start_with(&[(name, value)]).await;

    let token = issuer.token(json!({"sub": "user_ext_1"}));
    let me = p.api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["issuer"], issuer.issuer.as_str());
    assert_eq!(me.body["user"]["email"], "ext@example.com");
    assert_eq!(me.body["user"]["name"], "Ext User");
    let user_id = me.body["user"]["id"].clone();

    let again = p.api.get("/api/v1/auth/me", Some(&issuer.token(json!({"sub": "user_ext_1"})))).await;
    assert_eq!(again.body["user"]["id"], user_id, "the same subject is the same user");
    let other = p.api.get("/api/v1/auth/me", Some(&issuer.token(json!({"sub": "user_ext_2"})))).await;
    assert_ne!(other.body["user"]["id"], user_id);

    // The whole funnel works with the external session.
    let org = p.api.post("/api/ensure-dev-org", Some(&token), json!({"name": "Ext Corp", "bootstrap_key": true})).await;
    assert_eq!(org.status, 200, "{}", org.text);
    let key = org.body["first_key"]["key"].as_str().unwrap();
    assert_eq!(p.api.get("/api/v1/developer/families", Some(key)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_tokens_are_checked_and_keys_refetched_sparingly() {
    let issuer = FakeIssuer::start().await;
    let (name, value) = issuer.setting();
    let p = Platform::start_with(&[(name, value)]).await;
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&issuer.token(json!({})))).await.status, 200);
    let fetched = issuer.fetches.load(Ordering::SeqCst);

    let wrong_audience = p.api.get("/api/v1/auth/me", Some(&issuer.token(json!({"aud": "someone-else"})))).await;
    assert_eq!(wrong_audience.status, 401);
    let expired =
        p.api.get("/api/v1/auth/me", Some(&issuer.token(json!({"exp": chrono::Utc::now().timestamp() - 600})))).await;
    assert_eq!((expired.status, expired.error_code()), (401, "token_expired"));
    for i in 0..5 {
        let unknown_kid =
            p.api.get("/api/v1/auth/me", Some(&issuer.token_with_kid(json!({}), &format!("made-up-{i}")))).await;
        assert_eq!(unknown_kid.status, 401);
    }
    assert!(issuer.fetches.load(Ordering::SeqCst) <= fetched + 1, "made-up kids cause at most one refetch");
}
