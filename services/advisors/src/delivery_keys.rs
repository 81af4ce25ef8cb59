//! The platform's own Ed25519 key that signs consultations delivered to advisors, made
//! on first start, its private half sealed with the operator key; published as JWKs so
//! an advisor can check that a delivery came from the platform.

use std::sync::Arc;

use base64::Engine;
use ed25519_dalek::SigningKey;
use keyplane_common::{
    crypto::Sealer,
    httpsig::{self, Message, Refusal, SignatureParams},
};
use rand::{TryRng, rngs::SysRng};

use crate::{
    error::Error,
    store::{DeliveryKeyRow, Store},
};

/// A public delivery key: `(kid, x, created_at)`.
pub type PublicKey = (String, String, chrono::DateTime<chrono::Utc>);

pub struct DeliveryKeys {
    kid: String,
    signing: SigningKey,
    public: Vec<PublicKey>,
}

/// A sealed key opens only as the delivery key it was made for.
fn seal_context(kid: &str) -> String {
    format!("delivery_key:{kid}")
}

impl DeliveryKeys {
    /// The stored keys (the newest signs), made first if there are none.
    pub async fn load(store: &Store, sealer: &Arc<Sealer>) -> Result<Self, Error> {
        if store.delivery_keys().await?.is_empty() {
            store.add_first_delivery_key(new_key(sealer)?).await?;
        }
        let rows = store.delivery_keys().await?;
        let newest = rows.last().ok_or_else(|| Error::internal("no delivery key"))?;
        let seed = sealer.open(&newest.private_sealed, &seal_context(&newest.kid)).map_err(|e| {
            Error::internal(format!("delivery key {}: {e} (the operator key it was sealed with?)", newest.kid))
        })?;
        let seed: [u8; 32] = seed.try_into().map_err(|_| Error::internal("a delivery key is not 32 bytes"))?;
        Ok(Self {
            kid: newest.kid.clone(),
            signing: SigningKey::from_bytes(&seed),
            public: rows.iter().map(|r| (r.kid.clone(), r.public_x.clone(), r.created_at)).collect(),
        })
    }

    pub fn public(&self) -> &[PublicKey] {
        &self.public
    }

    /// Signs a delivery: method, full URL, content type and body digest.
    pub fn sign(&self, message: &Message, created: i64, nonce: &str) -> Result<(String, String), Refusal> {
        let params = SignatureParams {
            label: "keyplane",
            covered: &["@method", "@target-uri", "content-type", "content-digest"],
            created,
            keyid: &self.kid,
            nonce: Some(nonce),
        };
        httpsig::sign(message, &params, &self.signing)
    }
}

fn new_key(sealer: &Sealer) -> Result<DeliveryKeyRow, Error> {
    let mut seed = [0u8; 32];
    SysRng.try_fill_bytes(&mut seed).map_err(|e| Error::internal(format!("random: {e}")))?;
    let mut kid = [0u8; 12];
    SysRng.try_fill_bytes(&mut kid).map_err(|e| Error::internal(format!("random: {e}")))?;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let kid = format!("delivery-{}", b64.encode(kid));
    let public_x = b64.encode(SigningKey::from_bytes(&seed).verifying_key().to_bytes());
    Ok(DeliveryKeyRow {
        private_sealed: sealer.seal(&seed, &seal_context(&kid)),
        kid,
        public_x,
        created_at: keyplane_common::time::now(),
    })
}
