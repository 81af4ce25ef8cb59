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

/// SECURITY-CASES 42: one name however it was typed. `Äcme` as one character (NFC) and as
/// `A` with a combining diaeresis (NFD) is stored as the same name, and slugged alike
/// (accents off, not letters dropped), so the second is `-2`, not a look-alike slug.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_typed_composed_or_decomposed_is_one_name() {
    let p = Platform::start().await;
    let (ada, bob) = (p.api.signup().await, p.api.signup().await);
    let create = |user, name: &str| p.api.post("/api/v1/developers/orgs", Some(user), json!({"name": name}));
    let composed = create(&ada.token, "\u{c4}cme Stra\u{df}e").await;
    let decomposed = create(&bob.token, "A\u{308}cme Stra\u{df}e").await;
    assert_eq!((composed.status, decomposed.status), (201, 201), "{} {}", composed.text, decomposed.text);
    assert_eq!(composed.str("name"), decomposed.str("name"), "stored in one form");
    assert_eq!(composed.str("name"), "\u{c4}cme Stra\u{df}e");
    assert_eq!(
        (composed.str("slug"), decomposed.str("slug")),
        ("acme-strasse".to_owned(), "acme-strasse-2".to_owned())
    );
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
async fn members_see_members_and_their_roles() {
    let p = Platform::start().await;
    let (owner, member) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let members = format!("/api/v1/developers/orgs/{org}/members");
    let listed = p.api.get(&members, Some(&member.token)).await;
    assert_eq!(listed.status, 200, "members can see members");
    let mut roles: Vec<_> =
        listed.body["data"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap().to_owned()).collect();
    roles.sort();
    assert_eq!(roles, ["member", "owner"]);
    let again = p.api.post(&members, Some(&owner.token), json!({"email": member.email, "role": "admin"})).await;
    assert_eq!((again.status, again.error_code()), (409, "already_member"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_cannot_do_what_an_admin_does() {
    let p = Platform::start().await;
    let (owner, member) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let update =
        p.api.put(&format!("/api/v1/developers/orgs/{org}"), Some(&member.token), json!({"name": "Mine"})).await;
    assert_eq!((update.status, update.error_code()), (403, "insufficient_role"));
    let key = p.api.create_key(&member.token, &org, json!({"name": "k", "environment": "test"})).await;
    assert_eq!((key.status, key.error_code()), (403, "insufficient_role"));
    let invite = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/invitations"),
            Some(&member.token),
            json!({"email": "friend@example.com", "role": "member"}),
        )
        .await;
    assert_eq!((invite.status, invite.error_code()), (403, "insufficient_role"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_owner_can_be_neither_removed_nor_demoted() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let me = format!("/api/v1/developers/orgs/{org}/members/{}", owner.id);
    let removed = p.api.delete(&me, Some(&owner.token)).await;
    assert_eq!((removed.status, removed.error_code()), (409, "last_owner"));
    let demoted = p.api.put(&me, Some(&owner.token), json!({"role": "admin"})).await;
    assert_eq!((demoted.status, demoted.error_code()), (409, "last_owner"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_member_sees_nothing_and_a_member_may_leave() {
    let p = Platform::start().await;
    let (owner, removed, leaving) =
        (p.api.signup().await, p.api.verified_signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &removed, "member").await;
    p.api.join(&owner.token, &org, &leaving, "member").await;
    let members = format!("/api/v1/developers/orgs/{org}/members");
    let out = p.api.delete(&format!("{members}/{}", removed.id), Some(&owner.token)).await;
    assert_eq!(out.status, 204, "{}", out.text);
    assert_eq!(p.api.get(&members, Some(&removed.token)).await.status, 404, "a former member sees nothing");
    let left = p.api.delete(&format!("{members}/{}", leaving.id), Some(&leaving.token)).await;
    assert_eq!(left.status, 204, "{}", left.text);
    assert_eq!(p.api.get(&members, Some(&leaving.token)).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_change_and_only_an_owner_session_touches_owners() {
    let p = Platform::start().await;
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "member").await;
    let admin_path = format!("/api/v1/developers/orgs/{org}/members/{}", admin.id);
    let promoted = p.api.put(&admin_path, Some(&owner.token), json!({"role": "admin"})).await;
    assert_eq!((promoted.status, promoted.str("role")), (200, "admin".to_owned()), "{}", promoted.text);

    // An admin can neither make itself an owner nor touch the owner.
    let own = p.api.put(&admin_path, Some(&admin.token), json!({"role": "owner"})).await;
    assert_eq!((own.status, own.error_code()), (403, "owner_session_required"));
    let owner_path = format!("/api/v1/developers/orgs/{org}/members/{}", owner.id);
    let demote = p.api.put(&owner_path, Some(&admin.token), json!({"role": "member"})).await;
    assert_eq!((demote.status, demote.error_code()), (403, "owner_session_required"));
    let kick = p.api.delete(&owner_path, Some(&admin.token)).await;
    assert_eq!((kick.status, kick.error_code()), (403, "owner_session_required"));
    let bad = p.api.put(&admin_path, Some(&owner.token), json!({"role": "emperor"})).await;
    assert_eq!((bad.status, bad.error_code()), (400, "validation_failed"));

    // The owner makes a second owner, who may then step the first one down.
    let second = p.api.put(&admin_path, Some(&owner.token), json!({"role": "owner"})).await;
    assert_eq!(second.status, 200, "{}", second.text);
    let stepped_down = p.api.put(&owner_path, Some(&admin.token), json!({"role": "admin"})).await;
    assert_eq!((stepped_down.status, stepped_down.str("role")), (200, "admin".to_owned()));
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
