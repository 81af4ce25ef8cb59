//! RFC 9421 Appendix B.2.6 (Ed25519), from ../shared/vectors, and the ways a signature must
//! fail.

use sha2::{Digest, Sha256};

use super::*;

const SEED: &str = "9f8362f87a484a954e6e740c5b4c0e84229139a20aa8ab56ff66586f6a7d29c5";
const PUBLIC: &str = "26b40b8f93fff3d897112f7ebc582b232dbd72517d082fe83cfb30ddce43d1bb";
const CREATED: i64 = 1_618_884_473;
const INPUT: &str = r#"sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#;
const SIGNATURE: &str =
    "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:";

fn public_key() -> VerifyingKey {
    VerifyingKey::from_bytes(&hex::decode(PUBLIC).unwrap().try_into().unwrap()).unwrap()
}

fn signing_key() -> SigningKey {
    SigningKey::from_bytes(&hex::decode(SEED).unwrap().try_into().unwrap())
}

/// RFC 9421's test-request, with the B.2.6 signature.
fn test_request() -> Message {
    Message {
        method: "POST".into(),
        scheme: "https".into(),
        authority: "example.com".into(),
        path: "/foo".into(),
        query: "param=Value&Pet=dog".into(),
        headers: vec![
            ("Host".into(), "example.com".into()),
            ("Date".into(), "Tue, 20 Apr 2021 02:07:55 GMT".into()),
            ("Content-Type".into(), "application/json".into()),
            (
                "Content-Digest".into(),
                "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
                    .into(),
            ),
            ("Content-Length".into(), "18".into()),
            ("Signature-Input".into(), INPUT.into()),
            ("Signature".into(), SIGNATURE.into()),
        ],
        body: b"{\"hello\": \"world\"}".to_vec(),
    }
}

fn at(now: i64) -> Policy<'static> {
    Policy { required: &["@method", "@path"], max_age: Duration::from_secs(300), now }
}

fn resolve(keyid: &str) -> Option<VerifyingKey> {
    (keyid == "test-key-ed25519").then(public_key)
}

#[test]
fn the_signature_base_of_b_2_6_is_the_rfcs() {
    let message = test_request();
    let signed = first_signature(&message).unwrap();
    let base = signature_base(&message, &signed.covered, &signed.params_value).unwrap();
    assert_eq!(base.len(), 284);
    assert_eq!(
        hex::encode(Sha256::digest(base.as_bytes())),
        "e6402577f54303accfda63dfbde1a7b8c5e5e6f3f7898637b7d78dc07ee1896a"
    );
    assert!(base.ends_with(r#""@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519""#));
}

#[test]
fn the_b_2_6_signature_verifies_at_its_time_only() {
    let verified = verify(&test_request(), &at(CREATED), resolve).unwrap();
    assert_eq!(
        (verified.label.as_str(), verified.keyid.as_str(), verified.created),
        ("sig-b26", "test-key-ed25519", CREATED)
    );
    let now = 1_800_000_000;
    assert!(matches!(verify(&test_request(), &at(now), resolve), Err(Refusal::Stale(..))), "created in 2021");
}

#[test]
fn any_change_to_what_was_signed_fails() {
    let message = test_request();
    let signed = first_signature(&message).unwrap();
    let base = signature_base(&message, &signed.covered, &signed.params_value).unwrap();
    let signature = Signature::from_slice(&signed.signature).unwrap();
    assert!(public_key().verify_strict(format!("{base}\n").as_bytes(), &signature).is_err(), "a trailing LF");

    let later = Message {
        headers: message
            .headers
            .iter()
            .map(|(n, v)| {
                (n.clone(), if n == "Signature-Input" { v.replace("1618884473", "1618884474") } else { v.clone() })
            })
            .collect(),
        ..message.clone()
    };
    assert!(matches!(verify(&later, &at(CREATED), resolve), Err(Refusal::BadSignature(_))), "created + 1");
    let path = Message { path: "/Foo".into(), ..message.clone() };
    assert!(matches!(verify(&path, &at(CREATED), resolve), Err(Refusal::BadSignature(_))), "@path /Foo");
    let header = Message {
        headers: message
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), if n == "Content-Type" { "text/plain".into() } else { v.clone() }))
            .collect(),
        ..message.clone()
    };
    assert!(matches!(verify(&header, &at(CREATED), resolve), Err(Refusal::BadSignature(_))), "a changed header");
}

#[test]
fn each_kind_of_bad_signature_names_what_failed() {
    let message = test_request();
    let required = Policy { required: &["@method", "@path", "content-length", "@query"], ..at(CREATED) };
    assert_eq!(verify(&message, &required, resolve), Err(Refusal::NotCovered("@query".into())));
    assert_eq!(verify(&message, &at(CREATED), |_| None), Err(Refusal::UnknownKey("test-key-ed25519".into())));
    let other = SigningKey::from_bytes(&[7; 32]).verifying_key();
    assert!(matches!(verify(&message, &at(CREATED), |_| Some(other)), Err(Refusal::BadSignature(_))), "wrong key");
    let tampered = Message { body: b"{\"hello\": \"there\"}".to_vec(), ..message.clone() };
    assert_eq!(verify(&tampered, &at(CREATED), resolve), Err(Refusal::DigestMismatch("sha-512".into())));
    let unsigned = Message { headers: message.headers[..5].to_vec(), ..message.clone() };
    assert_eq!(verify(&unsigned, &at(CREATED), resolve), Err(Refusal::MissingHeader("Signature-Input")));
    let garbled = Message {
        headers: message
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), if n == "Signature" { "nonsense(".into() } else { v.clone() }))
            .collect(),
        ..message.clone()
    };
    assert!(matches!(verify(&garbled, &at(CREATED), resolve), Err(Refusal::Malformed(_))));
}

#[test]
fn weak_keys_and_oversized_or_repeated_inputs_are_refused() {
    // The identity point with R = identity, s = 0: "verifies" anything, cofactorless.
    let weak = VerifyingKey::from_bytes(&{
        let mut x = [0u8; 32];
        x[0] = 1;
        x
    })
    .unwrap();
    let mut forged = Signature::from_bytes(&[0u8; 64]).to_bytes();
    forged[0] = 1;
    let b64 = base64::engine::general_purpose::STANDARD.encode(forged);
    let message = Message {
        headers: test_request()
            .headers
            .into_iter()
            .map(|(n, v)| (n.clone(), if n == "Signature" { format!("sig-b26=:{b64}:") } else { v }))
            .collect(),
        ..test_request()
    };
    assert!(matches!(verify(&message, &at(CREATED), |_| Some(weak)), Err(Refusal::BadSignature(_))));

    let many: Vec<String> = (0..40).map(|i| format!("\"x-h{i}\"")).collect();
    let input = format!("sig=({});created={CREATED};keyid=\"test-key-ed25519\"", many.join(" "));
    let message = Message {
        headers: vec![("Signature-Input".into(), input), ("Signature".into(), "sig=:AAAA:".into())],
        ..Message::default()
    };
    assert!(verify(&message, &at(CREATED), resolve).unwrap_err().is_bad_input());
    let twice = r#"sig=("@method" "@method");created=1618884473;keyid="test-key-ed25519""#;
    let message = Message {
        headers: vec![("Signature-Input".into(), twice.into()), ("Signature".into(), "sig=:AAAA:".into())],
        ..Message::default()
    };
    assert!(verify(&message, &at(CREATED), resolve).unwrap_err().is_bad_input());
    // A body its signature does not cover is no signed request, where a digest is asked.
    let digest = Policy { required: &["@method", "content-digest"], ..at(CREATED) };
    assert!(verify(&test_request(), &digest, resolve).unwrap_err().is_bad_input());
}

#[test]
fn what_we_sign_we_verify_and_a_nonce_comes_back() {
    let key = signing_key();
    let mut message = Message {
        method: "POST".into(),
        scheme: "https".into(),
        authority: "keyplane.example".into(),
        path: "/api/v1/advisors/a1/payload-key".into(),
        query: String::new(),
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: b"{\"key_id\":\"k1\"}".to_vec(),
    };
    message.headers.push(("Content-Digest".into(), digest::content_digest(&message.body)));
    let params = SignatureParams {
        label: "sig1",
        covered: &["@method", "@path", "@authority", "content-digest"],
        created: CREATED,
        keyid: "test-key-ed25519",
        nonce: Some("n-1"),
    };
    let (input, signature) = sign(&message, &params, &key).unwrap();
    assert!(input.starts_with(r#"sig1=("@method" "@path" "@authority" "content-digest");created=1618884473;keyid="test-key-ed25519";alg="ed25519";nonce="n-1""#), "{input}");
    message.headers.push(("Signature-Input".into(), input));
    message.headers.push(("Signature".into(), signature));
    let policy = Policy { required: &["@method", "@path", "content-digest"], ..at(CREATED + 299) };
    let verified = verify(&message, &policy, resolve).unwrap();
    assert_eq!(verified.nonce.as_deref(), Some("n-1"));
    let stale = Policy { now: CREATED + 301, ..policy };
    assert!(matches!(verify(&message, &stale, resolve), Err(Refusal::Stale(..))));
}
