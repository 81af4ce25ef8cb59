//! A mail the platform sends: what a service writes to its outbox, and what the identity
//! service's mailer delivers (by SMTP, or to the development mailbox).

use std::fmt;

use keyplane_proto::identity::v1 as pb;
use uuid::Uuid;

/// The outbox topic of mail.
pub const MAIL_TOPIC: &str = "mail";

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MailKind {
    VerifyEmail,
    Invitation,
    /// A security event the org's owners must hear of (a credential found in public).
    SecurityNotice,
}

impl MailKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::VerifyEmail => "verify_email",
            Self::Invitation => "invitation",
            Self::SecurityNotice => "security_notice",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "verify_email" => Some(Self::VerifyEmail),
            "invitation" => Some(Self::Invitation),
            "security_notice" => Some(Self::SecurityNotice),
            _ => None,
        }
    }
}

#[derive(Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct OutgoingMail {
    /// Chosen by the sender: a mail queued twice is queued once.
    pub id: Uuid,
    pub to: String,
    pub subject: String,
    pub body: String,
    pub kind: MailKind,
    /// A verification token, also in the body: kept apart for the development mailbox.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub invitation_id: Option<Uuid>,
}

/// The body and token carry a secret: never printed.
impl fmt::Debug for OutgoingMail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutgoingMail")
            .field("id", &self.id)
            .field("kind", &self.kind)
            .field("invitation_id", &self.invitation_id)
            .finish_non_exhaustive()
    }
}

impl OutgoingMail {
    pub fn to_proto(&self) -> pb::Mail {
        pb::Mail {
            id: self.id.to_string(),
            to: self.to.clone(),
            subject: self.subject.clone(),
            body: self.body.clone(),
            kind: self.kind.as_str().to_owned(),
            token: self.token.clone().unwrap_or_default(),
            invitation_id: self.invitation_id.map(|i| i.to_string()).unwrap_or_default(),
        }
    }

    pub fn from_proto(mail: pb::Mail) -> Option<Self> {
        Some(Self {
            id: Uuid::parse_str(&mail.id).ok()?,
            to: mail.to,
            subject: mail.subject,
            body: mail.body,
            kind: MailKind::parse(&mail.kind)?,
            token: Some(mail.token).filter(|t| !t.is_empty()),
            invitation_id: Uuid::parse_str(&mail.invitation_id).ok(),
        })
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("a mail serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mail_survives_the_proto_and_never_prints_its_token() {
        let mail = OutgoingMail {
            id: Uuid::now_v7(),
            to: "ada@example.com".into(),
            subject: "Verify".into(),
            body: "token: secret-123".into(),
            kind: MailKind::VerifyEmail,
            token: Some("secret-123".into()),
            invitation_id: None,
        };
        assert_eq!(OutgoingMail::from_proto(mail.to_proto()), Some(mail.clone()));
        assert!(!format!("{mail:?}").contains("secret-123"));
    }
}
