//! Debug output of the messages that carry a secret: every field but the secret ones.
//! prost's generated `Debug` would print passwords, tokens and keys into any log line that
//! formats a request with `{:?}`.

use std::fmt;

/// `impl Debug` showing `shown` fields and replacing `hidden` ones.
macro_rules! redacted_debug {
    ($ty:ty { $($shown:ident),* } hides [$($hidden:ident),+]) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($shown), &self.$shown))*
                    $(.field(stringify!($hidden), &format_args!("<redacted>")))+
                    .finish()
            }
        }
    };
}

redacted_debug!(crate::identity::v1::SignupRequest { email, name } hides [password]);
redacted_debug!(crate::identity::v1::LoginRequest { email } hides [password]);
redacted_debug!(crate::identity::v1::RefreshRequest {} hides [refresh_token]);
redacted_debug!(crate::identity::v1::SessionTokens { user, token_type, expires_in } hides [access_token, refresh_token]);
redacted_debug!(crate::identity::v1::AuthenticateRequest { min_revision } hides [credential]);
redacted_debug!(crate::identity::v1::VerifyEmailRequest {} hides [token]);
redacted_debug!(crate::identity::v1::Mail { id, kind, invitation_id } hides [to, subject, body, token]);
redacted_debug!(crate::keys::v1::KeyWithSecret { key } hides [secret]);
redacted_debug!(crate::keys::v1::McpTokenWithSecret { token } hides [secret]);

#[cfg(test)]
mod tests {
    use crate::{identity::v1 as identity, keys::v1 as keys};

    #[test]
    fn no_secret_is_ever_printed() {
        let secret = "phosra_live_very_secret_value";
        let printed = [
            format!(
                "{:?}",
                identity::SignupRequest { email: "a@b.co".into(), password: secret.into(), name: "A".into() }
            ),
            format!("{:?}", identity::LoginRequest { email: "a@b.co".into(), password: secret.into() }),
            format!("{:?}", identity::RefreshRequest { refresh_token: secret.into() }),
            format!(
                "{:?}",
                identity::SessionTokens {
                    access_token: secret.into(),
                    refresh_token: secret.into(),
                    ..Default::default()
                }
            ),
            format!("{:?}", identity::AuthenticateRequest { credential: secret.into(), min_revision: 3 }),
            format!("{:?}", identity::VerifyEmailRequest { token: secret.into() }),
            format!(
                "{:?}",
                identity::SendMailRequest {
                    mail: Some(identity::Mail { token: secret.into(), body: secret.into(), ..Default::default() })
                }
            ),
            format!("{:?}", keys::KeyWithSecret { key: None, secret: secret.into() }),
            format!("{:?}", keys::McpTokenWithSecret { token: None, secret: secret.into() }),
        ];
        for line in printed {
            assert!(!line.contains(secret), "{line}");
            assert!(line.contains("<redacted>"), "{line}");
        }
    }
}
