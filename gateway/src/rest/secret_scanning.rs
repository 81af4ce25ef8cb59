//! GitHub's secret-scanning partner endpoint: GitHub finds strings that look like our keys
//! in public repositories and sends them here, signed. Each that is really ours and still
//! works is stopped at once; GitHub hears which were ours.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode},
};
use keyplane_common::credential::SecretHash;
use keyplane_proto::keys::v1::{LeakedSecret, RevokeLeakedRequest};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{
    error::ApiError,
    extract::{Calling, WholeBody},
    github_keys::Refusal,
    state::AppState,
};

/// GitHub batches matches; far more than this in one alert is not GitHub.
pub const MAX_MATCHES: usize = 1000;
/// What we keep of where a secret was found.
const MAX_URL: usize = 2048;
const MAX_FIELD: usize = 128;

/// One match in GitHub's alert.
#[derive(Deserialize, ToSchema)]
pub struct Match {
    token: String,
    #[serde(rename = "type")]
    token_type: String,
    #[serde(default)]
    url: String,
    #[serde(default)]
    source: String,
}

/// GitHub's feedback format: the match by the SHA-256 of its token (never the token).
#[derive(Serialize, ToSchema)]
pub struct Feedback {
    token_hash: String,
    token_type: String,
    label: &'static str,
    /// The leaked secret's display prefix, for a true positive (as the owners see it in
    /// their key list and mail).
    #[serde(skip_serializing_if = "Option::is_none")]
    key_prefix: Option<String>,
}

fn bounded(text: &str, max: usize) -> String {
    text.chars().filter(|c| !c.is_control()).take(max).collect()
}

#[utoipa::path(post, path = "/api/v1/secret-scanning/github", operation_id = "reportLeakedSecrets", tag = "secret-scanning",
    description = "GitHub's secret-scanning partner alert. Each real, active key or MCP token found is revoked at once, audited (`api_key.leaked_revoked`) and its org's owners mailed.",
    request_body = Vec<Match>,
    security(("github_signature" = [])),
    responses(
        (status = 200, description = "Which matches were ours", body = Vec<Feedback>),
        (status = 400, description = "Not an alert, or too many matches"),
        (status = 401, description = "A bad signature"),
        (status = 429, description = "Too many alerts from this address"),
    ))]
pub async fn github(
    State(state): State<AppState>,
    Calling(caller): Calling,
    headers: HeaderMap,
    WholeBody(body): WholeBody,
) -> Result<Json<Vec<Feedback>>, ApiError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    state
        .github_keys
        .verify(header("github-public-key-identifier"), header("github-public-key-signature"), &body)
        .await
        .map_err(|refusal| match refusal {
            Refusal::Signature(why) => ApiError::unauthorized("invalid_signature", why),
            Refusal::KeySetUnavailable => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "GitHub's signing keys cannot be fetched now; try again later",
            ),
        })?;
    let matches: Vec<Match> = serde_json::from_slice(&body).map_err(|_| {
        ApiError::bad_request("invalid_body", "the body must be a JSON array of {token, type, url, source}")
    })?;
    if matches.len() > MAX_MATCHES {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!("at most {MAX_MATCHES} matches per alert"),
        ));
    }
    // Shape and checksum first: a string that is not one of ours costs no lookup.
    let hashes: Vec<SecretHash> = matches.iter().map(|m| SecretHash::of(&m.token)).collect();
    let ours: Vec<(usize, String)> = (0..matches.len())
        .filter_map(|i| {
            state.key_format.parse(&matches[i].token).ok().map(|p| (i, p.secret.display_prefix().to_owned()))
        })
        .collect();
    let mut verdicts = vec![None; matches.len()];
    if !ours.is_empty() {
        let secrets = ours
            .iter()
            .map(|(i, prefix)| LeakedSecret {
                hash: hashes[*i].as_bytes().to_vec(),
                url: bounded(&matches[*i].url, MAX_URL),
                source: bounded(&matches[*i].source, MAX_FIELD),
                reporter: "GitHub secret scanning".into(),
                prefix: prefix.clone(),
            })
            .collect();
        let as_gateway = caller.as_service("gateway");
        let answer = state.upstream.revoke_leaked(&as_gateway, RevokeLeakedRequest { secrets }).await?;
        for ((i, _), verdict) in ours.iter().zip(answer.verdicts) {
            verdicts[*i] = verdict.real.then_some(verdict.prefix);
        }
    }
    let feedback = matches
        .into_iter()
        .zip(hashes)
        .zip(verdicts)
        .map(|((m, hash), prefix)| Feedback {
            token_hash: hash.to_hex(),
            token_type: bounded(&m.token_type, MAX_FIELD),
            label: if prefix.is_some() { "true_positive" } else { "false_positive" },
            key_prefix: prefix,
        })
        .collect();
    Ok(Json(feedback))
}
