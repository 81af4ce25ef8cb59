//! Secrets at rest, sealed with the operator's key (`KEYPLANE_ENCRYPTION_KEY`).
//!
//! AES-256-GCM with a random nonce (aws-lc-rs, already in the tree for TLS and JWTs). A
//! sealed value names the key that sealed it, so the operator can rotate: the first key
//! seals, every listed key opens, and values sealed with an older key are re-sealed when
//! their owner next loads them. The associated data binds a value to where it is stored,
//! so a sealed value copied into another row does not open there.

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use sha2::{Digest, Sha256};

/// What every sealed value starts with: a version, so the format can change.
const MAGIC: &[u8; 4] = b"kpe1";
const KEY_ID_LEN: usize = 8;
pub const KEY_LEN: usize = 32;

/// One 32-byte operator key and its id (the first bytes of its SHA-256).
struct OperatorKey {
    id: [u8; KEY_ID_LEN],
    key: RandomizedNonceKey,
}

/// The operator's keys: the first seals, all open.
pub struct Sealer {
    keys: Vec<OperatorKey>,
    /// Keys fingerprints of what must not be guessable offline (see [`Sealer::mac`]).
    mac: aws_lc_rs::hmac::Key,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sealer({} keys)", self.keys.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the value was sealed with a key that is not configured (KEYPLANE_ENCRYPTION_KEY)")]
    UnknownKey,
    #[error("the sealed value is damaged or was moved from where it was stored")]
    Damaged,
}

/// Whether a stored value is sealed (as opposed to a plaintext value written before
/// sealing existed, which its owner seals on the next load).
pub fn is_sealed(value: &[u8]) -> bool {
    value.starts_with(MAGIC)
}

impl Sealer {
    /// Keys as the setting lists them: comma-separated, each 64 hex characters.
    pub fn parse(setting: &str) -> Result<Self, String> {
        let mut keys = Vec::new();
        for part in setting.split(',').map(str::trim) {
            let mut bytes = [0u8; KEY_LEN];
            hex::decode_to_slice(part, &mut bytes)
                .map_err(|_| "each comma-separated key must be 64 hex characters (32 bytes)".to_owned())?;
            keys.push(Self::key(&bytes));
        }
        if keys.is_empty() {
            return Err("no key given".to_owned());
        }
        let first = hex::decode(setting.split(',').next().unwrap_or_default().trim()).unwrap_or_default();
        let derived = Sha256::new().chain_update(b"keyplane mac\0").chain_update(&first).finalize();
        Ok(Self { keys, mac: aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &derived) })
    }

    fn key(bytes: &[u8; KEY_LEN]) -> OperatorKey {
        let digest = Sha256::digest(bytes);
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&digest[..KEY_ID_LEN]);
        OperatorKey { id, key: RandomizedNonceKey::new(&AES_256_GCM, bytes).expect("a 32-byte AES-256 key") }
    }

    /// A fresh random key, hex, for `keyplane up` to keep under its data directory.
    pub fn generate_key() -> String {
        use rand::{TryRng, rngs::SysRng};
        let mut bytes = [0u8; KEY_LEN];
        SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
        hex::encode(bytes)
    }

    /// Seals `plaintext` with the first key; `context` says where it will be stored.
    pub fn seal(&self, plaintext: &[u8], context: &str) -> Vec<u8> {
        let key = &self.keys[0];
        let mut sealed = plaintext.to_vec();
        let nonce = key
            .key
            .seal_in_place_append_tag(Aad::from(context.as_bytes()), &mut sealed)
            .expect("AES-GCM sealing of a bounded value cannot fail");
        let mut out = Vec::with_capacity(MAGIC.len() + KEY_ID_LEN + NONCE_LEN + sealed.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&key.id);
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed for `context`, with whichever configured key sealed it.
    pub fn open(&self, sealed: &[u8], context: &str) -> Result<Vec<u8>, SealError> {
        let rest = sealed.strip_prefix(MAGIC.as_slice()).ok_or(SealError::Damaged)?;
        if rest.len() < KEY_ID_LEN + NONCE_LEN {
            return Err(SealError::Damaged);
        }
        let (id, rest) = rest.split_at(KEY_ID_LEN);
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let key = self.keys.iter().find(|k| k.id == id).ok_or(SealError::UnknownKey)?;
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Damaged)?;
        let mut buffer = ciphertext.to_vec();
        let plaintext =
            key.key.open_in_place(nonce, Aad::from(context.as_bytes()), &mut buffer).map_err(|_| SealError::Damaged)?;
        Ok(plaintext.to_vec())
    }

    /// A keyed fingerprint of `data` (HMAC-SHA256 under a key derived from the operator
    /// key): stored where a plain hash could be brute-forced offline (a request body with
    /// a password in it, say). It changes when the first operator key does.
    pub fn mac(&self, data: &[u8]) -> String {
        hex::encode(aws_lc_rs::hmac::sign(&self.mac, data).as_ref())
    }

    /// Whether `sealed` was sealed with the current (first) key; else it should be re-sealed.
    pub fn is_current(&self, sealed: &[u8]) -> bool {
        sealed.get(MAGIC.len()..MAGIC.len() + KEY_ID_LEN) == Some(self.keys[0].id.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_only_where_they_were_stored() {
        let sealer = Sealer::parse(&Sealer::generate_key()).unwrap();
        let sealed = sealer.seal(b"private key", "signing_key:a");
        assert!(is_sealed(&sealed) && !sealed.windows(11).any(|w| w == b"private key"));
        assert_eq!(sealer.open(&sealed, "signing_key:a").unwrap(), b"private key");
        assert_eq!(sealer.open(&sealed, "signing_key:b"), Err(SealError::Damaged));
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(sealer.open(&tampered, "signing_key:a"), Err(SealError::Damaged));
    }

    #[test]
    fn keys_rotate() {
        let (old, new) = (Sealer::generate_key(), Sealer::generate_key());
        let before = Sealer::parse(&old).unwrap();
        let rotating = Sealer::parse(&format!("{new},{old}")).unwrap();
        let sealed = before.seal(b"x", "c");
        assert_eq!(rotating.open(&sealed, "c").unwrap(), b"x");
        assert!(!rotating.is_current(&sealed));
        assert!(rotating.is_current(&rotating.seal(b"x", "c")));
        let only_new = Sealer::parse(&new).unwrap();
        assert_eq!(only_new.open(&sealed, "c"), Err(SealError::UnknownKey));
    }

    #[test]
    fn bad_settings_are_refused() {
        assert!(Sealer::parse("short").is_err());
        assert!(Sealer::parse(&"zz".repeat(32)).is_err());
    }
}
