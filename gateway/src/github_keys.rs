//! GitHub's secret-scanning signatures: an alert is ECDSA P-256 / SHA-256 over the raw
//! body, by one of the keys GitHub publishes (PEM, by key identifier). The key set is
//! fetched, kept, fetched again when an alert names a key we do not know (at most once a
//! minute, so unknown ids cannot make us hammer GitHub) or when it is an hour old; with no
//! key set at all, every alert is refused.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};
use base64::Engine;
use serde::Deserialize;
use tokio::sync::Mutex;

/// An unknown key id refetches at most this often.
const REFETCH_AFTER: Duration = Duration::from_secs(60);
/// A key set this old is fetched again before use, so a key GitHub withdrew stops counting.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// GitHub's key set is a few keys; anything far larger is not it.
const MAX_KEY_SET_BYTES: usize = 64 * 1024;

/// Why an alert is refused.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// A signature header is missing, unreadable, names no key we know, or does not verify.
    Signature(&'static str),
    /// The key set could not be fetched: we cannot tell, so we refuse.
    KeySetUnavailable,
}

#[derive(Deserialize)]
struct KeySet {
    public_keys: Vec<PublishedKey>,
}

#[derive(Deserialize)]
struct PublishedKey {
    key_identifier: String,
    key: String,
}

#[derive(Default)]
struct Known {
    /// Key identifier → SubjectPublicKeyInfo DER.
    keys: HashMap<String, Vec<u8>>,
    /// When the set now held was fetched.
    fetched_at: Option<Instant>,
    /// When an unknown key id last made us fetch again.
    refetched_at: Option<Instant>,
    /// When a fetch last failed.
    failed_at: Option<Instant>,
}

/// Whether `at` is absent or at least a minute ago.
fn a_minute_since(at: Option<Instant>) -> bool {
    at.is_none_or(|at| at.elapsed() >= REFETCH_AFTER)
}

pub struct GithubKeys {
    url: String,
    http: reqwest::Client,
    known: Mutex<Known>,
}

impl GithubKeys {
    pub fn new(url: String, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("keyplane-secret-scanning")
            .build()
            .expect("a plain HTTP client builds");
        Self { url, http, known: Mutex::new(Known::default()) }
    }

    /// Ok when `signature` (base64 DER) by the key `key_id` verifies over `body`.
    pub async fn verify(&self, key_id: Option<&str>, signature: Option<&str>, body: &[u8]) -> Result<(), Refusal> {
        let key_id =
            key_id.filter(|k| !k.is_empty()).ok_or(Refusal::Signature("Github-Public-Key-Identifier is missing"))?;
        let signature = signature.ok_or(Refusal::Signature("Github-Public-Key-Signature is missing"))?;
        let signature = base64::engine::general_purpose::STANDARD
            .decode(signature.trim())
            .map_err(|_| Refusal::Signature("Github-Public-Key-Signature is not base64"))?;
        let key =
            self.key(key_id).await?.ok_or(Refusal::Signature("the key identifier is not one of GitHub's keys"))?;
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &key)
            .verify(body, &signature)
            .map_err(|_| Refusal::Signature("the signature does not verify"))
    }

    /// The key named `key_id`. The set is fetched when there is none or it is stale, and
    /// again when it does not hold the id, at most once a minute; a failed fetch waits a
    /// minute too. A set that is missing or stale after that refuses.
    async fn key(&self, key_id: &str) -> Result<Option<Vec<u8>>, Refusal> {
        let mut known = self.known.lock().await;
        let fresh = |known: &Known| known.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE);
        let unknown = fresh(&known) && !known.keys.contains_key(key_id);
        let fetch =
            (!fresh(&known) || (unknown && a_minute_since(known.refetched_at))) && a_minute_since(known.failed_at);
        if fetch {
            if unknown {
                known.refetched_at = Some(Instant::now());
            }
            match self.fetch().await {
                Ok(keys) => {
                    known.keys = keys;
                    known.fetched_at = Some(Instant::now());
                }
                Err(error) => {
                    known.failed_at = Some(Instant::now());
                    tracing::warn!(error = %error, "GitHub's secret-scanning key set could not be fetched");
                }
            }
        }
        if !fresh(&known) {
            return Err(Refusal::KeySetUnavailable);
        }
        Ok(known.keys.get(key_id).cloned())
    }

    async fn fetch(&self) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let response = self.http.get(&self.url).send().await?.error_for_status()?;
        if response.content_length().is_some_and(|n| n > MAX_KEY_SET_BYTES as u64) {
            anyhow::bail!("the key set is too large");
        }
        let body = response.bytes().await?;
        if body.len() > MAX_KEY_SET_BYTES {
            anyhow::bail!("the key set is too large");
        }
        let set: KeySet = serde_json::from_slice(&body)?;
        let mut keys = HashMap::new();
        for published in set.public_keys {
            let pem = pem::parse(published.key.as_bytes())?;
            if pem.tag() != "PUBLIC KEY" {
                anyhow::bail!("key {} is not a public key", published.key_identifier);
            }
            keys.insert(published.key_identifier, pem.into_contents());
        }
        Ok(keys)
    }
}
