//! Refresh tokens: opaque random strings, stored only as SHA-256.

use std::fmt;

use base64::Engine;
use rand::{TryRng, rngs::SysRng};
use sha2::{Digest, Sha256};

const PREFIX: &str = "kprt_";

pub struct RefreshToken(String);

impl RefreshToken {
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
        Self(format!("{PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The stored form: SHA-256, hex.
    pub fn hash(&self) -> String {
        hash(&self.0)
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(…)")
    }
}

/// The stored form of a presented token; None when it cannot be one of ours.
pub fn hash_presented(token: &str) -> Option<String> {
    (token.starts_with(PREFIX) && token.len() < 128).then(|| hash(token))
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}
