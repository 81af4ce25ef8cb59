//! GitHub's secret-scanning alerts, with a local ECDSA key standing in for GitHub's and a
//! local server publishing it: a real leaked key stops everywhere, audited, its owners
//! mailed; anything unsigned, or not ours, changes nothing.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use axum::{Json, Router, extract::State, routing::get};
use base64::Engine;
use keyplane_e2e::{Api, Platform, Reply, eventually};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALERTS: &str = "/api/v1/secret-scanning/github";

/// A signing key of the stand-in GitHub.
struct GithubKey {
    id: String,
    pair: EcdsaKeyPair,
}

impl GithubKey {
    fn new(id: &str) -> Self {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING).expect("a P-256 key");
        Self { id: id.to_owned(), pair }
    }

    fn published(&self) -> Value {
        let der = self.pair.public_key().as_der().expect("SPKI DER");
        let pem = pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_ref().to_vec()));
        json!({"key_identifier": self.id, "key": pem, "is_current": true})
    }

    fn sign(&self, body: &[u8]) -> String {
        let signature = self.pair.sign(&SystemRandom::new(), body).expect("signs");
        base64::engine::general_purpose::STANDARD.encode(signature.as_ref())
    }
}

/// The stand-in for GitHub's key-set endpoint: what it publishes, and how often it was asked.
#[derive(Clone, Default)]
struct KeySet {
    published: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
}

impl KeySet {
    async fn serve(&self) -> String {
        async fn keys(State(set): State<KeySet>) -> Json<Value> {
            set.fetches.fetch_add(1, Ordering::SeqCst);
            Json(json!({"public_keys": *set.published.lock().unwrap()}))
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/meta/public_keys/secret_scanning", listener.local_addr().unwrap());
        let app = Router::new().route("/meta/public_keys/secret_scanning", get(keys)).with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    }

    fn publish(&self, key: &GithubKey) {
        self.published.lock().unwrap().push(key.published());
    }

    fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}

async fn alert(api: &Api, key_id: Option<&str>, signature: Option<String>, body: &[u8]) -> Reply {
    let mut request = api.http.post(api.url(ALERTS)).header("content-type", "application/json").body(body.to_vec());
    if let Some(key_id) = key_id {
        request = request.header("Github-Public-Key-Identifier", key_id);
    }
    if let Some(signature) = signature {
        request = request.header("Github-Public-Key-Signature", signature);
    }
    api.send(request).await
}

async fn signed_alert(api: &Api, key: &GithubKey, matches: &Value) -> Reply {
    let body = serde_json::to_vec(matches).unwrap();
    alert(api, Some(&key.id), Some(key.sign(&body)), &body).await
}

fn found(token: &str, token_type: &str) -> Value {
    json!({"token": token, "type": token_type, "url": "https://github.com/someone/app/blob/main/.env", "source": "content"})
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

async fn platform_with(set: &KeySet) -> Platform {
    let url = set.serve().await;
    Platform::start_with(&[("KEYPLANE_GITHUB_KEYS_URL", url)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_alert_stops_a_leaked_key_everywhere_audits_it_and_mails_the_owners() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    let p = platform_with(&set).await;
    let (replica, _stop) = p.gateway_replica().await;
    let owner = p.api.verified_signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, leaked) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let (_, kept) = p.api.key(&owner.token, &org, json!({"name": "prod", "environment": "live"})).await;
    let token = p
        .api
        .post(
            "/api/v1/mcp-tokens",
            Some(&owner.token),
            json!({"name": "agent", "org_id": org, "scopes": ["read:keys"]}),
        )
        .await
        .str("plain");
    for _ in 0..2 {
        assert_eq!(replica.get("/api/v1/developer/families", Some(&leaked)).await.status, 200, "cached as active");
    }

    let matches = json!([found(&leaked, "phosra_live_key"), found(&token, "phosra_mcp_token")]);
    let reply = signed_alert(&p.api, &github, &matches).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let feedback = reply.body.as_array().unwrap();
    assert_eq!(feedback[0]["token_hash"], sha256_hex(&leaked));
    assert_eq!(feedback[0]["token_type"], "phosra_live_key");
    assert_eq!(feedback[0]["label"], "true_positive");
    assert!(leaked.starts_with(feedback[0]["key_prefix"].as_str().unwrap()), "the key's prefix");
    assert_eq!(feedback[1]["label"], "true_positive");
    assert!(!reply.text.contains(&leaked), "the answer never carries the secret");

    let refused = eventually(Duration::from_secs(1), || async {
        replica.get("/api/v1/developer/families", Some(&leaked)).await.status == 401
    })
    .await;
    assert!(refused, "the other replica still accepts the leaked key after 1 s");
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&kept)).await.status, 200, "other keys keep working");
    let mcp = p.api.post("/mcp", Some(&token), json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await;
    assert_eq!(mcp.status, 401, "the leaked MCP token is refused: {}", mcp.text);

    let events = eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 1).await;
    assert_eq!(events[0]["metadata"]["url"], "https://github.com/someone/app/blob/main/.env");
    assert_eq!(events[0]["metadata"]["source"], "content");
    assert_eq!(eventually_events(&p.api, &owner.token, &org, "mcp_token.leaked_revoked", 1).await.len(), 1);
    let mails = p.api.mailbox(&owner.email, "security_notice").await;
    assert_eq!(mails.len(), 2, "one mail per stopped credential");
    assert!(mails.iter().any(|m| m["body"].as_str().unwrap().contains(feedback[0]["key_prefix"].as_str().unwrap())));

    // GitHub retries: the same answer, and nothing happens twice.
    let again = signed_alert(&p.api, &github, &matches).await;
    assert_eq!(again.body, reply.body);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(p.api.audit_log(&owner.token, &org, "action=api_key.leaked_revoked").await.len(), 1);
    assert_eq!(p.api.mailbox(&owner.email, "security_notice").await.len(), 2);
}

/// Polls the audit log until `count` events of `action` are there (the outbox delivers).
async fn eventually_events(api: &Api, bearer: &str, org: &str, action: &str, count: usize) -> Vec<Value> {
    let query = format!("action={action}");
    eventually(Duration::from_secs(10), || async { api.audit_log(bearer, org, &query).await.len() >= count }).await;
    api.audit_log(bearer, org, &query).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_secret_ends_its_grace_and_the_new_secret_keeps_working() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    let p = platform_with(&set).await;
    let owner = p.api.verified_signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (id, old) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "test"})).await;
    let new = p.api.regenerate(&owner.token, &org, &id, 3600).await.str("key");
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&old)).await.status, 200, "in its grace period");

    let reply = signed_alert(&p.api, &github, &json!([found(&old, "phosra_test_key")])).await;
    assert_eq!(reply.body[0]["label"], "true_positive", "{}", reply.text);
    let refused = eventually(Duration::from_secs(1), || async {
        p.api.get("/api/v1/developer/families", Some(&old)).await.status == 401
    })
    .await;
    assert!(refused, "the leaked previous secret still works");
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&new)).await.status, 200, "the new secret was not leaked");
    let events = eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 1).await;
    assert_eq!(events[0]["metadata"]["secret"], "previous");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_forged_or_oversized_alerts_are_refused_and_change_nothing() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    let p = platform_with(&set).await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, key) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let body = serde_json::to_vec(&json!([found(&key, "phosra_live_key")])).unwrap();

    let unsigned = alert(&p.api, None, None, &body).await;
    assert_eq!((unsigned.status, unsigned.error_code()), (401, "invalid_signature"));
    let no_signature = alert(&p.api, Some("github-1"), None, &body).await;
    assert_eq!((no_signature.status, no_signature.error_code()), (401, "invalid_signature"));
    let impostor = GithubKey::new("github-1");
    let forged = alert(&p.api, Some("github-1"), Some(impostor.sign(&body)), &body).await;
    assert_eq!(
        (forged.status, forged.error_code()),
        (401, "invalid_signature"),
        "signed by a key that is not GitHub's"
    );
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let altered = alert(&p.api, Some("github-1"), Some(github.sign(&body)), &tampered).await;
    assert_eq!(altered.status, 401, "the body changed after signing");
    let garbage = alert(&p.api, Some("github-1"), Some("not base64!".into()), &body).await;
    assert_eq!(garbage.status, 401);
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200, "nothing was revoked");

    let many: Vec<Value> = (0..1001).map(|_| found("phosra_live_nothing", "phosra_live_key")).collect();
    let oversized = signed_alert(&p.api, &github, &json!(many)).await;
    assert_eq!((oversized.status, oversized.error_code()), (413, "batch_too_large"));
    let not_json = alert(&p.api, Some("github-1"), Some(github.sign(b"{")), b"{").await;
    assert_eq!((not_json.status, not_json.error_code()), (400, "invalid_body"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_key_id_fetches_the_key_set_again_at_most_once_a_minute() {
    let set = KeySet::default();
    let first = GithubKey::new("github-1");
    set.publish(&first);
    let p = platform_with(&set).await;
    let nothing = json!([found("phosra_test_0000", "phosra_test_key")]);
    assert_eq!(signed_alert(&p.api, &first, &nothing).await.status, 200);
    assert_eq!(signed_alert(&p.api, &first, &nothing).await.status, 200);
    assert_eq!(set.fetches(), 1, "the key set is kept");

    // GitHub rotates: an alert signed by the new key makes one refetch, and verifies.
    let rotated = GithubKey::new("github-2");
    set.publish(&rotated);
    let reply = signed_alert(&p.api, &rotated, &nothing).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(set.fetches(), 2);
    // Another unknown id within the minute: refused, with no fetch.
    let unknown = GithubKey::new("github-3");
    let refused = signed_alert(&p.api, &unknown, &nothing).await;
    assert_eq!((refused.status, refused.error_code()), (401, "invalid_signature"));
    assert_eq!(set.fetches(), 2, "unknown ids cannot make the gateway hammer GitHub");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_is_a_false_positive_without_a_lookup_and_no_key_set_fails_closed() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    let p = platform_with(&set).await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, key) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    // The last hex digit changed: the checksum no longer matches.
    let last = key.chars().last().unwrap();
    let wrong_crc = format!("{}{}", &key[..key.len() - 1], if last == '0' { '1' } else { '0' });

    // A gateway that cannot reach the keys service at all: a lookup would fail the alert.
    let closed = Platform::closed_address().await;
    let (blind, _stop) = p.gateway_replica_with(|c| c.keys_addr = closed).await;
    let matches = json!([found(&wrong_crc, "phosra_live_key"), found("ghp_not_ours_at_all", "github_token")]);
    let reply = signed_alert(&blind, &github, &matches).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body[0]["label"], "false_positive");
    assert_eq!(reply.body[0]["token_hash"], sha256_hex(&wrong_crc));
    assert_eq!(reply.body[1]["label"], "false_positive");
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);

    // No key set to check against: every alert is refused, and GitHub retries later.
    let unreachable = Platform::closed_address().await;
    let (cut_off, _stop) = p.gateway_replica_with(|c| c.github_keys_url = unreachable).await;
    let refused = signed_alert(&cut_off, &github, &json!([found(&key, "phosra_live_key")])).await;
    assert_eq!((refused.status, refused.error_code()), (503, "unavailable"));
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&key)).await.status, 200);
}
