//! API keys: format, scopes, pinning, expiry, bootstrap, management with a key, whoami,
//! verification, MCP tokens.

use std::time::Duration;

use futures_util::future::join_all;
use keyplane_common::config::Target;
use keyplane_e2e::{Platform, eventually};
use keyplane_proto::identity::v1::{AuthenticateRequest, identity_service_client::IdentityServiceClient};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_shown_once_and_listed_without_secrets() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let created = p
        .api
        .create_key(
            &user.token,
            &org,
            json!({"name": "my-first-key", "environment": "live", "scopes": ["read:families", "write:policies"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.str("key");
    assert!(secret.starts_with("phosra_live_") && secret.len() == "phosra_live_".len() + 64, "{secret}");
    let hex = &secret["phosra_live_".len()..];
    let crc = u32::from_str_radix(&hex[56..], 16).unwrap();
    assert_eq!(crc, crc32(&secret[..secret.len() - 8]), "the last 8 hex are CRC-32 of the rest");
    assert_eq!(created.str("prefix"), secret[..16]);
    assert_eq!(created.body["scopes"], json!(["read:families", "write:policies"]));
    assert_eq!(created.str("status"), "active");

    let id = created.str("id");
    let listed = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.text.contains(&secret[16..]), "the secret is never listed");
    assert!(listed.body[0].get("key").is_none() && listed.body[0].get("hash").is_none());
    let one = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    assert_eq!((one.status, one.str("name")), (200, "my-first-key".to_owned()));

    // Only the SHA-256 is stored.
    use sea_orm::{ConnectionTrait, Statement};
    let db = p.database("keys").await;
    let rows = db
        .query_all_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT hash, prefix FROM credentials".to_owned(),
        ))
        .await
        .unwrap();
    let stored: Vec<String> = rows.iter().map(|r| r.try_get::<String>("", "hash").unwrap()).collect();
    let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(secret.as_bytes()));
    assert!(stored.contains(&sha));
    assert!(rows.iter().all(|r| !secret.contains(&r.try_get::<String>("", "hash").unwrap())));

    let revoked = p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    assert_eq!((revoked.status, revoked.str("status")), (200, "revoked".to_owned()));
    let refused = p.api.get("/api/v1/auth/me", Some(&secret)).await;
    assert_eq!((refused.status, refused.error_code()), (401, "key_revoked"));
}

fn crc32(s: &str) -> u32 {
    // Bitwise CRC-32 (IEEE), independent of the implementation under test.
    let mut crc = 0xffff_ffffu32;
    for byte in s.bytes() {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 { (crc >> 1) ^ 0xedb8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_pins_and_expiry_are_validated() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;

    let unknown = p
        .api
        .create_key(&user.token, &org, json!({"name": "k", "environment": "test", "scopes": ["calls:create"]}))
        .await;
    assert_eq!((unknown.status, unknown.error_code()), (400, "invalid_scope"));
    assert!(
        unknown.body["message"].as_str().unwrap().contains("write:families"),
        "names the valid scopes: {}",
        unknown.text
    );

    let past = p
        .api
        .create_key(
            &user.token,
            &org,
            json!({"name": "k", "environment": "test", "expires_at": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!((past.status, past.error_code()), (400, "validation_failed"));
    assert_eq!(past.body["details"][0]["field"], "expires_at");

    let no_env = p.api.create_key(&user.token, &org, json!({"name": "k", "environment": "prod"})).await;
    assert_eq!((no_env.status, no_env.body["details"][0]["field"].clone()), (400, json!("environment")));

    let full = p.api.create_key(&user.token, &org, json!({"name": "full", "environment": "test"})).await;
    assert_eq!(full.body["scopes"].as_array().unwrap().len(), 9, "omitted scopes: full permission");

    // A key can only mint keys within its own scopes.
    let (_, writer) = p
        .api
        .key(&user.token, &org, json!({"name": "w", "environment": "test", "scopes": ["read:keys", "write:keys"]}))
        .await;
    let wider =
        p.api.create_key(&writer, &org, json!({"name": "x", "environment": "test", "scopes": ["write:orgs"]})).await;
    assert_eq!((wider.status, wider.error_code()), (403, "insufficient_scope"));
    let narrower =
        p.api.create_key(&writer, &org, json!({"name": "y", "environment": "test", "scopes": ["read:keys"]})).await;
    assert_eq!(narrower.status, 201, "{}", narrower.text);
    assert_eq!(narrower.body["scopes"], json!(["read:keys"]), "never broader than the caller");

    let (_, expiring) = p
        .api
        .key(&user.token, &org, json!({"name": "soon", "environment": "test", "expires_at": (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339()}))
        .await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&expiring)).await.status, 200);
    p.clock.advance(Duration::from_secs(3));
    let expired = p.api.get("/api/v1/developer/families", Some(&expiring)).await;
    assert_eq!((expired.status, expired.error_code()), (401, "key_expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bootstrap_key_is_minted_once_even_under_concurrency() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let calls = (0..20).map(|_| {
        p.api.post("/api/ensure-dev-org", Some(&user.token), json!({"name": "Acme Corp", "bootstrap_key": true}))
    });
    let replies = join_all(calls).await;
    let minted: Vec<_> = replies.iter().filter_map(|r| r.body["first_key"]["key"].as_str()).collect();
    assert_eq!(minted.len(), 1, "exactly one bootstrap key: {replies:?}");
    let first = replies.iter().find(|r| r.body.get("first_key").is_some()).unwrap();
    assert_eq!(first.body["first_key"]["name"], "First key (bootstrap)");
    assert_eq!(first.body["first_key"]["environment"], "test");
    let org = first.str("id");
    let keys = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&user.token)).await;
    assert_eq!(keys.body.as_array().unwrap().len(), 1);
    // Never a second one, even once the first is revoked.
    let id = keys.body[0]["id"].as_str().unwrap();
    p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&user.token)).await;
    let (_, again) = p.api.dev_org(&user, true).await;
    assert!(again.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn management_routes_take_a_key_of_their_own_org() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, reader) = p
        .api
        .key(&user.token, &org, json!({"name": "r", "environment": "live", "scopes": ["read:keys", "read:orgs"]}))
        .await;
    let (_, families_only) =
        p.api.key(&user.token, &org, json!({"name": "f", "environment": "live", "scopes": ["read:families"]})).await;

    assert_eq!(p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&reader)).await.status, 200);
    let orgs = p.api.get("/api/v1/developers/orgs", Some(&reader)).await;
    assert_eq!(orgs.body["data"][0]["id"], org.as_str(), "a key lists its own org");
    let denied = p.api.get(&format!("/api/v1/developers/orgs/{org}/keys"), Some(&families_only)).await;
    assert_eq!((denied.status, denied.error_code()), (403, "insufficient_scope"));
    let write = p.api.create_key(&reader, &org, json!({"name": "x", "environment": "test"})).await;
    assert_eq!((write.status, write.error_code()), (403, "insufficient_scope"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_verify_and_authenticate_agree() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, key) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "pinned", "environment": "test", "scopes": ["read:families"], "resource_ids": ["fam_1"]}),
        )
        .await;

    let me = p.api.get("/api/v1/auth/me", Some(&key)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!(me.body["principal"], "api_key");
    assert_eq!((me.body["key"]["id"].clone(), me.body["org"]["id"].clone()), (json!(id), json!(org)));
    assert_eq!(me.body["key"]["resource_ids"], json!(["fam_1"]));
    assert_eq!(me.body["org"]["slug"], "acme-corp");

    let valid = p
        .api
        .post("/api/v1/keys/verify", None, json!({"key": key, "scope": "read:families", "resource_id": "fam_1"}))
        .await;
    assert_eq!(
        valid.body,
        json!({"valid": true, "key_id": id, "org_id": org, "environment": "test", "scopes": ["read:families"],
               "resource_ids": ["fam_1"], "in_grace": false}),
        "the whole verdict, and no code on a valid one"
    );
    for (body, code) in [
        (json!({"key": key, "scope": "write:families"}), "insufficient_scope"),
        (json!({"key": key, "resource_id": "fam_2"}), "resource_not_allowed"),
        (json!({"key": "phosra_test_nope"}), "invalid_api_key"),
        (json!({"key": with_last_char_changed(&key)}), "invalid_api_key"),
    ] {
        let reply = p.api.post("/api/v1/keys/verify", None, body).await;
        assert_eq!(
            (reply.status, reply.body["valid"].clone(), reply.body["code"].clone()),
            (200, json!(false), json!(code))
        );
        if code == "invalid_api_key" {
            assert_eq!(reply.body, json!({"valid": false, "code": code}), "nothing about any key or org");
        }
    }

    // identity.Authenticate over gRPC answers the principal the gateway used.
    let mut request = tonic::Request::new(AuthenticateRequest { credential: key.clone(), ..Default::default() });
    p.internal_auth("billing-backend").attach(request.metadata_mut(), None);
    let answer =
        IdentityServiceClient::new(p.channel(Target::Identity)).authenticate(request).await.unwrap().into_inner();
    let principal = keyplane_common::principal::Principal::try_from(answer.principal.unwrap()).unwrap();
    let keyplane_common::principal::Principal::ApiKey(k) = principal else { panic!("a key principal") };
    assert_eq!((k.key_id.to_string(), k.org_id.to_string(), k.resource_ids), (id, org, vec!["fam_1".to_owned()]));

    p.api.delete(&format!("/api/v1/developers/orgs/{}/keys/{}", k.org_id, k.key_id), Some(&user.token)).await;
    let revoked = p.api.post("/api/v1/keys/verify", None, json!({"key": key})).await;
    assert_eq!(revoked.body, json!({"valid": false, "code": "key_revoked"}), "a revoked key's org is not told");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_used_at_arrives_in_batches() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    let path = format!("/api/v1/developers/orgs/{org}/keys");
    assert!(p.api.get(&path, Some(&user.token)).await.body[0]["last_used_at"].is_null());
    for _ in 0..5 {
        p.api.get("/api/v1/developer/families", Some(&key)).await;
    }
    let seen = eventually(Duration::from_secs(5), || async {
        !p.api.get(&path, Some(&user.token)).await.body[0]["last_used_at"].is_null()
    })
    .await;
    assert!(seen, "last_used_at is set within a flush or two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_tokens_are_listed_created_and_revoked() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, key) = p.api.dev_org(&user, true).await;
    let created = p
        .api
        .post(
            "/api/v1/mcp-tokens",
            Some(&user.token),
            json!({"name": "claude", "org_id": org, "scopes": ["read:families"]}),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let plain = created.str("plain");
    assert!(plain.starts_with("phosra_mcp_"));
    assert_eq!(created.str("prefix"), plain[..16]);

    let listed = p.api.get("/api/v1/mcp-tokens", Some(&user.token)).await;
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&plain[16..]) && listed.body["data"][0].get("plain").is_none());

    // An MCP token opens only /mcp: not the data plane, not management.
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&plain)).await.status, 401);
    assert_eq!(p.api.get("/api/v1/developers/orgs", Some(&plain)).await.status, 401);
    // Keys cannot manage MCP tokens; another user cannot see or revoke them.
    assert_eq!(p.api.get("/api/v1/mcp-tokens", Some(&key.unwrap())).await.error_code(), "session_required");
    let eve = p.api.signup().await;
    let id = created.str("id");
    assert_eq!(p.api.delete(&format!("/api/v1/mcp-tokens/{id}"), Some(&eve.token)).await.status, 404);

    // The token is live until revoked, then refused: asked the way /mcp will ask.
    let authenticate = |credential: String| {
        let (channel, auth) = (p.channel(Target::Identity), p.internal_auth("mcp"));
        async move {
            let mut request = tonic::Request::new(AuthenticateRequest { credential, ..Default::default() });
            auth.attach(request.metadata_mut(), None);
            IdentityServiceClient::new(channel).authenticate(request).await
        }
    };
    let live = authenticate(plain.clone()).await.unwrap().into_inner().principal.unwrap();
    let keyplane_common::principal::Principal::McpToken(token) =
        keyplane_common::principal::Principal::try_from(live).unwrap()
    else {
        panic!("an MCP token principal")
    };
    assert_eq!(
        (token.token_id.to_string(), token.org_id.to_string(), token.user_id.to_string()),
        (id.clone(), org.clone(), user.id.clone())
    );
    let revoked = p.api.delete(&format!("/api/v1/mcp-tokens/{id}"), Some(&user.token)).await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    assert!(revoked.body["revoked_at"].is_string());
    let refused = authenticate(plain.clone()).await.unwrap_err();
    assert_eq!(keyplane_common::error::code_of(&refused), "key_revoked");
    let bad_scope = p
        .api
        .post("/api/v1/mcp-tokens", Some(&user.token), json!({"name": "x", "org_id": org, "scopes": ["admin"]}))
        .await;
    assert_eq!(bad_scope.error_code(), "invalid_scope");
}

/// The key with its last character changed (so its checksum no longer matches).
fn with_last_char_changed(key: &str) -> String {
    let last = if key.ends_with('0') { '1' } else { '0' };
    format!("{}{last}", &key[..key.len() - 1])
}

/// The gateway keeps verify's and keys/self's answers with the cached key, written once:
/// they follow the key all the same (a rename, a new limit, a regeneration's grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_kept_with_a_cached_key_follow_its_changes() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (id, key) = p
        .api
        .key(&user.token, &org, json!({"name": "before", "environment": "test", "scopes": ["read:families"]}))
        .await;
    let gateway_misses = || async {
        p.api.get("/metrics", None).await.metric(r#"keyplane_credential_cache_misses_total{layer="gateway"}"#)
    };
    let mut misses = Vec::new();
    for _ in 0..2 {
        let me = p.api.get("/api/v1/keys/self", Some(&key)).await;
        assert_eq!(
            (me.status, me.body["name"].clone(), me.body["rate_limit"].clone()),
            (200, json!("before"), json!(null))
        );
        let verdict = p.api.post("/api/v1/keys/verify", None, json!({"key": key})).await;
        assert_eq!((verdict.body["valid"].clone(), verdict.body["in_grace"].clone()), (json!(true), json!(false)));
        misses.push(gateway_misses().await);
    }
    assert_eq!(misses[0], misses[1], "the second round is answered from the cache, its kept answers included");

    let path = format!("/api/v1/developers/orgs/{org}/keys/{id}");
    let change = json!({"name": "after", "rate_limit": {"requests": 100, "per_seconds": 60}});
    let changed = p.api.call(reqwest::Method::PATCH, &path, Some(&user.token), Some(change)).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let me = p.api.get("/api/v1/keys/self", Some(&key)).await;
    assert_eq!(
        (me.body["name"].clone(), me.body["rate_limit"].clone()),
        (json!("after"), json!({"requests": 100, "per_seconds": 60})),
        "the answer written for the key before its change is not served after it"
    );

    let regenerated = p.api.regenerate(&user.token, &org, &id, 3600).await;
    assert_eq!(regenerated.status, 200, "{}", regenerated.text);
    let verdict = p.api.post("/api/v1/keys/verify", None, json!({"key": key})).await;
    assert_eq!((verdict.body["valid"].clone(), verdict.body["in_grace"].clone()), (json!(true), json!(true)));
    assert_eq!(p.api.get("/api/v1/keys/self", Some(&key)).await.body["in_grace"], json!(true));
    let successor = p.api.post("/api/v1/keys/verify", None, json!({"key": regenerated.str("key")})).await;
    assert_eq!((successor.body["valid"].clone(), successor.body["in_grace"].clone()), (json!(true), json!(false)));
}
