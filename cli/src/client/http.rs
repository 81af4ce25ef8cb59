//! The gateway's REST API as the CLI calls it: the session's bearer on every call, one
//! refresh when the gateway refuses it, and the API's error body as the error.

use std::{fmt, time::Duration};

use anyhow::{Context, Result, anyhow};
use reqwest::{Method, StatusCode, Url, header::HeaderMap};
use serde_json::{Value, json};

use super::session::{Session, SessionFile};

/// A non-2xx answer, as the contract's error body says it.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code.as_str() {
            "" => write!(f, "{} (HTTP {})", self.message, self.status),
            code => write!(f, "{} ({code}, HTTP {})", self.message, self.status),
        }
    }
}

impl std::error::Error for ApiError {}

/// Whether `error` is the gateway saying the credential is not good (any more).
pub fn is_unauthorized(error: &anyhow::Error) -> bool {
    error.downcast_ref::<ApiError>().is_some_and(|e| e.status == StatusCode::UNAUTHORIZED.as_u16())
}

/// One call: built again for a retry, which a sent reqwest request cannot be.
pub struct Request {
    method: Method,
    path: String,
    query: Vec<(&'static str, String)>,
    body: Option<Value>,
}

impl Request {
    pub fn get(path: impl Into<String>) -> Self {
        Self { method: Method::GET, path: path.into(), query: Vec::new(), body: None }
    }

    pub fn post(path: impl Into<String>, body: Value) -> Self {
        Self { method: Method::POST, path: path.into(), query: Vec::new(), body: Some(body) }
    }

    pub fn delete(path: impl Into<String>) -> Self {
        Self { method: Method::DELETE, path: path.into(), query: Vec::new(), body: None }
    }

    pub fn query(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.query.push((name, value.into()));
        self
    }
}

pub struct Reply {
    pub body: Value,
    headers: HeaderMap,
}

impl Reply {
    /// A string field of the body, which the contract promises.
    pub fn str(&self, field: &str) -> Result<String> {
        self.body[field].as_str().map(str::to_owned).ok_or_else(|| anyhow!("the gateway's answer has no {field}"))
    }

    /// The next page of a plain-array list, from its `Link: <…>; rel="next"` header.
    pub fn next_page(&self) -> Option<String> {
        let link = self.headers.get(reqwest::header::LINK)?.to_str().ok()?;
        link.split(',').find(|part| part.contains("rel=\"next\"")).and_then(|part| {
            let start = part.find('<')? + 1;
            let end = part.find('>')?;
            Some(part[start..end].to_owned())
        })
    }
}

/// The gateway at one URL, with no credential of its own.
#[derive(Clone)]
pub struct Gateway {
    http: reqwest::Client,
    base: Url,
}

impl Gateway {
    pub fn new(url: &str) -> Result<Self> {
        let base = Url::parse(url).with_context(|| format!("{url:?} is not a URL"))?;
        anyhow::ensure!(matches!(base.scheme(), "http" | "https"), "{url:?} is not an http:// or https:// URL");
        let http = reqwest::Client::builder()
            .user_agent(concat!("keyplane-cli/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot set up HTTP")?;
        Ok(Self { http, base })
    }

    /// The URL as the session keeps it: no trailing slash, so that equal URLs compare equal.
    pub fn url(&self) -> String {
        self.base.as_str().trim_end_matches('/').to_owned()
    }

    pub async fn send(&self, request: &Request, bearer: Option<&str>) -> Result<Reply> {
        // `path` is absolute and may carry a query (a `Link` header's); the base's own
        // path, if any, is where the API lives.
        let mut url = self.base.join(&format!("{}{}", self.base.path().trim_end_matches('/'), request.path))?;
        if !request.query.is_empty() {
            url.query_pairs_mut().extend_pairs(&request.query);
        }
        let mut builder = self.http.request(request.method.clone(), url);
        if let Some(bearer) = bearer {
            builder = builder.bearer_auth(bearer);
        }
        if let Some(body) = &request.body {
            builder = builder.json(body);
        }
        let response = builder.send().await.map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = response.text().await.map_err(|e| self.unreachable(&e))?;
        let body =
            if text.trim().is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::Null) };
        if !status.is_success() {
            return Err(error_of(status, &body).into());
        }
        if body.is_null() && status != StatusCode::NO_CONTENT && !text.trim().is_empty() {
            anyhow::bail!("the gateway at {} answered {status} with a body that is not JSON", self.url());
        }
        Ok(Reply { body, headers })
    }

    /// The root cause alone: "connection refused" says more than reqwest's layers above it.
    fn unreachable(&self, error: &reqwest::Error) -> anyhow::Error {
        let mut cause: &dyn std::error::Error = error;
        while let Some(source) = cause.source() {
            cause = source;
        }
        let what = if error.is_timeout() { "timed out".to_owned() } else { cause.to_string() };
        anyhow!("cannot reach the gateway at {}: {what}", self.url())
    }
}

fn error_of(status: StatusCode, body: &Value) -> ApiError {
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    let message = match text("message") {
        m if m.is_empty() => status.canonical_reason().unwrap_or("an error").to_owned(),
        m => m,
    };
    ApiError { status: status.as_u16(), code: text("code"), message }
}

/// The gateway with the signed-in user's session.
pub struct Client {
    pub gateway: Gateway,
    pub session: Session,
    file: SessionFile,
}

impl Client {
    pub fn new(gateway: Gateway, session: Session, file: SessionFile) -> Self {
        Self { gateway, session, file }
    }

    pub async fn send(&mut self, request: Request) -> Result<Reply> {
        let bearer = self.session.access_token.clone();
        match self.gateway.send(&request, Some(&bearer)).await {
            Err(e) if is_unauthorized(&e) => {
                self.refresh(&bearer).await?;
                self.gateway.send(&request, Some(&self.session.access_token)).await
            }
            answer => answer,
        }
    }

    /// Remembers the user's developer org, the default `--org` from now on.
    pub fn remember_dev_org(&mut self, org_id: &str) -> Result<()> {
        self.session.dev_org_id = Some(org_id.to_owned());
        self.file.save(&self.session)
    }

    /// Trades the refresh token for a new pair, saved at once: the old refresh token is
    /// spent. Under the session's lock, and only if no other `keyplane` did it meanwhile.
    async fn refresh(&mut self, refused_bearer: &str) -> Result<()> {
        let _lock = self.file.lock()?;
        if let Some(latest) = self.file.load()?
            && latest.url == self.session.url
            && latest.access_token != refused_bearer
        {
            self.session = latest;
            return Ok(());
        }
        let request = Request::post("/api/v1/auth/refresh", json!({"refresh_token": self.session.refresh_token}));
        let reply = match self.gateway.send(&request, None).await {
            Err(e) if is_unauthorized(&e) => return Err(e.context("the session has ended: run `keyplane login`")),
            answer => answer?,
        };
        self.session.access_token = reply.str("access_token")?;
        self.session.refresh_token = reply.str("refresh_token")?;
        self.file.save(&self.session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_comes_from_the_link_header() {
        let mut headers = HeaderMap::new();
        let link = "</api/v1/developers/orgs/o/keys?limit=100&cursor=abc>; rel=\"next\"";
        headers.insert(reqwest::header::LINK, link.parse().unwrap());
        let reply = Reply { body: Value::Null, headers };
        assert_eq!(reply.next_page().as_deref(), Some("/api/v1/developers/orgs/o/keys?limit=100&cursor=abc"));
        assert_eq!(Reply { body: Value::Null, headers: HeaderMap::new() }.next_page(), None);
    }

    #[test]
    fn an_error_reads_as_the_apis_message_and_code() {
        let body = json!({"error": "Unauthorized", "code": "invalid_credentials", "message": "the email or password is not correct"});
        let error = error_of(StatusCode::UNAUTHORIZED, &body);
        assert_eq!(error.to_string(), "the email or password is not correct (invalid_credentials, HTTP 401)");
        assert_eq!(error_of(StatusCode::BAD_GATEWAY, &Value::Null).to_string(), "Bad Gateway (HTTP 502)");
    }
}
