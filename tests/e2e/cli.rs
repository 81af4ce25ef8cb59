//! The `keyplane` client commands, run as a developer runs them: the real binary, its own
//! config directory, a real gateway.

use std::{
    io::Write,
    os::unix::fs::PermissionsExt,
    path::PathBuf,
    process::{Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use axum::{
    Json, Router,
    body::Body,
    http::{HeaderValue, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use keyplane_e2e::{Platform, eventually};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

/// A developer's machine: a config directory of its own (removed after the test).
struct Machine {
    home: PathBuf,
}

/// How a run of `keyplane` ended.
struct Run {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    /// Fails the test, with what the command said, unless it succeeded.
    fn ok(self) -> Self {
        assert!(self.success, "keyplane failed:\n{}\n{}", self.stdout, self.stderr);
        self
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

impl Machine {
    fn new() -> Self {
        let home = std::env::temp_dir().join(format!("keyplane-cli-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&home).expect("a temporary home");
        Self { home }
    }

    async fn run(&self, args: &[&str]) -> Run {
        self.run_with_input(args, "").await
    }

    /// Runs `keyplane args…` with `input` on standard input and nothing from this
    /// process's environment but PATH (no KEYPLANE_URL, no real ~/.config).
    async fn run_with_input(&self, args: &[&str], input: &str) -> Run {
        let mut command = Command::new(keyplane_e2e::keyplane_binary());
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("XDG_CONFIG_HOME", self.home.join("config"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let input = input.to_owned();
        let output = tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("start keyplane");
            child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
            child.wait_with_output().expect("keyplane ends")
        })
        .await
        .unwrap();
        let run = Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        };
        assert!(
            !run.stderr.contains("panicked") && !run.stderr.contains("RUST_BACKTRACE"),
            "keyplane {args:?} crashed: {}",
            run.stderr
        );
        run
    }

    fn session_path(&self) -> PathBuf {
        self.home.join("config/keyplane/session.json")
    }

    fn session(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.session_path()).expect("a session file")).expect("JSON")
    }

    fn write_session(&self, session: &Value) {
        std::fs::write(self.session_path(), serde_json::to_vec(session).unwrap()).unwrap();
    }
}

impl Drop for Machine {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.home);
    }
}

fn fresh_email() -> String {
    format!("cli-{}@example.com", uuid::Uuid::new_v4().simple())
}

async fn families(p: &Platform, key: &str) -> u16 {
    p.api.get("/api/v1/developer/families", Some(key)).await.status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_developer_signs_up_and_manages_keys_from_the_command_line() {
    let p = Platform::start().await;
    let dev = Machine::new();
    let url = p.api.base.clone();
    let email = fresh_email();

    // Sign up with the password on standard input: a session file only the user can read,
    // and the developer org made and remembered.
    let signup = ["signup", "--url", &url, "--email", &email, "--name", "Ada", "--password-stdin"];
    let signed_up = dev.run_with_input(&signup, &format!("{PASSWORD}\n")).await.ok();
    assert!(signed_up.stdout.contains(&email) && signed_up.stdout.contains("Ada's org"), "{}", signed_up.stdout);
    let mode = std::fs::metadata(dev.session_path()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "the session file is the user's alone");
    let session = dev.session();
    assert_eq!(session["url"], url.as_str());
    assert!(session["access_token"].as_str().is_some_and(|t| t.starts_with("eyJ")), "{session}");
    assert!(session["refresh_token"].as_str().is_some_and(|t| !t.is_empty()), "{session}");
    let dev_org = session["dev_org_id"].as_str().expect("the dev org is remembered").to_owned();

    // Logging in again goes to the session's gateway without --url.
    let login = ["login", "--email", &email, "--password-stdin"];
    dev.run_with_input(&login, PASSWORD).await.ok();
    assert_ne!(dev.session()["access_token"], session["access_token"], "a new session");

    let orgs = dev.run(&["orgs", "list"]).await.ok();
    let row = orgs.stdout.lines().find(|l| l.contains(&dev_org)).unwrap_or_else(|| panic!("{}", orgs.stdout));
    assert!(row.starts_with('*') && row.contains("Ada's org"), "the dev org is the default: {row}");
    let listed = dev.run(&["orgs", "list", "--json"]).await.ok().json();
    assert_eq!(listed["data"][0]["id"], dev_org.as_str(), "{listed}");

    // The dev org's first key, once.
    let bootstrap = dev.run(&["orgs", "ensure", "--bootstrap-key"]).await.ok();
    assert!(bootstrap.stdout.lines().any(|l| l.starts_with("phosra_test_")), "{}", bootstrap.stdout);
    assert!(bootstrap.stderr.contains("shown this once"), "{}", bootstrap.stderr);
    let again = dev.run(&["orgs", "ensure", "--bootstrap-key"]).await.ok();
    assert!(!again.stdout.contains("phosra_test_"), "never a second bootstrap key: {}", again.stdout);

    // A key: the secret alone on stdout, the warning on stderr, and it works.
    let created = dev.run(&["keys", "create", "--name", "ci", "--scope", "read:families,read:usage"]).await.ok();
    let secret = created.stdout.trim().to_owned();
    assert!(secret.starts_with("phosra_test_") && !secret.contains('\n'), "{}", created.stdout);
    assert!(created.stderr.contains("shown this once"), "{}", created.stderr);
    assert_eq!(families(&p, &secret).await, 200);

    // Listed, as a table and as the API's JSON, never with a secret.
    let keys = dev.run(&["keys", "list", "--json"]).await.ok();
    let ci = keys.json().as_array().unwrap().iter().find(|k| k["name"] == "ci").cloned().expect("the key is listed");
    let key_id = ci["id"].as_str().unwrap().to_owned();
    assert_eq!(ci["scopes"], json!(["read:families", "read:usage"]));
    let table = dev.run(&["keys", "list"]).await.ok();
    let header = table.stdout.lines().next().unwrap();
    assert!(header.starts_with("ID") && header.contains("NAME") && header.contains("STATUS"), "{header}");
    let row = table.stdout.lines().find(|l| l.starts_with(&key_id)).unwrap_or_else(|| panic!("{}", table.stdout));
    assert!(row.contains("ci") && row.contains("active") && row.contains("test"), "{row}");
    // Columns line up: each row's status starts where the header's does.
    let column = header.find("STATUS").unwrap();
    assert!(table.stdout.lines().skip(1).all(|l| l[column..].starts_with("active")), "{}", table.stdout);
    for output in [&keys.stdout, &table.stdout] {
        assert!(!output.contains(&secret) && !output.contains("\"key\""), "{output}");
    }

    // Rotation: a new secret, and the old one still works in its grace period.
    let rotated = dev.run(&["keys", "rotate", &key_id, "--grace-period", "1h"]).await.ok();
    let new_secret = rotated.stdout.trim().to_owned();
    assert!(new_secret.starts_with("phosra_test_") && new_secret != secret, "{}", rotated.stdout);
    assert!(rotated.stderr.contains("works until"), "{}", rotated.stderr);
    assert_eq!((families(&p, &new_secret).await, families(&p, &secret).await), (200, 200));

    // Revoked: refused.
    let revoked = dev.run(&["keys", "revoke", &key_id]).await.ok();
    assert!(revoked.stdout.contains(&key_id), "{}", revoked.stdout);
    assert!(eventually(Duration::from_secs(5), || async { families(&p, &new_secret).await == 401 }).await);

    // Usage counted the key's requests; the audit log holds the key's story.
    let counted = eventually(Duration::from_secs(10), || async {
        let usage = dev.run(&["usage", "--json"]).await.ok().json();
        let hours = usage["data"].as_array().cloned().unwrap_or_default();
        hours.iter().map(|h| h["requests"].as_u64().unwrap_or(0)).sum::<u64>() >= 3
    })
    .await;
    assert!(counted, "usage never counted the key's requests");
    let usage = dev.run(&["usage", "--key", &key_id]).await.ok();
    let lines: Vec<&str> = usage.stdout.lines().collect();
    assert!(lines[0].starts_with("HOUR (UTC)") && lines.len() >= 3, "{}", usage.stdout);
    assert!(lines.last().unwrap().starts_with("total"), "{}", usage.stdout);
    let audited = eventually(Duration::from_secs(10), || async {
        let audit = dev.run(&["audit"]).await.ok().stdout;
        ["api_key.created", "api_key.regenerated", "api_key.revoked"]
            .iter()
            .all(|action| audit.lines().any(|l| l.contains(action) && l.contains(&format!("api_key:{key_id}"))))
    })
    .await;
    assert!(audited, "{}", dev.run(&["audit"]).await.stdout);
    let only = dev.run(&["audit", "--action", "api_key.revoked", "--limit", "1", "--json"]).await.ok().json();
    assert_eq!(only["data"].as_array().map(Vec::len), Some(1), "{only}");
    assert_eq!(only["data"][0]["action"], "api_key.revoked");

    // Another org, chosen by slug; the default stays the dev org.
    let side = dev.run(&["orgs", "create", "--name", "Side Project", "--json"]).await.ok().json();
    let by_slug = dev.run(&["orgs", "get", "--org", "side-project", "--json"]).await.ok().json();
    assert_eq!(by_slug["id"], side["id"]);
    let side_keys = dev.run(&["keys", "list", "--org", "side-project", "--json"]).await.ok().json();
    assert_eq!(side_keys, json!([]));

    // Logout ends the session on the gateway and forgets it here.
    let bearer = dev.session()["access_token"].as_str().unwrap().to_owned();
    dev.run(&["logout"]).await.ok();
    assert!(!dev.session_path().exists());
    assert_eq!(p.api.get("/api/v1/auth/me", Some(&bearer)).await.status, 401);
    let after = dev.run(&["keys", "list"]).await;
    assert!(!after.success && after.stderr.contains("not logged in"), "{}", after.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_the_apis_message_and_exit_non_zero() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let dev = Machine::new();
    let url = p.api.base.clone();

    let wrong = dev.run_with_input(&["login", "--url", &url, "--email", &user.email, "--password-stdin"], "nope").await;
    assert!(!wrong.success);
    // The request id comes last, for the user to quote to the platform's operators.
    let (said, request) = wrong.stderr.trim().split_once(" [request ").expect("the request id");
    assert_eq!(said, "keyplane: the email or password is not correct (invalid_credentials, HTTP 401)");
    assert!(request.len() > 1 && request.ends_with(']'), "{}", wrong.stderr);
    assert!(!dev.session_path().exists(), "no session from a failed login");

    let not_yet = dev.run(&["orgs", "list"]).await;
    assert!(!not_yet.success && not_yet.stderr.contains("not logged in"), "{}", not_yet.stderr);

    let login = ["login", "--url", &url, "--email", &user.email, "--password-stdin"];
    dev.run_with_input(&login, &user.password).await.ok();

    // Two orgs and no developer org known: which one is for the user to say.
    for name in ["North", "South"] {
        let reply = p.api.post("/api/v1/developers/orgs", Some(&user.token), json!({"name": name})).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
    }
    let ambiguous = dev.run(&["keys", "list"]).await;
    assert!(!ambiguous.success, "{}", ambiguous.stdout);
    assert!(
        ambiguous.stderr.contains("you belong to 2 orgs: choose one with --org (north, south)"),
        "{}",
        ambiguous.stderr
    );

    // The API's validation, word for word.
    let bad_scope = dev.run(&["keys", "create", "--org", "north", "--name", "x", "--scope", "read:everything"]).await;
    assert!(!bad_scope.success);
    assert!(
        bad_scope.stderr.starts_with("keyplane: ") && bad_scope.stderr.contains("HTTP 400"),
        "{}",
        bad_scope.stderr
    );
    assert!(bad_scope.stderr.contains("read:everything"), "{}", bad_scope.stderr);

    // The session's tokens never go to another gateway.
    let elsewhere = dev.run(&["orgs", "list", "--url", "http://127.0.0.1:9"]).await;
    assert!(
        !elsewhere.success && elsewhere.stderr.contains(&format!("you are logged in to {url}")),
        "{}",
        elsewhere.stderr
    );

    // A gateway that does not answer.
    let nobody = Machine::new();
    let down = nobody
        .run_with_input(&["login", "--url", "http://127.0.0.1:9", "--email", "a@b.co", "--password-stdin"], "x")
        .await;
    assert!(!down.success);
    assert!(down.stderr.starts_with("keyplane: cannot reach the gateway at http://127.0.0.1:9: "), "{}", down.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_or_expired_access_token_is_refreshed_and_saved() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let dev = Machine::new();
    let login = ["login", "--url", &p.api.base, "--email", &user.email, "--password-stdin"];
    dev.run_with_input(&login, &user.password).await.ok();
    let first = dev.session();

    // An access token the gateway refuses: refreshed, the new pair saved.
    let mut session = first.clone();
    session["access_token"] = json!("eyJhbGciOiJFZERTQSJ9.e30.c2ln");
    dev.write_session(&session);
    dev.run(&["orgs", "list"]).await.ok();
    let refreshed = dev.session();
    assert_ne!(refreshed["access_token"], session["access_token"]);
    assert_ne!(refreshed["refresh_token"], first["refresh_token"], "the spent refresh token is replaced");

    // A genuine token past its expiry: the same.
    let (kid, key) = p.session_signing_key().await;
    let token = refreshed["access_token"].as_str().unwrap();
    let payload = token.split('.').nth(1).unwrap();
    let mut claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    let now = chrono::Utc::now().timestamp();
    (claims["iat"], claims["nbf"], claims["exp"]) = (json!(now - 3600), json!(now - 3600), json!(now - 600));
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    (header.typ, header.kid) = (Some("at+jwt".into()), Some(kid));
    let expired = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    let refused = p.api.get("/api/v1/auth/me", Some(&expired)).await;
    assert_eq!((refused.status, refused.code()), (401, "token_expired"), "{}", refused.text);
    let mut session = refreshed.clone();
    session["access_token"] = json!(expired);
    dev.write_session(&session);
    dev.run(&["orgs", "list"]).await.ok();
    assert_ne!(dev.session()["access_token"], json!(expired));

    // Several runs refusing at once refresh once between them: a refresh token is good
    // once, and its reuse would end the session.
    session = dev.session();
    session["access_token"] = json!("eyJhbGciOiJFZERTQSJ9.e30.c2ln");
    dev.write_session(&session);
    let runs = futures_util::future::join_all((0..4).map(|_| dev.run(&["orgs", "list", "--json"]))).await;
    for run in runs {
        run.ok();
    }
    dev.run(&["orgs", "list"]).await.ok();
}

#[tokio::test]
async fn completions_are_printed_for_each_shell() {
    let dev = Machine::new();
    for (shell, marker) in [("bash", "complete -F"), ("zsh", "#compdef keyplane"), ("fish", "complete -c keyplane")] {
        let script = dev.run(&["completions", shell]).await.ok().stdout;
        assert!(script.contains(marker), "{shell}: {script}");
        for verb in ["login", "keys", "rotate", "audit", "serve"] {
            assert!(script.contains(verb), "{shell} completes {verb}");
        }
    }
    let unknown = dev.run(&["completions", "cmd.exe"]).await;
    assert!(!unknown.success && unknown.stderr.contains("possible values"), "{}", unknown.stderr);
}

// A gateway that is not one: the CLI is pointed at a small server answering what an
// attack needs, and a trap stands in for the attacker's host.

/// The org the hostile gateway's session defaults to.
const ORG: &str = "0190f0e0-0000-7000-8000-000000000001";

/// Serves `router` on a free loopback port; answers its URL as a session keeps it.
async fn serve(router: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// A host the session's secrets must never reach: it records whatever arrives, and
/// answers like a gateway would, so that a CLI that went there carries on as if fine.
struct Trap {
    url: String,
    caught: Arc<Mutex<Vec<String>>>,
}

impl Trap {
    async fn start() -> Self {
        let caught = Arc::new(Mutex::new(Vec::new()));
        let log = caught.clone();
        let router = Router::new().fallback(move |request: axum::extract::Request| async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
            let bearer = parts.headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or_default().to_owned());
            log.lock().unwrap().push(format!(
                "{} {} {bearer:?} {}",
                parts.method,
                parts.uri,
                String::from_utf8_lossy(&body)
            ));
            if parts.uri.path().ends_with("/keys") || parts.uri.path() == "/steal" {
                Json(json!([]))
            } else {
                Json(json!({"access_token": "stolen", "refresh_token": "stolen", "user": {}}))
            }
        });
        Self { url: serve(router).await, caught }
    }

    fn caught(&self) -> Vec<String> {
        self.caught.lock().unwrap().clone()
    }
}

impl Machine {
    /// A session with the gateway at `url`, as if logged in there.
    fn signed_in_to(&self, url: &str) {
        std::fs::create_dir_all(self.session_path().parent().unwrap()).unwrap();
        self.write_session(&json!({
            "url": url,
            "email": "dev@example.com",
            "access_token": "the-session-bearer",
            "refresh_token": "the-refresh-token",
            "dev_org_id": ORG,
        }));
    }
}

/// The characters a terminal acts on rather than shows (line breaks aside).
fn terminal_controls(text: &str) -> Vec<char> {
    let bidi = |c: char| matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    text.chars().filter(|&c| c != '\n' && (c.is_control() || bidi(c))).collect()
}

fn keys_page(link: Option<String>) -> axum::response::Response {
    let mut response = Json(json!([])).into_response();
    if let Some(link) = link {
        response.headers_mut().insert(header::LINK, HeaderValue::from_str(&link).unwrap());
    }
    response
}

#[tokio::test]
async fn the_next_page_is_only_ever_fetched_from_the_gateway() {
    let trap = Trap::start().await;
    let host = trap.url.trim_start_matches("http://").to_owned();
    let elsewhere = [
        format!("//{host}/steal"),
        format!("{}/steal", trap.url),
        format!("/\\{host}/steal"),
        // URL parsers drop tabs: this is `//host/steal` once joined.
        format!("/\t/{host}/steal"),
    ];
    for target in elsewhere {
        let link = format!("<{target}>; rel=\"next\"");
        let gateway = serve(Router::new().route(
            "/api/v1/developers/orgs/{org}/keys",
            get(move || {
                let link = link.clone();
                async move { keys_page(Some(link)) }
            }),
        ))
        .await;
        let dev = Machine::new();
        dev.signed_in_to(&gateway);
        let run = dev.run(&["keys", "list"]).await;
        assert!(!run.success, "{target:?} was followed: {}", run.stdout);
        assert!(run.stderr.contains("is not a path on the gateway"), "{target:?}: {}", run.stderr);
        assert_eq!(trap.caught(), Vec::<String>::new(), "{target:?} reached another host");
    }
}

#[tokio::test]
async fn a_page_that_comes_back_twice_stops_the_listing() {
    // Each list names the same next page for ever; without a guard the CLI would loop, so
    // the 50th page ends it and the test fails rather than hangs.
    let keys = Arc::new(AtomicUsize::new(0));
    let orgs = Arc::new(AtomicUsize::new(0));
    let audit = Arc::new(AtomicUsize::new(0));
    let again = |pages: &Arc<AtomicUsize>| pages.fetch_add(1, Ordering::SeqCst) < 50;
    let (k, o, a) = (keys.clone(), orgs.clone(), audit.clone());
    let gateway = serve(
        Router::new()
            .route(
                "/api/v1/developers/orgs/{org}/keys",
                get(move || async move {
                    let next = format!("</api/v1/developers/orgs/{ORG}/keys?limit=100&cursor=again>; rel=\"next\"");
                    keys_page(again(&k).then_some(next))
                }),
            )
            .route(
                "/api/v1/developers/orgs",
                get(move || async move { Json(json!({"data": [], "next_cursor": again(&o).then_some("again")})) }),
            )
            .route(
                "/api/v1/developers/orgs/{org}/audit-log",
                get(move || async move {
                    Json(json!({"data": [{"action": "x"}], "next_cursor": again(&a).then_some("again")}))
                }),
            ),
    )
    .await;
    let dev = Machine::new();
    dev.signed_in_to(&gateway);
    for (args, pages) in
        [(&["keys", "list"][..], &keys), (&["orgs", "list"], &orgs), (&["audit", "--limit", "100"], &audit)]
    {
        let run = dev.run(args).await;
        assert!(!run.success, "{args:?}: {}", run.stdout);
        assert!(run.stderr.contains("twice"), "{args:?}: {}", run.stderr);
        assert_eq!(pages.load(Ordering::SeqCst), 2, "{args:?}: the first page, then the next one once");
    }
}

#[tokio::test]
async fn a_redirect_is_an_error_and_no_secret_follows_it() {
    let trap = Trap::start().await;
    let redirect = |status: StatusCode, to: String| move || async move { (status, [(header::LOCATION, to)]) };
    let gateway = serve(
        Router::new()
            .route(
                "/api/v1/auth/login",
                post(redirect(StatusCode::TEMPORARY_REDIRECT, format!("{}/api/v1/auth/login", trap.url))),
            )
            .route(
                "/api/v1/auth/refresh",
                post(redirect(StatusCode::PERMANENT_REDIRECT, format!("{}/api/v1/auth/refresh", trap.url))),
            )
            .route(
                "/api/v1/developers/orgs/{org}/keys",
                get(|| async { (StatusCode::UNAUTHORIZED, Json(json!({"code": "invalid_token", "message": "no"}))) }),
            ),
    )
    .await;

    // The password is not re-sent elsewhere.
    let dev = Machine::new();
    let login =
        dev.run_with_input(&["login", "--url", &gateway, "--email", "a@b.co", "--password-stdin"], PASSWORD).await;
    assert!(!login.success, "{}", login.stdout);
    assert!(
        login.stderr.contains("307 Temporary Redirect")
            && login.stderr.contains(&format!("{}/api/v1/auth/login", trap.url)),
        "{}",
        login.stderr
    );
    assert!(!dev.session_path().exists());

    // Nor is the refresh token.
    dev.signed_in_to(&gateway);
    let refresh = dev.run(&["keys", "list"]).await;
    assert!(!refresh.success, "{}", refresh.stdout);
    assert!(
        refresh.stderr.contains("308 Permanent Redirect")
            && refresh.stderr.contains(&format!("{}/api/v1/auth/refresh", trap.url)),
        "{}",
        refresh.stderr
    );
    assert_eq!(trap.caught(), Vec::<String>::new());
    assert_eq!(dev.session()["refresh_token"], "the-refresh-token");
}

#[tokio::test]
async fn an_answer_over_8_mib_is_refused() {
    // Streamed with no length: valid JSON, read whole it would be listed.
    let streamed = || async {
        let item = format!("\"{}\",", "x".repeat(1 << 16));
        let chunks = std::iter::once("[".to_owned())
            .chain(std::iter::repeat_n(item, 9 * 16))
            .chain(std::iter::once("\"x\"]".to_owned()));
        Body::from_stream(futures_util::stream::iter(chunks.map(Ok::<_, std::convert::Infallible>)))
    };
    // Announced as 1 GiB and then never sent: only the length says it is too large.
    let announced = || async {
        let first = futures_util::stream::iter([Ok::<_, std::convert::Infallible>("[")]);
        let body = Body::from_stream(futures_util::StreamExt::chain(first, futures_util::stream::pending()));
        ([(header::CONTENT_LENGTH, (1u64 << 30).to_string())], body)
    };
    for (route, answer) in [("streamed", get(streamed)), ("announced", get(announced))] {
        let gateway = serve(Router::new().route("/api/v1/developers/orgs/{org}/keys", answer)).await;
        let dev = Machine::new();
        dev.signed_in_to(&gateway);
        let started = std::time::Instant::now();
        let run = dev.run(&["keys", "list", "--json"]).await;
        assert!(!run.success, "{route}: {} bytes listed", run.stdout.len());
        assert!(run.stderr.contains("more than 8 MiB"), "{route}: {}", run.stderr);
        assert!(started.elapsed() < Duration::from_secs(30), "{route}: refused only after {:?}", started.elapsed());
    }
}

#[tokio::test]
async fn the_gateways_text_cannot_drive_the_terminal() {
    let hostile = "a\u{1b}]0;owned\u{7}b\u{1b}[2J\u{9b}31m\u{7f}\r\u{202e}exe.txt\u{2066}";
    let key = json!({
        "id": "0190f0e0-0000-7000-8000-0000000000aa",
        "name": hostile,
        "environment": "test",
        "prefix": hostile,
        "status": "active",
        "created_at": hostile,
        "scopes": [hostile, "read:keys"],
    });
    let listed = key.clone();
    let org = json!({"id": ORG, "name": hostile, "slug": hostile, "first_key": {"id": hostile, "key": hostile}});
    let gateway =
        serve(
            Router::new()
                .route("/api/v1/developers/orgs/{org}/keys", get(move || async move { Json(json!([listed])) }))
                .route("/api/ensure-dev-org", post(move || async move { Json(org) }))
                .route(
                    "/api/v1/developers/orgs/{org}",
                    get(move || async move {
                        (StatusCode::BAD_REQUEST, Json(json!({"code": hostile, "message": hostile})))
                    }),
                ),
        )
        .await;
    let dev = Machine::new();
    dev.signed_in_to(&gateway);

    let table = dev.run(&["keys", "list"]).await.ok();
    assert_eq!(terminal_controls(&table.stdout), Vec::<char>::new(), "{:?}", table.stdout);
    assert!(table.stdout.contains("a\u{fffd}]0;owned\u{fffd}b"), "{:?}", table.stdout);

    // The API's JSON, value for value; the characters a terminal would act on escaped.
    let json = dev.run(&["keys", "list", "--json"]).await.ok();
    assert_eq!(json.json(), json!([key]));
    assert_eq!(terminal_controls(&json.stdout), Vec::<char>::new(), "{:?}", json.stdout);

    let ensured = dev.run(&["orgs", "ensure", "--bootstrap-key"]).await.ok();
    for output in [&ensured.stdout, &ensured.stderr] {
        assert_eq!(terminal_controls(output), Vec::<char>::new(), "{output:?}");
    }

    let error = dev.run(&["orgs", "get", "--org", ORG]).await;
    assert!(!error.success && error.stderr.contains("HTTP 400"), "{:?}", error.stderr);
    assert_eq!(terminal_controls(&error.stderr), Vec::<char>::new(), "{:?}", error.stderr);
}

#[tokio::test]
async fn plain_http_to_another_machine_is_warned_of() {
    let dev = Machine::new();
    dev.signed_in_to("http://127.0.0.1:9");
    // Refused before anything is sent (the session is another gateway's): no network needed.
    let remote = dev.run(&["orgs", "list", "--url", "http://gateway.example:8080"]).await;
    assert!(!remote.success);
    let warning = "keyplane: warning: http://gateway.example:8080 is plain http:// to another machine";
    assert!(remote.stderr.starts_with(warning) && remote.stderr.contains("in clear"), "{}", remote.stderr);
    assert_eq!(remote.stderr.matches("warning").count(), 1, "once: {}", remote.stderr);
    for here in ["http://localhost:9", "http://[::1]:9", "https://gateway.example"] {
        let run = dev.run(&["orgs", "list", "--url", here]).await;
        assert!(!run.stderr.contains("warning"), "{here}: {}", run.stderr);
    }
}
