//! Orgs, slugs, members and roles, tenancy.

use futures_util::future::join_all;
use keyplane_e2e::Platform;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_dev_org_makes_one_org_under_twenty_concurrent_calls() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let calls = (0..20).map(|_| p.api.post("/api/ensure-dev-org", Some(&user.token), json!({"name": "Acme Corp"})));
    let replies = join_all(calls).await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
    }
    let ids: std::collections::BTreeSet<_> = replies.iter().map(|r| r.str("id")).collect();
    assert_eq!(ids.len(), 1, "one org for all twenty: {ids:?}");
    let listed = p.api.get("/api/v1/developers/orgs", Some(&user.token)).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(listed.body["next_cursor"], serde_json::Value::Null);
    assert_eq!(replies[0].body["slug"], "acme-corp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slugs_are_unique_and_orgs_are_editable() {
    let p = Platform::start().await;
    let (ada, bob) = (p.api.signup().await, p.api.signup().await);
    let first = p.api.post("/api/v1/developers/orgs", Some(&ada.token), json!({"name": "Acme Corp"})).await;
    let second = p.api.post("/api/v1/developers/orgs", Some(&bob.token), json!({"name": "Acme  Corp!"})).await;
    assert_eq!((first.status, second.status), (201, 201), "{} {}", first.text, second.text);
    assert_eq!((first.str("slug"), second.str("slug")), ("acme-corp".to_owned(), "acme-corp-2".to_owned()));

    let id = first.str("id");
    let updated = p
        .api
        .put(
            &format!("/api/v1/developers/orgs/{id}"),
            Some(&ada.token),
            json!({"description": "OCSS", "website_url": "https://acme.example.com"}),
        )
        .await;
    assert_eq!(updated.status, 200, "{}", updated.text);
    assert_eq!((updated.str("description"), updated.str("slug")), ("OCSS".to_owned(), "acme-corp".to_owned()));
    let bad_url = p
        .api
        .put(&format!("/api/v1/developers/orgs/{id}"), Some(&ada.token), json!({"website_url": "javascript:alert(1)"}))
        .await;
    assert_eq!((bad_url.status, bad_url.error_code()), (400, "validation_failed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_tenants_org_does_not_exist() {
    let p = Platform::start().await;
    let (ada, eve) = (p.api.signup().await, p.api.signup().await);
    let (org, key) = p.api.dev_org(&ada, true).await;
    let (_, eve_key) = p.api.dev_org(&eve, true).await;
    let eve_key = eve_key.unwrap();
    for path in [
        format!("/api/v1/developers/orgs/{org}"),
        format!("/api/v1/developers/orgs/{org}/members"),
        format!("/api/v1/developers/orgs/{org}/keys"),
        format!("/api/v1/developers/orgs/{org}/audit-log"),
        "/api/v1/developers/orgs/not-a-uuid".to_owned(),
    ] {
        for bearer in [&eve.token, &eve_key] {
            let reply = p.api.get(&path, Some(bearer)).await;
            assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        }
    }
    let sneaky = p.api.create_key(&eve.token, &org, json!({"name": "mine now", "environment": "live"})).await;
    assert_eq!(sneaky.status, 404, "{}", sneaky.text);
    let keys = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&ada.token)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 1, "nothing was created in ada's org");
    assert!(key.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_and_roles() {
    let p = Platform::start().await;
    let (owner, member) = (p.api.signup().await, p.api.signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    let members = format!("/api/v1/developers/orgs/{org}/members");

    let added = p.api.post(&members, Some(&owner.token), json!({"email": member.email, "role": "member"})).await;
    assert_eq!(added.status, 201, "{}", added.text);
    assert_eq!((added.str("role"), added.str("email")), ("member".to_owned(), member.email.clone()));
    let twice = p.api.post(&members, Some(&owner.token), json!({"email": member.email, "role": "admin"})).await;
    assert_eq!((twice.status, twice.error_code()), (409, "already_member"));
    let nobody =
        p.api.post(&members, Some(&owner.token), json!({"email": "ghost@example.com", "role": "member"})).await;
    assert_eq!((nobody.status, nobody.error_code()), (404, "user_not_found"));

    let listed = p.api.get(&members, Some(&member.token)).await;
    assert_eq!(listed.status, 200, "members can see members");
    let roles: Vec<_> =
        listed.body["data"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect();
    assert_eq!(roles.len(), 2);
    assert!(roles.contains(&"owner".to_owned()) && roles.contains(&"member".to_owned()));

    let update =
        p.api.put(&format!("/api/v1/developers/orgs/{org}"), Some(&member.token), json!({"name": "Mine"})).await;
    assert_eq!((update.status, update.error_code()), (403, "insufficient_role"));
    let key = p.api.create_key(&member.token, &org, json!({"name": "k", "environment": "test"})).await;
    assert_eq!((key.status, key.error_code()), (403, "insufficient_role"));

    let last_owner = p.api.delete(&format!("{members}/{}", owner.id), Some(&owner.token)).await;
    assert_eq!((last_owner.status, last_owner.error_code()), (409, "last_owner"));
    let removed = p.api.delete(&format!("{members}/{}", member.id), Some(&owner.token)).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    assert_eq!(p.api.get(&members, Some(&member.token)).await.status, 404, "a former member sees nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_an_org_revokes_its_keys_at_once() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, key) = p.api.dev_org(&owner, true).await;
    let key = key.unwrap();
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);

    let deleted = p.api.delete(&format!("/api/v1/developers/orgs/{org}"), Some(&owner.token)).await;
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    let after = p.api.get("/api/v1/developer/families", Some(&key)).await;
    assert_eq!((after.status, after.error_code()), (401, "key_revoked"));
    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{org}"), Some(&owner.token)).await.status, 404);
    // A new developer org can be made afterwards.
    let (again, _) = p.api.dev_org(&owner, false).await;
    assert_ne!(again, org);
}
