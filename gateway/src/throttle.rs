//! Rate limits applied to requests: who a request counts against, the `RateLimit-*`
//! headers on every limited answer, and 429 with `Retry-After` past the limit.

use axum::{
    extract::{Request, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use keyplane_common::{internal_auth::Caller, principal::Principal, rate_limit::RateLimit};

use crate::{
    config::Limits,
    error::ApiError,
    finishing::{Finish, Middleware, MiddlewareLayer},
    limiter::Decision,
    state::AppState,
};

/// The bucket and rate a principal's requests count against: a key's own limit or the
/// default for keys, a session's user, nothing for the platform's services.
pub fn for_principal(state: &AppState, principal: &Principal) -> Option<Decision> {
    let (bucket, rate) = match principal {
        Principal::ApiKey(key) => (format!("key:{}", key.key_id), key.rate_limit.unwrap_or(state.limits.key)),
        Principal::McpToken(token) => (format!("key:{}", token.token_id), state.limits.key),
        Principal::User(user) => (format!("user:{}", user.user_id), state.limits.session),
        Principal::Service { .. } => return None,
    };
    Some(state.limiter.check(bucket, rate))
}

/// Runs the request if the decision allows it (once per Idempotency-Key of `who`, when
/// given), and stamps the answer either way.
pub async fn within(
    state: &AppState,
    decision: Option<Decision>,
    who: Option<crate::idempotency::Who<'_>>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = match (decision, who) {
        (Some(decision), _) if !decision.allowed => refused(decision),
        (_, Some(who)) => crate::idempotency::once(state, who, request, next).await,
        (_, None) => next.run(request).await,
    };
    if let Some(decision) = decision {
        stamp(&mut response, decision);
    }
    response
}

fn refused(decision: Decision) -> Response {
    let mut response = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!("too many requests: retry in {} s", decision.reset),
    )
    .into_response();
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(decision.reset));
    response
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn stamp(response: &mut Response, decision: Decision) {
    let headers = response.headers_mut();
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(RATELIMIT_RESET, HeaderValue::from(decision.reset));
}

/// Signup, login, refresh and verify-email: one budget per address, against guessing; an
/// Idempotency-Key is taken from that address (a `from_fn`: a replay buffers the answer).
pub async fn sign_in(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let ip = request.extensions().get::<Caller>().map(|c| c.client_ip.clone()).unwrap_or_default();
    let decision = state.limiter.check(format!("sign_in:{ip}"), state.limits.sign_in);
    let who = crate::idempotency::Who::Address(&ip);
    within(&state, Some(decision), Some(who), request, next).await
}

/// A budget per source address for routes whose answers are never replayed: a
/// [`Middleware`] with one unboxed future (`POST /keys/verify` is the hottest route there
/// is; a `from_fn` boxes twice).
#[derive(Clone)]
pub struct PerAddress {
    state: AppState,
    group: &'static str,
    rate: fn(&Limits) -> RateLimit,
}

impl PerAddress {
    /// `POST /keys/verify` and the signed advisor routes: per address, so verify is no
    /// oracle for guessing keys. A verdict is never replayed: the key may be revoked since.
    pub fn verify(state: AppState) -> MiddlewareLayer<Self> {
        MiddlewareLayer(Self { state, group: "verify", rate: |limits| limits.verify })
    }

    /// GitHub's secret-scanning alerts: never replayed (each alert is acted on afresh;
    /// acting twice changes nothing).
    pub fn secret_scanning(state: AppState) -> MiddlewareLayer<Self> {
        MiddlewareLayer(Self { state, group: "secret_scanning", rate: |limits| limits.secret_scanning })
    }
}

impl Middleware for PerAddress {
    type Finish = Stamp;

    fn start(&self, request: &mut Request) -> (Stamp, Option<Response>) {
        let ip = request.extensions().get::<Caller>().map_or("", |c| c.client_ip.as_str());
        let decision = self.state.limiter.check(format!("{}:{ip}", self.group), (self.rate)(&self.state.limits));
        (Stamp(decision), (!decision.allowed).then(|| refused(decision)))
    }
}

/// The `RateLimit-*` headers of a decision, on the answer.
pub struct Stamp(Decision);

impl Finish for Stamp {
    fn finish(self, mut response: Response) -> Response {
        stamp(&mut response, self.0);
        response
    }
}
