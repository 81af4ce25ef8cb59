//! GitHub's secret-scanning signatures: an alert is ECDSA P-256 / SHA-256 over the raw
//! body, by one of the keys GitHub publishes (PEM, by key identifier). The key set is
//! fetched, kept, fetched again when an alert names a key we do not know (at most once a
//! minute, so unknown ids cannot make us hammer GitHub) or when it is an hour old; with no
//! key set at all, every alert is refused.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
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

/// The key set as last fetched. Readers take a snapshot and never wait for a fetch.
#[derive(Default)]
struct Known {
    /// Key identifier → SubjectPublicKeyInfo DER.
    keys: HashMap<String, Vec<u8>>,
    /// When the set now held was fetched.
    fetched_at: Option<Instant>,
}

impl Known {
    fn fresh(&self) -> bool {
        self.fetched_at.is_some_and(|at| at.elapsed() < MAX_AGE)
    }
}

/// When fetches were tried: held only by the one request that fetches.
#[derive(Default)]
struct Attempts {
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
    known: RwLock<Arc<Known>>,
    attempts: Mutex<Attempts>,
}

impl GithubKeys {
    pub fn new(url: String, timeout: Duration) -> Self {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("keyplane-secret-scanning")
            .build()
            .expect("a plain HTTP client builds");
        Self { url, http, known: RwLock::default(), attempts: Mutex::default() }
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

    fn snapshot(&self) -> Arc<Known> {
        Arc::clone(&self.known.read().unwrap_or_else(std::sync::PoisonError::into_inner))
    }

    /// The key named `key_id`. A fresh set that holds it answers at once, whatever fetch
    /// is under way. Otherwise the set is fetched when there is none or it is stale, and
    /// again when it lacks the id, at most once a minute; a failed fetch waits a minute
    /// too. A set that is missing or stale after that refuses.
    async fn key(&self, key_id: &str) -> Result<Option<Vec<u8>>, Refusal> {
        let known = self.snapshot();
        if known.fresh() && known.keys.contains_key(key_id) {
            return Ok(known.keys.get(key_id).cloned());
        }
        // Only requests that need a fetch queue here; the first one in does it.
        let mut attempts = self.attempts.lock().await;
        let known = self.snapshot();
        let unknown = known.fresh() && !known.keys.contains_key(key_id);
        let fetch = (!known.fresh() || (unknown && a_minute_since(attempts.refetched_at)))
            && a_minute_since(attempts.failed_at);
        let known = if fetch {
            if unknown {
                attempts.refetched_at = Some(Instant::now());
            }
            match self.fetch().await {
                Ok(keys) => {
                    let fetched = Arc::new(Known { keys, fetched_at: Some(Instant::now()) });
                    *self.known.write().unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::clone(&fetched);
                    fetched
                }
                Err(error) => {
                    attempts.failed_at = Some(Instant::now());
                    tracing::warn!(error = %error, "GitHub's secret-scanning key set could not be fetched");
                    known
                }
            }
        } else {
            known
        };
        if !known.fresh() {
            return Err(Refusal::KeySetUnavailable);
        }
        Ok(known.keys.get(key_id).cloned())
    }

    /// GitHub's published keys; an entry that is not a P-256 public key is skipped (and
    /// logged), and the set counts only if some key is usable.
    async fn fetch(&self) -> anyhow::Result<HashMap<String, Vec<u8>>> {
        let mut response = self.http.get(&self.url).send().await?.error_for_status()?;
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_KEY_SET_BYTES {
                anyhow::bail!("the key set is over {MAX_KEY_SET_BYTES} bytes");
            }
            body.extend_from_slice(&chunk);
        }
        let set: KeySet = serde_json::from_slice(&body)?;
        let keys: HashMap<String, Vec<u8>> = set
            .public_keys
            .into_iter()
            .filter_map(|published| match p256_key(&published.key) {
                Some(der) => Some((published.key_identifier, der)),
                None => {
                    tracing::warn!(key_id = %published.key_identifier, "skipped a GitHub key that is not a P-256 public key");
                    None
                }
            })
            .collect();
        anyhow::ensure!(!keys.is_empty(), "the key set holds no usable key");
        Ok(keys)
    }
}

/// The SubjectPublicKeyInfo DER of a PEM public key, if it is an ECDSA P-256 key.
fn p256_key(pem_text: &str) -> Option<Vec<u8>> {
    let pem = pem::parse(pem_text.as_bytes()).ok()?;
    if pem.tag() != "PUBLIC KEY" {
        return None;
    }
    let der = pem.into_contents();
    aws_lc_rs::signature::ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &der).ok()?;
    Some(der)
}
