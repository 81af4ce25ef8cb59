//! Opaque tokens of our own: refresh tokens and email-verification tokens. Random strings
//! with a prefix that says what they are for, stored only as SHA-256.

use std::fmt;

use base64::Engine;
use rand::{TryRng, rngs::SysRng};
use sha2::{Digest, Sha256};

/// What a token is for: a token of one kind is never accepted as another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenKind {
    Refresh,
    EmailVerification,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            Self::Refresh => "kprt_",
            Self::EmailVerification => "kpev_",
        }
    }
}

pub struct OpaqueToken(String);

impl OpaqueToken {
    pub fn generate(kind: TokenKind) -> Self {
        let mut bytes = [0u8; 32];
        SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
        Self(format!("{}{}", kind.prefix(), base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256, hex.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(…)")
    }
}

/// The stored form of a presented token; None when it cannot be one of ours of `kind`.
pub fn hash_presented(kind: TokenKind, token: &str) -> Option<String> {
    (token.starts_with(kind.prefix()) && token.len() < 128).then(|| hash(token))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_kept_apart_by_kind_and_never_printed() {
        let token = OpaqueToken::generate(TokenKind::EmailVerification);
        assert_eq!(hash_presented(TokenKind::EmailVerification, token.expose()), Some(token.hash()));
        assert_eq!(hash_presented(TokenKind::Refresh, token.expose()), None);
        assert!(!format!("{token:?}").contains(&token.expose()[5..]));
    }
}
