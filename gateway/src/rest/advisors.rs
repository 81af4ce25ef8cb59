//! Advisors: registered by an org's admin, consulted by its members, answering with
//! requests signed by their declared Ed25519 keys (RFC 9421). Signed requests are passed
//! to the advisors service as they arrived, which verifies them.

use axum::{
    Json,
    extract::{Path, Request, State},
    http::{StatusCode, header},
};
use base64::Engine;
use chrono::{DateTime, Utc};
use keyplane_proto::{
    advisors::v1 as pb,
    types::v1::{HttpHeader, HttpRequest},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{
    PageQuery,
    dto::{Paged, at},
};
use crate::{
    error::ApiError,
    extract::Calling,
    extract::{ApiJson, ApiQuery},
    state::AppState,
};

#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
pub struct Consultation {
    id: String,
    advisor_id: String,
    org_id: String,
    question: String,
    #[schema(value_type = Object)]
    context: serde_json::Value,
    status: String,
    created_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response: Option<SignedResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery: Option<Delivery>,
}

/// The answer with what it was signed with: anyone can verify it again.
#[derive(Serialize, ToSchema)]
struct SignedResponse {
    answer: String,
    answered_at: Option<DateTime<Utc>>,
    key_id: String,
    signature_input: String,
    signature: String,
    content_digest: String,
    signed_request: Option<SignedRequest>,
}

#[derive(Serialize, ToSchema)]
struct SignedRequest {
    method: String,
    scheme: String,
    authority: String,
    path: String,
    query: String,
    /// `[name, value]` pairs, in order.
    #[schema(value_type = Vec<Vec<String>>)]
    headers: Vec<(String, String)>,
    /// The body, base64.
    body: String,
}

#[derive(Serialize, ToSchema)]
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
#[derive(Serialize, ToSchema)]
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

#[derive(Serialize, ToSchema)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

/// The body of a payload-key declaration, read by the advisors service once the signature
/// over it holds.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct PayloadKeyDeclaration {
    /// The key's id (`kid`), unique within the advisor.
    key_id: String,
    /// The raw 32-byte Ed25519 public key, base64url without padding (as JWK `x`).
    public_key: String,
}

/// The body of an advisor's signed answer.
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct AdvisorAnswer {
    answer: String,
}

#[derive(Deserialize, ToSchema)]
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
#[utoipa::path(post, path = "/api/v1/advisors/register", operation_id = "registerAdvisor", tag = "advisors",
    request_body = RegisterBody,
    security(("session" = [])),
    responses(
        (status = 201, description = "The advisor", body = Advisor),
        (status = 400, description = "No name, or an endpoint that is not a public https URL"),
        (status = 401, description = "No session"),
        (status = 403, description = "Not an admin of the org"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn register(
    State(state): State<AppState>,
    Calling(caller): Calling,
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

#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// The org whose advisors to list.
    org_id: String,
    /// 1 to 100; 50 when omitted.
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /api/v1/advisors?org_id`.
#[utoipa::path(get, path = "/api/v1/advisors", operation_id = "listAdvisors", tag = "advisors",
    params(ListQuery),
    security(("session" = [])),
    responses(
        (status = 200, description = "The org's advisors", body = Paged<Advisor>),
        (status = 401, description = "No session"),
        (status = 404, description = "Not an org of the caller's"),
    ))]
pub async fn list(
    State(state): State<AppState>,
    Calling(caller): Calling,
    ApiQuery(query): ApiQuery<ListQuery>,
) -> Result<Json<Paged<Advisor>>, ApiError> {
    let page = PageQuery { limit: query.limit, cursor: query.cursor }.request()?;
    let listed = state
        .upstream
        .list_advisors(&caller, pb::ListAdvisorsRequest { org_id: query.org_id, page: Some(page) })
        .await?;
    Ok(Json(Paged::new(listed.advisors.into_iter().map(Advisor::from).collect(), listed.page)))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsultBody {
    advisor_id: String,
    question: String,
    /// Anything JSON the advisor should know.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    context: Option<serde_json::Value>,
}

/// `POST /api/v1/advisors/consult`: 202, pending until the advisor answers.
#[utoipa::path(post, path = "/api/v1/advisors/consult", operation_id = "consultAdvisor", tag = "advisors",
    request_body = ConsultBody,
    security(("session" = [])),
    responses(
        (status = 202, description = "The consultation, pending until the advisor answers", body = Consultation),
        (status = 400, description = "No question"),
        (status = 401, description = "No session"),
        (status = 404, description = "Not an advisor of an org of the caller's"),
    ))]
pub async fn consult(
    State(state): State<AppState>,
    Calling(caller): Calling,
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
#[utoipa::path(get, path = "/api/v1/advisors/consultations/{id}", operation_id = "getConsultation", tag = "advisors",
    params(("id" = String, Path, description = "The consultation's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The consultation, with its signed `response` once answered", body = Consultation),
        (status = 401, description = "No session"),
        (status = 404, description = "Not a consultation of an org of the caller's"),
    ))]
pub async fn consultation(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(id): Path<String>,
) -> Result<Json<Consultation>, ApiError> {
    let found = state.upstream.get_consultation(&caller, pb::GetConsultationRequest { consultation_id: id }).await?;
    Ok(Json(found.into()))
}

/// `POST /api/v1/advisors/{id}/payload-key`: the admin's session, and the request signed
/// by the key it declares.
#[utoipa::path(post, path = "/api/v1/advisors/{id}/payload-key", operation_id = "declareAdvisorPayloadKey", tag = "advisors",
    description = "Takes an admin's session **and** an RFC 9421 signature by the very key declared, over `@method`, `@path` and `content-digest`, `created` within 300 s. The body is `{key_id, public_key}`, the raw 32-byte Ed25519 key base64url without padding.",
    params(("id" = String, Path, description = "The advisor's id")),
    request_body = PayloadKeyDeclaration,
    security(("session" = [], "http_signature" = [])),
    responses(
        (status = 201, description = "The declared key", body = Jwk),
        (status = 400, description = "A bad key id or public key"),
        (status = 401, description = "No session, or a bad or missing signature (`invalid_signature`)"),
        (status = 403, description = "Not an admin of the advisor's org"),
        (status = 404, description = "Not an advisor of an org of the caller's"),
        (status = 409, description = "The key id is taken"),
    ))]
pub async fn declare_key(
    State(state): State<AppState>,
    Calling(caller): Calling,
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
#[utoipa::path(delete, path = "/api/v1/advisors/{id}/payload-keys/{key_id}", operation_id = "retireAdvisorPayloadKey", tag = "advisors",
    params(("id" = String, Path, description = "The advisor's id"), ("key_id" = String, Path, description = "The payload key's id")),
    security(("session" = [])),
    responses(
        (status = 200, description = "The key, retired: still listed, no longer counted", body = Jwk),
        (status = 401, description = "No session"),
        (status = 403, description = "Not an admin of the advisor's org"),
        (status = 404, description = "No such advisor or key in an org of the caller's"),
    ))]
pub async fn retire_key(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path((advisor_id, key_id)): Path<(String, String)>,
) -> Result<Json<Jwk>, ApiError> {
    let retired =
        state.upstream.retire_payload_key(&caller, pb::RetirePayloadKeyRequest { advisor_id, key_id }).await?;
    Ok(Json(retired.into()))
}

/// `GET /api/v1/advisors/{id}/payload-keys`: for anyone (federation).
#[utoipa::path(get, path = "/api/v1/advisors/{id}/payload-keys", operation_id = "listAdvisorPayloadKeys", tag = "advisors",
    params(("id" = String, Path, description = "The advisor's id")),
    responses(
        (status = 200, description = "The advisor's payload keys as JWKs, for anyone (federation)", body = Jwks),
        (status = 404, description = "No such advisor"),
    ))]
pub async fn keys(
    State(state): State<AppState>,
    Calling(caller): Calling,
    Path(advisor_id): Path<String>,
) -> Result<Json<Jwks>, ApiError> {
    let listed = state.upstream.list_payload_keys(&caller, pb::ListPayloadKeysRequest { advisor_id }).await?;
    Ok(Json(Jwks { keys: listed.keys.into_iter().map(Jwk::from).collect() }))
}

/// `GET /api/v1/advisors/delivery-keys`: the keys that sign deliveries to advisors.
#[utoipa::path(get, path = "/api/v1/advisors/delivery-keys", operation_id = "listAdvisorDeliveryKeys", tag = "advisors",
    responses(
        (status = 200, description = "The keys that sign the platform's deliveries to advisors", body = Jwks),
    ))]
pub async fn delivery_keys(State(state): State<AppState>, Calling(caller): Calling) -> Result<Json<Jwks>, ApiError> {
    let listed = state.upstream.list_delivery_keys(&caller, pb::ListDeliveryKeysRequest {}).await?;
    Ok(Json(Jwks { keys: listed.keys.into_iter().map(Jwk::from).collect() }))
}

/// `POST /api/v1/advisors/{id}/consultations/{cid}/response`: signed by the advisor's key.
#[utoipa::path(post, path = "/api/v1/advisors/{id}/consultations/{consultation_id}/response", operation_id = "respondToConsultation", tag = "advisors",
    description = "Signed (RFC 9421) by a declared payload key of that advisor; the stored response keeps its signature so anyone can verify it again.",
    params(("id" = String, Path, description = "The advisor's id"), ("consultation_id" = String, Path, description = "The consultation's id")),
    request_body = AdvisorAnswer,
    security(("http_signature" = [])),
    responses(
        (status = 200, description = "The consultation, answered", body = Consultation),
        (status = 401, description = "A bad or missing signature (`invalid_signature`)"),
        (status = 404, description = "No such consultation of that advisor"),
        (status = 409, description = "Already answered"),
    ))]
pub async fn respond(
    State(state): State<AppState>,
    Calling(caller): Calling,
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
    let body = crate::extract::whole_body(body).await?;
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
