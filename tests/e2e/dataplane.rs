//! The data plane: the seed's "verify the key works", scopes, pinning, environments, and
//! what the gateway sends upstream.

use keyplane_common::config::Target;
use keyplane_e2e::{Api, Platform};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_key_closes_the_credential_loop() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let families = p.api.get("/api/v1/developer/families", Some(&key.unwrap())).await;
    assert_eq!((families.status, families.body.clone()), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn families_honour_scopes_pins_and_environments() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let (_, test_writer) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "tw", "environment": "test", "scopes": ["read:families", "write:families"]}),
        )
        .await;
    let (_, live_writer) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "lw", "environment": "live", "scopes": ["read:families", "write:families"]}),
        )
        .await;
    let (_, reader) =
        p.api.key(&user.token, &org, json!({"name": "r", "environment": "test", "scopes": ["read:families"]})).await;

    let created = p.api.post("/api/v1/developer/families", Some(&test_writer), json!({"name": "Smith"})).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let family = created.str("id");
    assert_eq!(created.str("environment"), "test");
    let other = p.api.post("/api/v1/developer/families", Some(&test_writer), json!({"name": "Jones"})).await.str("id");

    let denied = p.api.post("/api/v1/developer/families", Some(&reader), json!({"name": "Nope"})).await;
    assert_eq!((denied.status, denied.error_code()), (403, "insufficient_scope"));
    let one = p.api.get(&format!("/api/v1/developer/families/{family}"), Some(&reader)).await;
    assert_eq!((one.status, one.str("name")), (200, "Smith".to_owned()));

    // Test data is invisible to live keys, and the other way round.
    let live_list = p.api.get("/api/v1/developer/families", Some(&live_writer)).await;
    assert_eq!(live_list.body, json!([]));
    assert_eq!(p.api.get(&format!("/api/v1/developer/families/{family}"), Some(&live_writer)).await.status, 404);
    p.api.post("/api/v1/developer/families", Some(&live_writer), json!({"name": "Live"})).await;
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&test_writer)).await.body.as_array().unwrap().len(), 2);

    // A pinned key reaches only its resources.
    let (_, pinned) = p
        .api
        .key(
            &user.token,
            &org,
            json!({"name": "p", "environment": "test", "scopes": ["read:families"], "resource_ids": [family]}),
        )
        .await;
    assert_eq!(p.api.get(&format!("/api/v1/developer/families/{family}"), Some(&pinned)).await.status, 200);
    let elsewhere = p.api.get(&format!("/api/v1/developer/families/{other}"), Some(&pinned)).await;
    assert_eq!((elsewhere.status, elsewhere.error_code()), (403, "resource_not_allowed"));
    let listed = p.api.get("/api/v1/developer/families", Some(&pinned)).await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1, "lists show only pinned resources");

    // Another tenant's key sees none of it.
    let eve = p.api.signup().await;
    let (_, eve_key) = p.api.dev_org(&eve, true).await;
    let eve_key = eve_key.unwrap();
    assert_eq!(p.api.get("/api/v1/developer/families", Some(&eve_key)).await.body, json!([]));
    assert_eq!(p.api.get(&format!("/api/v1/developer/families/{family}"), Some(&eve_key)).await.status, 404);

    assert_eq!(
        p.api.get("/api/v1/developer/policies", Some(&test_writer)).await.status,
        404,
        "no backend for that prefix"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backends_trust_only_what_the_gateway_signed() {
    let p = Platform::start().await;
    let backend = Api::new(format!("http://{}", p.addr(Target::Families)));
    let forged = backend
        .send(
            backend
                .http
                .get(backend.url("/api/v1/developer/families"))
                .header("x-keyplane-org-id", uuid::Uuid::now_v7().to_string())
                .header("x-keyplane-key-id", uuid::Uuid::now_v7().to_string())
                .header("x-keyplane-environment", "live")
                .header("x-keyplane-scopes", "read:families")
                .header("x-keyplane-timestamp", chrono::Utc::now().timestamp().to_string())
                .header("x-keyplane-signature", "v1=00"),
        )
        .await;
    assert_eq!((forged.status, forged.error_code()), (401, "unauthenticated"));

    // Identity headers a client sends through the gateway are replaced, not trusted.
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let spoof = p
        .api
        .send(
            p.api
                .http
                .get(p.api.url("/api/v1/developer/families"))
                .bearer_auth(key.unwrap())
                .header("x-keyplane-org-id", "someone-else"),
        )
        .await;
    assert_eq!((spoof.status, spoof.body.clone()), (200, json!([])));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_is_refused_without_a_network_call() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    // A gateway whose identity service is unreachable: anything that needs a lookup
    // fails with 503, so a 401 can only come from the shape check.
    let closed = Platform::closed_address().await;
    let (isolated, _stop) = p.gateway_replica_with(|config| config.identity_addr = closed).await;

    let mut changed = key.clone().into_bytes();
    changed[20] = if changed[20] == b'a' { b'b' } else { b'a' };
    for bad in
        [String::from_utf8(changed).unwrap(), key.to_uppercase(), format!("{key}0"), key.replace("_test_", "_prod_")]
    {
        let reply = isolated.get("/api/v1/developer/families", Some(&bad)).await;
        assert_eq!((reply.status, reply.error_code()), (401, "invalid_api_key"), "{bad}");
    }
    let needs_lookup = isolated.get("/api/v1/developer/families", Some(&key)).await;
    assert_eq!((needs_lookup.status, needs_lookup.error_code()), (503, "service_unavailable"));
    assert!(!needs_lookup.text.contains("127.0.0.1"), "no internal address leaks: {}", needs_lookup.text);
}

/// An `https://` backend is reached over TLS, its certificate checked against the system's
/// roots (here a private CA added with SSL_CERT_FILE); without that CA the gateway refuses
/// to talk to it (502), it never falls back to trusting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_backend_is_reached_over_verified_tls() {
    use std::process::{Command, Stdio};

    let p = Platform::start().await;
    let dir = std::env::temp_dir().join(format!("keyplane-tls-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let openssl = |args: &[&str]| {
        let done = Command::new("openssl").args(args).current_dir(&dir).stderr(Stdio::null()).status();
        assert!(done.expect("openssl is installed").success(), "openssl {args:?}");
    };
    // A private CA, and a certificate it signs for localhost.
    openssl(
        &["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1"]
            .into_iter()
            .chain(["-keyout", "ca.key", "-out", "ca.pem", "-subj", "/CN=Keyplane test CA"])
            .collect::<Vec<_>>(),
    );
    openssl(
        &["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
            .into_iter()
            .chain(["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"])
            .collect::<Vec<_>>(),
    );
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(
        &["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial"]
            .into_iter()
            .chain(["-days", "1", "-extfile", "san.ext", "-out", "server.pem"])
            .collect::<Vec<_>>(),
    );
    // A TLS server answering every GET with a page of its own.
    let tls_port = keyplane_e2e::free_port();
    let mut server = keyplane_e2e::platform::Process(
        Command::new("openssl")
            .args([
                "s_server",
                "-accept",
                &format!("127.0.0.1:{tls_port}"),
                "-cert",
                "server.pem",
                "-key",
                "server.key",
            ])
            .args(["-www", "-quiet"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_server"),
    );
    // Listening before any gateway asks, so a refusal can only be the certificate's.
    let listening = keyplane_e2e::eventually(std::time::Duration::from_secs(10), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", tls_port)).await.is_ok()
    })
    .await;
    assert!(listening, "openssl s_server did not start");
    let route = json!([{
        "prefix": "/api/v1/developer/secure", "upstream": format!("https://localhost:{tls_port}"),
        "read_scope": "read:families", "write_scope": "write:families"
    }])
    .to_string();
    let gateway = |trust: bool| {
        let port = keyplane_e2e::free_port();
        let mut settings = p.gateway_settings(port);
        settings.push(("KEYPLANE_GATEWAY_ROUTES", route.clone()));
        if trust {
            settings.push(("SSL_CERT_FILE", dir.join("ca.pem").display().to_string()));
        }
        (p.serve("gateway", &settings), Api::new(format!("http://127.0.0.1:{port}")))
    };
    let (mut trusting, trusting_api) = gateway(true);
    let (mut wary, wary_api) = gateway(false);

    let user = p.api.signup().await;
    let (_, key) = p.api.dev_org(&user, true).await;
    let key = key.unwrap();
    let mut answers = Vec::new();
    for api in [&trusting_api, &wary_api] {
        let mut reply = None;
        for _ in 0..150 {
            if api.http.get(api.url("/health")).send().await.is_ok() {
                reply = Some(api.get("/api/v1/developer/secure/x", Some(&key)).await);
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        answers.push(reply.expect("the gateway process answers"));
    }
    for child in [&mut trusting, &mut wary, &mut server] {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);

    assert_eq!(answers[0].status, 200, "over TLS to a backend the CA vouches for: {}", answers[0].text);
    assert!(answers[0].text.contains("s_server"), "the backend's own page: {}", answers[0].text);
    assert_eq!((answers[1].status, answers[1].error_code()), (502, "bad_gateway"), "an untrusted certificate");
}

/// Answers pass through whole whatever their size (a small one is read whole first, a
/// large or unsized one streams), an answer to HEAD keeps the length the GET's has, and one
/// that breaks off before its declared length is a 502 in the contract's shape, never a
/// truncated 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_arrive_whole_small_large_or_streamed_and_a_broken_one_is_502() {
    use axum::{Router, body::Body, routing::get};
    let large = "x".repeat(200 * 1024);
    let backend = Router::new()
        .route("/api/v1/developer/answers/small", get(|| async { "small answer" }))
        .route("/api/v1/developer/answers/large", get(move || std::future::ready(large.clone())))
        .route(
            "/api/v1/developer/answers/streamed",
            get(|| async {
                let chunks = futures_util::stream::iter(["one ", "two ", "three"].map(Ok::<_, std::io::Error>));
                Body::from_stream(chunks)
            }),
        );
    let upstream = keyplane_e2e::serve_backend(backend).await;
    // A backend that promises 100 bytes and sends 5.
    let broken_upstream = raw_backend(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort", false).await;

    let p = Platform::start().await;
    let routes = [("/api/v1/developer/answers", upstream.as_str()), ("/api/v1/developer/broken", &broken_upstream)];
    let (gateway, _stop) = p.gateway_routing(&routes, |_| {}).await;
    let key = org_key(&p).await;

    let small = gateway.get("/api/v1/developer/answers/small", Some(&key)).await;
    assert_eq!((small.status, small.text.as_str()), (200, "small answer"));
    let large = gateway.get("/api/v1/developer/answers/large", Some(&key)).await;
    assert_eq!(large.status, 200);
    assert_eq!(large.text.len(), 200 * 1024, "the whole large answer");
    let length = large.headers.get("content-length").and_then(|v| v.to_str().ok());
    assert_eq!(length, Some("204800"), "streamed with its length, not chunked: {:?}", large.headers);
    // HEAD: no body, and the length the GET's answer has.
    let head =
        gateway.http.head(gateway.url("/api/v1/developer/answers/large")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(head.status(), 200);
    let length = head.headers().get("content-length").map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(length.as_deref(), Some("204800"), "the GET's length, not the empty body's");
    assert!(head.bytes().await.unwrap().is_empty());
    let streamed = gateway.get("/api/v1/developer/answers/streamed", Some(&key)).await;
    assert_eq!((streamed.status, streamed.text.as_str()), (200, "one two three"));
    let broken = gateway.get("/api/v1/developer/broken/x", Some(&key)).await;
    assert_eq!((broken.status, broken.error_code()), (502, "bad_gateway"), "{}", broken.text);
}

/// A header the backend's `Connection` header names is for the hop between it and the
/// gateway (RFC 9110 §7.6.1): it stops there, and the rest of the answer goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_a_backend_names_in_connection_stop_at_the_gateway() {
    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close, X-Private-Hop\r\n\
                   x-private-hop: for the gateway alone\r\nx-public: yes\r\n\r\nok";
    let upstream = raw_backend(answer, false).await;
    let p = Platform::start().await;
    let (gateway, _stop) = p.gateway_routing(&[("/api/v1/developer/hops", &upstream)], |_| {}).await;
    let key = org_key(&p).await;
    let answer = gateway.get("/api/v1/developer/hops/x", Some(&key)).await;
    assert_eq!((answer.status, answer.text.as_str()), (200, "ok"));
    assert!(answer.headers.get("x-private-hop").is_none(), "{:?}", answer.headers);
    assert_eq!(answer.headers.get("x-public").map(|v| v.to_str().unwrap()), Some("yes"));
}

/// A backend that answers 101 Switching Protocols (the gateway asked for no upgrade: it
/// never passes `Upgrade` on) gets a 502, not a switch the client never asked for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_switching_protocols_unasked_is_a_502() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n\
                   raw bytes of another protocol";
    let upstream = raw_backend(answer, true).await;

    let p = Platform::start().await;
    let (gateway, _stop) = p.gateway_routing(&[("/api/v1/developer/switching", &upstream)], |_| {}).await;
    let key = org_key(&p).await;
    let asked = gateway
        .http
        .get(gateway.url("/api/v1/developer/switching/x"))
        .bearer_auth(&key)
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .send()
        .await
        .unwrap();
    assert_eq!(asked.status(), 502, "{:?}", asked.headers());
    let asked: serde_json::Value = asked.json().await.unwrap();
    assert_eq!(asked["code"], "bad_gateway", "in the contract's shape: {asked}");
    let plain = gateway.get("/api/v1/developer/switching/y", Some(&key)).await;
    assert_eq!((plain.status, plain.error_code()), (502, "bad_gateway"), "{}", plain.text);

    // CONNECT would make hyper's client take any 2xx for a tunnel: refused before it goes.
    let mut socket = tokio::net::TcpStream::connect(gateway.url("").trim_start_matches("http://")).await.unwrap();
    let connect = format!(
        "CONNECT /api/v1/developer/switching/z HTTP/1.1\r\nhost: gateway\r\nauthorization: Bearer {key}\r\n\r\n"
    );
    socket.write_all(connect.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let read = socket.read(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 405"), "{answer}");
    assert!(answer.contains("\"method_not_allowed\""), "{answer}");
}

/// A backend that sends the head of a streamed answer and then nothing, holding its
/// connection open: the gateway breaks the answer off once the backend has been silent for
/// the gateway's timeout, rather than holding the client (and the connection) for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_answer_whose_backend_falls_silent_is_broken_off() {
    // Held open: only the gateway can end the answer.
    let upstream = raw_backend(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\nfirst \r\n", true).await;

    let p = Platform::start().await;
    let (gateway, _stop) = p
        .gateway_routing(&[("/api/v1/developer/silent", &upstream)], |config| {
            config.request_timeout = std::time::Duration::from_secs(1);
        })
        .await;
    let key = org_key(&p).await;
    let mut answer =
        gateway.http.get(gateway.url("/api/v1/developer/silent/x")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(answer.status(), 200, "the head came in time, and went on");
    let first = answer.chunk().await.expect("what the backend sent goes on");
    assert_eq!(first.as_deref(), Some(&b"first "[..]));
    // A bound on the test, not a measure of speed: without the gateway's, this waits for ever.
    let rest = tokio::time::timeout(std::time::Duration::from_secs(30), answer.chunk()).await;
    let rest = rest.expect("the gateway ended the answer");
    assert!(rest.is_err(), "broken off, not passed as a whole answer: {rest:?}");
}

/// SECURITY-CASES 40: a body that stops before its `Content-Length` (the connection held
/// open) is 400 once it has been silent for the gateway's bound, on a REST route and on the
/// data plane, rather than held to the request's deadline and answered 504. A body that
/// arrives slowly but whole is read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_before_its_length_is_400() {
    use axum::{Router, body::Bytes, routing::post};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Answers with the length of what it was sent.
    let backend = Router::new().route(
        "/api/v1/developer/echo/{id}",
        post(|body: Bytes| async move {
            ([("content-type", "application/json")], format!("{{\"length\":{}}}", body.len()))
        }),
    );
    let upstream = keyplane_e2e::serve_backend(backend).await;
    let p = Platform::start().await;
    let (gateway, _stop) = p
        .gateway_routing(&[("/api/v1/developer/echo", &upstream)], |config| {
            config.body_idle = std::time::Duration::from_secs(1);
        })
        .await;
    let key = org_key(&p).await;
    let authority = gateway.url("").trim_start_matches("http://").to_owned();
    let send = |head: String, parts: Vec<&'static [u8]>| {
        let authority = authority.clone();
        async move {
            let mut socket = tokio::net::TcpStream::connect(authority).await.unwrap();
            socket.write_all(head.as_bytes()).await.unwrap();
            for part in parts {
                socket.write_all(part).await.unwrap();
                tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            }
            // Held open, not closed: only the gateway's bound can end the wait.
            let mut answer = Vec::new();
            let mut buffer = [0u8; 4096];
            loop {
                let read = socket.read(&mut buffer).await.unwrap();
                answer.extend_from_slice(&buffer[..read]);
                let text = String::from_utf8_lossy(&answer);
                if read == 0 || text.contains("\r\n\r\n") && text.trim_end().ends_with('}') {
                    return text.into_owned();
                }
            }
        }
    };
    let lying = |path: &str, more: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n{more}content-length: 100\r\n\r\n"
        )
    };
    // A bound on the test, not a measure of speed: without the gateway's bound this waits
    // the request's whole deadline (30 s) and gets a 504.
    let within = |answer| tokio::time::timeout(std::time::Duration::from_secs(20), answer);
    let bearer = format!("authorization: Bearer {key}\r\n");
    let advisor = format!("/api/v1/advisors/{}/consultations/{}/response", uuid::Uuid::nil(), uuid::Uuid::nil());
    // Each place a body is read: a JSON extractor, the data plane, an Idempotency-Key (read
    // before the handler), GitHub's alerts and a signed advisor answer (read as bytes).
    for (path, more) in [
        ("/api/v1/auth/login", String::new()),
        ("/api/v1/developer/echo/x", bearer.clone()),
        ("/api/v1/developer/echo/x", format!("{bearer}idempotency-key: retry-me\r\n")),
        ("/api/v1/secret-scanning/github", String::new()),
        (advisor.as_str(), String::new()),
    ] {
        let answer = within(send(lying(path, &more), vec![b"{\"a\":"])).await.expect("answered");
        assert!(answer.starts_with("HTTP/1.1 400"), "{path}: {answer}");
        assert!(answer.contains("\"incomplete_body\""), "{path}: {answer}");
    }

    // Slow but whole (each part well inside the bound): read and forwarded.
    let head = format!(
        "POST /api/v1/developer/echo/x HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n{bearer}content-length: 11\r\n\r\n"
    );
    let slow = within(send(head, vec![b"{\"a\":", b" 1", b"}\n  "])).await.expect("answered");
    assert!(slow.starts_with("HTTP/1.1 200"), "{slow}");
    assert!(slow.contains("{\"length\":11}"), "the whole body went on: {slow}");
}

/// The gateway keeps its connections to a backend and reuses them, one after another; a
/// connection the backend closed while it sat idle is passed over, never a failed request,
/// and let go even when no request comes to take it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_connections_are_reused_and_those_closed_while_idle_are_passed_over_and_let_go() {
    use std::net::SocketAddr;

    use axum::{Router, extract::ConnectInfo, routing::get};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // Answers with the gateway's own port (the same port means the same connection) and
    // the org the gateway signed for.
    let backend = Router::new().route(
        "/api/v1/developer/peer/{id}",
        get(|ConnectInfo(peer): ConnectInfo<SocketAddr>, headers: axum::http::HeaderMap| async move {
            let org = headers.get("x-keyplane-org-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_owned();
            format!("{} {org}", peer.port())
        }),
    );
    let listener = keyplane_common::testsuite::listener().await;
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(
        async move { axum::serve(listener, backend.into_make_service_with_connect_info::<SocketAddr>()).await },
    );
    // Answers each connection's first request as if it would keep it, and closes it a
    // moment later: after the gateway put it back among its idle ones.
    let closing = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closing_upstream = format!("http://{}", closing.local_addr().unwrap());
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = std::sync::Arc::clone(&accepted);
    // The twenty calls made at once below are answered together, each on a connection of its own.
    let together = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = closing.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let together = std::sync::Arc::clone(&together);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut chunk = [0u8; 4096];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&chunk[..n]),
                    }
                }
                if request.starts_with(b"GET /api/v1/developer/closing/m") {
                    together.wait().await;
                }
                let _ = socket.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").await;
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            });
        }
    });

    let p = Platform::start().await;
    let routes = [("/api/v1/developer/peer", upstream.as_str()), ("/api/v1/developer/closing", &closing_upstream)];
    let (gateway, _stop) = p.gateway_routing(&routes, |_| {}).await;
    // Two tenants, taking turns on the one kept connection.
    let keys = [org_key(&p).await, org_key(&p).await];
    let mut ports = std::collections::HashSet::new();
    for i in 0..6 {
        let key = &keys[i % 2];
        let own_org = gateway.get("/api/v1/keys/self", Some(key)).await.body["org_id"].as_str().unwrap().to_owned();
        let answer = gateway.get(&format!("/api/v1/developer/peer/p{i}"), Some(key)).await;
        assert_eq!(answer.status, 200, "{}", answer.text);
        let (port, org) = answer.text.split_once(' ').expect("port and org");
        assert_eq!(org, own_org, "each answer is its own caller's, on a reused connection too");
        ports.insert(port.to_owned());
    }
    assert_eq!(ports.len(), 1, "one connection served six requests in turn: {ports:?}");
    let key = keys[0].clone();

    for i in 0..3 {
        let answer = gateway.get(&format!("/api/v1/developer/closing/c{i}"), Some(&key)).await;
        assert_eq!((answer.status, answer.text.as_str()), (200, "ok"), "request {i}");
        // Past the backend's close: the gateway holds a connection that is gone.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    }
    let connections = accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(connections, 3, "a new connection for each, as the backend closes each");

    // Twenty at once, then no more traffic: the sockets the backend closed are let go
    // all the same (left unread, each would sit in CLOSE_WAIT holding a descriptor).
    let calls = (0..20).map(|i| {
        let (gateway, key) = (&gateway, &key);
        async move { gateway.get(&format!("/api/v1/developer/closing/m{i}"), Some(key)).await }
    });
    for answer in futures_util::future::join_all(calls).await {
        assert_eq!((answer.status, answer.text.as_str()), (200, "ok"));
    }
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 23, "the twenty made connections of their own");
    let port = closing_upstream.rsplit(':').next().unwrap().parse::<u16>().unwrap();
    // Past the backend's close of all twenty.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    let released =
        keyplane_e2e::eventually(std::time::Duration::from_secs(5), || async { closing_wait_to(port) == 0 }).await;
    assert!(released, "{} connections to the backend are still in CLOSE_WAIT", closing_wait_to(port));
}

/// A backend that answers each connection's first request with `answer`, byte for byte,
/// then closes the connection, or holds it open while the test runs (`hold`).
async fn raw_backend(answer: &'static [u8], hold: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 4096];
                let _ = socket.read(&mut request).await;
                let _ = socket.write_all(answer).await;
                if hold {
                    std::future::pending::<()>().await;
                }
            });
        }
    });
    upstream
}

/// This process's TCP connections to `port` that the peer closed and we have not.
fn closing_wait_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let remote = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.get(2).is_some_and(|r| r.ends_with(&remote)) && fields.get(3) == Some(&"08")
        })
        .count()
}

/// A new user's developer org's first key (every scope).
async fn org_key(p: &Platform) -> String {
    let user = p.api.signup().await;
    p.api.dev_org(&user, true).await.1.expect("a bootstrap key")
}
