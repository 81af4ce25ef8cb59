//! The end-to-end kit: the whole platform started through the code of `keyplane up` on a
//! throwaway PostgreSQL database and Redis prefix, and a client that talks to it like a
//! user does (REST, and gRPC for internal callers).

pub mod api;
pub mod contract;
pub mod logs;
pub mod oidc;
pub mod otlp;
pub mod platform;
pub mod proxy;
pub mod sentinel;
pub mod signing;
pub mod smtp;

pub use api::{Api, Reply, User};
pub use platform::Platform;

/// The `keyplane` binary beside this test binary (`make test` builds it first).
pub fn keyplane_binary() -> std::path::PathBuf {
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

/// Where `tests/tools.sh` installed the npm and Python packages the SDK, console and
/// Python gRPC tests run with (`make test` runs it first).
pub fn tools_dir() -> std::path::PathBuf {
    let dir = std::env::var_os("KEYPLANE_TOOLS").map(std::path::PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache"));
        cache.join("keyplane/tools")
    });
    assert!(dir.join("node/.stamp").exists(), "{} is missing: run tests/tools.sh (make test does)", dir.display());
    dir
}

/// The repository's root, for tests that read its files (proto/, sdk/, gateway/console/).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("repo root").to_path_buf()
}

/// `backend` served on a port of its own for the rest of the test: its base URL.
pub async fn serve_backend(backend: axum::Router) -> String {
    let listener = keyplane_common::testsuite::listener().await;
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, backend).await });
    url
}

/// A port a child process binds itself: free now, and nothing here binds fixed ports.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// Polls `check` every 20 ms until it holds or `timeout` passes; answers whether it held.
pub async fn eventually<F, Fut>(timeout: std::time::Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
