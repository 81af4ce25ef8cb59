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

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pending,
    Accepted,
    Declined,
    Revoked,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Accepted => "accepted",
            Self::Declined => "declined",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Accepted, Self::Declined, Self::Revoked].into_iter().find(|v| v.as_str() == s)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invitation {
    pub id: Uuid,
    pub org_id: Uuid,
    /// Lower-cased, as accounts are keyed.
    pub email: String,
    pub role: Role,
    pub status: Status,
    /// The user behind the principal that invited.
    pub invited_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub responded_at: Option<DateTime<Utc>>,
}

impl Invitation {
    /// The status users see: a pending invitation past its time has expired.
    pub fn status_at(&self, now: DateTime<Utc>) -> &'static str {
        if self.status == Status::Pending && self.expires_at <= now { "expired" } else { self.status.as_str() }
    }
}

/// Whether a member of `role` may invite to `invited`: admins invite members and admins,
/// owners anybody, members nobody.
pub fn may_invite(role: Role, invited: Role) -> bool {
    match role {
        Role::Member => false,
        Role::Admin => invited != Role::Owner,
        Role::Owner => true,
    }
}

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
    fn a_pending_invitation_expires_after_a_week() {
        let now = Utc::now();
        let invitation = Invitation {
            id: Uuid::now_v7(),
            org_id: Uuid::now_v7(),
            email: "a@example.com".into(),
            role: Role::Member,
            status: Status::Pending,
            invited_by: None,
            created_at: now,
            expires_at: now + INVITATION_TTL,
            responded_at: None,
        };
        assert_eq!(invitation.status_at(now), "pending");
        let later = now + INVITATION_TTL + chrono::Duration::seconds(1);
        assert_eq!(invitation.status_at(later), "expired");
        let declined = Invitation { status: Status::Declined, ..invitation };
        assert_eq!(declined.status_at(later), "declined", "an answered invitation does not expire");
    }

    #[test]
    fn admins_invite_members_and_admins_owners_anybody() {
        assert!(!may_invite(Role::Member, Role::Member));
        assert!(may_invite(Role::Admin, Role::Admin) && !may_invite(Role::Admin, Role::Owner));
        assert!(may_invite(Role::Owner, Role::Owner));
    }

    #[test]
    fn the_mail_names_the_org_the_role_and_where_to_accept() {
        let id = Uuid::now_v7();
        let mail = mail(id, "cfo@example.com", "Acme", Role::Admin, "Ada", Utc::now() + INVITATION_TTL, None);
        assert!(mail.subject.contains("Acme"));
        assert!(mail.body.contains("as admin") && mail.body.contains(&id.to_string()));
        assert_eq!((mail.kind, mail.invitation_id), (MailKind::Invitation, Some(id)));
    }
}
