//! `keyplane up` itself, on the embedded default: SQLite files and the in-process cache.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use keyplane_e2e::Api;
use serde_json::json;

/// The `keyplane` binary beside this test binary (`make test` builds it first).
fn keyplane_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe.parent().and_then(|deps| deps.parent()).expect("target dir");
    let binary = dir.join("keyplane");
    assert!(
        binary.exists(),
        "{} is missing: build it with `cargo build --bin keyplane` (make test does)",
        binary.display()
    );
    binary
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyplane_up_serves_the_credential_loop_on_sqlite() {
    let data = std::env::temp_dir().join(format!("keyplane-smoke-{}", uuid::Uuid::new_v4().simple()));
    let mut command = Command::new(keyplane_binary());
    command
        .arg("up")
        .env_clear()
        .env("KEYPLANE_DATA_DIR", &data)
        .env("RUST_LOG", "info")
        .env("KEYPLANE_LOG_FORMAT", "json");
    for target in ["IDENTITY", "KEYS", "ORGS", "USAGE", "ADVISORS", "FAMILIES", "GATEWAY"] {
        command.env(format!("KEYPLANE_{target}_LISTEN"), "127.0.0.1:0");
    }
    let mut child = command.stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().expect("start keyplane up");

    // The platform says where it is up.
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("keyplane is up") {
                let _ = tx.send(line);
            }
        }
    });
    let line = rx.recv_timeout(Duration::from_secs(60)).expect("keyplane up starts");
    let url = serde_json::from_str::<serde_json::Value>(&line).unwrap()["fields"]["url"].as_str().unwrap().to_owned();
    let api = Api::new(url);

    let health = api.get("/health", None).await;
    assert_eq!((health.status, health.body), (200, json!({"status": "ok"})));
    let user = api.signup().await;
    let (_, key) = api.dev_org(&user, true).await;
    let families = api.get("/api/v1/developer/families", Some(&key.unwrap())).await;
    assert_eq!((families.status, families.body), (200, json!([])));
    assert!(data.join("identity.db").exists() && data.join("keys.db").exists(), "SQLite files under the data dir");
    let operator_key = std::fs::metadata(data.join("encryption.key")).expect("an operator key under the data dir");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&operator_key.permissions()) & 0o777, 0o600);

    // SIGTERM: a graceful stop, exit status 0.
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let status = tokio::task::spawn_blocking(move || child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "keyplane up stopped with {status}");
    let _ = std::fs::remove_dir_all(&data);
}

#[test]
fn every_bad_setting_is_named_at_start_up() {
    let run = |target: &str, env: &[(&str, &str)]| {
        let mut command = Command::new(keyplane_binary());
        command.args(["serve", "--target", target]).env_clear();
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().expect("run keyplane")
    };
    let keys = run("keys", &[]);
    assert_eq!(keys.status.code(), Some(2));
    let said = String::from_utf8_lossy(&keys.stderr);
    assert!(said.contains("KEYPLANE_INTERNAL_SECRET") && said.contains("KEYPLANE_ORGS_ADDR"), "{said}");

    let gateway = run("gateway", &[("KEYPLANE_KEY_PREFIX", "Not Valid"), ("KEYPLANE_IDENTITY_ADDR", "identity:50051")]);
    assert_eq!(gateway.status.code(), Some(2));
    let said = String::from_utf8_lossy(&gateway.stderr);
    for name in [
        "KEYPLANE_INTERNAL_SECRET",
        "KEYPLANE_DATAPLANE_SECRET",
        "KEYPLANE_KEY_PREFIX",
        "KEYPLANE_IDENTITY_ADDR",
        "KEYPLANE_KEYS_ADDR",
        "KEYPLANE_ORGS_ADDR",
    ] {
        assert!(said.contains(name), "{name} not named in: {said}");
    }

    let unknown = Command::new(keyplane_binary()).args(["serve", "--target", "billing"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("choose one of identity, keys"));
}
