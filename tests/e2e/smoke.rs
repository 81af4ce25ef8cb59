//! `keyplane up` itself, on the embedded default: SQLite files and the in-process cache.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::Duration,
};

use keyplane_e2e::{Api, keyplane_binary};
use serde_json::json;

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

    let password = "hunter2-not-to-be-repeated";
    let mail = run(
        "identity",
        &[
            ("KEYPLANE_SMTP_URL", &format!("smpt://user:{password}@mail.example:587")),
            ("KEYPLANE_MAIL_FROM", "not an address"),
        ],
    );
    assert_eq!(mail.status.code(), Some(2));
    let said = String::from_utf8_lossy(&mail.stderr);
    assert!(said.contains("KEYPLANE_SMTP_URL") && said.contains("KEYPLANE_MAIL_FROM"), "{said}");
    assert!(!said.contains(password), "the SMTP password was repeated: {said}");

    let unknown = Command::new(keyplane_binary()).args(["serve", "--target", "billing"]).output().unwrap();
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("choose one of identity, keys"));
}

/// The init container of every Deployment: `keyplane migrate --wait` holds a pod until the
/// migrations Job has brought the schema to the binary's version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_wait_holds_until_the_schema_is_current() {
    let run = |args: &[&str], database: &str| {
        Command::new(keyplane_binary())
            .args(args)
            .env_clear()
            .env("RUST_LOG", "warn")
            .env("KEYPLANE_DATABASE_URL", database)
            .output()
            .expect("run keyplane")
    };
    // A migrated PostgreSQL database: no wait.
    let env = keyplane_common::testsuite::TestEnv::new().await;
    let current = run(&["migrate", "--wait", "--timeout", "30"], &env.database_url);
    assert!(current.status.success(), "{}", String::from_utf8_lossy(&current.stderr));

    // An empty database: still pending when the time is up, and it says so.
    let data = std::env::temp_dir().join(format!("keyplane-wait-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&data).unwrap();
    let empty = format!("sqlite://{}/all.db?mode=rwc", data.display());
    let pending = run(&["migrate", "--wait", "--timeout", "1", "--target", "keys"], &empty);
    assert!(!pending.status.success());
    assert!(String::from_utf8_lossy(&pending.stderr).contains("migrations still pending"), "{pending:?}");
    // Once migrated, it passes.
    assert!(run(&["migrate", "--target", "keys"], &empty).status.success());
    assert!(run(&["migrate", "--wait", "--timeout", "5", "--target", "keys"], &empty).status.success());
    let _ = std::fs::remove_dir_all(&data);
}

/// The families backend answers its probe without the gateway's signature, and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_families_backend_answers_its_probe_unsigned() {
    let p = keyplane_e2e::Platform::start().await;
    let families = format!("http://{}", p.addr(keyplane_common::config::Target::Families));
    let health = reqwest::get(format!("{families}/health")).await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.json::<serde_json::Value>().await.unwrap(), json!({"status": "ok"}));
    let data = reqwest::get(format!("{families}/api/v1/developer/families")).await.unwrap();
    assert_eq!(data.status(), 401, "data stays behind the signature");
}
