//! The audit trail: every change commits with its event, and the event reaches the org's
//! log exactly once, whatever the orgs service was doing at the time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use keyplane_e2e::{Api, Platform, User, eventually};
use serde_json::{Value, json};

const FAMILIES: &str = "/api/v1/developer/families";

/// The changes a churn made that the platform accepted: (action, target id).
type Done = Arc<Mutex<Vec<(&'static str, String)>>>;

/// Creates and revokes keys and changes a member's role until told to stop, noting each
/// change the platform accepted (a 503 while orgs is away is a change not made).
async fn churn(api: Api, owner: User, org: String, member: User, done: Done, stop: Arc<std::sync::atomic::AtomicBool>) {
    let member_path = format!("/api/v1/developers/orgs/{org}/members/{}", member.id);
    let mut role = "admin";
    while !stop.load(std::sync::atomic::Ordering::SeqCst) {
        let created = api.create_key(&owner.token, &org, json!({"name": "churn", "environment": "test"})).await;
        if created.status == 201 {
            let id = created.str("id");
            done.lock().unwrap().push(("api_key.created", id.clone()));
            let revoked = api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&owner.token)).await;
            if revoked.status == 200 {
                done.lock().unwrap().push(("api_key.revoked", id));
            }
        }
        if api.put(&member_path, Some(&owner.token), json!({"role": role})).await.status == 200 {
            done.lock().unwrap().push(("member.role_changed", member.id.clone()));
            role = if role == "admin" { "member" } else { "admin" };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Issue 9's audit test: the orgs service stops while keys and members change, and while
/// a rotated key's old secret is used and a member's password is guessed; it starts again,
/// and every change is in the log exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_change_is_audited_exactly_once_across_an_orgs_outage() {
    let p = Platform::start().await;
    // A deployment whose orgs process the test stops and starts again.
    let (orgs, stop_orgs) = p.orgs_replica(None).await;
    let (keys, _k) = p.keys_replica_with(&[], |c| c.orgs_addr.clone_from(&orgs)).await;
    let (identity, _i) = p
        .identity_replica_with(&[], |c| {
            c.orgs_addr.clone_from(&orgs);
            c.keys_addr.clone_from(&keys);
        })
        .await;
    let (api, _g) = p
        .gateway_replica_with(|c| {
            c.orgs_addr.clone_from(&orgs);
            c.keys_addr.clone_from(&keys);
            c.identity_addr.clone_from(&identity);
        })
        .await;
    let owner = api.signup().await;
    let (org, _) = api.dev_org(&owner, false).await;
    let member = api.verified_signup().await;
    api.join(&owner.token, &org, &member, "member").await;
    let (rotated, old_secret) = api.key(&owner.token, &org, json!({"name": "rotated", "environment": "test"})).await;
    assert_eq!(api.regenerate(&owner.token, &org, &rotated, 3600).await.status, 200);

    let done: Done = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let churning = tokio::spawn(churn(
        api.clone(),
        owner.clone(),
        org.clone(),
        member.clone(),
        Arc::clone(&done),
        Arc::clone(&stop),
    ));
    tokio::time::sleep(Duration::from_millis(400)).await;

    // Orgs stops. The data plane and sign-in go on; their events wait in outboxes.
    stop_orgs.cancel();
    let orgs_addr: std::net::SocketAddr = orgs.trim_start_matches("http://").parse().unwrap();
    let down =
        eventually(Duration::from_secs(10), || async { tokio::net::TcpStream::connect(orgs_addr).await.is_err() })
            .await;
    assert!(down, "the orgs process stopped");
    for _ in 0..20 {
        assert_eq!(api.get(FAMILIES, Some(&old_secret)).await.status, 200, "the old secret works without orgs");
    }
    let guess = json!({"email": member.email, "password": "not the password!"});
    for _ in 0..5 {
        assert_eq!(api.post("/api/v1/auth/login", None, guess.clone()).await.status, 401);
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    // Orgs starts again where it was; the churn goes on a little, then stops.
    let (_orgs_again, _o) = p.orgs_replica(Some(orgs_addr)).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    churning.await.unwrap();
    let done = done.lock().unwrap().clone();
    assert!(done.iter().any(|(a, _)| *a == "api_key.created"), "the churn made changes");

    // Every accepted change, exactly once; the outage's uses and guesses, each counted once.
    let expected = done.len();
    let complete = eventually(Duration::from_secs(30), || async {
        let log = api.audit_log(&owner.token, &org, "").await;
        let churned = log
            .iter()
            .filter(|e| done.iter().any(|(a, t)| e["action"] == *a && e["target"]["id"] == t.as_str()))
            .count();
        let uses: u64 = log
            .iter()
            .filter(|e| e["action"] == "rotated_key_used")
            .map(|e| e["metadata"]["count"].as_u64().unwrap())
            .sum();
        let guesses: u64 = log
            .iter()
            .filter(|e| e["action"] == "auth.login_failed")
            .map(|e| e["metadata"]["count"].as_u64().unwrap())
            .sum();
        churned >= expected && uses >= 20 && guesses >= 5
    })
    .await;
    let log = api.audit_log(&owner.token, &org, "").await;
    assert!(complete, "events missing after the outage: {} changes made, log: {log:?}", done.len());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let log = api.audit_log(&owner.token, &org, "").await;

    let mut ids = std::collections::HashSet::new();
    assert!(log.iter().all(|e| ids.insert(e["id"].as_str().unwrap().to_owned())), "an event id twice");
    let mut per_change: HashMap<(String, String), usize> = HashMap::new();
    for e in &log {
        *per_change
            .entry((e["action"].as_str().unwrap().to_owned(), e["target"]["id"].as_str().unwrap().to_owned()))
            .or_default() += 1;
    }
    let mut expected_per_change: HashMap<(String, String), usize> = HashMap::new();
    for (action, target) in &done {
        *expected_per_change.entry(((*action).to_owned(), target.clone())).or_default() += 1;
    }
    for (change, count) in &expected_per_change {
        assert_eq!(per_change.get(change), Some(count), "{change:?}");
    }
    let count_of = |action: &str| -> u64 {
        log.iter().filter(|e| e["action"] == action).map(|e| e["metadata"]["count"].as_u64().unwrap()).sum()
    };
    assert_eq!(count_of("rotated_key_used"), 20, "each use of the old secret once");
    assert_eq!(count_of("auth.login_failed"), 5, "each wrong password once");
    let guess_event = log.iter().find(|e| e["action"] == "auth.login_failed").unwrap();
    assert_eq!(guess_event["target"], json!({"type": "user", "id": member.id}));
    assert_eq!(guess_event["metadata"]["email"], member.email.as_str());
}

/// The log reads by actor, time and action; a member who is not an admin reads none of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_filters_by_actor_and_is_for_admins() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let admin = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let (key_id, key) = p
        .api
        .key(&admin.token, &org, json!({"name": "k", "environment": "test", "scopes": ["write:keys", "read:keys"]}))
        .await;
    let (child, _) =
        p.api.key(&key, &org, json!({"name": "child", "environment": "test", "scopes": ["read:keys"]})).await;

    // Key events arrive through the keys service's outbox: wait for the child's.
    let delivered = eventually(Duration::from_secs(10), || async {
        p.api.audit_log(&owner.token, &org, &format!("actor=api_key:{key_id}")).await.len() == 1
    })
    .await;
    assert!(delivered);
    let by_admin = p.api.audit_log(&owner.token, &org, &format!("actor={}", admin.id)).await;
    assert!(!by_admin.is_empty() && by_admin.iter().all(|e| e["actor"]["id"] == admin.id.as_str()), "{by_admin:?}");
    let by_key = p.api.audit_log(&owner.token, &org, &format!("actor=api_key:{key_id}")).await;
    assert_eq!(by_key.len(), 1, "{by_key:?}");
    assert_eq!(
        (by_key[0]["action"].as_str(), by_key[0]["target"]["id"].as_str()),
        (Some("api_key.created"), Some(child.as_str()))
    );
    assert!(p.api.audit_log(&owner.token, &org, &format!("actor=user:{key_id}")).await.is_empty(), "type and id");
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ");
    assert!(p.api.audit_log(&owner.token, &org, &format!("from={later}")).await.is_empty());

    let member = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let refused = p.api.get(&format!("/api/v1/developers/orgs/{org}/audit-log"), Some(&member.token)).await;
    assert_eq!((refused.status, refused.error_code()), (403, "insufficient_role"));
    let value: Value =
        p.api.get(&format!("/api/v1/developers/orgs/{org}/audit-log?limit=0"), Some(&owner.token)).await.body;
    assert_eq!(value["code"], "validation_failed");
}

/// The platform's own events (a signing-key rotation, a guess at an unknown address) are
/// in the platform log, which services read under the nil org id, and no org's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_events_are_in_the_platform_log() {
    use keyplane_common::{config::Target, principal::Principal};
    use keyplane_proto::{
        identity::v1::{RotateSigningKeyRequest, identity_service_client::IdentityServiceClient},
        orgs::v1::{ListAuditEventsRequest, orgs_service_client::OrgsServiceClient},
    };
    let p = Platform::start().await;
    let auth = p.internal_auth("cli");
    let operator = Principal::Service { name: "operator".into() };
    let mut rotate = tonic::Request::new(RotateSigningKeyRequest {});
    auth.attach(rotate.metadata_mut(), Some(&operator));
    let kid = IdentityServiceClient::new(p.channel(Target::Identity))
        .rotate_signing_key(rotate)
        .await
        .unwrap()
        .into_inner()
        .kid;
    let guess = json!({"email": "nobody@example.com", "password": "not the password!"});
    assert_eq!(p.api.post("/api/v1/auth/login", None, guess).await.status, 401);

    let orgs = OrgsServiceClient::new(p.channel(Target::Orgs));
    let read = |action: &str| {
        let mut request = tonic::Request::new(ListAuditEventsRequest {
            org_id: uuid::Uuid::nil().to_string(),
            action: action.to_owned(),
            ..Default::default()
        });
        auth.attach(request.metadata_mut(), Some(&operator));
        request
    };
    let found = eventually(Duration::from_secs(10), || {
        let (mut orgs, rotation, guesses) = (orgs.clone(), read("signing_key.rotated"), read("auth.login_failed"));
        let kid = kid.clone();
        async move {
            let rotations = orgs.list_audit_events(rotation).await.unwrap().into_inner().events;
            let guesses = orgs.list_audit_events(guesses).await.unwrap().into_inner().events;
            rotations.iter().any(|e| {
                e.target.as_ref().is_some_and(|t| t.id == kid) && e.actor.as_ref().is_some_and(|a| a.id == "operator")
            }) && guesses
                .iter()
                .any(|e| e.target.as_ref().is_some_and(|t| t.r#type == "email" && t.id == "nobody@example.com"))
        }
    })
    .await;
    assert!(found, "the rotation and the guess are in the platform log");
    // A user is in no platform org: the nil org is nobody's to read.
    let user = p.api.signup().await;
    let nil = uuid::Uuid::nil();
    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{nil}/audit-log"), Some(&user.token)).await.status, 404);
}
