//! The web console at `/console`: static files compiled into the binary (no Node at run
//! time), served with a strict Content-Security-Policy.
//!
//! No CSRF defence is needed, by design: the console keeps the session's access and
//! refresh tokens in JavaScript memory only (never localStorage, sessionStorage or a
//! cookie) and sends them as `Authorization: Bearer`. The gateway sets no cookie and reads
//! none, so the browser holds no ambient credential that another site could make it send.
//! The price is that a reload signs the user out.

use std::sync::LazyLock;

use axum::{
    Router,
    body::Body,
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{any, get},
};
use sha2::{Digest, Sha256};

use crate::{error::ApiError, state::AppState};

/// No inline script or style, nothing from elsewhere, no framing, no form posts: the
/// console is its own files talking to its own origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

const HTML: &str = "text/html; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const SVG: &str = "image/svg+xml";

/// The document every page is: the app draws the page the path names.
const INDEX: &[u8] = include_bytes!("../console/index.html");

/// The pages at `/console/<page>`; the mails link to `verify` and `invitations`.
const PAGES: &[&str] =
    &["signin", "signup", "verify", "keys", "usage", "members", "invitations", "mcp-tokens", "advisors", "audit"];

/// A file under `gateway/console/`, served at `/console/<path>`.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $content_type:expr) => {
        Asset { path: $path, content_type: $content_type, body: include_bytes!(concat!("../console/", $path)) }
    };
}

const ASSETS: &[Asset] = &[
    asset!("app.css", CSS),
    asset!("icon.svg", SVG),
    asset!("js/api.js", JS),
    asset!("js/app.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/dialog.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/expiry.js", JS),
    asset!("js/messages.js", JS),
    asset!("js/scopes.js", JS),
    asset!("js/secret.js", JS),
    asset!("js/views/advisors.js", JS),
    asset!("js/views/audit.js", JS),
    asset!("js/views/auth.js", JS),
    asset!("js/views/invitations.js", JS),
    asset!("js/views/keys.js", JS),
    asset!("js/views/mcp.js", JS),
    asset!("js/views/members.js", JS),
    asset!("js/views/usage.js", JS),
];

/// Each asset's entity tag, in `ASSETS` order: a browser revalidates and gets 304 until
/// a new build changes the file.
static ETAGS: LazyLock<Vec<HeaderValue>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|asset| {
            let digest = Sha256::digest(asset.body);
            HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16]))).expect("hex is a valid header")
        })
        .collect()
});

pub fn router() -> Router<AppState> {
    let mut router = Router::new().route("/console", get(index));
    for page in PAGES {
        router = router.route(&format!("/console/{page}"), get(index));
    }
    for (number, asset) in ASSETS.iter().enumerate() {
        router = router.route(
            &format!("/console/{}", asset.path),
            get(move |headers: HeaderMap| async move { serve(number, asset, &headers) }),
        );
    }
    // Anything else under /console is a 404. The console's headers go on every answer
    // under /console from the outermost middleware (`context`), refusals before routing too.
    router.route("/console/{*rest}", any(not_found))
}

async fn index() -> Response {
    let mut response = ([(header::CONTENT_TYPE, HTML)], INDEX).into_response();
    // The document is never stored: the next visit gets the files of the running build.
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn serve(number: usize, asset: &Asset, request: &HeaderMap) -> Response {
    let etag = &ETAGS[number];
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|tag| tag.trim().trim_start_matches("W/") == etag.to_str().unwrap_or_default());
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Body::from(asset.body).into_response() };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    headers.insert(header::ETAG, etag.clone());
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such console page")
}

/// The headers of every console response, errors included.
/// The console's headers, set by the outermost middleware on every answer under `/console`
/// (a malformed path's 400 and a wrong method's 405 never reach this router).
pub fn secure_headers(headers: &mut HeaderMap) {
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;

    fn console_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("console")
    }

    fn files(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).expect("console dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                files(&path, found);
            } else {
                let relative = path.strip_prefix(console_dir()).expect("under console/");
                found.push(relative.to_string_lossy().replace('\\', "/"));
            }
        }
    }

    #[test]
    fn every_file_of_the_console_is_served() {
        let mut found = Vec::new();
        files(&console_dir(), &mut found);
        for file in found.iter().filter(|f| f.as_str() != "index.html") {
            assert!(ASSETS.iter().any(|a| a.path == file), "gateway/console/{file} is not in console::ASSETS");
        }
        assert_eq!(found.len(), ASSETS.len() + 1, "an asset is listed that is not a file");
    }

    /// The console offers the scopes the API takes: its copy of the catalogue is the
    /// common crate's, in the same order.
    #[test]
    fn the_consoles_scopes_are_the_catalogue() {
        let asset = ASSETS.iter().find(|a| a.path == "js/scopes.js").expect("js/scopes.js is served");
        let text = std::str::from_utf8(asset.body).expect("utf-8");
        let list = text.split("export const CATALOGUE = [").nth(1).and_then(|rest| rest.split("];").next());
        let scopes: Vec<&str> = list
            .expect("scopes.js exports CATALOGUE as an array")
            .split(',')
            .map(|item| item.trim().trim_matches('\''))
            .filter(|item| !item.is_empty())
            .collect();
        assert_eq!(scopes, keyplane_common::scope::CATALOGUE);
    }

    /// What the CSP would refuse at run time, or what would keep a credential where it
    /// outlives the page, caught when the files change.
    #[test]
    fn the_console_keeps_to_its_policy() {
        let index = std::str::from_utf8(INDEX).expect("utf-8");
        assert!(!index.contains(" style="), "inline style attribute in index.html");
        assert!(!index.contains("<style"), "inline style element in index.html");
        for script in index.split("<script").skip(1) {
            assert!(script.trim_start().starts_with("type=\"module\" src="), "inline script in index.html");
        }
        for asset in ASSETS.iter().filter(|a| a.content_type == JS) {
            let text = std::str::from_utf8(asset.body).expect("utf-8");
            for forbidden in ["localStorage", "sessionStorage", "document.cookie", "innerHTML", "outerHTML", "eval("] {
                assert!(!text.contains(forbidden), "{} uses {forbidden}", asset.path);
            }
            assert!(
                !text.contains("setAttribute('style'"),
                "{} sets a style attribute (refused by the CSP)",
                asset.path
            );
        }
    }
}
