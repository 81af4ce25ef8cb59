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
    // The link carries the token in its fragment, which browsers never send to a server;
    // the console takes it from there and clears it from the address bar.
    let how = match public_url.map(|base| base.trim_end_matches('/')) {
        Some(base) => format!(
            "Open this link to verify it:\n\n    {base}/console/verify#verify={token}\n\n\
             or enter the token at {base}/console/verify.",
            token = token.expose(),
        ),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::opaque_token::TokenKind;

    #[test]
    fn the_mail_links_to_the_console_with_the_token_in_the_fragment() {
        let token = OpaqueToken::generate(TokenKind::EmailVerification);
        let mail = mail("a@example.com", &token, Some("https://keys.example.com/"));
        let link = format!("https://keys.example.com/console/verify#verify={}", token.expose());
        assert!(mail.body.contains(&format!("\n    {link}\n")), "{}", mail.body);
        assert!(mail.body.contains(&format!("\n    {}\n", token.expose())), "the token on a line of its own");

        let without = super::mail("a@example.com", &token, None);
        assert!(without.body.contains("POST /api/v1/auth/verify-email") && !without.body.contains("/console"));
    }
}
