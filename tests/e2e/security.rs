//! The security review's findings, each tried the way an attacker (or an unlucky order of
//! events) would, through the real REST and gRPC surfaces.

use std::time::Duration;

use futures_util::future::join_all;
use keyplane_common::{config::Target, credential::SecretHash, principal::Principal};
use keyplane_e2e::{Platform, eventually, logs, proxy::Proxy};
use keyplane_proto::{
    identity::v1::{AuthenticateRequest, identity_service_client::IdentityServiceClient},
    keys::v1::{
        CreateKeyRequest, KeyUse, ListKeysRequest, RecordUseRequest, RotatedUse, ScopeList,
        keys_service_client::KeysServiceClient,
    },
};
use serde_json::{Value, json};

const FAMILIES: &str = "/api/v1/developer/families";

fn random_hex() -> String {
    format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>())
}

/// Item 1: the old secret of a regenerated key, in its grace period, used to be able to
/// regenerate the key again and take the newest secret.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_secret_in_its_grace_period_manages_nothing() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "leaked", "environment": "live"})).await;
    let rotated = p.api.regenerate(&user.token, &org, &id, 3600).await;
    assert_eq!(rotated.status, 200);

    let keys = format!("/api/v1/developers/orgs/{org}/keys");
    for attempt in [
        p.api.regenerate(&old, &org, &id, 0).await,
        p.api.create_key(&old, &org, json!({"name": "mine", "environment": "live", "scopes": ["read:keys"]})).await,
        p.api.delete(&format!("{keys}/{id}"), Some(&old)).await,
        p.api.get(&keys, Some(&old)).await,
        p.api.get(&format!("/api/v1/developers/orgs/{org}"), Some(&old)).await,
        p.api.get("/api/v1/developers/orgs", Some(&old)).await,
    ] {
        assert_eq!((attempt.status, attempt.error_code()), (401, "key_in_grace"), "{}", attempt.text);
    }
    // The data plane, whoami and verify still take it, and say it is in grace.
    assert_eq!(p.api.get(FAMILIES, Some(&old)).await.status, 200);
    let me = p.api.get("/api/v1/auth/me", Some(&old)).await;
    assert_eq!((me.status, me.body["key"]["in_grace"].clone()), (200, json!(true)));
    let verified = p.api.post("/api/v1/keys/verify", None, json!({"key": old})).await;
    assert_eq!((verified.body["valid"].clone(), verified.body["in_grace"].clone()), (json!(true), json!(true)));
    // Nothing changed: the newest secret still works.
    assert_eq!(p.api.get(FAMILIES, Some(&rotated.str("key"))).await.status, 200);

    // Behind the gateway, the services refuse it too (an internal caller holding it).
    let principal = authenticate(&p, &old).await;
    let mut request = tonic::Request::new(ListKeysRequest { org_id: org.clone(), page: None });
    p.internal_auth("billing-backend").attach(request.metadata_mut(), Some(&principal));
    let refused = KeysServiceClient::new(p.channel(Target::Keys)).list_keys(request).await.unwrap_err();
    assert_eq!(keyplane_common::error::code_of(&refused), "key_in_grace");
}

async fn authenticate(p: &Platform, credential: &str) -> Principal {
    let mut request =
        tonic::Request::new(AuthenticateRequest { credential: credential.to_owned(), ..Default::default() });
    p.internal_auth("billing-backend").attach(request.metadata_mut(), None);
    let answer = IdentityServiceClient::new(p.channel(Target::Identity)).authenticate(request).await.unwrap();
    Principal::try_from(answer.into_inner().principal.unwrap()).unwrap()
}

/// Item 2: an admin minted a full-permission key (scopes omitted) and deleted the org with
/// it. A key is never stronger than its creator's role, at every use.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_full_key_cannot_do_what_only_an_owner_may() {
    let p = Platform::start().await;
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let (_, admins_key) = p.api.key(&admin.token, &org, json!({"name": "full", "environment": "live"})).await;

    let deleted = p.api.delete(&format!("/api/v1/developers/orgs/{org}"), Some(&admins_key)).await;
    assert_eq!((deleted.status, deleted.error_code()), (403, "insufficient_role"), "{}", deleted.text);
    let owners = p
        .api
        .post(
            &format!("/api/v1/developers/orgs/{org}/invitations"),
            Some(&admins_key),
            json!({"email": "new-owner@example.com", "role": "owner"}),
        )
        .await;
    assert_eq!(owners.status, 403, "{}", owners.text);
    let promote = p
        .api
        .put(
            &format!("/api/v1/developers/orgs/{org}/members/{}", admin.id),
            Some(&admins_key),
            json!({"role": "owner"}),
        )
        .await;
    assert_eq!(promote.status, 403, "{}", promote.text);
    // What an admin may do, its key may do.
    assert_eq!(
        p.api
            .create_key(&admins_key, &org, json!({"name": "ci", "environment": "live", "scopes": ["read:keys"]}))
            .await
            .status,
        201
    );

    // An owner's full key may delete the org (seed 001's deleteOrg takes a key).
    let (_, owners_key) = p.api.key(&owner.token, &org, json!({"name": "root", "environment": "live"})).await;
    let by_owner = p.api.delete(&format!("/api/v1/developers/orgs/{org}"), Some(&owners_key)).await;
    assert_eq!(by_owner.status, 204, "{}", by_owner.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_creators_key_loses_the_power_at_its_next_use() {
    let p = Platform::start().await;
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let (_, key) = p.api.key(&admin.token, &org, json!({"name": "full", "environment": "live"})).await;
    let new_key = json!({"name": "x", "environment": "live", "scopes": ["read:keys"]});
    assert_eq!(p.api.create_key(&key, &org, new_key.clone()).await.status, 201);

    let demoted = p
        .api
        .put(
            &format!("/api/v1/developers/orgs/{org}/members/{}", admin.id),
            Some(&owner.token),
            json!({"role": "member"}),
        )
        .await;
    assert_eq!(demoted.status, 200, "{}", demoted.text);
    let refused = p.api.create_key(&key, &org, new_key).await;
    assert_eq!((refused.status, refused.error_code()), (403, "insufficient_role"), "{}", refused.text);
    // What a member may still do, the key may still do.
    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&key)).await.status, 200);
    assert_eq!(p.api.get(FAMILIES, Some(&key)).await.status, 200, "the data plane is every member's");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_members_keys_and_tokens_stop_at_once() {
    let p = Platform::start().await;
    let (replica, _stop) = p.gateway_replica().await;
    let (owner, admin) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &admin, "admin").await;
    let (_, key) = p.api.key(&admin.token, &org, json!({"name": "theirs", "environment": "live"})).await;
    let (_, owners) = p.api.key(&owner.token, &org, json!({"name": "ours", "environment": "live"})).await;
    let token = p
        .api
        .post(
            "/api/v1/mcp-tokens",
            Some(&admin.token),
            json!({"name": "agent", "org_id": org, "scopes": ["read:keys"]}),
        )
        .await
        .str("plain");
    assert_eq!(replica.get(FAMILIES, Some(&key)).await.status, 200);

    let removed =
        p.api.delete(&format!("/api/v1/developers/orgs/{org}/members/{}", admin.id), Some(&owner.token)).await;
    assert_eq!(removed.status, 204, "{}", removed.text);
    let refused =
        eventually(Duration::from_secs(1), || async { replica.get(FAMILIES, Some(&key)).await.status == 401 }).await;
    assert!(refused, "the former member's key works on another replica after a second");
    let reply = p.api.get(FAMILIES, Some(&key)).await;
    assert_eq!((reply.status, reply.error_code()), (401, "key_revoked"));
    let mut request = tonic::Request::new(AuthenticateRequest { credential: token, ..Default::default() });
    p.internal_auth("mcp").attach(request.metadata_mut(), None);
    let token_refused =
        IdentityServiceClient::new(p.channel(Target::Identity)).authenticate(request).await.unwrap_err();
    assert_eq!(keyplane_common::error::code_of(&token_refused), "key_revoked");
    assert_eq!(p.api.get(FAMILIES, Some(&owners)).await.status, 200, "nobody else's keys are touched");

    let audit = format!("/api/v1/developers/orgs/{org}/audit-log?action=api_key.revoked");
    let audited = eventually(Duration::from_secs(10), || async {
        p.api.get(&audit, Some(&owner.token)).await.body["data"][0]["metadata"]["reason"] == "member_removed"
    })
    .await;
    assert!(audited, "the revocation is audited with its reason");
}

/// Item 14 (last point): a plain member asking for a full-scope MCP token, and a token whose
/// creator is demoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_mcp_token_holds_no_more_than_its_creators_current_role() {
    let p = Platform::start().await;
    let (owner, member) = (p.api.signup().await, p.api.verified_signup().await);
    let (org, _) = p.api.dev_org(&owner, false).await;
    p.api.join(&owner.token, &org, &member, "admin").await;

    let admins = p
        .api
        .post(
            "/api/v1/mcp-tokens",
            Some(&member.token),
            json!({"name": "agent", "org_id": org, "scopes": ["write:keys"]}),
        )
        .await;
    assert_eq!(admins.status, 201, "{}", admins.text);
    let member_path = format!("/api/v1/developers/orgs/{org}/members/{}", member.id);
    p.api.put(&member_path, Some(&owner.token), json!({"role": "member"})).await;

    let full = p.api.post("/api/v1/mcp-tokens", Some(&member.token), json!({"name": "all", "org_id": org})).await;
    assert_eq!((full.status, full.error_code()), (403, "insufficient_role"), "{}", full.text);
    let writer = p
        .api
        .post("/api/v1/mcp-tokens", Some(&member.token), json!({"name": "w", "org_id": org, "scopes": ["write:keys"]}))
        .await;
    assert_eq!(writer.status, 403, "{}", writer.text);
    let reader = p
        .api
        .post("/api/v1/mcp-tokens", Some(&member.token), json!({"name": "r", "org_id": org, "scopes": ["read:keys"]}))
        .await;
    assert_eq!(reader.status, 201, "a member may read keys: {}", reader.text);

    // The token minted while an admin acts as its creator is now: a member.
    let principal = authenticate(&p, &admins.str("plain")).await;
    let mut request = tonic::Request::new(CreateKeyRequest {
        org_id: org.clone(),
        name: "from an agent".into(),
        environment: keyplane_proto::types::v1::Environment::Test.into(),
        scopes: Some(ScopeList { scopes: vec!["write:keys".into()] }),
        ..Default::default()
    });
    p.internal_auth("mcp").attach(request.metadata_mut(), Some(&principal));
    let refused = KeysServiceClient::new(p.channel(Target::Keys)).create_key(request).await.unwrap_err();
    assert_eq!(keyplane_common::error::code_of(&refused), "insufficient_role");
}

/// Item 4: the gateway hears of a revocation before identity does, drops the key, asks
/// identity again, and identity answers from its own stale cache. Here identity never
/// hears at all (it follows another Redis namespace): the order cannot matter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_grant_from_a_replica_that_missed_the_revocation_is_never_kept() {
    let p = Platform::start().await;
    let deaf = format!("{}deaf:", p.env.redis_prefix);
    let (identity, _i) = p.identity_replica(&[("KEYPLANE_REDIS_PREFIX", deaf)]).await;
    let (gateway, _g) = p.gateway_replica_with(|c| c.identity_addr = identity).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, key) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "live"})).await;
    for _ in 0..3 {
        assert_eq!(gateway.get(FAMILIES, Some(&key)).await.status, 200, "both caches hold the grant");
    }
    assert_eq!(p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await.status, 200);
    let refused =
        eventually(Duration::from_secs(1), || async { gateway.get(FAMILIES, Some(&key)).await.status == 401 }).await;
    assert!(refused, "the gateway kept the stale grant its identity replica answered");
    for _ in 0..5 {
        assert_eq!(gateway.get(FAMILIES, Some(&key)).await.status, 401, "and never takes it back");
    }
}

/// Item 5: a cache write that failed is retried later; if a revocation succeeded in
/// between, the old code's retry wrote the old "valid" record back over it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_retry_of_an_older_cache_write_cannot_undo_a_revocation() {
    let p = Platform::start().await;
    let redis = p.env.redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = Proxy::start(redis).await;
    let (keys, _k) = p.keys_replica(&[("KEYPLANE_REDIS_URL", proxy.redis_url())]).await;
    let (gateway, _g) = p.gateway_replica_with(|c| c.keys_addr = keys).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "live"})).await;
    assert_eq!(p.api.get(FAMILIES, Some(&old)).await.status, 200);

    // The regeneration commits, but its cache write fails and waits for a retry…
    proxy.cut();
    let rotated = gateway.regenerate(&user.token, &org, &id, 3600).await;
    assert_eq!(rotated.status, 200, "{}", rotated.text);
    let new = rotated.str("key");
    // …while the revocation succeeds everywhere.
    assert_eq!(p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await.status, 200);
    proxy.restore();
    tokio::time::sleep(Duration::from_millis(3500)).await;

    for secret in [&old, &new] {
        let record = cached_record(&p, secret).await.expect("a record in Redis");
        assert!(record["revoked"].as_bool().unwrap(), "the retry undid the revocation in Redis: {record}");
        let (fresh, _stop) = p.gateway_replica().await;
        let reply = fresh.get(FAMILIES, Some(secret)).await;
        assert_eq!((reply.status, reply.error_code()), (401, "key_revoked"));
    }
}

/// What Redis holds for a secret: its revision, and whether the record is revoked.
async fn cached_record(p: &Platform, secret: &str) -> Option<Value> {
    use prost::Message;
    let client = redis::Client::open(p.env.redis_url.as_str()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}cred:{}", p.env.redis_prefix, SecretHash::of(secret).to_hex());
    let stored: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut connection).await.unwrap();
    let stored = stored?;
    // `<revision>:<record>`; a bare record is read too (what a plain overwrite leaves).
    let after_revision = stored
        .iter()
        .position(|b| *b == b':')
        .filter(|colon| stored[..*colon].iter().all(u8::is_ascii_digit))
        .map_or(&stored[..], |colon| &stored[colon + 1..]);
    let found = keyplane_proto::keys::v1::LookupByHashResponse::decode(after_revision).ok()?;
    let record = found.record?;
    Some(json!({"revision": record.revision, "revoked": record.revoked_at.is_some()}))
}

/// Item 6: any 401 from identity used to be cached on the key: a misconfigured internal
/// secret turned every valid key into `invalid_api_key` for 30 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_internal_auth_failure_is_a_503_never_a_verdict_on_the_key() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();

    // A gateway whose secret the services do not know.
    let (misconfigured, _g) = p.gateway_replica_custom(&[("KEYPLANE_INTERNAL_SECRET", random_hex())], |_| {}).await;
    for _ in 0..2 {
        let reply = misconfigured.get(FAMILIES, Some(&key)).await;
        assert_eq!((reply.status, reply.error_code()), (503, "service_unavailable"), "{}", reply.text);
        assert_eq!(reply.header("retry-after"), Some("1"));
    }
    // An identity replica that the keys service refuses (it signs with a secret keys does
    // not know, while still accepting the gateway's).
    let rotated = format!("{},{}", random_hex(), p.internal_secret);
    let (identity, _i) = p.identity_replica(&[("KEYPLANE_INTERNAL_SECRET", rotated)]).await;
    let (gateway, _h) = p.gateway_replica_with(|c| c.identity_addr = identity).await;
    for _ in 0..2 {
        let reply = gateway.get(FAMILIES, Some(&key)).await;
        assert_eq!((reply.status, reply.error_code()), (503, "service_unavailable"), "{}", reply.text);
    }
    assert_eq!(p.api.get(FAMILIES, Some(&key)).await.status, 200, "the key itself is fine");
}

/// Item 7: `/families//<id>` passed the pin check with an empty segment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paths_that_could_step_around_a_pin_are_refused() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, writer) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "w", "environment": "test", "scopes": ["read:families", "write:families"]}),
        )
        .await;
    let allowed = p.api.post(FAMILIES, Some(&writer), json!({"name": "Pinned"})).await.str("id");
    let other = p.api.post(FAMILIES, Some(&writer), json!({"name": "Other"})).await.str("id");
    let (_, pinned) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "p", "environment": "test", "scopes": ["read:families"], "resource_ids": [allowed]}),
        )
        .await;
    for path in [
        format!("{FAMILIES}//{other}"),
        format!("{FAMILIES}/./{other}"),
        format!("{FAMILIES}/{allowed}/../{other}"),
        format!("{FAMILIES}/{allowed}%2F..%2F{other}"),
        format!("{FAMILIES}/%2e%2e/families/{other}"),
    ] {
        let answer = raw_get(&p, &path, &pinned).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains(r#""code":"invalid_path""#), "{path}: {answer}");
    }
    assert!(raw_get(&p, &format!("{FAMILIES}/{other}"), &pinned).await.starts_with("HTTP/1.1 403"));
    assert!(raw_get(&p, &format!("{FAMILIES}/{allowed}"), &pinned).await.starts_with("HTTP/1.1 200"));
}

/// A GET sent byte for byte (an HTTP client would normalise the path first).
async fn raw_get(p: &Platform, path: &str, bearer: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(p.addr(Target::Gateway)).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {bearer}\r\nconnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

/// Item 8: a key creating a key could pick another environment and a later expiry, and
/// omitted scopes gave the child the parent's where the contract says full permission.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_child_key_stays_within_its_parent() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let parent_expiry = chrono::Utc::now() + chrono::Duration::days(1);
    let (_, parent) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "ci", "environment": "test", "scopes": ["read:keys", "write:keys"], "expires_at": parent_expiry}),
        )
        .await;
    let sooner = chrono::Utc::now() + chrono::Duration::hours(1);
    let later = chrono::Utc::now() + chrono::Duration::days(30);
    for (body, code) in [
        (
            json!({"name": "live", "environment": "live", "scopes": ["read:keys"], "expires_at": sooner}),
            "environment_not_allowed",
        ),
        (json!({"name": "forever", "environment": "test", "scopes": ["read:keys"]}), "expiry_not_allowed"),
        (
            json!({"name": "longer", "environment": "test", "scopes": ["read:keys"], "expires_at": later}),
            "expiry_not_allowed",
        ),
        (json!({"name": "full", "environment": "test", "expires_at": sooner}), "insufficient_scope"),
        (
            json!({"name": "wider", "environment": "test", "scopes": ["write:orgs"], "expires_at": sooner}),
            "insufficient_scope",
        ),
    ] {
        let reply = p.api.create_key(&parent, &org, body.clone()).await;
        assert_eq!((reply.status, reply.error_code()), (403, code), "{body}: {}", reply.text);
    }
    let child = p
        .api
        .create_key(
            &parent,
            &org,
            json!({"name": "ok", "environment": "test", "scopes": ["read:keys"], "expires_at": sooner}),
        )
        .await;
    assert_eq!(child.status, 201, "{}", child.text);
    assert_eq!(
        p.api
            .get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token))
            .await
            .body
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

/// Item 10: with a trusted proxy, the leftmost `X-Forwarded-For` entry (the client's to
/// write) used to be taken as the client's address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_is_the_one_the_trusted_proxy_saw() {
    let p = Platform::start().await;
    let (behind_proxy, _g) =
        p.gateway_replica_with(|c| c.trusted_proxies = keyplane_gateway::config::TrustedProxies::Count(1)).await;
    let (by_network, _n) = p
        .gateway_replica_with(|c| {
            c.trusted_proxies = keyplane_gateway::config::TrustedProxies::parse("127.0.0.0/8, 10.0.0.0/8").unwrap()
        })
        .await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    for (gateway, forwarded, expected) in [
        (&behind_proxy, "198.51.100.66, 203.0.113.7", "203.0.113.7"),
        (&by_network, "198.51.100.66, 203.0.113.8, 10.1.2.3", "203.0.113.8"),
    ] {
        let created = gateway
            .send(
                gateway
                    .http
                    .post(gateway.url(&format!("/api/v1/developers/orgs/{org}/keys")))
                    .bearer_auth(&user.token)
                    .header("x-forwarded-for", forwarded)
                    .json(&json!({"name": expected, "environment": "test"})),
            )
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        let id = created.str("id");
        let audit = format!("/api/v1/developers/orgs/{org}/audit-log?action=api_key.created");
        let mut seen = String::new();
        for _ in 0..200 {
            let events = p.api.get(&audit, Some(&user.token)).await.body["data"].clone();
            if let Some(event) = events.as_array().and_then(|d| d.iter().find(|e| e["target"]["id"] == id.as_str())) {
                seen = event["ip"].as_str().unwrap_or_default().to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(seen, expected, "forwarded for {forwarded:?}");
    }
}

/// Item 11: a burst of unauthenticated logins each took 19 MiB in an unbounded pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_is_bounded_and_told_to_retry() {
    let p = Platform::start_with(&[
        ("KEYPLANE_PASSWORD_HASH_CONCURRENCY", "1".to_owned()),
        ("KEYPLANE_PASSWORD_HASH_WAIT_MS", "0".to_owned()),
    ])
    .await;
    let user = loop {
        let reply = p
            .api
            .post(
                "/api/v1/auth/signup",
                None,
                json!({"email": format!("u-{}@example.com", uuid::Uuid::new_v4().simple()), "password": "correct horse battery"}),
            )
            .await;
        if reply.status == 201 {
            break reply.body["user"]["email"].as_str().unwrap().to_owned();
        }
    };
    let burst = (0..16)
        .map(|_| p.api.post("/api/v1/auth/login", None, json!({"email": user, "password": "correct horse battery"})));
    let replies = join_all(burst).await;
    let busy: Vec<_> = replies.iter().filter(|r| r.status == 503).collect();
    assert!(replies.iter().all(|r| matches!(r.status, 200 | 503)), "{replies:?}");
    assert!(!busy.is_empty(), "sixteen logins at once with one hash at a time: some must wait");
    assert!(replies.iter().any(|r| r.status == 200));
    for reply in busy {
        assert_eq!((reply.error_code(), reply.header("retry-after")), ("overloaded", Some("1")));
    }
}

/// Item 12: uses of a rotated key from more than 100 sources were folded into one entry,
/// losing the addresses of the leaked-key case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_key_uses_from_many_sources_keep_their_addresses() {
    let p = Platform::start().await;
    let (gateway, _g) =
        p.gateway_replica_with(|c| c.trusted_proxies = keyplane_gateway::config::TrustedProxies::Count(1)).await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, old) = p.api.key(&user.token, &org, json!({"name": "leaked", "environment": "live"})).await;
    assert_eq!(p.api.regenerate(&user.token, &org, &id, 3600).await.status, 200);
    let sources = 150;
    for i in 0..sources {
        let reply = gateway
            .send(
                gateway
                    .http
                    .get(gateway.url(FAMILIES))
                    .bearer_auth(&old)
                    .header("x-forwarded-for", format!("198.51.100.{i}")),
            )
            .await;
        assert_eq!(reply.status, 200);
    }
    let audit = format!("/api/v1/developers/orgs/{org}/audit-log?action=rotated_key_used&limit=100");
    let mut addresses = std::collections::BTreeSet::new();
    let mut all_seen = false;
    for _ in 0..100 {
        addresses.clear();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("{audit}&cursor={c}"),
                None => audit.clone(),
            };
            let page = p.api.get(&path, Some(&user.token)).await;
            for event in page.body["data"].as_array().cloned().unwrap_or_default() {
                addresses.insert(event["ip"].as_str().unwrap_or_default().to_owned());
            }
            cursor = page.body["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                break;
            }
        }
        all_seen = addresses.len() == sources;
        if all_seen {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(all_seen, "{} of {sources} addresses in the audit log: {addresses:?}", addresses.len());
}

/// Item 12: a retried flush used to write its audit events twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_use_batch_delivered_twice_is_applied_once() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, _) = p.api.key(&user.token, &org, json!({"name": "k", "environment": "live"})).await;
    let now = keyplane_common::time::to_proto(chrono::Utc::now());
    let batch = RecordUseRequest {
        batch_id: uuid::Uuid::now_v7().to_string(),
        uses: vec![KeyUse {
            key_id: id.clone(),
            last_used_at: Some(now),
            rotated_uses: vec![RotatedUse {
                org_id: org.clone(),
                first_at: Some(now),
                last_at: Some(now),
                count: 7,
                ip: "192.0.2.10".into(),
                user_agent: "retry/1".into(),
                request_id: "r1".into(),
                event_id: uuid::Uuid::now_v7().to_string(),
            }],
        }],
    };
    for _ in 0..2 {
        let mut request = tonic::Request::new(batch.clone());
        p.internal_auth("gateway").attach(request.metadata_mut(), None);
        KeysServiceClient::new(p.channel(Target::Keys)).record_use(request).await.unwrap();
    }
    let audit = format!("/api/v1/developers/orgs/{org}/audit-log?action=rotated_key_used");
    let arrived = eventually(Duration::from_secs(10), || async {
        p.api.get(&audit, Some(&user.token)).await.body["data"].as_array().is_some_and(|d| !d.is_empty())
    })
    .await;
    assert!(arrived);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = p.api.get(&audit, Some(&user.token)).await.body["data"].clone();
    assert_eq!(events.as_array().unwrap().len(), 1, "once, not twice: {events}");
    assert_eq!(events[0]["metadata"]["count"], 7);
}

/// Item 13: session signing keys were stored as plaintext PKCS#8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_keys_are_sealed_and_the_operator_key_rotates() {
    use sea_orm::{ConnectionTrait, Statement};
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let db = p.database("identity").await;
    let stored = || async {
        let rows = db
            .query_all_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT kid, private_pkcs8 FROM signing_keys".to_owned(),
            ))
            .await
            .unwrap();
        rows.iter()
            .map(|r| (r.try_get::<String>("", "kid").unwrap(), r.try_get::<Vec<u8>>("", "private_pkcs8").unwrap()))
            .collect::<Vec<_>>()
    };
    let before = stored().await;
    let sealer = p.sealer();
    for (kid, sealed) in &before {
        assert!(keyplane_common::crypto::is_sealed(sealed));
        let der = sealer.open(sealed, &format!("signing_key:{kid}")).unwrap();
        assert!(!sealed.windows(der.len()).any(|w| w == der.as_slice()), "the private key is not in the row");
        // PKCS#8 for Ed25519 starts with this sequence; the stored bytes do not.
        assert!(!sealed.starts_with(&[0x30, 0x2e]));
    }

    // The operator rotates: the new key first, the old one after it.
    let new_key = random_hex();
    let old_key = p.setting("KEYPLANE_ENCRYPTION_KEY");
    let (identity, _i) = p.identity_replica(&[("KEYPLANE_ENCRYPTION_KEY", format!("{new_key},{old_key}"))]).await;
    let (gateway, _g) = p.gateway_replica_with(|c| c.identity_addr = identity).await;
    assert_eq!(gateway.get("/api/v1/auth/me", Some(&user.token)).await.status, 200, "old sessions still verify");
    let resealed = keyplane_common::crypto::Sealer::parse(&new_key).unwrap();
    for (kid, sealed) in stored().await {
        assert!(resealed.open(&sealed, &format!("signing_key:{kid}")).is_ok(), "re-sealed with the new key");
    }

    // A replica without the key the rows are sealed with refuses to start, saying why.
    let shared = p.shared_with(&[("KEYPLANE_ENCRYPTION_KEY", random_hex())]);
    let listener = keyplane_common::testsuite::listener().await;
    let stop = tokio_util::sync::CancellationToken::new();
    let failed = tokio::time::timeout(
        Duration::from_secs(10),
        keyplane_identity::serve(p.config.identity.clone(), shared, listener, stop.clone()),
    )
    .await
    .expect("start-up ends")
    .unwrap_err();
    assert!(format!("{failed:#}").contains("KEYPLANE_ENCRYPTION_KEY"), "{failed:#}");
}

/// Item 13: responses that carry a secret could be kept by a cache on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_that_carry_a_secret_are_never_stored() {
    let p = Platform::start().await;
    let email = format!("s-{}@example.com", uuid::Uuid::new_v4().simple());
    let signup =
        p.api.post("/api/v1/auth/signup", None, json!({"email": email, "password": "correct horse battery"})).await;
    let token = signup.str("access_token");
    let login =
        p.api.post("/api/v1/auth/login", None, json!({"email": email, "password": "correct horse battery"})).await;
    let refresh = p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": login.str("refresh_token")})).await;
    let org = p.api.post("/api/ensure-dev-org", Some(&token), json!({"bootstrap_key": true})).await;
    let org_id = org.str("id");
    let key = p.api.create_key(&token, &org_id, json!({"name": "k", "environment": "test"})).await;
    let regenerated = p.api.regenerate(&token, &org_id, &key.str("id"), 0).await;
    let mcp = p.api.post("/api/v1/mcp-tokens", Some(&token), json!({"name": "t", "org_id": org_id})).await;
    for (what, reply) in [
        ("signup", &signup),
        ("login", &login),
        ("refresh", &refresh),
        ("ensure-dev-org", &org),
        ("create key", &key),
        ("regenerate", &regenerated),
        ("mcp token", &mcp),
    ] {
        assert!(reply.status < 300, "{what}: {}", reply.text);
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{what}");
    }
}

/// Item 13: the data-plane warning logged the upstream URL with its query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_plane_failure_logs_no_query() {
    let p = Platform::start().await;
    let closed = Platform::closed_address().await;
    let (gateway, _g) = p.gateway_routing(&[("/api/v1/developer/gone", &closed)], |_| {}).await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let marker = format!("leak-{}", uuid::Uuid::new_v4().simple());
    let reply = gateway.get(&format!("/api/v1/developer/gone?token={marker}"), Some(&key.unwrap())).await;
    assert_eq!((reply.status, reply.error_code()), (502, "bad_gateway"));
    let logs = logs::all();
    assert!(logs.contains("data-plane backend unreachable"), "the failure is logged");
    assert!(!logs.contains(&marker), "the query reached the log");
}

/// Item 14: a malformed org id answered 400 on some routes and 404 on others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_org_id_is_404_on_every_route() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let bad = "not-a-uuid";
    for reply in [
        p.api.get(&format!("/api/v1/developers/orgs/{bad}"), Some(&user.token)).await,
        p.api.get(&format!("/api/v1/developers/orgs/{bad}/keys"), Some(&user.token)).await,
        p.api.create_key(&user.token, bad, json!({"name": "k", "environment": "test"})).await,
        p.api.get(&format!("/api/v1/developers/orgs/{bad}/keys/{}", uuid::Uuid::now_v7()), Some(&user.token)).await,
        p.api.get(&format!("/api/v1/developers/orgs/{bad}/members"), Some(&user.token)).await,
        p.api.get(&format!("/api/v1/developers/orgs/{bad}/invitations"), Some(&user.token)).await,
        p.api.get(&format!("/api/v1/developers/orgs/{bad}/audit-log"), Some(&user.token)).await,
        p.api.post("/api/v1/mcp-tokens", Some(&user.token), json!({"name": "t", "org_id": bad})).await,
    ] {
        assert_eq!(reply.status, 404, "{}", reply.text);
    }
}

/// Item 14: malformed JSON was `validation_failed` when an unknown field came first, and
/// `limit=0` quietly meant the default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_json_and_bad_limits_are_named_as_such() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let bad_json = p
        .api
        .send(
            p.api
                .http
                .post(p.api.url("/api/v1/developers/orgs"))
                .bearer_auth(&user.token)
                .body(r#"{"colour": "red", "name": }"#),
        )
        .await;
    assert_eq!((bad_json.status, bad_json.error_code()), (400, "invalid_json"), "{}", bad_json.text);
    for path in [
        "/api/v1/developers/orgs?limit=0".to_owned(),
        format!("/api/v1/developers/orgs/{org}/keys?limit=0"),
        format!("/api/v1/developers/orgs/{org}/audit-log?limit=101"),
        "/api/v1/mcp-tokens?limit=0".to_owned(),
    ] {
        let reply = p.api.get(&path, Some(&user.token)).await;
        assert_eq!((reply.status, reply.error_code()), (400, "validation_failed"), "{path}: {}", reply.text);
        assert_eq!(reply.body["details"][0]["field"], "limit");
    }
    // A wrong type is named by its field, not by the value it was given.
    let wrong_type =
        p.api.post(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token), json!({"name": 5})).await;
    assert_eq!((wrong_type.status, wrong_type.error_code()), (400, "validation_failed"), "{}", wrong_type.text);
    assert_eq!(wrong_type.body["details"][0]["field"], "name", "{}", wrong_type.text);
    // A query parameter that does not read is named too, in our words.
    for (path, field) in [
        (format!("/api/v1/developers/orgs/{org}/audit-log?from=notadate"), "from"),
        (format!("/api/v1/developers/orgs/{org}/keys?limit=abc"), "limit"),
    ] {
        let reply = p.api.get(&path, Some(&user.token)).await;
        assert_eq!((reply.status, reply.error_code()), (400, "invalid_query"), "{path}: {}", reply.text);
        assert_eq!(reply.body["details"][0]["field"], field, "{path}: {}", reply.text);
        assert!(!reply.text.contains("Failed to deserialize"), "{path}: {}", reply.text);
    }
}

/// Item 14: six users creating orgs of one name at once: some of them used to get a 500
/// after the slug retries ran out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_creating_orgs_of_one_name_at_once_all_succeed() {
    let p = Platform::start().await;
    let users = join_all((0..6).map(|_| p.api.signup())).await;
    let name = format!("Race {}", uuid::Uuid::new_v4().simple());
    let replies =
        join_all(users.iter().map(|u| p.api.post("/api/v1/developers/orgs", Some(&u.token), json!({"name": name}))))
            .await;
    let slugs: std::collections::BTreeSet<String> = replies
        .iter()
        .map(|r| {
            assert_eq!(r.status, 201, "{}", r.text);
            r.str("slug")
        })
        .collect();
    assert_eq!(slugs.len(), 6, "six orgs, six slugs: {slugs:?}");
}

/// Item 14: a PostgreSQL shutting down (SQLSTATE 57P01) answered 500.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_dropping_connections_is_503_never_500() {
    use sea_orm::{ConnectionTrait, Statement};
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let admin = sea_orm::Database::connect(keyplane_common::testsuite::admin_database_url()).await.unwrap();
    let terminate = format!(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
        p.env.database_name
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let killer = {
        let stop = stop.clone();
        tokio::spawn(async move {
            while !stop.is_cancelled() {
                let _ =
                    admin.execute_raw(Statement::from_string(admin.get_database_backend(), terminate.clone())).await;
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        })
    };
    let mut statuses = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while tokio::time::Instant::now() < deadline {
        let replies = join_all([
            p.api.get("/api/v1/developers/orgs", Some(&user.token)),
            p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)),
        ])
        .await;
        for reply in replies {
            assert_ne!(reply.status, 500, "{}", reply.text);
            if reply.status == 503 {
                assert_eq!(reply.header("retry-after"), Some("1"));
            }
            statuses.push(reply.status);
        }
    }
    stop.cancel();
    killer.await.unwrap();
    assert!(statuses.iter().all(|s| matches!(s, 200 | 503)), "{statuses:?}");
    // The pools recover by themselves.
    let recovered = eventually(Duration::from_secs(10), || async {
        p.api.get("/api/v1/developers/orgs", Some(&user.token)).await.status == 200
    })
    .await;
    assert!(recovered);
}

/// Item 14: a session revocation whose cache write failed was only logged: replicas that
/// had cached the session as active kept accepting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_session_revocation_write_is_retried() {
    let p = Platform::start().await;
    let redis = p.env.redis_url.trim_start_matches("redis://").trim_end_matches('/').to_owned();
    let proxy = Proxy::start(redis).await;
    let (identity, _i) = p.identity_replica(&[("KEYPLANE_REDIS_URL", proxy.redis_url())]).await;
    let (gateway, _g) = p.gateway_replica_with(|c| c.identity_addr = identity).await;
    let user = p.api.signup().await;
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&user.token)).await.status, 200, "cached as active");

    proxy.cut();
    let out = gateway.post("/api/v1/auth/logout", Some(&user.token), json!({})).await;
    assert_eq!(out.status, 204, "{}", out.text);
    proxy.restore();
    let refused = eventually(Duration::from_secs(5), || async {
        p.api.get("/api/v1/auth/me", Some(&user.token)).await.status == 401
    })
    .await;
    assert!(refused, "the other replica still takes the logged-out session");
}

/// Item 14: the audit log is read newest first, but its index ordered by time: every page
/// needed a sort of the org's whole log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_is_read_in_index_order() {
    use sea_orm::{ConnectionTrait, Statement};
    let p = Platform::start().await;
    let db = p.database("orgs").await;
    let org = uuid::Uuid::now_v7();
    for (query, plan_of) in [
        (format!("SELECT * FROM audit_events WHERE org_id = '{org}' ORDER BY id DESC LIMIT 51"), "the whole log"),
        (
            format!(
                "SELECT * FROM audit_events WHERE org_id = '{org}' AND action = 'api_key.created' ORDER BY id DESC LIMIT 51"
            ),
            "one action",
        ),
    ] {
        use sea_orm::TransactionTrait;
        let txn = db.begin().await.unwrap();
        // On an empty table a sequential scan is always cheapest: ask for the best index.
        txn.execute_unprepared("SET LOCAL enable_seqscan = off").await.unwrap();
        let row = txn
            .query_one_raw(Statement::from_string(db.get_database_backend(), format!("EXPLAIN (FORMAT JSON) {query}")))
            .await
            .unwrap()
            .unwrap();
        txn.rollback().await.unwrap();
        let plan: Value = row.try_get("", "QUERY PLAN").unwrap();
        let text = plan.to_string();
        assert!(!text.contains("\"Sort\""), "{plan_of}: the page needs a sort: {text}");
        // The org is found through the index, not filtered out of a scan of every org's log.
        let scan = &plan[0]["Plan"]["Plans"][0];
        assert!(scan["Index Cond"].as_str().is_some_and(|c| c.contains("org_id =")), "{plan_of}: {text}");
        assert!(scan.get("Filter").is_none(), "{plan_of}: {text}");
    }
}
