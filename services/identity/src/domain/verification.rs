//! Verifying an address: a single-use token, mailed to it, valid for a day.

use keyplane_common::mail::{MailKind, OutgoingMail};
use uuid::Uuid;

use super::opaque_token::OpaqueToken;

/// How long a verification mail's token works.
pub const VERIFICATION_TTL: chrono::Duration = chrono::Duration::hours(24);

/// The mail that carries `token` to `email`, in plain text.
/// The token stands on a line of its own (short lines keep the mail 7-bit, so it reads
/// the same in any client and can be copied as it is).
pub fn mail(email: &str, token: &OpaqueToken, public_url: Option<&str>) -> OutgoingMail {
    let how = match public_url {
        Some(base) => format!("Open {}/console/verify and enter it there.", base.trim_end_matches('/')),
        None => "Send it as {\"token\": \"...\"} to POST /api/v1/auth/verify-email.".to_owned(),
    };
    OutgoingMail {
        id: Uuid::now_v7(),
        to: email.to_owned(),
        subject: "Verify your email address for Keyplane".to_owned(),
        body: format!(
            "Confirm that {email} is yours with this token:\n\n    {token}\n\n{how}\n\n\
             It works once, for 24 hours. If you did not sign up, ignore this mail.\n",
            token = token.expose(),
        ),
        kind: MailKind::VerifyEmail,
        token: Some(token.expose().to_owned()),
        invitation_id: None,
    }
}
