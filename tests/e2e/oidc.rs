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

/// Security review item 9: an ID token whose `aud` matched was accepted as a session.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_id_token_is_never_a_session() {
    let (typed, claimed) = (FakeIssuer::start().await, FakeIssuer::start().await);
    let mut by_claim = claimed.config();
    by_claim["access_token"] = json!({"claim": {"name": "token_use", "value": "access"}});
    let issuers = json!([typed.config(), by_claim]).to_string();
    let p = Platform::start_with(&[("KEYPLANE_OIDC_ISSUERS", issuers)]).await;

    assert_eq!(p.api.get("/api/v1/auth/me", Some(&typed.token(json!({})))).await.status, 200, "an access token");
    for (case, token) in [
        ("an ID token", typed.id_token(json!({}))),
        ("no typ", typed.sign(json!({}), &typed.kid, None)),
        ("typ JWT", typed.sign(json!({}), &typed.kid, Some("JWT"))),
        ("an access typ with an ID token's nonce", typed.token(json!({"nonce": "abc"}))),
        ("an access typ with at_hash", typed.token(json!({"at_hash": "abc"}))),
    ] {
        let reply = p.api.get("/api/v1/auth/me", Some(&token)).await;
        assert_eq!((reply.status, reply.error_code()), (401, "invalid_token"), "{case}: {}", reply.text);
    }

    // An issuer that marks access tokens with a claim instead.
    let access = claimed.sign(json!({"token_use": "access"}), &claimed.kid, Some("JWT"));
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&access)).await.status, 200);
    for token in [
        claimed.sign(json!({"token_use": "id"}), &claimed.kid, Some("JWT")),
        claimed.id_token(json!({"token_use": "access"})),
    ] {
        assert_eq!(p.api.get("/api/v1/auth/me", Some(&token)).await.status, 401);
    }
}

/// Security review item 14: logging out of an external session answered 401.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_of_an_external_session_is_204() {
    let issuer = FakeIssuer::start().await;
    let (name, value) = issuer.setting();
    let p = Platform::start_with(&[(name, value)]).await;
    let out = p.api.post("/api/v1/auth/logout", Some(&issuer.token(json!({}))), json!({})).await;
    assert_eq!(out.status, 204, "{}", out.text);
}

/// An external account's address counts as verified only when its issuer says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_external_address_is_verified_only_by_its_issuer() {
    let issuer = FakeIssuer::start().await;
    let (name, value) = issuer.setting();
    let p = Platform::start_with(&[(name, value)]).await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let email = format!("ext-{}@example.com", uuid::Uuid::new_v4().simple());
    let invited = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/invitations"),
            Some(&owner.token),
            json!({"email": email, "role": "member"}),
        )
        .await;
    let accept = format!("/api/v1/invitations/{}/accept", invited.str("id"));

    let unverified = issuer.token(json!({"sub": "ext-a", "email": email, "email_verified": false}));
    let refused = p.api.post(&accept, Some(&unverified), json!({})).await;
    assert_eq!((refused.status, refused.error_code()), (403, "email_unverified"));
    let verified = issuer.token(json!({"sub": "ext-a", "email": email, "email_verified": true}));
    let me = p.api.get("/api/v1/auth/me", Some(&verified)).await;
    assert_eq!(me.body["user"]["email_verified"], true);
    let joined = p.api.post(&accept, Some(&verified), json!({})).await;
    assert_eq!(joined.status, 200, "{}", joined.text);
}
