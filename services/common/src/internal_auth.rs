//! Proof that a gRPC caller is inside the system.
//!
//! Every call between services carries a short-lived HS256 token signed with the shared
//! internal secret; the principal the caller acts for travels inside it. A principal in
//! metadata that is not inside a valid token is never believed.

use std::sync::Arc;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use tonic::{Request, Status, metadata::MetadataMap};

use crate::principal::Principal;

/// The metadata key of the internal token.
pub const METADATA_KEY: &str = "x-keyplane-internal";
const AUDIENCE: &str = "keyplane-internal";
/// Long enough for one call and its retries, short enough that a leaked token is useless.
const LIFETIME_SECS: u64 = 60;

#[derive(serde::Serialize, serde::Deserialize)]
struct Claims {
    iss: String,
    aud: String,
    iat: u64,
    exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prn: Option<Principal>,
}

/// Where the end user's request came from, as the gateway saw it (for audit records).
pub const CLIENT_IP_KEY: &str = "x-keyplane-client-ip";
pub const USER_AGENT_KEY: &str = "x-keyplane-user-agent";
pub const REQUEST_ID_KEY: &str = "x-request-id";

/// The verified caller of an RPC: which service, acting for whom, and from where.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    pub service: String,
    /// Shared with the gateway's cache of verdicts: a request holds it, never copies it.
    pub principal: Option<Arc<Principal>>,
    pub client_ip: String,
    pub user_agent: String,
    pub request_id: String,
}

impl Caller {
    /// The principal the call is made for; refused when the caller acts for nobody.
    pub fn principal(&self) -> Result<&Principal, NoPrincipal> {
        self.principal.as_deref().ok_or(NoPrincipal)
    }

    /// The same call, made by the service `name` itself (for what the service decides on
    /// its own authority), keeping the caller's origin for the audit trail.
    pub fn as_service(&self, name: &str) -> Caller {
        Caller { principal: Some(Arc::new(Principal::Service { name: name.to_owned() })), ..self.clone() }
    }
}

/// A call that needs a principal came without one.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("this call needs a principal")]
pub struct NoPrincipal;

impl From<NoPrincipal> for Status {
    fn from(_: NoPrincipal) -> Self {
        crate::error::status(crate::error::Kind::Unauthenticated, "unauthenticated", "this call needs a principal", &[])
    }
}

/// Signs and verifies internal tokens for one service.
pub struct InternalAuth {
    service: String,
    signing: EncodingKey,
    verifying: Vec<DecodingKey>,
    validation: Validation,
}

impl InternalAuth {
    /// `secrets[0]` signs; every secret verifies, so the secret can be rotated.
    pub fn new(service: &str, secrets: &[Vec<u8>]) -> Self {
        assert!(!secrets.is_empty(), "at least one internal secret is required");
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.leeway = 5;
        Self {
            service: service.to_owned(),
            signing: EncodingKey::from_secret(&secrets[0]),
            verifying: secrets.iter().map(|s| DecodingKey::from_secret(s)).collect(),
            validation,
        }
    }

    pub fn sign(&self, principal: Option<&Principal>) -> String {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            iss: self.service.clone(),
            aud: AUDIENCE.to_owned(),
            iat: now,
            exp: now + LIFETIME_SECS,
            prn: principal.cloned(),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.signing)
            .expect("HS256 signing of serializable claims cannot fail")
    }

    pub fn verify(&self, token: &str) -> Result<Caller, Status> {
        for key in &self.verifying {
            if let Ok(data) = jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
                if !short_lived(&data.claims, self.validation.leeway) {
                    break;
                }
                return Ok(Caller {
                    service: data.claims.iss,
                    principal: data.claims.prn.map(Arc::new),
                    ..Caller::default()
                });
            }
        }
        Err(not_inside())
    }

    /// Puts a token into outgoing metadata.
    pub fn attach(&self, metadata: &mut MetadataMap, principal: Option<&Principal>) {
        let token = self.sign(principal);
        metadata.insert(METADATA_KEY, token.parse().expect("a JWT is valid ASCII metadata"));
    }

    /// Reads and verifies the token of an incoming request.
    pub fn verify_request<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let token = request.metadata().get(METADATA_KEY).and_then(|v| v.to_str().ok()).ok_or_else(not_inside)?;
        let mut caller = self.verify(token)?;
        let text = |key: &str| {
            let value = request.metadata().get(key).and_then(|v| v.to_str().ok()).unwrap_or_default();
            value.chars().take(512).collect::<String>()
        };
        caller.client_ip = text(CLIENT_IP_KEY);
        caller.user_agent = text(USER_AGENT_KEY);
        caller.request_id = text(REQUEST_ID_KEY);
        Ok(caller)
    }
}

/// Whether a token lives no longer than ours do and was not issued in the future: a holder
/// of the secret who mints a token for years (or copies one into a script) gets no more
/// than a minute out of it, as the services' own tokens do.
fn short_lived(claims: &Claims, leeway: u64) -> bool {
    let now = jsonwebtoken::get_current_timestamp();
    claims.iat <= now + leeway && claims.exp.saturating_sub(claims.iat) <= LIFETIME_SECS
}

fn not_inside() -> Status {
    crate::error::status(
        crate::error::Kind::Unauthenticated,
        "internal_auth_required",
        "the caller did not prove it is inside the system",
        &[],
    )
}

/// The verified caller that the interceptor put into the request.
pub fn caller<T>(request: &Request<T>) -> Result<&Caller, Status> {
    request.extensions().get::<Caller>().ok_or_else(not_inside)
}

/// A request as a handler takes it: the verified caller, and the message.
pub fn split<T>(request: Request<T>) -> Result<(Caller, T), Status> {
    let (_, mut extensions, message) = request.into_parts();
    let caller = extensions.remove::<Caller>().ok_or_else(not_inside)?;
    Ok((caller, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(c: u8) -> Vec<u8> {
        vec![c; 32]
    }

    #[test]
    fn a_signed_principal_is_believed() {
        let auth = InternalAuth::new("gateway", &[secret(1)]);
        let principal = Principal::Service { name: "x".into() };
        let caller = auth.verify(&auth.sign(Some(&principal))).unwrap();
        assert_eq!(caller.service, "gateway");
        assert_eq!(caller.principal.as_deref(), Some(&principal));
    }

    #[test]
    fn another_secret_or_a_forged_token_is_refused() {
        let ours = InternalAuth::new("keys", &[secret(1)]);
        let theirs = InternalAuth::new("keys", &[secret(2)]);
        assert!(ours.verify(&theirs.sign(None)).is_err());
        assert!(ours.verify("eyJhbGciOiJub25lIn0.eyJpc3MiOiJ4In0.").is_err());
    }

    #[test]
    fn a_token_living_longer_than_a_minute_or_issued_later_is_refused() {
        let auth = InternalAuth::new("usage", &[secret(1)]);
        let now = jsonwebtoken::get_current_timestamp();
        let token = |iat: u64, exp: u64| {
            let claims = Claims { iss: "usage".into(), aud: AUDIENCE.into(), iat, exp, prn: None };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(&secret(1)))
                .unwrap()
        };
        assert!(auth.verify(&token(now, now + LIFETIME_SECS)).is_ok());
        assert!(auth.verify(&token(now, now + 10 * 365 * 86_400)).is_err(), "ten years");
        assert!(auth.verify(&token(now + 3_600, now + 3_600 + 30)).is_err(), "issued an hour from now");
    }

    #[test]
    fn the_secret_can_rotate() {
        let old = InternalAuth::new("orgs", &[secret(1)]);
        let rotating = InternalAuth::new("orgs", &[secret(2), secret(1)]);
        assert!(rotating.verify(&old.sign(None)).is_ok());
    }
}
