//! Which org a request counts for, counted when the request ends however it ends: a
//! client that hangs up mid-request is counted too (as 499: the request may have done its
//! work), since the future that would have counted it is dropped with the connection.

use std::sync::Arc;

use axum::response::Response;
use keyplane_common::principal::Principal;
use uuid::Uuid;

use crate::{idempotency, state::AppState};

/// A request being served; counted on drop.
pub struct Counted {
    state: AppState,
    principal: Arc<Principal>,
    org_in_path: Option<Uuid>,
    /// The status, and whether the answer was a replay; None while it runs.
    answer: Option<(u16, bool)>,
}

/// What nginx calls a request whose client closed the connection first.
const CLIENT_CLOSED: u16 = 499;

impl Counted {
    pub fn new(state: &AppState, principal: Arc<Principal>, path: &str) -> Self {
        Self { state: state.clone(), principal, org_in_path: org_in_path(path), answer: None }
    }

    pub fn answered(&mut self, response: &Response) {
        let replayed = response.headers().contains_key(idempotency::REPLAYED);
        self.answer = Some((response.status().as_u16(), replayed));
    }
}

impl Drop for Counted {
    /// A key's or token's request counts for its own org. A session's counts for the org
    /// its path names once a fresh 2xx shows the user is a member there: a refused request
    /// is not counted against an org it may not belong to, nor a replayed answer (a member
    /// removed since could replay it at will).
    fn drop(&mut self) {
        let (status, replayed) = self.answer.unwrap_or((CLIENT_CLOSED, false));
        let usage = &self.state.usage;
        match self.principal.as_ref() {
            Principal::ApiKey(key) => usage.count(key.org_id, Some(key.key_id), status),
            Principal::McpToken(token) => usage.count(token.org_id, Some(token.token_id), status),
            Principal::User(_) => {
                if let Some(org_id) = self.org_in_path.filter(|_| (200..300).contains(&status) && !replayed) {
                    usage.count(org_id, None, status);
                }
            }
            Principal::Service { .. } => {}
        }
    }
}

/// The org a management path names (`/api/v1/developers/orgs/{orgId}/…`).
fn org_in_path(path: &str) -> Option<Uuid> {
    let rest = path.strip_prefix("/api/v1/developers/orgs/")?;
    Uuid::parse_str(rest.split('/').next()?).ok()
}
