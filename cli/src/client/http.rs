//! The gateway's REST API as the CLI calls it: the session's bearer on every call, one
//! refresh when the gateway refuses it, and the API's error body as the error. Nothing
//! is sent anywhere but the gateway: no redirect is followed, no path leaves its origin.

use std::{fmt, net::IpAddr, sync::Once, time::Duration};

use anyhow::{Context, Result, anyhow, bail, ensure};
use keyplane_common::error::FieldViolation;
use reqwest::{
    Method, StatusCode, Url,
    header::{HeaderMap, LOCATION},
    redirect,
};
use serde_json::{Value, json};

use super::{
    body, pages,
    session::{Session, SessionFile},
    terminal,
};

/// A non-2xx answer, as the contract's error body says it.
#[derive(Debug)]
pub struct ApiError {
    pub status: u16,
    pub code: String,
    pub message: String,
    /// Which fields were wrong, and how (`validation_failed`).
    pub details: Vec<FieldViolation>,
    /// What to quote to the platform's operators.
    pub request_id: Option<String>,
}

/// One line (the terminal module shows no line breaks from the API): the message, the
/// code and status, each wrong field, then the request id.
impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code.as_str() {
            "" => write!(f, "{} (HTTP {})", self.message, self.status)?,
            code => write!(f, "{} ({code}, HTTP {})", self.message, self.status)?,
        }
        for violation in &self.details {
            write!(f, "; {}: {}", violation.field, violation.problem)?;
        }
        match &self.request_id {
            Some(id) => write!(f, " [request {id}]"),
            None => Ok(()),
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
    pub fn next_page(&self) -> Result<Option<String>> {
        pages::next_link(&self.headers)
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
        ensure!(matches!(base.scheme(), "http" | "https"), "{url:?} is not an http:// or https:// URL");
        if in_clear_off_this_machine(&base) {
            warn_in_clear(&base);
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("keyplane-cli/", env!("CARGO_PKG_VERSION")))
            // A redirect would carry the password or the refresh token in its body (307,
            // 308) to wherever the gateway says: a 3xx is an error instead.
            .redirect(redirect::Policy::none())
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
        let mut url = self.endpoint(&request.path)?;
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
        if status.is_redirection() {
            let to = headers.get(LOCATION).map_or("nowhere".into(), |to| String::from_utf8_lossy(to.as_bytes()));
            bail!(
                "the gateway at {} answered {status} to {to}: redirects are not followed, so that no password \
                 or token goes elsewhere (is the URL the gateway's own?)",
                self.url()
            );
        }
        let bytes = match body::read(response, body::LIMIT).await {
            Ok(bytes) => bytes,
            Err(body::Error::Transport(e)) => return Err(self.unreachable(&e)),
            Err(body::Error::TooLarge) => {
                bail!("the gateway at {} answered more than {} MiB: not read", self.url(), body::LIMIT >> 20)
            }
        };
        let text = String::from_utf8_lossy(&bytes);
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

    /// Where `path` is on the gateway. `path` is absolute and may carry a query (a `Link`
    /// header's); the base's own path, if any, is where the API lives. Whatever `path`
    /// says, the URL stays on the gateway's origin, as the bearer goes with it.
    fn endpoint(&self, path: &str) -> Result<Url> {
        let url = self.base.join(&format!("{}{}", self.base.path().trim_end_matches('/'), path))?;
        ensure!(
            url.origin() == self.base.origin(),
            "{path:?} is not a path on the gateway at {}: not sent there",
            self.url()
        );
        Ok(url)
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

/// Whether what is sent to `url` crosses a network unencrypted: plain http:// to any
/// host but this machine's loopback.
fn in_clear_off_this_machine(url: &Url) -> bool {
    // The URL parser has written IP addresses out canonically (127.1 is 127.0.0.1).
    let host = url.host_str().unwrap_or_default().trim_start_matches('[').trim_end_matches(']');
    url.scheme() == "http"
        && match host.parse::<IpAddr>() {
            Ok(ip) => !ip.to_canonical().is_loopback(),
            Err(_) => host != "localhost",
        }
}

/// Said once per run, however many times the gateway is set up.
fn warn_in_clear(url: &Url) {
    static WARNED: Once = Once::new();
    WARNED.call_once(|| {
        terminal::warn(&format!(
            "keyplane: warning: {} is plain http:// to another machine: the password and session tokens \
             cross the network in clear; use https://",
            url.as_str().trim_end_matches('/')
        ));
    });
}

fn error_of(status: StatusCode, body: &Value) -> ApiError {
    let text = |field: &str| body[field].as_str().unwrap_or_default().to_owned();
    let message = match text("message") {
        m if m.is_empty() => status.canonical_reason().unwrap_or("an error").to_owned(),
        m => m,
    };
    let details = serde_json::from_value(body["details"].clone()).unwrap_or_default();
    let request_id = Some(text("request_id")).filter(|id| !id.is_empty());
    ApiError { status: status.as_u16(), code: text("code"), message, details, request_id }
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

    /// Remembers the user's developer org, the default `--org` from now on. Another
    /// `keyplane` may have refreshed the tokens since this one read them, and only the
    /// newest refresh token is still good: under the refresh's lock, the org goes into the
    /// file as it is now, never over it with this run's older tokens.
    pub fn remember_dev_org(&mut self, org_id: &str) -> Result<()> {
        let _lock = self.file.lock()?;
        self.session.dev_org_id = Some(org_id.to_owned());
        match self.file.load()? {
            Some(mut latest) if latest.url == self.session.url && latest.email == self.session.email => {
                latest.dev_org_id = Some(org_id.to_owned());
                self.file.save(&latest)?;
                self.session = latest;
                Ok(())
            }
            // Logged out, or in as someone else, meanwhile: not this session's file to change.
            _ => Ok(()),
        }
    }

    /// Trades the refresh token for a new pair, saved at once: the old refresh token is
    /// spent. Under the session's lock, and only if no other `keyplane` did it meanwhile.
    async fn refresh(&mut self, refused_bearer: &str) -> Result<()> {
        let _lock = self.file.lock()?;
        // Another run's session for the same account on the same gateway: newer tokens, or
        // the dev org it learnt, are kept rather than overwritten.
        let latest = self.file.load()?.filter(|l| l.url == self.session.url && l.email == self.session.email);
        if let Some(latest) = &latest {
            if latest.access_token != refused_bearer {
                self.session = latest.clone();
                return Ok(());
            }
            self.session.dev_org_id = self.session.dev_org_id.take().or_else(|| latest.dev_org_id.clone());
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
    fn no_path_leaves_the_gateway() {
        let gateway = Gateway::new("https://gw.example:8443/keyplane/").unwrap();
        let url = gateway.endpoint("/api/v1/x?cursor=a%2Fb").unwrap();
        assert_eq!(url.as_str(), "https://gw.example:8443/keyplane/api/v1/x?cursor=a%2Fb");
        let root = Gateway::new("http://127.0.0.1:8080").unwrap();
        assert_eq!(root.endpoint("/a/../b").unwrap().as_str(), "http://127.0.0.1:8080/b");
        for elsewhere in ["//evil:1/steal", "https://evil/x", "/\\evil/x", "/\t/evil/x", "\\\\evil/x"] {
            let error = root.endpoint(elsewhere).unwrap_err();
            assert!(error.to_string().contains("is not a path on the gateway"), "{elsewhere:?}: {error}");
        }
    }

    #[test]
    fn plain_http_is_in_clear_unless_on_loopback() {
        let in_clear = |url: &str| in_clear_off_this_machine(&Url::parse(url).unwrap());
        for url in ["http://gw.example", "http://10.0.0.2:8080", "http://[2001:db8::1]/", "http://localhost.evil.com"] {
            assert!(in_clear(url), "{url}");
        }
        for url in [
            "https://gw.example",
            "http://localhost:8080",
            "http://127.0.0.1:8080",
            "http://127.1/",
            "http://[::1]:8080",
            "http://[::ffff:127.0.0.1]/",
        ] {
            assert!(!in_clear(url), "{url}");
        }
    }

    #[test]
    fn the_dev_org_is_saved_into_the_newest_session_under_the_lock() {
        let dir = std::env::temp_dir().join(format!("keyplane-session-{}", uuid::Uuid::new_v4().simple()));
        let file = SessionFile::in_dir(dir.clone());
        let session = |access: &str, refresh: &str| Session {
            url: "http://127.0.0.1:9".into(),
            email: "dev@example.com".into(),
            access_token: access.into(),
            refresh_token: refresh.into(),
            dev_org_id: None,
        };
        file.save(&session("a1", "r1")).unwrap();
        let gateway = Gateway::new("http://127.0.0.1:9").unwrap();
        let mut client = Client::new(gateway, file.load().unwrap().unwrap(), file.clone());

        // Another `keyplane` refreshing: it holds the lock, then saves a new pair.
        let lock = file.lock().unwrap();
        let remembering = std::thread::spawn(move || {
            client.remember_dev_org("org-1").unwrap();
            client
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(!remembering.is_finished(), "the dev org waits for the refresh's lock");
        file.save(&session("a2", "r2")).unwrap();
        drop(lock);

        let client = remembering.join().unwrap();
        let saved = file.load().unwrap().unwrap();
        assert_eq!((saved.access_token.as_str(), saved.refresh_token.as_str()), ("a2", "r2"), "{saved:?}");
        assert_eq!(saved.dev_org_id.as_deref(), Some("org-1"));
        assert_eq!(client.session.refresh_token, "r2", "this run goes on with the newest tokens");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_error_reads_as_the_apis_message_and_code() {
        let body = json!({"error": "Unauthorized", "code": "invalid_credentials", "message": "the email or password is not correct"});
        let error = error_of(StatusCode::UNAUTHORIZED, &body);
        assert_eq!(error.to_string(), "the email or password is not correct (invalid_credentials, HTTP 401)");
        assert_eq!(error_of(StatusCode::BAD_GATEWAY, &Value::Null).to_string(), "Bad Gateway (HTTP 502)");
    }

    #[test]
    fn an_error_names_each_wrong_field_and_the_request_to_quote() {
        let body = json!({
            "error": "Bad Request", "code": "validation_failed", "message": "the request is not valid",
            "request_id": "req-1",
            "details": [{"field": "name", "problem": "is required"}, {"field": "scopes", "problem": "unknown scope"}],
        });
        assert_eq!(
            error_of(StatusCode::BAD_REQUEST, &body).to_string(),
            "the request is not valid (validation_failed, HTTP 400); name: is required; scopes: unknown scope [request req-1]"
        );
    }
}
