//! The third kind of user: a service of someone's own calling the gRPC services directly.
//! `tests/grpc-python/client.py`, the example the README points internal callers at, runs
//! against a real platform with stubs it generates from proto/ and a token it mints itself.

use keyplane_common::config::Target;
use keyplane_e2e::Platform;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_python_client_generated_from_the_protos_authenticates_a_key_and_lists_its_org() {
    let p = Platform::start().await;
    let user = p.api.signup().await;
    let (org, _) = p.api.dev_org(&user, false).await;
    let reader = json!({"name": "from python", "environment": "test", "scopes": ["read:keys"]});
    let (key_id, secret) = p.api.key(&user.token, &org, reader).await;
    let (other_id, other_secret) = p
        .api
        .key(&user.token, &org, json!({"name": "families only", "environment": "test", "scopes": ["read:families"]}))
        .await;

    let (seen, stdout) = run_client(&p, &secret).await;
    // Authenticate answered the key's principal.
    let principal = &seen["principal"]["api_key"];
    assert_eq!(principal["org_id"], org.as_str(), "{stdout}");
    assert_eq!(principal["key_id"], key_id.as_str(), "{stdout}");
    assert_eq!(principal["created_by"], user.id.as_str(), "{stdout}");

    // ListKeys, acting for that key, answered the org's keys: ids, never a secret or hash.
    let mut ids: Vec<&str> =
        seen["keys"].as_array().expect("a key list").iter().filter_map(|k| k["id"].as_str()).collect();
    ids.sort();
    let mut expected = [key_id.as_str(), other_id.as_str()];
    expected.sort();
    assert_eq!(ids, expected, "{stdout}");
    for plain in [&secret, &other_secret] {
        let hash = hex::encode(Sha256::digest(plain.as_bytes()));
        assert!(
            !stdout.contains(plain.as_str()) && !stdout.contains(&hash),
            "a secret or its hash was printed: {stdout}"
        );
    }
    for key in seen["keys"].as_array().unwrap() {
        let fields: Vec<&String> = key.as_object().unwrap().keys().collect();
        assert!(!fields.iter().any(|f| f.contains("secret") || f.contains("hash")), "{fields:?}");
    }

    // No token, or one signed with another secret: refused before any handler runs.
    for case in ["no_token", "wrong_secret"] {
        assert_eq!(
            seen["refused"][case],
            json!({"code": "UNAUTHENTICATED", "reason": "internal_auth_required"}),
            "{case}: {stdout}"
        );
    }

    // Reflection over v1alpha (grpcio-reflection's protocol) names the service.
    let services: Vec<&str> = seen["services"].as_array().expect("services").iter().filter_map(Value::as_str).collect();
    assert!(services.contains(&"keyplane.keys.v1.KeysService"), "{services:?}");

    // Acting for a key is never more than the key: one without read:keys lists nothing.
    let (seen, stdout) = run_client(&p, &other_secret).await;
    assert_eq!(seen["principal"]["api_key"]["key_id"], other_id.as_str(), "{stdout}");
    assert_eq!(seen["keys_refused"], json!({"code": "PERMISSION_DENIED", "reason": "insufficient_scope"}), "{stdout}");
    assert!(seen.get("keys").is_none(), "{stdout}");
}

/// Runs the example with the venv's python against `p`, for the API key `secret`; answers
/// the JSON it printed, and the text.
async fn run_client(p: &Platform, secret: &str) -> (Value, String) {
    let python = keyplane_e2e::tools_dir().join("venv/bin/python");
    let mut command = std::process::Command::new(&python);
    command
        .arg(keyplane_e2e::repo_root().join("tests/grpc-python/client.py"))
        .args(["--identity", &p.addr(Target::Identity).to_string()])
        .args(["--keys", &p.addr(Target::Keys).to_string()])
        .env("KEYPLANE_INTERNAL_SECRET", p.setting("KEYPLANE_INTERNAL_SECRET"))
        .env("KEYPLANE_API_KEY", secret);
    let output = tokio::task::spawn_blocking(move || command.output()).await.unwrap().expect("run the venv's python");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "client.py failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let seen = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"));
    (seen, stdout)
}
