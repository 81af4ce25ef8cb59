//! Passwords: checked, hashed with argon2id, and verified in the same time whether or not
//! the account exists.

use std::sync::LazyLock;

use argon2::{
    Argon2,
    password_hash::{PasswordHasher, PasswordVerifier, phc::PasswordHash},
};
use keyplane_common::error::FieldViolation;

pub const MIN_LEN: usize = 8;
/// argon2 takes any length; a bound keeps one request from costing much.
pub const MAX_LEN: usize = 1024;

/// A password accepted for a new account.
pub struct NewPassword(String);

impl NewPassword {
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        if raw.chars().count() < MIN_LEN {
            return Err(FieldViolation::new("password", format!("must be at least {MIN_LEN} characters")));
        }
        if raw.len() > MAX_LEN {
            return Err(FieldViolation::new("password", format!("must be at most {MAX_LEN} bytes")));
        }
        if raw.contains('\0') {
            return Err(FieldViolation::new("password", "must not contain NUL"));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The PHC string of an argon2id hash with a fresh salt (CPU-heavy: call off the runtime).
    pub fn hash(&self) -> String {
        Argon2::default()
            .hash_password(self.0.as_bytes())
            .expect("argon2 hashing with default parameters cannot fail")
            .to_string()
    }
}

/// A hash of a password nobody has, verified when the account does not exist so that
/// both answers take the same time.
static DECOY_HASH: LazyLock<String> = LazyLock::new(|| {
    NewPassword::parse("decoy password that matches no account").map(|p| p.hash()).unwrap_or_default()
});

/// Checks `password` against a stored hash, or against the decoy when there is none.
/// CPU-heavy: call off the runtime.
pub fn verify(password: &str, stored: Option<&str>) -> bool {
    let (hash, real) = match stored {
        Some(h) => (h, true),
        None => (DECOY_HASH.as_str(), false),
    };
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let matches = Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok();
    matches && real
}

/// Builds the decoy now, so the first login of an unknown email is not slower.
pub fn warm_up() {
    LazyLock::force(&DECOY_HASH);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_and_decoys_never_match() {
        let password = NewPassword::parse("correct horse").unwrap();
        let hash = password.hash();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify("correct horse", Some(&hash)));
        assert!(!verify("wrong horse", Some(&hash)));
        assert!(!verify("decoy password that matches no account", None));
    }

    #[test]
    fn weak_or_odd_passwords_are_refused() {
        assert!(NewPassword::parse("short").is_err());
        assert!(NewPassword::parse(&"x".repeat(MAX_LEN + 1)).is_err());
        assert!(NewPassword::parse("has\0nul!").is_err());
    }
}
