//! What an attack on the security review's fixes found: taking a key over by regenerating
//! it, and races between an authorization and the change it allowed.

use futures_util::future::join_all;
use keyplane_e2e::{Platform, User};
use serde_json::json;

const FAMILIES: &str = "/api/v1/developer/families";

/// An owner with an org, and an admin of it.
async fn owner_and_admin(p: &Platform) -> (User, User, String) {
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    (owner, admin, org)
}

/// A regenerated key's new secret acts with the key's creator's role: an admin who could
/// regenerate the owner's key got a secret that deleted the org.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_keys_creator_or_an_owner_may_regenerate_it() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let (owners_id, owners_key) = p.api.key(&owner.token, &org, json!({"name": "root", "environment": "live"})).await;
    let (admins_id, _) = p.api.key(&admin.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let later = chrono::Utc::now() + chrono::Duration::minutes(10);
    let (_, narrow) = p
        .api
        .key(
            &admin.token,
            &org,
            json!({"name": "small", "environment": "test", "scopes": ["write:keys"], "expires_at": later}),
        )
        .await;

    for bearer in [&admin.token, &narrow] {
        let takeover = p.api.regenerate(bearer, &org, &owners_id, 604_800).await;
        assert_eq!((takeover.status, takeover.error_code()), (403, "not_key_creator"), "{}", takeover.text);
    }
    // The admin's own narrow key cannot widen itself into the admin's full key either.
    let widen = p.api.regenerate(&narrow, &org, &admins_id, 0).await;
    assert_eq!((widen.status, widen.error_code()), (403, "insufficient_scope"), "{}", widen.text);
    assert_eq!(p.api.get(FAMILIES, Some(&owners_key)).await.status, 200, "the owner's key is untouched");

    // The creator regenerates its own key; an owner regenerates anybody's.
    assert_eq!(p.api.regenerate(&admin.token, &org, &admins_id, 0).await.status, 200);
    assert_eq!(p.api.regenerate(&owner.token, &org, &admins_id, 0).await.status, 200);
}

/// Regenerations sent at once with one secret: the first rotates it out, and a secret
/// rotated out must not rotate the key again (it used to, three or four times).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotated_out_by_a_parallel_request_cannot_rotate_again() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, secret) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "live"})).await;
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&secret)).await.status, 200, "its verdict is cached");
    let replies = join_all((0..8).map(|_| p.api.regenerate(&secret, &org, &id, 3600))).await;
    let rotated = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(rotated, 1, "{replies:?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert!(matches!(reply.error_code(), "key_in_grace" | "conflict"), "{}", reply.text);
    }
}

/// Keys created while their creator is being removed used to survive the removal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_made_during_a_members_removal_survives_it() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let create = || p.api.create_key(&admin.token, &org, json!({"name": "racing", "environment": "live"}));
    let removal = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        p.api.delete(&format!("/api/v1/developers/orgs/{org}/members/{}", admin.id), Some(&owner.token)).await
    };
    let (created, removed) = tokio::join!(join_all((0..24).map(|_| create())), removal);
    assert_eq!(removed.status, 204, "{}", removed.text);
    let secrets: Vec<String> = created.iter().filter(|r| r.status == 201).map(|r| r.str("key")).collect();
    for secret in &secrets {
        let reply = p.api.get(FAMILIES, Some(secret)).await;
        assert_eq!(reply.status, 401, "a key made during the removal still works: {}", reply.text);
    }
    let refused_after = create().await;
    assert_eq!(refused_after.status, 404, "{}", refused_after.text);
}

/// Keys created while the org is being deleted used to survive the deletion.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_key_made_during_an_orgs_deletion_survives_it() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let create = || p.api.create_key(&admin.token, &org, json!({"name": "racing", "environment": "live"}));
    let deletion = async {
        tokio::time::sleep(std::time::Duration::from_millis(30)).await;
        p.api.delete(&format!("/api/v1/developers/orgs/{org}"), Some(&owner.token)).await
    };
    let (created, deleted) = tokio::join!(join_all((0..24).map(|_| create())), deletion);
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    for secret in created.iter().filter(|r| r.status == 201).map(|r| r.str("key")) {
        assert_eq!(p.api.get(FAMILIES, Some(&secret)).await.status, 401, "a key made during the deletion works");
    }
}

/// A removed admin's pending invitations let it back in through an accomplice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invitations_go_with_the_power_of_who_made_them() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let (accomplice, other) = (p.api.verified_signup().await, p.api.verified_signup().await);
    let invite = |by: String, email: String| {
        let (api, org) = (p.api.clone(), org.clone());
        async move {
            let reply = api
                .post(
                    &format!("/api/v1/developers/orgs/{org}/invitations"),
                    Some(&by),
                    json!({"email": email, "role": "admin"}),
                )
                .await;
            assert_eq!(reply.status, 201, "{}", reply.text);
            reply.str("id")
        }
    };
    let backdoor = invite(admin.token.clone(), accomplice.email.clone()).await;
    let admin_path = format!("/api/v1/developers/orgs/{org}/members/{}", admin.id);

    // Demoted to member: it can no longer invite, so its invitation goes too.
    assert_eq!(p.api.put(&admin_path, Some(&owner.token), json!({"role": "member"})).await.status, 200);
    let demoted =
        p.api.post(&format!("/api/v1/invitations/{backdoor}/accept"), Some(&accomplice.token), json!({})).await;
    assert_eq!((demoted.status, demoted.error_code()), (409, "invitation_not_pending"), "{}", demoted.text);

    // Removed: the same.
    assert_eq!(p.api.put(&admin_path, Some(&owner.token), json!({"role": "admin"})).await.status, 200);
    let second = invite(admin.token.clone(), other.email.clone()).await;
    assert_eq!(p.api.delete(&admin_path, Some(&owner.token)).await.status, 204);
    let removed = p.api.post(&format!("/api/v1/invitations/{second}/accept"), Some(&other.token), json!({})).await;
    assert_eq!((removed.status, removed.error_code()), (409, "invitation_not_pending"), "{}", removed.text);
}

/// An admin demoting a member while the owner promotes it: the admin's change used to
/// land on the new owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_never_demotes_an_owner_even_in_a_race() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let target = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &target, "member").await;
    let path = format!("/api/v1/developers/orgs/{org}/members/{}", target.id);
    let demotions = join_all((0..16).map(|_| p.api.put(&path, Some(&admin.token), json!({"role": "member"}))));
    let promotion = async {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        p.api.put(&path, Some(&owner.token), json!({"role": "owner"})).await
    };
    let (_, promoted) = tokio::join!(demotions, promotion);
    assert_eq!(promoted.status, 200, "{}", promoted.text);
    let members = p.api.get(&format!("/api/v1/developers/orgs/{org}/members"), Some(&owner.token)).await;
    let role =
        members.body["data"].as_array().unwrap().iter().find(|m| m["user_id"] == target.id.as_str()).unwrap()["role"]
            .clone();
    assert_eq!(role, "owner", "an admin's demotion landed after the promotion");
}

/// A former member's ensure-dev-org used to answer the org it left, renamed or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_former_member_gets_a_new_developer_org() {
    let p = Platform::start().await;
    let (founder, successor) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&founder, false).await;
    p.api.join(&founder.token, &org, &successor, "owner").await;
    let out =
        p.api.delete(&format!("/api/v1/developers/orgs/{org}/members/{}", founder.id), Some(&successor.token)).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let (again, _) = p.api.dev_org(&founder, false).await;
    assert_ne!(again, org, "the org it left is not its developer org any more");
}

/// Two owners leaving at once: one must stay, and a removal that fails must not revoke
/// the keys of the owner who stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_that_fails_revokes_nothing() {
    let p = Platform::start().await;
    let (first, second) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&first, false).await;
    p.api.join(&first.token, &org, &second, "owner").await;
    let (_, first_key) = p.api.key(&first.token, &org, json!({"name": "a", "environment": "live"})).await;
    let (_, second_key) = p.api.key(&second.token, &org, json!({"name": "b", "environment": "live"})).await;
    let leave = |user: User| {
        let (api, path) = (p.api.clone(), format!("/api/v1/developers/orgs/{org}/members/{}", user.id));
        async move { api.delete(&path, Some(&user.token)).await }
    };
    let (a, b) = tokio::join!(leave(first.clone()), leave(second.clone()));
    let mut statuses = [a.status, b.status];
    statuses.sort_unstable();
    assert_eq!(statuses, [204, 409], "{} / {}", a.text, b.text);
    let stayed_key = if a.status == 409 { &first_key } else { &second_key };
    assert_eq!(p.api.get(FAMILIES, Some(stayed_key)).await.status, 200, "the remaining owner's key was revoked");
}

/// A deleted org's invitations stay pending no more, and a pinned key creates nothing
/// outside its pins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn loose_ends_of_deletions_and_pins() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let invitee = p.api.verified_signup().await;
    let invited = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/invitations"),
            Some(&owner.token),
            json!({"email": invitee.email, "role": "member"}),
        )
        .await;
    assert_eq!(invited.status, 201);
    let (_, pinned) = p
        .api
        .key(
            &owner.token,
            &org,
            json!({"name": "p", "environment": "test", "scopes": ["write:families", "read:families"], "resource_ids": ["fam_1"]}),
        )
        .await;
    let create = p.api.post(FAMILIES, Some(&pinned), json!({"name": "Outside"})).await;
    assert_eq!((create.status, create.error_code()), (403, "resource_not_allowed"), "{}", create.text);

    assert_eq!(p.api.delete(&format!("/api/v1/developers/orgs/{org}"), Some(&owner.token)).await.status, 204);
    let mine = p.api.get("/api/v1/invitations", Some(&invitee.token)).await;
    assert_eq!(mine.body["data"], json!([]), "{}", mine.text);
    let mailbox = p.api.get(&format!("/dev/mailbox?to={}", invitee.email), None).await;
    assert_eq!(mailbox.header("cache-control"), Some("no-store"));
}

/// What a second attack found: invitations sent in parallel with the inviter's demotion
/// outlived it (their role was checked before the org's lock), and an accomplice came in
/// as an owner.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_invitation_made_during_the_inviters_demotion_outlives_it() {
    let p = Platform::start().await;
    let (legit, rogue) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&legit, false).await;
    p.api.join(&legit.token, &org, &rogue, "owner").await;
    let invitations = format!("/api/v1/developers/orgs/{org}/invitations");
    let done = std::sync::atomic::AtomicBool::new(false);
    let invite_until_done = || async {
        let mut made = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let email = format!("accomplice-{}@example.com", uuid::Uuid::now_v7().simple());
            let reply = p.api.post(&invitations, Some(&rogue.token), json!({"email": email, "role": "owner"})).await;
            made += usize::from(reply.status == 201);
        }
        made
    };
    let demotion = async {
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
        let path = format!("/api/v1/developers/orgs/{org}/members/{}", rogue.id);
        let reply = p.api.put(&path, Some(&legit.token), json!({"role": "member"})).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        reply
    };
    let (made, demoted) = tokio::join!(join_all((0..8).map(|_| invite_until_done())), demotion);
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    assert!(made.iter().sum::<usize>() > 0, "some invitations were made before the demotion");
    let listed = p.api.get(&format!("{invitations}?limit=100"), Some(&legit.token)).await;
    let surviving: Vec<&serde_json::Value> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "pending" && i["invited_by"] == rogue.id.as_str())
        .collect();
    assert!(surviving.is_empty(), "owner invitations outlived their inviter's demotion: {surviving:?}");
}

/// An owner who regenerated an admin's key held its new secret after being removed: the
/// key now goes with whoever regenerated it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_who_took_a_key_over_loses_it_with_the_org() {
    let p = Platform::start().await;
    let (legit, admin, org) = owner_and_admin(&p).await;
    let rogue = p.api.verified_signup().await;
    p.api.join(&legit.token, &org, &rogue, "owner").await;
    let (key_id, admins_secret) = p.api.key(&admin.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let taken = p.api.regenerate(&rogue.token, &org, &key_id, 604_800).await;
    assert_eq!(taken.status, 200, "{}", taken.text);
    let rogues_secret = taken.str("key");
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&rogues_secret)).await.status, 200);

    let path = format!("/api/v1/developers/orgs/{org}/members/{}", rogue.id);
    assert_eq!(p.api.delete(&path, Some(&legit.token)).await.status, 204);
    for secret in [&rogues_secret, &admins_secret] {
        let refused = keyplane_e2e::eventually(std::time::Duration::from_secs(1), || async {
            p.api.get("/api/v1/auth/me", Some(secret)).await.status == 401
        })
        .await;
        assert!(refused, "a secret of the key taken over still works after its holder left");
    }
    let minted = p.api.create_key(&rogues_secret, &org, json!({"name": "again", "environment": "live"})).await;
    assert_eq!(minted.status, 401, "{}", minted.text);
}

/// A key, however strong, never brings a person in or changes a role: a test-only,
/// pinned, expiring key used to invite an admin who then minted a live key of any power,
/// and the invitation outlived the key's revocation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_people_bring_people_in() {
    let p = Platform::start().await;
    let (owner, admin, org) = owner_and_admin(&p).await;
    let attacker = p.api.verified_signup().await;
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let (_, bounded) = p
        .api
        .key(
            &owner.token,
            &org,
            json!({"name": "b", "environment": "test", "scopes": ["write:orgs", "read:families"],
                   "resource_ids": ["fam_1"], "expires_at": later}),
        )
        .await;
    let (_, full) = p.api.key(&owner.token, &org, json!({"name": "root", "environment": "live"})).await;
    let invitations = format!("/api/v1/developers/orgs/{org}/invitations");
    let members = format!("/api/v1/developers/orgs/{org}/members");
    for key in [&bounded, &full] {
        for (path, body) in [
            (&invitations, json!({"email": attacker.email, "role": "admin"})),
            (&members, json!({"email": attacker.email, "role": "member"})),
        ] {
            let refused = p.api.post(path, Some(key), body).await;
            assert_eq!((refused.status, refused.error_code()), (403, "forbidden"), "{}", refused.text);
        }
        let promote = p.api.put(&format!("{members}/{}", admin.id), Some(key), json!({"role": "member"})).await;
        assert_eq!((promote.status, promote.error_code()), (403, "forbidden"), "{}", promote.text);
    }
    assert!(p.api.get("/api/v1/invitations", Some(&attacker.token)).await.body["data"].as_array().unwrap().is_empty());
    // Taking power away stays open to a key that may write the org: removing a member.
    assert_eq!(p.api.delete(&format!("{members}/{}", admin.id), Some(&full)).await.status, 204);
}
