//! Telling an org's owners that one of its credentials was found in public and stopped.
//! The notice follows from the audit event the keys service files for it, so it goes out
//! exactly when the event is first filed, however often the event is delivered: each
//! owner's mail id derives from the event and the owner, and the mailer sends an id once.

use keyplane_common::{
    audit::AuditRecord,
    mail::{MailKind, OutgoingMail},
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::org::UserInfo;

/// The audit actions that tell the org's owners.
const NOTIFYING: [&str; 2] = ["api_key.leaked_revoked", "mcp_token.leaked_revoked"];

pub fn notifies(event: &AuditRecord) -> bool {
    NOTIFYING.contains(&event.action.as_str())
}

/// The same id for the same event and owner, every time.
fn mail_id(event: Uuid, owner: Uuid) -> Uuid {
    let digest = Sha256::new().chain_update(event.as_bytes()).chain_update(owner.as_bytes()).finalize();
    let bytes: [u8; 16] = digest[..16].try_into().expect("a SHA-256 digest has 16 bytes");
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The mail to one owner about `event`, of the org named `org_name`.
pub fn mail(event: &AuditRecord, org_name: &str, owner: &UserInfo) -> OutgoingMail {
    let field = |name: &str| event.metadata.get(name).and_then(|v| v.as_str()).unwrap_or("").to_owned();
    let what = if event.target_type == "mcp_token" { "MCP token" } else { "API key" };
    let (name, prefix, url, reporter) = (field("name"), field("prefix"), field("url"), field("reporter"));
    let stopped = if field("secret") == "previous" {
        "Its previous secret, still in its grace period after a regeneration, was stopped; the current secret still works."
    } else {
        "It was revoked at once: requests with it are refused."
    };
    let body = format!(
        "An {what} of {org_name} was found in public by {reporter}:\n\n    \
         {name} ({prefix}…)\n    found at {url}\n\n{stopped}\n\n\
         Create a new one where it is needed, and remove the secret from where it was published. \
         The org's audit log has the event ({action}).\n",
        action = event.action,
    );
    OutgoingMail {
        id: mail_id(event.id, owner.id),
        to: owner.email.clone(),
        subject: format!("An {what} of {org_name} was found in public and revoked"),
        body,
        kind: MailKind::SecurityNotice,
        token: None,
        invitation_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_owner_gets_one_mail_id_per_event() {
        let (event, owner) = (Uuid::now_v7(), Uuid::now_v7());
        assert_eq!(mail_id(event, owner), mail_id(event, owner));
        assert_ne!(mail_id(event, owner), mail_id(event, Uuid::now_v7()));
        assert_ne!(mail_id(event, owner), mail_id(Uuid::now_v7(), owner));
    }
}
