//! GitHub's secret-scanning alerts, with a local ECDSA key standing in for GitHub's and a
//! local server publishing it: a real leaked key stops everywhere, audited, its owners
//! mailed; anything unsigned, or not ours, changes nothing.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use aws_lc_rs::{
    encoding::AsDer,
    rand::SystemRandom,
    signature::{ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair},
};
use axum::{Json, Router, extract::State, routing::get};
use base64::Engine;
use keyplane_common::{
    audit::AuditRecord,
    config::Target,
    principal::{Principal, UserPrincipal},
};
use keyplane_e2e::{Api, Platform, Reply, eventually, logs, smtp::SmtpSink};
use keyplane_proto::{
    keys::v1::{LeakedSecret, RevokeLeakedRequest, keys_service_client::KeysServiceClient},
    orgs::v1::{AppendAuditRequest, orgs_service_client::OrgsServiceClient},
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const ALERTS: &str = "/api/v1/secret-scanning/github";
const FAMILIES: &str = "/api/v1/developer/families";

/// A signing key of the stand-in GitHub.
struct GithubKey {
    id: String,
    pair: EcdsaKeyPair,
}

impl GithubKey {
    fn new(id: &str) -> Self {
        Self::on(id, &ECDSA_P256_SHA256_ASN1_SIGNING)
    }

    fn on(id: &str, alg: &'static aws_lc_rs::signature::EcdsaSigningAlgorithm) -> Self {
        Self { id: id.to_owned(), pair: EcdsaKeyPair::generate(alg).expect("an EC key") }
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

/// GitHub's key-set endpoint stand-in, which can be made slow.
#[derive(Clone, Default)]
struct KeySet {
    published: Arc<Mutex<Vec<Value>>>,
    fetches: Arc<AtomicUsize>,
    delay_ms: Arc<AtomicU64>,
}

impl KeySet {
    async fn serve(&self) -> String {
        async fn keys(State(set): State<KeySet>) -> Json<Value> {
            set.fetches.fetch_add(1, Ordering::SeqCst);
            let delay = set.delay_ms.load(Ordering::SeqCst);
            if delay > 0 {
                tokio::time::sleep(Duration::from_millis(delay)).await;
            }
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

    fn publish_raw(&self, entry: Value) {
        self.published.lock().unwrap().push(entry);
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

async fn platform_with(set: &KeySet, extra: &[(&str, String)]) -> Platform {
    let url = set.serve().await;
    let mut settings = vec![("KEYPLANE_GITHUB_KEYS_URL", url)];
    settings.extend(extra.iter().cloned());
    Platform::start_with(&settings).await
}

async fn setup(extra: &[(&str, String)]) -> (KeySet, GithubKey, Platform) {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    let p = platform_with(&set, extra).await;
    (set, github, p)
}

async fn events(api: &Api, bearer: &str, org: &str, action: &str) -> Vec<Value> {
    api.audit_log(bearer, org, &format!("action={action}")).await
}

fn sha256_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_alert_stops_a_leaked_key_everywhere_audits_it_and_mails_the_owners() {
    let (_set, github, p) = setup(&[]).await;
    let (replica, _stop) = p.gateway_replica().await;
    let (owner, org) = p.api.verified_owner().await;
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
    let prefix = feedback[0]["key_prefix"].as_str().unwrap();
    assert!(prefix.len() > "phosra_live_".len() && leaked.starts_with(prefix), "the key's own prefix: {prefix}");
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
    let arrived =
        eventually(Duration::from_secs(10), || async { api.audit_log(bearer, org, &query).await.len() >= count }).await;
    assert!(arrived, "{count} {action} events within 10 s");
    api.audit_log(bearer, org, &query).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_secret_ends_its_grace_and_the_new_secret_keeps_working() {
    let (_set, github, p) = setup(&[]).await;
    let (owner, org) = p.api.verified_owner().await;
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
    let (_set, github, p) = setup(&[]).await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, key) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let body = serde_json::to_vec(&json!([found(&key, "phosra_live_key")])).unwrap();

    let unsigned = alert(&p.api, None, None, &body).await;
    assert_eq!((unsigned.status, unsigned.error_code()), (401, "invalid_signature"));
    // A platform credential is no stand-in for GitHub's signature: not the key itself,
    // not its owner's session.
    for bearer in [&key, &owner.token] {
        let request = p.api.http.post(p.api.url(ALERTS)).bearer_auth(bearer).body(body.clone());
        let with_credential = p.api.send(request).await;
        assert_eq!((with_credential.status, with_credential.error_code()), (401, "invalid_signature"));
    }
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
    let (set, first, p) = setup(&[]).await;
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
    let (_set, github, p) = setup(&[]).await;
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

/// A leaked previous secret is named by its own prefix, never the new (unleaked) secret's:
/// in the answer, the audit event and the owners' mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_secret_is_named_by_its_own_prefix_not_the_new_ones() {
    let (_set, github, p) = setup(&[]).await;
    let (owner, org) = p.api.verified_owner().await;
    let (id, old) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let new = p.api.regenerate(&owner.token, &org, &id, 3600).await.str("key");

    let reply = signed_alert(&p.api, &github, &json!([found(&old, "phosra_live_key")])).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body[0]["label"], "true_positive");
    let prefix = reply.body[0]["key_prefix"].as_str().unwrap().to_owned();
    assert!(old.starts_with(&prefix) && !new.starts_with(&prefix), "{prefix:?} is the old secret's prefix");
    let event = eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 1).await.remove(0);
    assert_eq!(event["metadata"]["prefix"], prefix);
    let mails = p.api.mailbox(&owner.email, "security_notice").await;
    assert!(mails[0]["body"].as_str().unwrap().contains(&prefix));
}

/// An entry of GitHub's set that is not a PEM public key is skipped; the good keys beside
/// it still verify.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_odd_entry_in_the_key_set_leaves_the_good_keys_working() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    set.publish(&github);
    set.publish_raw(json!({"key_identifier": "future-format", "key": "not PEM at all", "is_current": false}));
    let p = platform_with(&set, &[]).await;
    let reply = signed_alert(&p.api, &github, &json!([])).await;
    assert_eq!(reply.status, 200, "a good key is refused because another entry is odd: {}", reply.text);
}

/// P-384 or junk keys in the set neither crash nor verify as P-256, and the P-256 key next
/// to them keeps working.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_p384_or_junk_key_in_the_set_verifies_nothing_and_harms_nothing() {
    let set = KeySet::default();
    let github = GithubKey::new("github-1");
    let p384 = GithubKey::on("p384", &ECDSA_P384_SHA384_ASN1_SIGNING);
    set.publish(&github);
    set.publish(&p384);
    set.publish_raw(
        json!({"key_identifier": "junk-der", "key": pem::encode(&pem::Pem::new("PUBLIC KEY", vec![0x30; 4096]))}),
    );
    let p = platform_with(&set, &[]).await;
    let refused = signed_alert(&p.api, &p384, &json!([])).await;
    assert_eq!((refused.status, refused.error_code()), (401, "invalid_signature"), "{}", refused.text);
    let body = b"[]";
    let junk = alert(&p.api, Some("junk-der"), Some(github.sign(body)), body).await;
    assert_eq!(junk.status, 401, "{}", junk.text);
    assert_eq!(signed_alert(&p.api, &github, &json!([])).await.status, 200);
}

/// Anyone can name an unknown key id and make the gateway refetch (once a minute); alerts
/// by keys already known never wait for that refetch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_by_known_keys_never_wait_for_a_slow_refetch() {
    let (set, github, p) = setup(&[]).await;
    assert_eq!(signed_alert(&p.api, &github, &json!([])).await.status, 200, "the set is fetched");
    set.delay_ms.store(6000, Ordering::SeqCst);
    let attacker = p.api.clone();
    let poke = tokio::spawn(async move { alert(&attacker, Some("nobody"), Some("AAAA".into()), b"[]").await.status });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let legit = signed_alert(&p.api, &github, &json!([])).await;
    let waited = started.elapsed();
    assert_eq!(legit.status, 200);
    let _ = poke.await;
    assert!(
        waited < Duration::from_secs(2),
        "GitHub's alert by a known key waited {waited:?} for an attacker's refetch"
    );
}

/// The owners' mail follows the audit event's first filing only: a redelivery (the keys
/// relay's retry when orgs' answer was lost) mails nobody again, over real SMTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivered_leak_event_mails_the_owners_once_over_smtp() {
    let sink = SmtpSink::start().await;
    let (_set, github, p) = setup(&[("KEYPLANE_SMTP_URL", sink.url())]).await;
    let owner = p.api.signup().await;
    // Verify by the SMTP mail's token.
    let got =
        eventually(Duration::from_secs(10), || async { sink.mails().iter().any(|m| m.to.contains(&owner.email)) });
    assert!(got.await);
    let mail = sink.mails().into_iter().find(|m| m.to.contains(&owner.email)).unwrap();
    let token = mail.data.split_whitespace().find(|w| w.contains("kpev_")).unwrap();
    let token: String = token[token.find("kpev_").unwrap()..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || "_-".contains(*c))
        .collect();
    assert_eq!(p.api.post("/api/v1/auth/verify-email", None, json!({"token": token})).await.status, 200);
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, leaked) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;

    assert_eq!(signed_alert(&p.api, &github, &json!([found(&leaked, "phosra_live_key")])).await.status, 200);
    let notices = || sink.mails().into_iter().filter(|m| m.data.contains("was found in public")).count();
    assert!(eventually(Duration::from_secs(10), || async { notices() == 1 }).await, "the first notice");
    let event = eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 1).await.remove(0);

    // The keys relay delivers the same event again (orgs committed, its answer was lost).
    let record = AuditRecord {
        id: event["id"].as_str().unwrap().parse().unwrap(),
        org_id: org.parse().unwrap(),
        at: chrono::Utc::now(),
        actor_type: "service".into(),
        actor_id: "gateway".into(),
        action: "api_key.leaked_revoked".into(),
        target_type: "api_key".into(),
        target_id: event["target"]["id"].as_str().or(event["target_id"].as_str()).unwrap_or_default().into(),
        ip: String::new(),
        user_agent: String::new(),
        metadata: event["metadata"].clone(),
    };
    let mut orgs = OrgsServiceClient::new(p.channel(Target::Orgs));
    let mut request = tonic::Request::new(AppendAuditRequest { events: vec![record.to_proto()] });
    p.internal_auth("keys").attach(request.metadata_mut(), None);
    let stored = orgs.append_audit(request).await.unwrap().into_inner().stored;
    assert_eq!(stored, 0, "the event was filed already");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(events(&p.api, &owner.token, &org, "api_key.leaked_revoked").await.len(), 1);
    assert_eq!(notices(), 1, "the owner was mailed again for an event filed once");
}

/// only a platform service may ask RevokeLeaked; a user principal with a valid
/// internal token (what the gateway attaches for any REST/MCP call) is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_leaked_over_grpc_as_a_user_is_refused() {
    let p = Platform::start().await;
    let victim = p.api.signup().await;
    let (org, _) = p.api.dev_org(&victim, false).await;
    let (_, key) = p.api.key(&victim.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let mallory = p.api.signup().await;
    let principal = Principal::User(UserPrincipal {
        user_id: mallory.id.parse().unwrap(),
        session_id: None,
        email: mallory.email.clone(),
        name: "Mallory".into(),
        issuer: "keyplane".into(),
    });
    let mut keys = KeysServiceClient::new(p.channel(Target::Keys));
    let secret = LeakedSecret {
        hash: Sha256::digest(key.as_bytes()).to_vec(),
        url: String::new(),
        source: String::new(),
        prefix: String::new(),
        reporter: "me".into(),
    };
    let mut request = tonic::Request::new(RevokeLeakedRequest { secrets: vec![secret.clone()] });
    p.internal_auth("gateway").attach(request.metadata_mut(), Some(&principal));
    assert_eq!(keys.revoke_leaked(request).await.unwrap_err().code(), tonic::Code::PermissionDenied);
    let mut anonymous = tonic::Request::new(RevokeLeakedRequest { secrets: vec![secret.clone()] });
    p.internal_auth("gateway").attach(anonymous.metadata_mut(), None);
    assert_eq!(keys.revoke_leaked(anonymous).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    // Another service holds the internal secret too, but only the gateway reports leaks:
    // acting as itself, or claiming to act as the gateway.
    for (signer, acting) in [("advisors", "advisors"), ("usage", "gateway"), ("orgs", "orgs")] {
        let mut request = tonic::Request::new(RevokeLeakedRequest { secrets: vec![secret.clone()] });
        p.internal_auth(signer).attach(request.metadata_mut(), Some(&Principal::Service { name: acting.into() }));
        let refused = keys.revoke_leaked(request).await.unwrap_err();
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{signer} acting as {acting}");
    }
    assert_eq!(p.api.get(FAMILIES, Some(&key)).await.status, 200, "nothing was revoked");
}

/// A leak event filed by any service but keys (which decides leaks) mails nobody: another
/// service cannot make the platform send owners a "your key leaked, see <url>" of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leak_event_from_another_service_mails_no_owner() {
    let (_set, github, p) = setup(&[]).await;
    let (owner, org) = p.api.verified_owner().await;
    let (id, leaked) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let forged = AuditRecord {
        id: uuid::Uuid::now_v7(),
        org_id: org.parse().unwrap(),
        at: chrono::Utc::now(),
        actor_type: "service".into(),
        actor_id: "gateway".into(),
        action: "api_key.leaked_revoked".into(),
        target_type: "api_key".into(),
        target_id: id,
        ip: String::new(),
        user_agent: String::new(),
        metadata: json!({"name": "ci", "prefix": "phosra_live_x", "url": "https://evil.example/phish", "reporter": "GitHub"}),
    };
    let mut orgs = OrgsServiceClient::new(p.channel(Target::Orgs));
    let mut request = tonic::Request::new(AppendAuditRequest { events: vec![forged.to_proto()] });
    p.internal_auth("usage").attach(request.metadata_mut(), None);
    orgs.append_audit(request).await.unwrap();

    // A real leak afterwards is mailed; the forged one never is.
    assert_eq!(signed_alert(&p.api, &github, &json!([found(&leaked, "phosra_live_key")])).await.status, 200);
    eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 2).await;
    // The real leak's mail, filed after the forged event, has arrived: the forged one would have by now.
    let real = &leaked[..16];
    let mailed = eventually(Duration::from_secs(10), || async {
        let mails = p.api.mailbox(&owner.email, "security_notice").await;
        mails.iter().any(|m| m["body"].as_str().is_some_and(|b| b.contains(real)))
    })
    .await;
    assert!(mailed, "the real leak is mailed");
    let mails = p.api.mailbox(&owner.email, "security_notice").await;
    assert_eq!(mails.len(), 1, "only the leak the keys service decided is mailed: {mails:?}");
    assert!(!mails[0]["body"].as_str().unwrap().contains("evil.example"));
}

/// concurrent duplicate alerts (and duplicates inside one alert) stop the key
/// once: one audit event, one mail, the same answer for all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_duplicate_alerts_audit_and_mail_once() {
    let (_set, github, p) = setup(&[]).await;
    let (owner, org) = p.api.verified_owner().await;
    let (_, leaked) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let matches = json!([found(&leaked, "phosra_live_key"), found(&leaked, "phosra_live_key")]);
    let body = serde_json::to_vec(&matches).unwrap();
    let signature = github.sign(&body);
    let replies =
        futures_util::future::join_all((0..8).map(|_| alert(&p.api, Some("github-1"), Some(signature.clone()), &body)))
            .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.body[0]["label"], "true_positive");
        assert_eq!(reply.body[1]["label"], "true_positive");
    }
    eventually_events(&p.api, &owner.token, &org, "api_key.leaked_revoked", 1).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(events(&p.api, &owner.token, &org, "api_key.leaked_revoked").await.len(), 1);
    assert_eq!(p.api.mailbox(&owner.email, "security_notice").await.len(), 1);
}

/// a leaked secret that no longer works (revoked, expired) is a true positive
/// with no new audit event or mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_key_reported_causes_no_audit_or_mail() {
    let (_set, github, p) = setup(&[]).await;
    let (owner, org) = p.api.verified_owner().await;
    let (id, revoked) = p.api.key(&owner.token, &org, json!({"name": "gone", "environment": "live"})).await;
    assert!(p.api.delete(&format!("/api/v1/developers/orgs/{org}/keys/{id}"), Some(&owner.token)).await.status < 300);
    let soon = (chrono::Utc::now() + chrono::Duration::hours(2)).to_rfc3339();
    let (_, expiring) =
        p.api.key(&owner.token, &org, json!({"name": "old", "environment": "live", "expires_at": soon})).await;
    p.clock.advance(Duration::from_secs(3 * 3600));
    let reply = signed_alert(
        &p.api,
        &github,
        &json!([found(&revoked, "phosra_live_key"), found(&expiring, "phosra_live_key")]),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.body[0]["label"], "true_positive");
    assert_eq!(reply.body[1]["label"], "true_positive");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(events(&p.api, &owner.token, &org, "api_key.leaked_revoked").await.is_empty());
    let mails = p.api.get(&format!("/dev/mailbox?to={}", owner.email), None).await;
    assert!(!mails.text.contains("security_notice"), "{}", mails.text);
}

/// ending a previous secret's grace reaches a replica that had it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaked_previous_secret_is_refused_on_another_replica() {
    let (_set, github, p) = setup(&[]).await;
    let (replica, _stop) = p.gateway_replica().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (id, old) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let new = p.api.regenerate(&owner.token, &org, &id, 3600).await.str("key");
    for _ in 0..3 {
        assert_eq!(replica.get(FAMILIES, Some(&old)).await.status, 200, "cached in its grace period");
    }
    assert_eq!(signed_alert(&p.api, &github, &json!([found(&old, "phosra_live_key")])).await.status, 200);
    let refused =
        eventually(Duration::from_secs(1), || async { replica.get(FAMILIES, Some(&old)).await.status == 401 }).await;
    assert!(refused, "the other replica still accepts the leaked previous secret");
    assert_eq!(replica.get(FAMILIES, Some(&new)).await.status, 200);
}

/// the per-source limit applies before any signature or key-set work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_source_limit_comes_before_signature_work() {
    let (set, github, p) = setup(&[("KEYPLANE_RATE_LIMIT_SECRET_SCANNING", "3/86400".into())]).await;
    for i in 0..3 {
        let reply = alert(&p.api, Some(&format!("guess-{i}")), Some("AAAA".into()), b"[]").await;
        assert_eq!(reply.status, 401, "{}", reply.text);
    }
    let fetched = set.fetches.load(Ordering::SeqCst);
    let limited = alert(&p.api, Some("guess-x"), Some("AAAA".into()), b"[]").await;
    assert_eq!(limited.status, 429);
    assert_eq!(signed_alert(&p.api, &github, &json!([])).await.status, 429);
    assert_eq!(set.fetches.load(Ordering::SeqCst), fetched, "a limited request reached the key set");
}

/// malformed headers and bodies are 4xx with no internals; logs never hold a token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_alerts_are_4xx_and_tokens_never_reach_logs() {
    let (_set, github, p) = setup(&[]).await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let (_, leaked) = p.api.key(&owner.token, &org, json!({"name": "ci", "environment": "live"})).await;
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{}".to_vec(),
        b"null".to_vec(),
        b"[{\"token\": 1, \"type\": \"x\"}]".to_vec(),
        b"[{\"type\": \"x\"}]".to_vec(),
        b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"[{\"token\": \"' OR 1=1 --\", \"type\": \"phosra_live_key\"}]".to_vec(),
    ];
    for body in &bodies {
        let reply = alert(&p.api, Some("github-1"), Some(github.sign(body)), body).await;
        assert!((400..500).contains(&reply.status) || reply.status == 200, "{} {}", reply.status, reply.text);
        for leak in ["sqlx", "sea_orm", "SELECT", "panicked", "serde_json", "at line"] {
            assert!(!reply.text.contains(leak), "{}", reply.text);
        }
    }
    for (id, signature) in [
        ("github-1", "A".repeat(100_000)),
        ("github-1", base64::engine::general_purpose::STANDARD.encode([0x30u8; 72])),
        ("github-1", String::new()),
        (&"x".repeat(8000) as &str, "AAAA".into()),
    ] {
        let reply = alert(&p.api, Some(id), Some(signature), b"[]").await;
        assert!((400..500).contains(&reply.status), "{} {}", reply.status, reply.text);
    }
    let reply = signed_alert(&p.api, &github, &json!([found(&leaked, "phosra_live_key")])).await;
    assert_eq!(reply.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!logs::all().contains(&leaked[12..]), "a leaked token reached the logs");
}
