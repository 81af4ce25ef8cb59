//! Health, readiness and the session-signing JWKS.

use std::time::Duration;

use axum::{
    Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use keyplane_proto::identity::v1::GetJwksRequest;
use serde::Serialize;
use std::collections::BTreeMap;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use utoipa::{IntoParams, ToSchema};

use crate::{error::ApiError, extract::Calling, state::AppState};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// `ok` while the gateway serves.
    status: &'static str,
}

/// `GET /health`: the gateway serves.
#[utoipa::path(get, path = "/health", operation_id = "getHealth", tag = "platform",
    responses((status = 200, description = "The gateway serves", body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health { status: "ok" })
}

#[derive(Serialize, ToSchema)]
pub struct Readiness {
    /// `ready`, or `degraded` while a service or the cache is down.
    status: &'static str,
    /// Each backing service: `ok` or `down`.
    services: BTreeMap<&'static str, &'static str>,
    /// `ok`, `down`, or `in-process` when no Redis is configured.
    cache: &'static str,
    /// `global` while Redis holds the limits across replicas, else `per_replica`.
    rate_limits: &'static str,
}

/// `GET /ready`: whether *this* gateway can take traffic. It can whenever it runs and is
/// not draining: with a service down, cached keys still verify (and what needs that
/// service answers 503 by itself), so one service's outage must not pull every gateway out
/// of its load balancer. The services' and the cache's health is reported, not enforced:
/// `status` is `degraded` while any is down.
#[utoipa::path(get, path = "/ready", operation_id = "getReady", tag = "platform",
    responses(
        (status = 200, description = "This gateway takes traffic; what it depends on, and whether each answers", body = Readiness),
        (status = 503, description = "The gateway is draining (`draining`)"),
    ))]
pub async fn ready(State(state): State<AppState>) -> Response {
    if state.draining.is_cancelled() {
        let mut response =
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "draining", "the gateway is shutting down").into_response();
        response.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(1));
        return response;
    }
    let checks = state.upstream.channels.iter().map(|(target, channel)| {
        let mut client = HealthClient::new(channel.clone());
        async move {
            let answer =
                tokio::time::timeout(PROBE_TIMEOUT, client.check(HealthCheckRequest { service: String::new() })).await;
            let serving = matches!(answer, Ok(Ok(r)) if r.get_ref().status() == ServingStatus::Serving);
            (target.name(), serving)
        }
    });
    let results = futures_util::future::join_all(checks).await;
    let cache = if !state.cache.is_redis() {
        "in-process"
    } else if tokio::time::timeout(PROBE_TIMEOUT, state.cache.ping()).await.is_ok_and(|r| r.is_ok()) {
        "ok"
    } else {
        "down"
    };
    let services = results.iter().map(|(name, up)| (*name, if *up { "ok" } else { "down" })).collect();
    let all_up = results.iter().all(|(_, up)| *up) && cache != "down";
    // Rate limits hold across replicas while Redis answers; otherwise each limits alone.
    let rate_limits = if state.limiter.is_global() { "global" } else { "per_replica" };
    Json(Readiness { status: if all_up { "ready" } else { "degraded" }, services, cache, rate_limits }).into_response()
}

/// `GET /metrics`: Prometheus text.
#[utoipa::path(get, path = "/metrics", operation_id = "getMetrics", tag = "platform",
    description = "Served on the public port only by `keyplane up`; a deployment scrapes each process's metrics port.",
    responses((status = 200, description = "Prometheus text exposition", body = String, content_type = "text/plain")))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.response()
}

/// A public key that verifies session bearers (RFC 7517).
#[derive(Serialize, ToSchema)]
pub struct SessionJwk {
    kty: String,
    crv: String,
    kid: String,
    x: String,
    alg: String,
    #[serde(rename = "use")]
    key_use: String,
}

#[derive(Serialize, ToSchema)]
pub struct SessionJwks {
    keys: Vec<SessionJwk>,
}

/// `GET /.well-known/jwks.json`: the keys that verify self-issued session bearers.
#[utoipa::path(get, path = "/.well-known/jwks.json", operation_id = "getJwks", tag = "platform",
    responses((status = 200, description = "The keys that verify self-issued session bearers", body = SessionJwks)))]
pub async fn jwks(State(state): State<AppState>, Calling(caller): Calling) -> Result<Response, ApiError> {
    let jwks = state.upstream.get_jwks(&caller, GetJwksRequest {}).await?;
    let keys = jwks
        .keys
        .into_iter()
        .map(|k| SessionJwk { kty: k.kty, crv: k.crv, kid: k.kid, x: k.x, alg: k.alg, key_use: k.r#use })
        .collect();
    let mut response = Json(SessionJwks { keys }).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

#[derive(serde::Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct MailboxQuery {
    /// The address.
    to: String,
}

/// A mail the development mailer kept instead of sending.
#[derive(Serialize, ToSchema)]
pub struct Mail {
    to: String,
    subject: String,
    body: String,
    /// `verify_email`, `invitation`, or a notice such as `leaked_key`.
    kind: String,
    /// The verification token a `verify_email` mail carries.
    token: Option<String>,
    /// The invitation an `invitation` mail is about.
    invitation_id: Option<String>,
    sent_at: Option<DateTime<Utc>>,
}

/// `GET /dev/mailbox?to=`: what the development mailer "sent" to an address, newest first.
#[utoipa::path(get, path = "/dev/mailbox", operation_id = "listDevMailbox", tag = "platform",
    description = "Served only when `KEYPLANE_DEV_MAILBOX` is on (the default in `keyplane up`, never in `serve`).",
    params(MailboxQuery),
    responses((status = 200, description = "What the mailer sent to that address, newest first", body = Vec<Mail>)))]
pub async fn dev_mailbox(
    State(state): State<AppState>,
    Calling(caller): Calling,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<MailboxQuery>,
) -> Result<super::NoStore<Json<Vec<Mail>>>, ApiError> {
    let listed = state
        .upstream
        .list_dev_mailbox(&caller, keyplane_proto::identity::v1::ListDevMailboxRequest { to: query.to })
        .await?;
    let mails = listed
        .mails
        .into_iter()
        .filter_map(|m| {
            let sent_at = m.sent_at.as_ref().and_then(keyplane_common::time::from_proto);
            let mail = m.mail?;
            Some(Mail {
                to: mail.to,
                subject: mail.subject,
                body: mail.body,
                kind: mail.kind,
                token: Some(mail.token).filter(|t| !t.is_empty()),
                invitation_id: Some(mail.invitation_id).filter(|i| !i.is_empty()),
                sent_at,
            })
        })
        .collect();
    Ok(super::NoStore(Json(mails)))
}
