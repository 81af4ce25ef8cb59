//! Advisors: registered by an org's admin, consulted by its members, answering with
//! requests signed by their declared Ed25519 keys (RFC 9421). Signed requests are passed
//! to the advisors service as they arrived, which verifies them.

use axum::{
    Extension, Json,
    body::Bytes,
    extract::{Path, Request, State},
    http::{StatusCode, header},
};
use base64::Engine;
use chrono::{DateTime, Utc};
use keyplane_common::internal_auth::Caller;
use keyplane_proto::{
    advisors::v1 as pb,
    types::v1::{HttpHeader, HttpRequest},
};
use serde::{Deserialize, Serialize};

use super::{
    PageQuery,
    dto::{Paged, at},
};
use crate::{
    MAX_BODY_BYTES,
    error::ApiError,
    extract::{ApiJson, ApiQuery},
    state::AppState,
};

#[derive(Serialize)]
pub struct Advisor {
    id: String,
    org_id: String,
    name: String,
    description: String,
    endpoint_url: Option<String>,
    status: String,
    created_at: Option<DateTime<Utc>>,
}

impl From<pb::Advisor> for Advisor {
    fn from(a: pb::Advisor) -> Self {
        Self {
            created_at: at(a.created_at.as_ref()),
            endpoint_url: Some(a.endpoint_url).filter(|u| !u.is_empty()),
            id: a.id,
            org_id: a.org_id,
            name: a.name,
            description: a.description,
            status: a.status,
        }
    }
}

#[derive(Serialize)]
pub struct Consultation {
    id: String,
    advisor_id: String,
    org_id: String,
    question: String,
    context: serde_json::Value,
    status: String,
    created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<SignedResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<Delivery>,
}

/// The answer with what it was signed with: anyone can verify it again.
#[derive(Serialize)]
struct SignedResponse {
    answer: String,
    answered_at: Option<DateTime<Utc>>,
    key_id: String,
    signature_input: String,
    signature: String,
    content_digest: String,
    signed_request: Option<SignedRequest>,
}

#[derive(Serialize)]
struct SignedRequest {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    /// The body, base64.
    body: String,
}

#[derive(Serialize)]
struct Delivery {
    status: String,
    attempts: u32,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

impl From<pb::Consultation> for Consultation {
    fn from(c: pb::Consultation) -> Self {
        Self {
            context: serde_json::from_str(&c.context_json).unwrap_or_default(),
            created_at: at(c.created_at.as_ref()),
            response: c.response.map(|r| SignedResponse {
                answered_at: at(r.answered_at.as_ref()),
                signed_request: r.signed_request.map(|m| SignedRequest {
                    method: m.method,
                    scheme: m.scheme,
                    authority: m.authority,
                    path: m.path,
                    query: m.query,
                    headers: m.headers.into_iter().map(|h| (h.name, h.value)).collect(),
                    body: base64::engine::general_purpose::STANDARD.encode(m.body),
                }),
                answer: r.answer,
                key_id: r.key_id,
                signature_input: r.signature_input,
                signature: r.signature,
                content_digest: r.content_digest,
            }),
            delivery: c.delivery.map(|d| Delivery {
                delivered_at: at(d.delivered_at.as_ref()),
                last_error: Some(d.last_error).filter(|e| !e.is_empty()),
                status: d.status,
                attempts: d.attempts,
            }),
            id: c.id,
            advisor_id: c.advisor_id,
            org_id: c.org_id,
            question: c.question,
            status: c.status,
        }
    }
}

/// A JWK of an Ed25519 public key, with when it was declared and whether it still counts.
#[derive(Serialize)]
pub struct Jwk {
    kty: String,
    crv: String,
    kid: String,
    x: String,
    declared_at: Option<DateTime<Utc>>,
    status: String,
}

impl From<pb::PayloadKey> for Jwk {
    fn from(k: pb::PayloadKey) -> Self {
        Self { declared_at: at(k.declared_at.as_ref()), kty: k.kty, crv: k.crv, kid: k.kid, x: k.x, status: k.status }
    }
}

#[derive(Serialize)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterBody {
    org_id: String,
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    endpoint_url: String,
}

/// `POST /api/v1/advisors/register`.
pub async fn register(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<RegisterBody>,
) -> Result<(StatusCode, Json<Advisor>), ApiError> {
    let request = pb::RegisterAdvisorRequest {
        org_id: body.org_id,
        name: body.name,
        description: body.description,
        endpoint_url: body.endpoint_url,
    };
    Ok((StatusCode::CREATED, Json(state.upstream.register_advisor(&caller, request).await?.into())))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    org_id: String,
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/advisors?org_id`.
pub async fn list(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Advisor>>, ApiError> {
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.request()?;
    let listed = state
        .upstream
        .list_advisors(&caller, pb::ListAdvisorsRequest { org_id: query.org_id, page: Some(page) })
        .await?;
    Ok(Json(Paged::new(listed.advisors.into_iter().map(Advisor::from).collect(), listed.page)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsultBody {
    advisor_id: String,
    question: String,
    #[serde(default)]
    context: Option<serde_json::Value>,
}

/// `POST /api/v1/advisors/consult`: 202, pending until the advisor answers.
pub async fn consult(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ConsultBody>,
) -> Result<(StatusCode, Json<Consultation>), ApiError> {
    let request = pb::ConsultRequest {
        advisor_id: body.advisor_id,
        question: body.question,
        context_json: body.context.map(|c| c.to_string()).unwrap_or_default(),
    };
    Ok((StatusCode::ACCEPTED, Json(state.upstream.consult(&caller, request).await?.into())))
}

/// `GET /api/v1/advisors/consultations/{id}`.
pub async fn consultation(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<Consultation>, ApiError> {
    let found = state.upstream.get_consultation(&caller, pb::GetConsultationRequest { consultation_id: id }).await?;
    Ok(Json(found.into()))
}

/// `POST /api/v1/advisors/{id}/payload-key`: the admin's session, and the request signed
/// by the key it declares.
pub async fn declare_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(advisor_id): Path<String>,
    request: Request,
) -> Result<(StatusCode, Json<Jwk>), ApiError> {
    let signed_request = Some(as_signed(&state, request).await?);
    let declared = state
        .upstream
        .declare_payload_key(&caller, pb::DeclarePayloadKeyRequest { advisor_id, signed_request })
        .await?;
    Ok((StatusCode::CREATED, Json(declared.into())))
}

/// `DELETE /api/v1/advisors/{id}/payload-keys/{kid}`: retired, still listed.
pub async fn retire_key(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((advisor_id, key_id)): Path<(String, String)>,
) -> Result<Json<Jwk>, ApiError> {
    let retired =
        state.upstream.retire_payload_key(&caller, pb::RetirePayloadKeyRequest { advisor_id, key_id }).await?;
    Ok(Json(retired.into()))
}

/// `GET /api/v1/advisors/{id}/payload-keys`: for anyone (federation).
pub async fn keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(advisor_id): Path<String>,
) -> Result<Json<Jwks>, ApiError> {
    let listed = state.upstream.list_payload_keys(&caller, pb::ListPayloadKeysRequest { advisor_id }).await?;
    Ok(Json(Jwks { keys: listed.keys.into_iter().map(Jwk::from).collect() }))
}

/// `GET /api/v1/advisors/delivery-keys`: the keys that sign deliveries to advisors.
pub async fn delivery_keys(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<Jwks>, ApiError> {
    let listed = state.upstream.list_delivery_keys(&caller, pb::ListDeliveryKeysRequest {}).await?;
    Ok(Json(Jwks { keys: listed.keys.into_iter().map(Jwk::from).collect() }))
}

/// `POST /api/v1/advisors/{id}/consultations/{cid}/response`: signed by the advisor's key.
pub async fn respond(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path((advisor_id, consultation_id)): Path<(String, String)>,
    request: Request,
) -> Result<Json<Consultation>, ApiError> {
    let signed_request = Some(as_signed(&state, request).await?);
    let request = pb::RespondToConsultationRequest { advisor_id, consultation_id, signed_request };
    Ok(Json(state.upstream.respond_to_consultation(&caller, request).await?.into()))
}

/// The request as it arrived, for its signature to be checked: every header but the
/// bearer and cookies (which no signature here covers, and which are not to be passed on).
async fn as_signed(state: &AppState, request: Request) -> Result<HttpRequest, ApiError> {
    let (parts, body) = request.into_parts();
    let body: Bytes = axum::body::to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", "the request body is over 1 MiB")
    })?;
    let authority = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_owned)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()))
        .unwrap_or_default();
    let headers = parts
        .headers
        .iter()
        .filter(|(name, _)| *name != header::AUTHORIZATION && *name != header::COOKIE)
        .filter_map(|(name, value)| {
            Some(HttpHeader { name: name.as_str().to_owned(), value: value.to_str().ok()?.to_owned() })
        })
        .collect();
    Ok(HttpRequest {
        method: parts.method.as_str().to_owned(),
        scheme: state.trusted_proxies.scheme(&parts.headers).to_owned(),
        authority,
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().unwrap_or_default().to_owned(),
        headers,
        body: body.to_vec(),
    })
}
