//! Health, readiness and the session-signing JWKS.

use std::time::Duration;

use axum::{
    Extension, Json,
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use keyplane_common::internal_auth::Caller;
use keyplane_proto::identity::v1::GetJwksRequest;
use serde_json::{Value, json};
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::{error::ApiError, state::AppState};

const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// `GET /health`: the gateway serves.
pub async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

/// `GET /ready`: whether *this* gateway can take traffic. It can whenever it runs and is
/// not draining: with a service down, cached keys still verify (and what needs that
/// service answers 503 by itself), so one service's outage must not pull every gateway out
/// of its load balancer. The services' and the cache's health is reported, not enforced:
/// `status` is `degraded` while any is down.
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
    let services: serde_json::Map<String, Value> =
        results.iter().map(|(name, up)| ((*name).to_owned(), json!(if *up { "ok" } else { "down" }))).collect();
    let all_up = results.iter().all(|(_, up)| *up) && cache != "down";
    // Rate limits hold across replicas while Redis answers; otherwise each limits alone.
    let rate_limits = if state.limiter.is_global() { "global" } else { "per_replica" };
    Json(json!({
        "status": if all_up { "ready" } else { "degraded" },
        "services": services,
        "cache": cache,
        "rate_limits": rate_limits,
    }))
    .into_response()
}

/// `GET /metrics`: Prometheus text.
pub async fn metrics(State(state): State<AppState>) -> Response {
    state.metrics.response()
}

/// `GET /.well-known/jwks.json`: the keys that verify self-issued session bearers.
pub async fn jwks(State(state): State<AppState>, Extension(caller): Extension<Caller>) -> Result<Response, ApiError> {
    let jwks = state.upstream.get_jwks(&caller, GetJwksRequest {}).await?;
    let keys: Vec<Value> = jwks
        .keys
        .into_iter()
        .map(|k| json!({ "kty": k.kty, "crv": k.crv, "kid": k.kid, "x": k.x, "alg": k.alg, "use": k.r#use }))
        .collect();
    let mut response = Json(json!({ "keys": keys })).into_response();
    response
        .headers_mut()
        .insert(axum::http::header::CACHE_CONTROL, axum::http::HeaderValue::from_static("public, max-age=300"));
    Ok(response)
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailboxQuery {
    to: String,
}

/// `GET /dev/mailbox?to=`: what the development mailer "sent" to an address, newest first.
pub async fn dev_mailbox(
    State(state): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::extract::ApiQuery(query): crate::extract::ApiQuery<MailboxQuery>,
) -> Result<super::NoStore<Json<Value>>, ApiError> {
    let listed = state
        .upstream
        .list_dev_mailbox(&caller, keyplane_proto::identity::v1::ListDevMailboxRequest { to: query.to })
        .await?;
    let mails: Vec<Value> = listed
        .mails
        .into_iter()
        .filter_map(|m| {
            let sent_at = m.sent_at.as_ref().and_then(keyplane_common::time::from_proto);
            let mail = m.mail?;
            Some(json!({
                "to": mail.to,
                "subject": mail.subject,
                "body": mail.body,
                "kind": mail.kind,
                "token": Some(mail.token).filter(|t| !t.is_empty()),
                "invitation_id": Some(mail.invitation_id).filter(|i| !i.is_empty()),
                "sent_at": sent_at,
            }))
        })
        .collect();
    Ok(super::NoStore(Json(Value::Array(mails))))
}
