//! The Ed25519 keys that sign session bearers: one signs, retired ones keep verifying
//! until every token they signed has expired, and all are published as JWKS.
//!
//! Private keys are stored sealed with the operator key. A key sealed with an older
//! operator key (or stored before sealing existed) is re-sealed with the current one
//! when the ring loads, so rotating the operator key needs no migration step.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use base64::Engine;
use ed25519_dalek::{SigningKey, pkcs8::EncodePrivateKey};
use jsonwebtoken::{DecodingKey, EncodingKey};
use keyplane_common::{
    audit::AuditRecord,
    crypto::{Sealer, is_sealed},
};
use keyplane_proto::identity::v1::Jwk;
use rand::{TryRng, rngs::SysRng};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{
    error::Error,
    store::{Store, signing_keys},
};

/// An unknown `kid` reloads the ring at most this often: a flood of made-up kids costs
/// one query per interval.
const RELOAD_INTERVAL: Duration = Duration::from_secs(10);

pub struct KeyRing {
    store: Store,
    sealer: Arc<Sealer>,
    state: RwLock<State>,
    last_reload: Mutex<Instant>,
    /// How long a retired key stays published: every token it signed has expired by then.
    retire_for: Duration,
}

#[derive(Default)]
struct State {
    signer: Option<(String, EncodingKey)>,
    verifiers: HashMap<String, DecodingKey>,
    jwks: Vec<Jwk>,
}

impl KeyRing {
    /// Loads the published keys, creating the first signing key on a new database.
    pub async fn load(store: Store, retire_for: Duration, sealer: Arc<Sealer>) -> Result<Arc<Self>, Error> {
        let ring = Arc::new(Self {
            store,
            sealer,
            state: RwLock::default(),
            last_reload: Mutex::new(Instant::now()),
            retire_for,
        });
        ring.reload().await?;
        if ring.state.read().expect("keyring lock").signer.is_none() {
            ring.store.add_first_signing_key(new_key(&ring.sealer)?).await?;
            ring.reload().await?;
        }
        Ok(ring)
    }

    /// A stored private key, opened; re-sealed in storage when it is not sealed with the
    /// current operator key.
    async fn open(&self, key: &signing_keys::Model) -> Result<Vec<u8>, Error> {
        let context = seal_context(&key.kid);
        let pkcs8 = if is_sealed(&key.private_pkcs8) {
            self.sealer.open(&key.private_pkcs8, &context).map_err(|e| {
                Error::internal(format!(
                    "signing key {}: {e} (is KEYPLANE_ENCRYPTION_KEY the one it was sealed with?)",
                    key.kid
                ))
            })?
        } else {
            key.private_pkcs8.clone()
        };
        if !self.sealer.is_current(&key.private_pkcs8) {
            self.store.reseal_signing_key(&key.kid, self.sealer.seal(&pkcs8, &context)).await?;
            tracing::info!(kid = %key.kid, "signing key sealed with the current operator key");
        }
        Ok(pkcs8)
    }

    /// Picks up keys rotated by other replicas, every minute until `shutdown`.
    pub fn refresh_periodically(self: &Arc<Self>, shutdown: CancellationToken) {
        let ring = Arc::clone(self);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(60)) => {}
                }
                if let Err(e) = ring.reload().await {
                    tracing::warn!(error = %e, "signing key reload failed");
                }
            }
        });
    }

    async fn reload(&self) -> Result<(), Error> {
        let keys = self.store.published_signing_keys().await?;
        let mut state = State::default();
        for key in &keys {
            let decoding = DecodingKey::from_ed_components(&key.public_x)
                .map_err(|e| Error::internal(format!("signing key {}: {e}", key.kid)))?;
            state.verifiers.insert(key.kid.clone(), decoding);
            state.jwks.push(Jwk {
                kty: "OKP".into(),
                crv: "Ed25519".into(),
                kid: key.kid.clone(),
                x: key.public_x.clone(),
                alg: "EdDSA".into(),
                r#use: "sig".into(),
            });
        }
        // The newest key that is not retired signs; every key is opened (and re-sealed
        // if need be), so a wrong operator key fails at start-up, not at the first login.
        let signer = keys.iter().rev().find(|k| k.retired_at.is_none()).map(|k| k.kid.clone());
        for key in &keys {
            let pkcs8 = self.open(key).await?;
            if signer.as_deref() == Some(key.kid.as_str()) {
                state.signer = Some((key.kid.clone(), EncodingKey::from_ed_der(&pkcs8)));
            }
        }
        *self.state.write().expect("keyring lock") = state;
        Ok(())
    }

    /// The signing key: (`kid`, key).
    pub fn signer(&self) -> Result<(String, EncodingKey), Error> {
        self.state.read().expect("keyring lock").signer.clone().ok_or_else(|| Error::internal("no signing key"))
    }

    /// The key that verifies `kid`; an unknown kid reloads the ring, rate-limited.
    pub async fn verifier(&self, kid: &str) -> Option<DecodingKey> {
        if let Some(key) = self.state.read().expect("keyring lock").verifiers.get(kid) {
            return Some(key.clone());
        }
        {
            let mut last = self.last_reload.lock().await;
            if last.elapsed() < RELOAD_INTERVAL {
                return None;
            }
            *last = Instant::now();
        }
        if let Err(e) = self.reload().await {
            tracing::warn!(error = %e, "signing key reload failed");
        }
        self.state.read().expect("keyring lock").verifiers.get(kid).cloned()
    }

    pub fn jwks(&self) -> Vec<Jwk> {
        self.state.read().expect("keyring lock").jwks.clone()
    }

    /// Starts signing with a new key; the others retire but stay published. `audit` is
    /// the rotation's event, told the new `kid`.
    pub async fn rotate(&self, audit: impl FnOnce(&str) -> AuditRecord) -> Result<String, Error> {
        let key = new_key(&self.sealer)?;
        let kid = key.kid.clone();
        let unpublish_at = keyplane_common::time::now()
            + chrono::Duration::from_std(self.retire_for).map_err(|e| Error::internal(e.to_string()))?;
        self.store.add_signing_key(key, unpublish_at, &audit(&kid)).await?;
        self.reload().await?;
        Ok(kid)
    }
}

/// Where a sealed private key belongs: it opens only in its own row.
fn seal_context(kid: &str) -> String {
    format!("signing_key:{kid}")
}

fn new_key(sealer: &Sealer) -> Result<signing_keys::Model, Error> {
    let mut seed = [0u8; 32];
    SysRng.try_fill_bytes(&mut seed).map_err(|e| Error::internal(format!("random: {e}")))?;
    let signing = SigningKey::from_bytes(&seed);
    let pkcs8 = signing.to_pkcs8_der().map_err(|e| Error::internal(format!("pkcs8: {e}")))?;
    let mut kid_bytes = [0u8; 12];
    SysRng.try_fill_bytes(&mut kid_bytes).map_err(|e| Error::internal(format!("random: {e}")))?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kid = b64.encode(kid_bytes);
    Ok(signing_keys::Model {
        private_pkcs8: sealer.seal(pkcs8.as_bytes(), &seal_context(&kid)),
        kid,
        public_x: b64.encode(signing.verifying_key().to_bytes()),
        created_at: keyplane_common::time::now(),
        retired_at: None,
        unpublish_at: None,
    })
}
