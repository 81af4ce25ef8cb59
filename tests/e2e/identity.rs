//! Accounts, sessions and session bearers.

use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use keyplane_common::config::Target;
use keyplane_e2e::Platform;
use keyplane_proto::identity::v1::{RotateSigningKeyRequest, identity_service_client::IdentityServiceClient};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_login_and_me() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let me = p.api.get("/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!(me.status, 200, "{}", me.text);
    assert_eq!((me.body["principal"].clone(), me.body["user"]["email"].clone()), (json!("session"), json!(user.email)));

    let again = p
        .api
        .post("/api/v1/auth/signup", None, json!({"email": user.email.to_uppercase(), "password": "another long one"}))
        .await;
    assert_eq!((again.status, again.error_code()), (409, "email_taken"), "emails compare case-insensitively");

    let login = p.api.post("/api/v1/auth/login", None, json!({"email": user.email, "password": user.password})).await;
    assert_eq!(login.status, 200, "{}", login.text);
    assert_eq!(login.body["token_type"], "Bearer");
    assert!(login.body["expires_in"].as_i64().unwrap() > 0);

    let invalid = p.api.post("/api/v1/auth/signup", None, json!({"email": "not-an-email", "password": "short"})).await;
    assert_eq!((invalid.status, invalid.error_code()), (400, "validation_failed"));
    let fields: Vec<&str> =
        invalid.body["details"].as_array().unwrap().iter().map(|d| d["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "password"], "every problem named at once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_email_and_wrong_password_look_alike() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let wrong =
        p.api.post("/api/v1/auth/login", None, json!({"email": user.email, "password": "wrong password!"})).await;
    let unknown = p
        .api
        .post("/api/v1/auth/login", None, json!({"email": "nobody@example.com", "password": "wrong password!"}))
        .await;
    for reply in [&wrong, &unknown] {
        assert_eq!((reply.status, reply.error_code()), (401, "invalid_credentials"));
    }
    assert_eq!(wrong.body["message"], unknown.body["message"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_reuse_ends_the_session() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let first = p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": user.refresh_token})).await;
    assert_eq!(first.status, 200, "{}", first.text);
    let (token, next_refresh) = (first.str("access_token"), first.str("refresh_token"));
    assert_ne!(next_refresh, user.refresh_token);
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&token)).await.status, 200);

    let reuse = p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": user.refresh_token})).await;
    assert_eq!((reuse.status, reuse.error_code()), (401, "refresh_token_reused"));
    // The whole session is over: its access tokens and its newest refresh token.
    let me = p.api.get("/api/v1/auth/me", Some(&token)).await;
    assert_eq!((me.status, me.error_code()), (401, "session_revoked"));
    let later = p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": next_refresh})).await;
    assert_eq!(later.status, 401);

    let junk = p.api.post("/api/v1/auth/refresh", None, json!({"refresh_token": "kprt_nope"})).await;
    assert_eq!((junk.status, junk.error_code()), (401, "invalid_refresh_token"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session_everywhere() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let out = p.api.post("/api/v1/auth/logout", Some(&user.token), json!({})).await;
    assert_eq!(out.status, 204, "{}", out.text);
    let me = p.api.get("/api/v1/auth/me", Some(&user.token)).await;
    assert_eq!((me.status, me.error_code()), (401, "session_revoked"));
    // Not even a cold cache brings it back: the database says revoked.
    p.flush_redis().await;
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&user.token)).await.status, 401);
}

fn header_of(token: &str) -> Value {
    let part = token.split('.').next().unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn b64(value: &Value) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_bearers_are_checked_strictly() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let header = header_of(&user.token);
    assert_eq!((header["alg"].clone(), header["typ"].clone()), (json!("EdDSA"), json!("at+jwt")));
    let jwks = p.api.get("/.well-known/jwks.json", None).await;
    assert_eq!(jwks.status, 200);
    let published = jwks.body["keys"].as_array().unwrap();
    assert!(published.iter().any(|k| k["kid"] == header["kid"] && k["kty"] == "OKP" && k["crv"] == "Ed25519"));
    let x = published[0]["x"].as_str().unwrap().to_owned();

    let claims: Value = {
        let part = user.token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    let (kid, key) = p.session_signing_key().await;
    let sign = |mut header: Header, claims: &Value| {
        header.kid.get_or_insert(kid.clone());
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    };
    let at_jwt = || {
        let mut h = Header::new(Algorithm::EdDSA);
        h.typ = Some("at+jwt".into());
        h
    };
    let with = |patch: Value| {
        let mut c = claims.clone();
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        c
    };
    let now = chrono::Utc::now().timestamp();
    // Where a forged token says its keys are: nothing may ever connect here.
    let bait = keyplane_common::testsuite::listener().await;
    let bait_addr = bait.local_addr().unwrap();

    // A token we sign the honest way works: the forgeries below differ in one thing each.
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&sign(at_jwt(), &claims))).await.status, 200);

    let mut forged = vec![
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&claims))),
        ("expired", sign(at_jwt(), &with(json!({"exp": now - 120})))),
        ("not yet valid", sign(at_jwt(), &with(json!({"nbf": now + 120})))),
        ("no exp", sign(at_jwt(), &with(json!({"exp": null})))),
        ("wrong issuer", sign(at_jwt(), &with(json!({"iss": "someone-else"})))),
        ("wrong audience", sign(at_jwt(), &with(json!({"aud": "another-app"})))),
        ("no audience", sign(at_jwt(), &with(json!({"aud": null})))),
        ("refresh use", sign(at_jwt(), &with(json!({"use": "refresh"})))),
        ("id token type", sign(Header { typ: Some("JWT".into()), ..at_jwt() }, &claims)),
        ("unknown kid", sign(Header { kid: Some("no-such-kid".into()), ..at_jwt() }, &claims)),
        ("path kid", sign(Header { kid: Some("../../etc/passwd".into()), ..at_jwt() }, &claims)),
        ("huge kid", sign(Header { kid: Some("k".repeat(10_000)), ..at_jwt() }, &claims)),
        ("crit", sign(Header { crit: Some(vec!["exp".into()]), ..at_jwt() }, &claims)),
        (
            "jku",
            sign(
                Header { jku: Some(format!("http://{bait_addr}/jwks")), kid: Some("elsewhere".into()), ..at_jwt() },
                &claims,
            ),
        ),
        (
            "x5u",
            sign(
                Header { x5u: Some(format!("http://{bait_addr}/cert")), kid: Some("elsewhere".into()), ..at_jwt() },
                &claims,
            ),
        ),
    ];
    // HS256 signed with the public key's bytes (the classic algorithm confusion).
    let public = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&x).unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.typ = Some("at+jwt".into());
    hs.kid = Some(kid.clone());
    forged.push((
        "hs256 with public key",
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(&public)).unwrap(),
    ));
    forged.push((
        "hs256 with base64 key",
        jsonwebtoken::encode(&hs, &claims, &EncodingKey::from_secret(x.as_bytes())).unwrap(),
    ));

    for (case, token) in forged {
        let reply = p.api.get("/api/v1/auth/me", Some(&token)).await;
        // Over 8 KiB is refused before any parsing, as 431.
        assert!(matches!(reply.status, 401 | 431), "{case}: {}", reply.text);
        assert!(
            matches!(reply.error_code(), "invalid_token" | "token_expired" | "credential_too_large"),
            "{case}: {}",
            reply.text
        );
    }
    let fetched = tokio::time::timeout(std::time::Duration::from_millis(300), bait.accept()).await;
    assert!(fetched.is_err(), "a key URL named in a token header was fetched");
    // The leeway (30 s) is documented: just inside it still works.
    let inside = sign(at_jwt(), &with(json!({"exp": now - 10})));
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&inside)).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_signing_key_keeps_verifying_its_tokens() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let old_kid = header_of(&user.token)["kid"].clone();
    let auth = p.internal_auth("operator");
    let mut request = tonic::Request::new(RotateSigningKeyRequest {});
    auth.attach(request.metadata_mut(), None);
    let new_kid = IdentityServiceClient::new(p.channel(Target::Identity))
        .rotate_signing_key(request)
        .await
        .unwrap()
        .into_inner()
        .kid;
    assert_ne!(json!(new_kid), old_kid);

    assert_eq!(p.api.get("/api/v1/auth/me", Some(&user.token)).await.status, 200, "old tokens keep working");
    let login = p.api.post("/api/v1/auth/login", None, json!({"email": user.email, "password": user.password})).await;
    assert_eq!(header_of(&login.str("access_token"))["kid"], json!(new_kid));
    let jwks = p.api.get("/.well-known/jwks.json", None).await;
    let kids: Vec<Value> = jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].clone()).collect();
    assert!(kids.contains(&old_kid) && kids.contains(&json!(new_kid)), "both published: {kids:?}");
}
