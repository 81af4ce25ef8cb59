//! An advisor's declared Ed25519 public key: raw 32 bytes as JWK `x` (base64url without
//! padding), named by a `kid` the advisor chooses.

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::VerifyingKey;
use keyplane_common::error::FieldViolation;
use uuid::Uuid;

pub const ACTIVE: &str = "active";
pub const RETIRED: &str = "retired";
const MAX_KID_LEN: usize = 128;

#[derive(Clone, Debug, PartialEq)]
pub struct PayloadKey {
    pub advisor_id: Uuid,
    pub kid: String,
    pub public_x: String,
    pub status: String,
    pub declared_at: DateTime<Utc>,
}

impl PayloadKey {
    pub fn is_active(&self) -> bool {
        self.status == ACTIVE
    }

    pub fn verifying_key(&self) -> Option<VerifyingKey> {
        public_key(&self.public_x).ok()
    }
}

/// A `kid`: 1 to 128 of `[A-Za-z0-9._:-]`.
pub fn kid(raw: &str) -> Result<String, FieldViolation> {
    let ok =
        (1..=MAX_KID_LEN).contains(&raw.len()) && raw.chars().all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(FieldViolation::new("key_id", format!("must be 1 to {MAX_KID_LEN} letters, digits, '.', '_', ':' or '-'")))
    }
}

/// A raw Ed25519 public key, base64url without padding, that is a point on the curve.
pub fn public_key(x: &str) -> Result<VerifyingKey, FieldViolation> {
    let problem =
        || FieldViolation::new("public_key", "must be a raw 32-byte Ed25519 public key, base64url without padding");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(x).map_err(|_| problem())?;
    let bytes: [u8; 32] = bytes.try_into().map_err(|_| problem())?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| problem())?;
    // A small-order point has no private key worth the name: a "signature" of it
    // verifies for any message (R = identity, s = 0), so it would prove nothing.
    if key.is_weak() {
        return Err(FieldViolation::new("public_key", "is a weak (small-order) Ed25519 point"));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_32_bytes_base64url() {
        let x = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs";
        assert!(public_key(x).is_ok(), "RFC 9421's test key");
        assert!(public_key("JrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=").is_err(), "standard base64");
        assert!(public_key("AAAA").is_err());
        assert!(public_key("AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").is_err(), "the identity point is weak");
        assert!(kid("test-key-ed25519").is_ok() && kid("").is_err() && kid("a b").is_err());
    }
}
