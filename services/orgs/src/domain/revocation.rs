//! What the keys service must revoke after a decision here: every credential of a deleted
//! org, or what a departed member created. Queued in the outbox with the decision (so it
//! happens even if keys is away at that moment), and delivered at once.

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub const CREDENTIALS_TOPIC: &str = "credentials";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Revocation {
    /// The org was deleted: its keys and tokens stop, and no new one is stored.
    Org { org_id: Uuid },
    /// A member left or was removed: what it created stops, and nothing made on the
    /// membership that ended (it began at `member_since`) is stored any more.
    Member { org_id: Uuid, user_id: Uuid, member_since: DateTime<Utc> },
}
