//! Invitations: how anybody joins an org. An address is invited with a role; whoever
//! proves they own the address (a verified account with it) may accept or decline.

use chrono::{DateTime, Utc};
use keyplane_common::{
    authz::Role,
    mail::{MailKind, OutgoingMail},
};
use uuid::Uuid;

/// How long an invitation waits for its answer.
pub const INVITATION_TTL: chrono::Duration = chrono::Duration::days(7);

/// The mail that tells the invitee, in plain text.
pub fn mail(
    invitation_id: Uuid,
    email: &str,
    org_name: &str,
    role: Role,
    inviter: &str,
    expires_at: DateTime<Utc>,
    public_url: Option<&str>,
) -> OutgoingMail {
    let accept = match public_url {
        Some(base) => format!("{}/console/invitations", base.trim_end_matches('/')),
        None => format!("POST /api/v1/invitations/{invitation_id}/accept"),
    };
    let body = format!(
        "{inviter} invited you to join {org_name} on Keyplane as {role}.\n\n\
         Sign in with this address ({email}), verify it if you have not yet, and accept the \
         invitation:\n\n    {accept}\n\n\
         The invitation expires on {expires}. If you did not expect it, ignore this mail.\n",
        expires = expires_at.format("%Y-%m-%d %H:%M UTC"),
    );
    OutgoingMail {
        id: Uuid::now_v7(),
        to: email.to_owned(),
        subject: format!("You are invited to join {org_name} on Keyplane"),
        body,
        kind: MailKind::Invitation,
        token: None,
        invitation_id: Some(invitation_id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mail_names_the_org_the_role_and_where_to_accept() {
        let id = Uuid::now_v7();
        let mail = mail(id, "cfo@example.com", "Acme", Role::Admin, "Ada", Utc::now() + INVITATION_TTL, None);
        assert!(mail.subject.contains("Acme"));
        assert!(mail.body.contains("as admin") && mail.body.contains(&id.to_string()));
        assert_eq!((mail.kind, mail.invitation_id), (MailKind::Invitation, Some(id)));
    }
}
