//! The web console at `/console`: its headers asserted here, and the whole funnel driven
//! through headless Chromium by `tests/console/console.mjs` (sign up, verify, sign in, a
//! key created, copied, used, seen in the usage chart, revoked; members, MCP tokens,
//! advisors and the audit log), which screenshots each page.

use std::{
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::Duration,
};

use keyplane_e2e::{Platform, repo_root, tools_dir};

/// The policy of the issue, word for word.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/// Where the platform's mails say the console is.
const PUBLIC_URL: &str = "https://console.example.test";

/// The browser script's own bound is 45 s; this one catches a script that hangs anyway.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(60);

/// What every page the script visits leaves behind.
const SCREENSHOTS: &[&str] = &[
    "01-sign-in.png",
    "02-sign-up.png",
    "03-verify.png",
    "04-keys.png",
    "05-key-created.png",
    "06-usage.png",
    "07-revoke-dialog.png",
    "08-key-revoked.png",
    "09-members.png",
    "10-my-invitations.png",
    "11-mcp-tokens.png",
    "12-advisors.png",
    "13-audit-log.png",
    "14-verify-link.png",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_drives_the_whole_funnel_in_a_browser() {
    // Mails link to the console at this address (the script opens their paths here).
    let p = Platform::start_with(&[("KEYPLANE_PUBLIC_URL", PUBLIC_URL.to_owned())]).await;
    let http = &p.api.http;

    // The document, and each kind of file it loads, with the console's headers; no cookie.
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/keys", "text/html; charset=utf-8"),
        ("/console/verify", "text/html; charset=utf-8"),
        ("/console/invitations", "text/html; charset=utf-8"),
        ("/console/js/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
        ("/console/icon.svg", "image/svg+xml"),
    ] {
        let response = http.get(p.api.url(path)).send().await.expect("the gateway answers");
        assert_eq!(response.status(), 200, "{path}");
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        assert_eq!(header("content-security-policy").as_deref(), Some(CSP), "{path}");
        assert_eq!(header("content-type").as_deref(), Some(content_type), "{path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{path}");
        assert_eq!(header("referrer-policy").as_deref(), Some("no-referrer"), "{path}");
        assert!(response.headers().get("set-cookie").is_none(), "{path} sets a cookie");
        if content_type.starts_with("text/html") {
            assert_eq!(header("cache-control").as_deref(), Some("no-store"), "{path}");
        }
    }
    // A file not there: 404 in the contract's shape, with the same headers.
    let missing = http.get(p.api.url("/console/js/missing.js")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.headers()["content-security-policy"], CSP);
    assert!(missing.headers().get("set-cookie").is_none());
    // Refused before any console route runs (a malformed path, a wrong method): the same.
    for (method, path, status, code) in [
        ("GET", "/console/", 400, "invalid_path"),
        ("GET", "/console//keys", 400, "invalid_path"),
        ("POST", "/console", 405, "method_not_allowed"),
        ("DELETE", "/console/js/app.js", 405, "method_not_allowed"),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let refused = http.request(method.clone(), p.api.url(path)).send().await.unwrap();
        assert_eq!(refused.status(), status, "{method} {path}");
        assert_eq!(refused.headers()["content-security-policy"], CSP, "{method} {path}");
        assert_eq!(refused.headers()["x-content-type-options"], "nosniff", "{method} {path}");
        let body: serde_json::Value = refused.json().await.unwrap();
        assert_eq!(body["code"], code, "{method} {path}");
    }
    // A file already held is not sent again.
    let script = http.get(p.api.url("/console/js/app.js")).send().await.unwrap();
    let etag = script.headers()["etag"].clone();
    let again = http.get(p.api.url("/console/js/app.js")).header("if-none-match", etag).send().await.unwrap();
    assert_eq!(again.status(), 304);

    let screenshots = repo_root().join("target/console-screenshots");
    let _ = std::fs::remove_dir_all(&screenshots);
    std::fs::create_dir_all(&screenshots).expect("screenshot dir");
    let started = std::time::Instant::now();
    let (status, output) = run_browser_script(&p.api.base, &screenshots).await;
    assert!(status, "the browser script failed after {:?}:\n{output}", started.elapsed());
    eprintln!("{output}console.mjs and Chromium took {:?}", started.elapsed());
    for name in SCREENSHOTS {
        let file = screenshots.join(name);
        let size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        assert!(size > 1000, "{} is missing or empty\n{output}", file.display());
    }
}

/// Runs `node tests/console/console.mjs` against `gateway`; answers whether it passed, and
/// what it printed.
async fn run_browser_script(gateway: &str, screenshots: &Path) -> (bool, String) {
    let node_modules: PathBuf = tools_dir().join("node/node_modules");
    let child = Command::new("node")
        .arg(repo_root().join("tests/console/console.mjs"))
        .env("KEYPLANE_GATEWAY_URL", gateway)
        .env("KEYPLANE_SCREENSHOTS", screenshots)
        .env("KEYPLANE_NODE_MODULES", &node_modules)
        .env("KEYPLANE_PUBLIC_URL", PUBLIC_URL)
        .env("NODE_PATH", &node_modules)
        .env("KEYPLANE_CHROMIUM", std::env::var("KEYPLANE_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start node (tests/tools.sh installs what it needs)");
    let pid = child.id();
    let waiting = tokio::task::spawn_blocking(move || child.wait_with_output());
    match tokio::time::timeout(BROWSER_TIMEOUT, waiting).await {
        Ok(done) => {
            let output = done.expect("join").expect("node's output");
            let text =
                format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
            (output.status.success(), text)
        }
        Err(_) => {
            // Only the process this test started, by its id.
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
            (false, format!("node tests/console/console.mjs did not finish within {BROWSER_TIMEOUT:?}"))
        }
    }
}
