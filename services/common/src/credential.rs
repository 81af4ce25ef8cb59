//! The shape of API keys and MCP tokens: `<prefix>_<kind>_<56 hex random><8 hex CRC-32>`.
//!
//! The CRC lets the gateway (and secret scanners) refuse a mistyped or forged credential
//! without touching a cache or a database. Secrets and their hashes are distinct types so
//! that one can never be stored or logged in place of the other.

use std::fmt;

use rand::{TryRng, rngs::SysRng};
use sha2::{Digest, Sha256};

/// Hex characters of randomness in a secret: 224 bits.
const RANDOM_HEX: usize = 56;
/// Hex characters of the CRC-32 checksum that ends a secret.
const CRC_HEX: usize = 8;
/// Characters of a secret shown back to its owner (`phosra_test_4a1b`).
pub const DISPLAY_PREFIX_LEN: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Environment {
    Test,
    Live,
}

impl Environment {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Test => "test",
            Self::Live => "live",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "test" => Some(Self::Test),
            "live" => Some(Self::Live),
            _ => None,
        }
    }
}

/// The wire form: `ENVIRONMENT_UNSPECIFIED` reads as no environment at all.
impl Environment {
    pub fn from_proto(value: i32) -> Option<Self> {
        match keyplane_proto::types::v1::Environment::try_from(value).ok()? {
            keyplane_proto::types::v1::Environment::Test => Some(Self::Test),
            keyplane_proto::types::v1::Environment::Live => Some(Self::Live),
            keyplane_proto::types::v1::Environment::Unspecified => None,
        }
    }

    pub fn to_proto(self) -> keyplane_proto::types::v1::Environment {
        match self {
            Self::Test => keyplane_proto::types::v1::Environment::Test,
            Self::Live => keyplane_proto::types::v1::Environment::Live,
        }
    }
}

impl fmt::Display for Environment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a secret opens: an API key of one environment, or an MCP token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialType {
    ApiKey(Environment),
    McpToken,
}

impl CredentialType {
    fn tag(self) -> &'static str {
        match self {
            Self::ApiKey(env) => env.as_str(),
            Self::McpToken => "mcp",
        }
    }
}

/// A plaintext secret. Shown to its owner once; its `Debug` and `Display` never print it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The plaintext, for the one response that hands it out.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn hash(&self) -> SecretHash {
        SecretHash::of(&self.0)
    }

    /// The first characters, safe to store and to show in lists.
    pub fn display_prefix(&self) -> &str {
        &self.0[..DISPLAY_PREFIX_LEN.min(self.0.len())]
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({}…)", self.display_prefix())
    }
}

/// SHA-256 of a secret: what is stored, cached and published on revocation.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretHash([u8; 32]);

impl SecretHash {
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        Some(Self(bytes.try_into().ok()?))
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", &self.to_hex()[..12])
    }
}

/// Why a credential was refused on its shape alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the credential does not have the shape of a key")]
    Shape,
    #[error("the credential's checksum does not match")]
    Checksum,
}

/// A credential whose shape and checksum are right (it may still be unknown).
#[derive(Debug, Clone)]
pub struct ParsedCredential {
    pub credential_type: CredentialType,
    pub secret: Secret,
}

/// The deployment's credential format; only the prefix (`phosra` by default) varies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFormat {
    prefix: String,
}

impl KeyFormat {
    /// A prefix is 2 to 16 lower-case letters and digits, starting with a letter.
    pub fn new(prefix: &str) -> Result<Self, String> {
        let valid = (2..=16).contains(&prefix.len())
            && prefix.starts_with(|c: char| c.is_ascii_lowercase())
            && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if valid {
            Ok(Self { prefix: prefix.to_owned() })
        } else {
            Err(format!(
                "{prefix:?} is not a key prefix: use 2 to 16 lower-case letters and digits, starting with a letter"
            ))
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A fresh secret from the OS CSPRNG.
    pub fn generate(&self, credential_type: CredentialType) -> Secret {
        let mut random = [0u8; RANDOM_HEX / 2];
        SysRng.try_fill_bytes(&mut random).expect("the operating system's random number generator failed");
        let mut secret = format!("{}_{}_{}", self.prefix, credential_type.tag(), hex::encode(random));
        let crc = crc32fast::hash(secret.as_bytes());
        secret.push_str(&format!("{crc:08x}"));
        Secret(secret)
    }

    /// Checks shape and checksum, with no I/O. Upper-case hex is refused: a secret has
    /// exactly one spelling, so it has exactly one hash.
    pub fn parse(&self, raw: &str) -> Result<ParsedCredential, ShapeError> {
        let rest = raw.strip_prefix(self.prefix.as_str()).and_then(|r| r.strip_prefix('_')).ok_or(ShapeError::Shape)?;
        let (tag, hex_part) = rest.split_once('_').ok_or(ShapeError::Shape)?;
        let credential_type = match tag {
            "test" => CredentialType::ApiKey(Environment::Test),
            "live" => CredentialType::ApiKey(Environment::Live),
            "mcp" => CredentialType::McpToken,
            _ => return Err(ShapeError::Shape),
        };
        let lower_hex = |c: u8| c.is_ascii_digit() || (b'a'..=b'f').contains(&c);
        if hex_part.len() != RANDOM_HEX + CRC_HEX || !hex_part.bytes().all(lower_hex) {
            return Err(ShapeError::Shape);
        }
        let (body, crc_hex) = raw.split_at(raw.len() - CRC_HEX);
        let expected = u32::from_str_radix(crc_hex, 16).map_err(|_| ShapeError::Shape)?;
        if crc32fast::hash(body.as_bytes()) != expected {
            return Err(ShapeError::Checksum);
        }
        Ok(ParsedCredential { credential_type, secret: Secret(raw.to_owned()) })
    }

    /// Whether a bearer claims to be one of our keys or tokens (rather than a JWT).
    pub fn claims(&self, raw: &str) -> bool {
        raw.strip_prefix(self.prefix.as_str()).is_some_and(|r| r.starts_with('_'))
    }
}

impl Default for KeyFormat {
    fn default() -> Self {
        Self { prefix: "phosra".to_owned() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_the_published_check_values() {
        assert_eq!(crc32fast::hash(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32fast::hash(b"hello"), 0x3610_a686);
    }

    #[test]
    fn generated_keys_parse_back() {
        let format = KeyFormat::default();
        for ty in [
            CredentialType::ApiKey(Environment::Test),
            CredentialType::ApiKey(Environment::Live),
            CredentialType::McpToken,
        ] {
            let secret = format.generate(ty);
            let parsed = format.parse(secret.expose()).unwrap();
            assert_eq!(parsed.credential_type, ty);
            assert_eq!(parsed.secret.hash(), secret.hash());
        }
        let key = format.generate(CredentialType::ApiKey(Environment::Test));
        assert!(key.expose().starts_with("phosra_test_"));
        assert_eq!(key.expose().len(), "phosra_test_".len() + 64);
        assert_eq!(key.display_prefix().len(), 16);
    }

    #[test]
    fn one_changed_character_fails_the_checksum() {
        let format = KeyFormat::default();
        let key = format.generate(CredentialType::ApiKey(Environment::Live));
        let mut bytes = key.expose().as_bytes().to_vec();
        let i = 20;
        bytes[i] = if bytes[i] == b'a' { b'b' } else { b'a' };
        let changed = String::from_utf8(bytes).unwrap();
        assert_eq!(format.parse(&changed).unwrap_err(), ShapeError::Checksum);
    }

    #[test]
    fn malformed_keys_fail_the_shape_check() {
        let format = KeyFormat::default();
        let key = format.generate(CredentialType::ApiKey(Environment::Test));
        let good = key.expose();
        let cases = [
            String::new(),
            "ghp_0123456789abcdef".to_owned(),
            good.replace("_test_", "_prod_"),
            good[..good.len() - 1].to_owned(),
            format!("{good}0"),
            good.to_uppercase(),
            format!("{} ", good),
            good.replacen('a', "\0", 1),
            good.replace("phosra", "acme"),
        ];
        for case in cases {
            assert!(format.parse(&case).is_err(), "{case:?} parsed");
        }
    }

    #[test]
    fn a_secret_never_prints_itself() {
        let key = KeyFormat::default().generate(CredentialType::McpToken);
        let printed = format!("{key:?}");
        assert!(!printed.contains(&key.expose()[20..]));
    }

    #[test]
    fn prefixes_are_checked() {
        assert!(KeyFormat::new("acme").is_ok());
        assert!(KeyFormat::new("Acme").is_err());
        assert!(KeyFormat::new("a").is_err());
        assert!(KeyFormat::new("ac_me").is_err());
    }
}
