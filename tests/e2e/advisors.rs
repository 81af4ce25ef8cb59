//! Advisors: registered by an admin, their Ed25519 payload keys declared with proof of
//! possession (RFC 9421), consulted by members, answering with signed requests that
//! anyone can verify again, and consultations delivered to their endpoints, signed.

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicUsize, Ordering},
};

use axum::{Router, body::Bytes, http::HeaderMap, http::StatusCode, routing::post};
use base64::Engine;
use keyplane_common::httpsig::{self, Message, Policy};
use keyplane_e2e::{
    Api, Platform, Reply, User, eventually,
    signing::{AdvisorKey, Signing, signed_post},
};
use serde_json::{Value, json};

/// A receiver of deliveries: fails the first, keeps the rest (headers and body).
#[derive(Clone, Default)]
struct Receiver {
    calls: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
}

async fn receiver() -> (String, Receiver) {
    let state = Receiver::default();
    let kept = state.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let kept = kept.clone();
            async move {
                if kept.calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                kept.received.lock().unwrap().push((headers, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let url = format!("{}/hook", keyplane_e2e::serve_backend(app).await);
    (url, state)
}

async fn register(api: &Api, admin: &User, org: &str, endpoint: &str) -> String {
    let body = json!({"org_id": org, "name": "Acme advisor", "description": "answers", "endpoint_url": endpoint});
    let reply = api.post("/api/v1/advisors/register", Some(&admin.token), body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.str("id")
}

async fn declare(api: &Api, admin: &User, advisor: &str, key: &AdvisorKey, signing: &Signing<'_>) -> Reply {
    let body = json!({"key_id": key.kid, "public_key": key.x()});
    signed_post(api, &format!("/api/v1/advisors/{advisor}/payload-key"), Some(&admin.token), &body, key, signing).await
}

/// Verifies an answer again from what the platform kept and the key it published.
fn verifies_again(consultation: &Value, jwks: &Value) -> Result<(), httpsig::Refusal> {
    let signed = &consultation["response"]["signed_request"];
    let message = Message {
        method: signed["method"].as_str().unwrap().into(),
        scheme: signed["scheme"].as_str().unwrap().into(),
        authority: signed["authority"].as_str().unwrap().into(),
        path: signed["path"].as_str().unwrap().into(),
        query: signed["query"].as_str().unwrap().into(),
        headers: serde_json::from_value(signed["headers"].clone()).unwrap(),
        body: base64::engine::general_purpose::STANDARD.decode(signed["body"].as_str().unwrap()).unwrap(),
    };
    let answered: chrono::DateTime<chrono::Utc> =
        consultation["response"]["answered_at"].as_str().unwrap().parse().unwrap();
    let policy = Policy {
        required: &["@method", "@path", "content-digest"],
        max_age: std::time::Duration::from_secs(300),
        now: answered.timestamp(),
    };
    httpsig::verify(&message, &policy, |kid| {
        let jwk = jwks["keys"].as_array()?.iter().find(|k| k["kid"] == kid)?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["x"].as_str()?).ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().ok()?).ok()
    })
    .map(|_| ())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_declare_consult_deliver_answer_and_verify_again() {
    let p = Platform::start().await;
    let (endpoint, received) = receiver().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let member = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let advisor = register(&p.api, &owner, &org, &endpoint).await;
    let listed = p.api.get(&format!("/api/v1/advisors?org_id={org}"), Some(&member.token)).await;
    assert_eq!(listed.body["data"][0]["id"], advisor.as_str(), "{}", listed.text);
    // Registering takes an admin's session.
    let by_member =
        p.api.post("/api/v1/advisors/register", Some(&member.token), json!({"org_id": org, "name": "x"})).await;
    assert_eq!(by_member.status, 403);

    // The payload key, declared with proof of possession.
    let key = AdvisorKey::new("acme-2026");
    let declared = declare(&p.api, &owner, &advisor, &key, &Signing::default()).await;
    assert_eq!(declared.status, 201, "{}", declared.text);
    assert_eq!(
        (declared.str("kty"), declared.str("crv"), declared.str("x")),
        ("OKP".into(), "Ed25519".into(), key.x())
    );
    let jwks = p.api.get(&format!("/api/v1/advisors/{advisor}/payload-keys"), None).await;
    assert_eq!((jwks.status, jwks.body["keys"][0]["kid"].as_str()), (200, Some("acme-2026")), "for anyone");

    // A member consults; the consultation goes to the advisor's endpoint, signed by the
    // platform, after one failed attempt.
    let asked = p
        .api
        .post(
            "/api/v1/advisors/consult",
            Some(&member.token),
            json!({"advisor_id": advisor, "question": "Is this ok?", "context": {"age": 12}}),
        )
        .await;
    assert_eq!((asked.status, asked.str("status")), (202, "pending".to_owned()), "{}", asked.text);
    let consultation = asked.str("id");
    let path = format!("/api/v1/advisors/consultations/{consultation}");
    let delivered = eventually(std::time::Duration::from_secs(15), || async {
        p.api.get(&path, Some(&member.token)).await.body["delivery"]["status"] == "delivered"
    })
    .await;
    let state = p.api.get(&path, Some(&member.token)).await;
    assert!(delivered, "{}", state.text);
    assert_eq!(state.body["delivery"]["attempts"], 2, "one retry");
    let (headers, body) = received.received.lock().unwrap()[0].clone();
    let delivery: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(delivery["consultation"]["id"], consultation.as_str());
    let platform_keys = p.api.get("/api/v1/advisors/delivery-keys", None).await.body;
    let endpoint_url = reqwest::Url::parse(&endpoint).unwrap();
    let sent = Message {
        method: "POST".into(),
        scheme: "http".into(),
        authority: format!("127.0.0.1:{}", endpoint_url.port().unwrap()),
        path: "/hook".into(),
        query: String::new(),
        headers: headers.iter().map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap().to_owned())).collect(),
        body: body.to_vec(),
    };
    let policy = Policy {
        required: &["@method", "@target-uri", "content-digest"],
        max_age: std::time::Duration::from_secs(300),
        now: chrono::Utc::now().timestamp(),
    };
    let checked = httpsig::verify(&sent, &policy, |kid| {
        let jwk = platform_keys["keys"].as_array()?.iter().find(|k| k["kid"] == kid)?;
        let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk["x"].as_str()?).ok()?;
        ed25519_dalek::VerifyingKey::from_bytes(&x.try_into().ok()?).ok()
    });
    assert!(checked.is_ok(), "the delivery is signed by the platform's published key: {checked:?}");

    // The advisor answers, signed by its key; anyone can verify the kept answer again.
    let answer_path = format!("/api/v1/advisors/{advisor}/consultations/{consultation}/response");
    // Decomposed (NFD) on purpose: the answer shown is the one signed, not renormalised.
    let said = "Yes, with care: the cafe\u{301}'s rule.";
    let answered = signed_post(&p.api, &answer_path, None, &json!({"answer": said}), &key, &Signing::default()).await;
    assert_eq!((answered.status, answered.str("status")), (200, "answered".to_owned()), "{}", answered.text);
    let got = p.api.get(&path, Some(&member.token)).await.body;
    assert_eq!(got["response"]["answer"], said, "byte for byte as signed");
    assert_eq!(got["response"]["key_id"], "acme-2026");
    assert!(verifies_again(&got, &jwks.body).is_ok(), "{:?}", verifies_again(&got, &jwks.body));
    // Tampering with the kept answer breaks the signature.
    let mut forged = got.clone();
    forged["response"]["signed_request"]["body"] =
        json!(base64::engine::general_purpose::STANDARD.encode(br#"{"answer":"No."}"#));
    assert!(verifies_again(&forged, &jwks.body).is_err());
    let twice = signed_post(&p.api, &answer_path, None, &json!({"answer": "again"}), &key, &Signing::default()).await;
    assert_eq!((twice.status, twice.error_code()), (409, "consultation_answered"));

    // Another tenant sees nothing of it.
    let stranger = p.api.signup().await;
    assert_eq!(p.api.get(&path, Some(&stranger.token)).await.status, 404);
    let theirs = p
        .api
        .post("/api/v1/advisors/consult", Some(&stranger.token), json!({"advisor_id": advisor, "question": "?"}))
        .await;
    assert_eq!((theirs.status, theirs.error_code()), (404, "advisor_not_found"));

    // A retired key verifies no answer; it stays listed, retired.
    let retired = p.api.delete(&format!("/api/v1/advisors/{advisor}/payload-keys/acme-2026"), Some(&owner.token)).await;
    assert_eq!((retired.status, retired.str("status")), (200, "retired".to_owned()), "{}", retired.text);
    let again = p
        .api
        .post("/api/v1/advisors/consult", Some(&member.token), json!({"advisor_id": advisor, "question": "And now?"}))
        .await;
    let late = signed_post(
        &p.api,
        &format!("/api/v1/advisors/{advisor}/consultations/{}/response", again.str("id")),
        None,
        &json!({"answer": "x"}),
        &key,
        &Signing::default(),
    )
    .await;
    assert_eq!((late.status, late.error_code()), (401, "invalid_signature"), "{}", late.text);
}

/// Each kind of bad signature on a key declaration is refused with 401 invalid_signature,
/// saying which part failed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_bad_signature_is_refused_and_says_why() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let advisor = register(&p.api, &owner, &org, "").await;
    let key = AdvisorKey::new("k1");
    let declare_path = format!("/api/v1/advisors/{advisor}/payload-key");

    // A weak (small-order) point has no private key: a "signature" of it proves nothing.
    let weak = p
        .api
        .post(
            &declare_path,
            Some(&owner.token),
            json!({"key_id": "weak", "public_key": "AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"}),
        )
        .await;
    assert_eq!(weak.status, 400, "{}", weak.text);
    let unsigned = p.api.post(&declare_path, Some(&owner.token), json!({"key_id": "k1", "public_key": key.x()})).await;
    assert_eq!((unsigned.status, unsigned.error_code()), (401, "invalid_signature"));
    assert!(unsigned.body["message"].as_str().unwrap().contains("Signature-Input"), "{}", unsigned.text);

    let cases: Vec<(&str, Reply)> = vec![
        ("does not verify", {
            // Signed by another key than the one declared.
            let other = AdvisorKey { kid: "k1".into(), key: AdvisorKey::new("x").key };
            let body = json!({"key_id": "k1", "public_key": key.x()});
            signed_post(&p.api, &declare_path, Some(&owner.token), &body, &other, &Signing::default()).await
        }),
        (
            "created",
            declare(
                &p.api,
                &owner,
                &advisor,
                &key,
                &Signing { created: chrono::Utc::now().timestamp() - 600, ..Signing::default() },
            )
            .await,
        ),
        (
            "does not cover @path",
            declare(
                &p.api,
                &owner,
                &advisor,
                &key,
                &Signing { covered: &["@method", "content-digest"], ..Signing::default() },
            )
            .await,
        ),
        (
            "does not match the body",
            declare(
                &p.api,
                &owner,
                &advisor,
                &key,
                &Signing { signed_body: Some(b"{}".to_vec()), ..Signing::default() },
            )
            .await,
        ),
    ];
    for (says, reply) in &cases {
        assert_eq!((reply.status, reply.error_code()), (401, "invalid_signature"), "{says}: {}", reply.text);
        assert!(reply.body["message"].as_str().unwrap().contains(says), "{says}: {}", reply.text);
    }
    // A good one, then the very same signed request again: the nonce was spent.
    let once = Signing { nonce: Some("only-once".into()), ..Signing::default() };
    assert_eq!(declare(&p.api, &owner, &advisor, &key, &once).await.status, 201);
    let replay = declare(&p.api, &owner, &advisor, &key, &once).await;
    assert_eq!((replay.status, replay.error_code()), (401, "invalid_signature"), "{}", replay.text);
    assert!(replay.body["message"].as_str().unwrap().contains("used before"), "{}", replay.text);
    // Without a nonce, the very same signature is refused the second time all the same.
    let other = AdvisorKey::new("k3");
    let no_nonce = Signing { nonce: None, ..Signing::default() };
    let body = json!({"key_id": "k3", "public_key": other.x()});
    let first = signed_post(&p.api, &declare_path, Some(&owner.token), &body, &other, &no_nonce).await;
    assert_eq!(first.status, 201, "{}", first.text);
    let again = signed_post(&p.api, &declare_path, Some(&owner.token), &body, &other, &no_nonce).await;
    assert_eq!((again.status, again.error_code()), (401, "invalid_signature"), "{}", again.text);
    // A body the signature does not cover: 400, not a signature that failed.
    let uncovered = declare(
        &p.api,
        &owner,
        &advisor,
        &AdvisorKey::new("k4"),
        &Signing { covered: &["@method", "@path"], ..Signing::default() },
    )
    .await;
    assert_eq!((uncovered.status, uncovered.error_code()), (400, "invalid_signature_input"), "{}", uncovered.text);
    // The session must be an admin's, even with a good signature.
    let member = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let other = AdvisorKey::new("k2");
    let by_member = declare(&p.api, &member, &advisor, &other, &Signing::default()).await;
    assert_eq!(by_member.status, 403, "{}", by_member.text);
    // A key is no session for declaring.
    let (_, api_key) = p.api.key(&owner.token, &org, json!({"name": "k", "environment": "test"})).await;
    let by_key = signed_post(
        &p.api,
        &declare_path,
        Some(&api_key),
        &json!({"key_id": "k2", "public_key": other.x()}),
        &other,
        &Signing::default(),
    )
    .await;
    assert_eq!(by_key.status, 401, "{}", by_key.text);
}

/// A failed delivery is logged without the endpoint's URL: its query may hold the
/// advisor's own token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_delivery_logs_no_endpoint_token() {
    let p = Platform::start().await;
    let (owner, org) = p.api.verified_owner().await;
    let secret = format!("hooktoken{}", uuid::Uuid::new_v4().simple());
    let endpoint = format!("{}/hook?token={secret}", Platform::closed_address().await);
    let advisor = register(&p.api, &owner, &org, &endpoint).await;
    let asked = p
        .api
        .post("/api/v1/advisors/consult", Some(&owner.token), json!({"advisor_id": advisor, "question": "?"}))
        .await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let path = format!("/api/v1/advisors/consultations/{}", asked.str("id"));
    let attempted = eventually(std::time::Duration::from_secs(15), || async {
        p.api.get(&path, Some(&owner.token)).await.body["delivery"]["attempts"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(attempted, "a delivery was attempted");
    let logs = keyplane_e2e::logs::all();
    assert!(logs.contains("consultation delivery failed"), "the failure is logged");
    assert!(!logs.contains(&secret), "the endpoint's token reached the logs");
}

/// An advisor's key answers only that advisor's consultations: another org's advisor,
/// with a key it holds and declared, can neither answer through its own path (the
/// consultation is not its) nor through the other advisor's (the key is not that one's).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_advisors_key_cannot_answer_a_consultation() {
    let p = Platform::start().await;
    let alice = p.api.verified_signup().await;
    let (org_a, _) = p.api.dev_org(&alice, false).await;
    let advisor_a = register(&p.api, &alice, &org_a, "").await;
    let key_a = AdvisorKey::new("a-1");
    assert_eq!(declare(&p.api, &alice, &advisor_a, &key_a, &Signing::default()).await.status, 201);
    let mallory = p.api.verified_signup().await;
    let (org_m, _) = p.api.dev_org(&mallory, false).await;
    let advisor_m = register(&p.api, &mallory, &org_m, "").await;
    let key_m = AdvisorKey::new("m-1");
    assert_eq!(declare(&p.api, &mallory, &advisor_m, &key_m, &Signing::default()).await.status, 201);

    let asked = p
        .api
        .post("/api/v1/advisors/consult", Some(&alice.token), json!({"advisor_id": advisor_a, "question": "?"}))
        .await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let consultation = asked.str("id");
    let answer = json!({"answer": "whatever Mallory says"});
    let through_own = format!("/api/v1/advisors/{advisor_m}/consultations/{consultation}/response");
    let own = signed_post(&p.api, &through_own, None, &answer, &key_m, &Signing::default()).await;
    assert_eq!((own.status, own.error_code()), (404, "consultation_not_found"), "{}", own.text);
    let through_theirs = format!("/api/v1/advisors/{advisor_a}/consultations/{consultation}/response");
    let theirs = signed_post(&p.api, &through_theirs, None, &answer, &key_m, &Signing::default()).await;
    assert_eq!((theirs.status, theirs.error_code()), (401, "invalid_signature"), "{}", theirs.text);

    let state = p.api.get(&format!("/api/v1/advisors/consultations/{consultation}"), Some(&alice.token)).await;
    assert_eq!(state.str("status"), "pending", "nobody answered: {}", state.text);
    assert!(state.body["response"].is_null());
}

/// Retiring an advisor's payload key takes an admin of its org: a plain member is refused
/// (403) and the key stays listed, active, and still answers for the advisor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_member_cannot_retire_a_payload_key() {
    let p = Platform::start().await;
    let owner = p.api.signup().await;
    let (org, _) = p.api.dev_org(&owner, false).await;
    let member = p.api.verified_signup().await;
    p.api.join(&owner.token, &org, &member, "member").await;
    let advisor = register(&p.api, &owner, &org, "").await;
    let key = AdvisorKey::new("acme-1");
    assert_eq!(declare(&p.api, &owner, &advisor, &key, &Signing::default()).await.status, 201);
    let listed = format!("/api/v1/advisors/{advisor}/payload-keys");
    let before = p.api.get(&listed, None).await;

    let retire = format!("/api/v1/advisors/{advisor}/payload-keys/acme-1");
    let refused = p.api.delete(&retire, Some(&member.token)).await;
    assert_eq!((refused.status, refused.error_code()), (403, "insufficient_role"), "{}", refused.text);

    let after = p.api.get(&listed, None).await;
    assert_eq!(after.status, 200, "{}", after.text);
    assert_eq!(after.body, before.body, "a member's refused retirement changed the keys");
    assert_eq!(
        (after.body["keys"].as_array().unwrap().len(), &after.body["keys"][0]["kid"], &after.body["keys"][0]["status"]),
        (1, &json!("acme-1"), &json!("active")),
        "{}",
        after.text
    );
    // The key still answers for the advisor.
    let asked = p
        .api
        .post("/api/v1/advisors/consult", Some(&member.token), json!({"advisor_id": advisor, "question": "?"}))
        .await;
    assert_eq!(asked.status, 202, "{}", asked.text);
    let answer = format!("/api/v1/advisors/{advisor}/consultations/{}/response", asked.str("id"));
    let answered = signed_post(&p.api, &answer, None, &json!({"answer": "yes"}), &key, &Signing::default()).await;
    assert_eq!(answered.status, 200, "the key no longer answers: {}", answered.text);
}

/// Another org's owner, holding a key it can sign with, can neither declare it on this
/// org's advisor nor retire this advisor's key: the advisor does not exist for it (404),
/// and its keys are as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_orgs_owner_can_neither_declare_nor_retire_a_payload_key() {
    let p = Platform::start().await;
    let alice = p.api.verified_signup().await;
    let (org_a, _) = p.api.dev_org(&alice, false).await;
    let advisor = register(&p.api, &alice, &org_a, "").await;
    let key_a = AdvisorKey::new("a-1");
    assert_eq!(declare(&p.api, &alice, &advisor, &key_a, &Signing::default()).await.status, 201);
    let mallory = p.api.verified_signup().await;
    let (org_m, _) = p.api.dev_org(&mallory, false).await;
    register(&p.api, &mallory, &org_m, "").await;
    let listed = format!("/api/v1/advisors/{advisor}/payload-keys");
    let before = p.api.get(&listed, None).await;
    assert_eq!(before.status, 200, "{}", before.text);

    // A declaration with a valid proof of possession, by an owner, but of another org.
    let key_m = AdvisorKey::new("m-1");
    let declared = declare(&p.api, &mallory, &advisor, &key_m, &Signing::default()).await;
    assert_eq!((declared.status, declared.error_code()), (404, "advisor_not_found"), "{}", declared.text);
    let retired = p.api.delete(&format!("{listed}/a-1"), Some(&mallory.token)).await;
    assert_eq!((retired.status, retired.error_code()), (404, "advisor_not_found"), "{}", retired.text);
    // The same answer as for an advisor that does not exist at all.
    let nowhere = format!("/api/v1/advisors/{}/payload-keys/a-1", uuid::Uuid::now_v7());
    let unknown = p.api.delete(&nowhere, Some(&mallory.token)).await;
    assert_eq!((unknown.status, unknown.error_code()), (404, "advisor_not_found"), "{}", unknown.text);

    let after = p.api.get(&listed, None).await;
    assert_eq!(after.body, before.body, "another org's owner changed the advisor's keys");
    assert_eq!((&after.body["keys"][0]["kid"], &after.body["keys"][0]["status"]), (&json!("a-1"), &json!("active")));
    // Mallory's key answers nothing for the advisor.
    let asked = p
        .api
        .post("/api/v1/advisors/consult", Some(&alice.token), json!({"advisor_id": advisor, "question": "?"}))
        .await;
    let answer = format!("/api/v1/advisors/{advisor}/consultations/{}/response", asked.str("id"));
    let forged = signed_post(&p.api, &answer, None, &json!({"answer": "Mallory's"}), &key_m, &Signing::default()).await;
    assert_eq!((forged.status, forged.error_code()), (401, "invalid_signature"), "{}", forged.text);
}
