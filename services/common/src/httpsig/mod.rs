//! RFC 9421 HTTP Message Signatures with Ed25519, and RFC 9530 `Content-Digest`.
//!
//! Built by hand on `sfv` (structured fields) and `ed25519-dalek`: the RFC 9421 crates
//! are pre-1.0 (`httpsig` 0.0.x, `web-bot-auth` 0.0.x) and each brings a crypto stack of
//! its own, while the signature base is a short, exactly specified construction (§2.5),
//! checked here against the RFC's own Ed25519 vector.
//!
//! What this verifier accepts: derived components `@method`, `@target-uri`, `@authority`,
//! `@scheme`, `@request-target`, `@path` and `@query`, and header fields by name (no
//! component parameters: `;sf`, `;key`, `;bs`, `;req`, `;tr` are refused as unsupported);
//! `created` required and within the policy's age; `expires` honoured; `alg`, if given,
//! `ed25519`; `keyid` required and resolved by the caller. A `nonce` is handed back for
//! the caller to refuse on replay (it is state, kept where the caller keeps state).

mod base;
pub mod digest;

use std::time::Duration;

use base64::Engine;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sfv::{BareItem, Dictionary, FieldType, InnerList, Item, ListEntry, Parameters, Parser};

pub use base::signature_base;

/// An HTTP request as it was signed: everything the signature base is built from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Message {
    pub method: String,
    /// `https` unless the request says otherwise.
    pub scheme: String,
    /// Host and port, as the `Host` header gave it.
    pub authority: String,
    pub path: String,
    /// Without the `?`; empty for none.
    pub query: String,
    /// Header fields in order; names in any case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Message {
    pub fn from_proto(r: &keyplane_proto::types::v1::HttpRequest) -> Self {
        Self {
            method: r.method.clone(),
            scheme: r.scheme.clone(),
            authority: r.authority.clone(),
            path: r.path.clone(),
            query: r.query.clone(),
            headers: r.headers.iter().map(|h| (h.name.clone(), h.value.clone())).collect(),
            body: r.body.clone(),
        }
    }

    pub fn to_proto(&self) -> keyplane_proto::types::v1::HttpRequest {
        keyplane_proto::types::v1::HttpRequest {
            method: self.method.clone(),
            scheme: self.scheme.clone(),
            authority: self.authority.clone(),
            path: self.path.clone(),
            query: self.query.clone(),
            headers: self
                .headers
                .iter()
                .map(|(name, value)| keyplane_proto::types::v1::HttpHeader { name: name.clone(), value: value.clone() })
                .collect(),
            body: self.body.clone(),
        }
    }

    /// Only the parts a signature vouches for: the covered headers, the signature's own,
    /// and `Content-Digest`; what someone re-verifying later needs, and nothing else.
    pub fn keep_covered(&self, covered: &[String]) -> Self {
        let kept = |name: &str| {
            let name = name.to_ascii_lowercase();
            ["signature", "signature-input", "content-digest"].contains(&name.as_str()) || covered.contains(&name)
        };
        Self { headers: self.headers.iter().filter(|(n, _)| kept(n)).cloned().collect(), ..self.clone() }
    }

    /// Every value of header `name`, in order.
    pub fn header_values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers.iter().filter(move |(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// Why a signature was refused: each says which part failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the request has no {0} header")]
    MissingHeader(&'static str),
    #[error("{0}")]
    Malformed(String),
    #[error("the signature does not cover {0}")]
    NotCovered(String),
    #[error("the covered component {0} is not supported here")]
    Unsupported(String),
    #[error("the covered header {0} is not in the request")]
    AbsentComponent(String),
    #[error("the signature has no created time")]
    NoCreated,
    #[error("the signature was created {0} s from now; at most {1} s is accepted")]
    Stale(i64, u64),
    #[error("the signature expired")]
    Expired,
    #[error("the signature's alg {0:?} is not ed25519")]
    Algorithm(String),
    #[error("the signature has no keyid")]
    NoKeyId,
    #[error("no declared key has keyid {0:?}")]
    UnknownKey(String),
    #[error("the signature was used before (a replay)")]
    ReplayedNonce,
    /// The request is not one a signature can be checked on: too many labels or
    /// components, a component twice, or a body its signature does not cover.
    #[error("{0}")]
    Input(String),
    #[error("Content-Digest {0} does not match the body")]
    DigestMismatch(String),
    #[error("the signature does not verify with key {0:?}")]
    BadSignature(String),
}

/// What a verifier asks of a signature.
pub struct Policy<'a> {
    /// Components that must be covered (`@method`, `content-digest`, …).
    pub required: &'a [&'a str],
    /// How far `created` may be from now, either way.
    pub max_age: Duration,
    /// Unix seconds.
    pub now: i64,
}

/// A signature that verified.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub label: String,
    pub keyid: String,
    pub created: i64,
    pub nonce: Option<String>,
    pub covered: Vec<String>,
    /// The signature itself, hex SHA-256: what a replay without a nonce repeats.
    pub fingerprint: String,
}

/// One signature of a message, parsed.
struct Signed {
    label: String,
    covered: Vec<String>,
    params: Parameters,
    /// The `@signature-params` value: the inner list as serialized.
    params_value: String,
    signature: Vec<u8>,
}

/// Bounds of what is parsed: a signature covers a few components, a request carries few
/// signatures, and the fields stay short.
const MAX_FIELD_LEN: usize = 8 * 1024;
const MAX_LABELS: usize = 8;
const MAX_COMPONENTS: usize = 32;

impl Refusal {
    /// Whether the request itself is malformed (400) rather than its signature wrong (401).
    pub fn is_bad_input(&self) -> bool {
        matches!(self, Self::Input(_))
    }
}

/// Verifies the first signature of `message` against the key `resolve` gives its keyid.
pub fn verify(
    message: &Message,
    policy: &Policy<'_>,
    resolve: impl Fn(&str) -> Option<VerifyingKey>,
) -> Result<Verified, Refusal> {
    let signed = first_signature(message)?;
    let digest_required = policy.required.contains(&"content-digest");
    if digest_required && !message.body.is_empty() && !signed.covered.iter().any(|c| c == "content-digest") {
        return Err(Refusal::Input("a request with a body must be signed over content-digest".into()));
    }
    for required in policy.required {
        if !signed.covered.iter().any(|c| c == required) {
            return Err(Refusal::NotCovered((*required).to_owned()));
        }
    }
    let integer = |name: &str| signed.params.get(name).and_then(BareItem::as_integer).map(i64::from);
    let string = |name: &str| signed.params.get(name).and_then(|v| v.as_string()).map(|s| s.as_str().to_owned());
    let created = integer("created").ok_or(Refusal::NoCreated)?;
    let max_age = policy.max_age.as_secs();
    if (policy.now - created).unsigned_abs() > max_age {
        return Err(Refusal::Stale(created - policy.now, max_age));
    }
    if integer("expires").is_some_and(|expires| expires <= policy.now) {
        return Err(Refusal::Expired);
    }
    if let Some(alg) = string("alg").filter(|a| a != "ed25519") {
        return Err(Refusal::Algorithm(alg));
    }
    let keyid = string("keyid").ok_or(Refusal::NoKeyId)?;
    let key = resolve(&keyid).ok_or_else(|| Refusal::UnknownKey(keyid.clone()))?;
    if let Some(field) = joined(message, "content-digest") {
        digest::check(&field, &message.body)?;
    }
    let base = signature_base(message, &signed.covered, &signed.params_value)?;
    let signature = Signature::from_slice(&signed.signature).map_err(|_| Refusal::BadSignature(keyid.clone()))?;
    // Strict: no small-order keys or non-canonical signatures, for which a signature can
    // be made without the private key.
    key.verify_strict(base.as_bytes(), &signature).map_err(|_| Refusal::BadSignature(keyid.clone()))?;
    let fingerprint = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&signed.signature));
    Ok(Verified { label: signed.label, keyid, created, nonce: string("nonce"), covered: signed.covered, fingerprint })
}

/// The values of a header, joined as a signature base joins them; None when absent.
fn joined(message: &Message, name: &str) -> Option<String> {
    let values: Vec<&str> = message.header_values(name).map(str::trim).collect();
    (!values.is_empty()).then(|| values.join(", "))
}

fn first_signature(message: &Message) -> Result<Signed, Refusal> {
    let input = joined(message, "signature-input").ok_or(Refusal::MissingHeader("Signature-Input"))?;
    let signatures = joined(message, "signature").ok_or(Refusal::MissingHeader("Signature"))?;
    if input.len() > MAX_FIELD_LEN || signatures.len() > MAX_FIELD_LEN {
        return Err(Refusal::Input(format!("Signature-Input and Signature must each be under {MAX_FIELD_LEN} bytes")));
    }
    let inputs: Dictionary = Parser::new(&input)
        .parse()
        .map_err(|e| Refusal::Malformed(format!("Signature-Input is not a structured dictionary: {e}")))?;
    let signatures: Dictionary = Parser::new(&signatures)
        .parse()
        .map_err(|e| Refusal::Malformed(format!("Signature is not a structured dictionary: {e}")))?;
    if inputs.len() > MAX_LABELS || signatures.len() > MAX_LABELS {
        return Err(Refusal::Input(format!("at most {MAX_LABELS} signatures are read")));
    }
    let (label, entry) = inputs.iter().next().ok_or_else(|| Refusal::Malformed("Signature-Input is empty".into()))?;
    let ListEntry::InnerList(list) = entry else {
        return Err(Refusal::Malformed(format!("Signature-Input {} is not an inner list", label.as_str())));
    };
    if list.items.len() > MAX_COMPONENTS {
        return Err(Refusal::Input(format!("a signature covers at most {MAX_COMPONENTS} components")));
    }
    let mut covered: Vec<String> = Vec::with_capacity(list.items.len());
    for item in &list.items {
        let name = item.bare_item.as_string().ok_or_else(|| {
            Refusal::Malformed(format!("Signature-Input {} lists a component that is not a string", label.as_str()))
        })?;
        if !item.params.is_empty() {
            return Err(Refusal::Unsupported(item.serialize()));
        }
        if covered.iter().any(|c| c == name.as_str()) {
            return Err(Refusal::Input(format!("the component {:?} is covered twice", name.as_str())));
        }
        covered.push(name.as_str().to_owned());
    }
    let signature = match signatures.get(label.as_str()) {
        Some(ListEntry::Item(item)) => item.bare_item.as_byte_sequence().map(<[u8]>::to_vec),
        _ => None,
    }
    .ok_or_else(|| Refusal::Malformed(format!("Signature has no byte sequence labelled {}", label.as_str())))?;
    Ok(Signed {
        label: label.as_str().to_owned(),
        covered,
        params_value: inner_list_value(list),
        params: list.params.clone(),
        signature,
    })
}

/// An inner list serialized on its own, as `@signature-params` and `Signature-Input` have it.
fn inner_list_value(list: &InnerList) -> String {
    let as_list: sfv::List = vec![ListEntry::InnerList(list.clone())];
    as_list.serialize().unwrap_or_default()
}

/// What a signer puts into `Signature-Input`.
pub struct SignatureParams<'a> {
    pub label: &'a str,
    pub covered: &'a [&'a str],
    pub created: i64,
    pub keyid: &'a str,
    pub nonce: Option<&'a str>,
}

/// Signs `message` with `key`: answers the `Signature-Input` and `Signature` field values.
/// Sign after setting every covered header (a body's `Content-Digest` included).
pub fn sign(message: &Message, params: &SignatureParams<'_>, key: &SigningKey) -> Result<(String, String), Refusal> {
    let label =
        sfv::Key::from_string(params.label.to_owned()).map_err(|(e, _)| Refusal::Malformed(format!("label: {e}")))?;
    let mut items = Vec::with_capacity(params.covered.len());
    for component in params.covered {
        let name = sfv::String::from_string((*component).to_owned())
            .map_err(|(e, _)| Refusal::Malformed(format!("component {component:?}: {e}")))?;
        items.push(Item::new(name));
    }
    let mut parameters = Parameters::new();
    let key_of = |k: &str| sfv::Key::from_string(k.to_owned()).expect("a valid key");
    let string = |v: &str| {
        sfv::String::from_string(v.to_owned()).map_err(|(e, _)| Refusal::Malformed(format!("parameter {v:?}: {e}")))
    };
    parameters.insert(key_of("created"), BareItem::Integer(sfv::Integer::constant(params.created)));
    parameters.insert(key_of("keyid"), BareItem::String(string(params.keyid)?));
    parameters.insert(key_of("alg"), BareItem::String(string("ed25519")?));
    if let Some(nonce) = params.nonce {
        parameters.insert(key_of("nonce"), BareItem::String(string(nonce)?));
    }
    let list = InnerList::with_params(items, parameters);
    let params_value = inner_list_value(&list);
    let base =
        signature_base(message, &params.covered.iter().map(|c| (*c).to_owned()).collect::<Vec<_>>(), &params_value)?;
    let signature = key.sign(base.as_bytes());
    let b64 = base64::engine::general_purpose::STANDARD.encode(signature.to_bytes());
    Ok((format!("{}={params_value}", label.as_str()), format!("{}=:{b64}:", label.as_str())))
}

#[cfg(test)]
mod tests;
