//! Secrets reported found in public: which of a credential's secrets a report names, and
//! what stopping it means. The current secret stops the credential; a regenerated key's
//! previous secret ends its grace period (the new secret was not leaked, and its holder
//! keeps working).

use chrono::{DateTime, Utc};
use keyplane_common::credential::SecretHash;

use super::key::{Credential, Kind, Status};

/// A secret someone found, and where.
#[derive(Clone, Debug)]
pub struct Leak {
    pub hash: SecretHash,
    pub url: String,
    pub source: String,
    pub reporter: String,
    /// The leaked secret's own display prefix.
    pub prefix: String,
}

/// What a report stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposed {
    /// The credential's current secret: the credential is revoked.
    Current,
    /// A regenerated key's previous secret, still in its grace period: the grace ends.
    Previous,
}

/// Which secret of `credential` the leaked `hash` is, if it still works at `now`. A secret
/// that no longer works is still a real one (a true positive), with nothing to stop.
pub fn exposed(credential: &Credential, hash: &SecretHash, now: DateTime<Utc>) -> Option<Exposed> {
    if credential.status(now) != Status::Active {
        return None;
    }
    if credential.hash == *hash {
        Some(Exposed::Current)
    } else if credential.previous.is_some_and(|p| p.hash == *hash) && credential.grace_ends_at(now).is_some() {
        Some(Exposed::Previous)
    } else {
        None
    }
}

/// The audit log's action for a leaked credential stopped.
pub fn action(kind: Kind) -> &'static str {
    match kind {
        Kind::ApiKey => "api_key.leaked_revoked",
        Kind::McpToken => "mcp_token.leaked_revoked",
    }
}

/// What a report answers about one secret.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub hash: SecretHash,
    /// The leaked secret's display prefix when it is (or was) ours; None: not ours.
    pub prefix: Option<String>,
}
