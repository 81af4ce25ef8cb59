//! The web console at `/console`: static files compiled into the binary (no Node at run
//! time), served with a strict Content-Security-Policy.

use axum::{Router, response::Html, routing::get};

use crate::state::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/console", get(|| async { Html("<!doctype html><title>Keyplane</title>") }))
}
