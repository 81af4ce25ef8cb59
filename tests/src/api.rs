//! A REST client that sees what a user sees: status, headers, JSON body.

use reqwest::{Method, header::HeaderMap};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::OnceCell;

use crate::contract::Contract;

#[derive(Clone)]
pub struct Api {
    pub base: String,
    pub http: reqwest::Client,
    /// The gateway's OpenAPI document, fetched on the first call; `None` for a base that
    /// publishes none (a backend called directly).
    contract: Arc<OnceCell<Option<Contract>>>,
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// One series' value in a `/metrics` scrape (the series with its labels, as written).
    pub fn metric(&self, series: &str) -> f64 {
        self.text
            .lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{}", self.text))
    }

    /// The stable error code of an error body.
    pub fn code(&self) -> &str {
        self.body["code"].as_str().unwrap_or_default()
    }

    /// Checks the contract's error shape and answers the code.
    pub fn error_code(&self) -> &str {
        for field in ["error", "code", "message", "request_id"] {
            assert!(self.body[field].is_string(), "error body without {field}: {}", self.text);
        }
        assert!(!self.text.contains("panicked") && !self.text.contains("SELECT "), "leaky error body: {}", self.text);
        self.code()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn str(&self, field: &str) -> String {
        self.body[field].as_str().unwrap_or_else(|| panic!("no string {field} in {}", self.text)).to_owned()
    }
}

/// A signed-up user and their session.
#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub email: String,
    pub password: String,
    pub token: String,
    pub refresh_token: String,
}

impl Api {
    pub fn new(base: String) -> Self {
        let http = reqwest::Client::builder().pool_max_idle_per_host(4).build().expect("http client");
        Self { base, http, contract: Arc::default() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends `request` and checks the answer against the gateway's OpenAPI document.
    pub async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let request = request.build().expect("a request");
        let (method, path) = (request.method().clone(), request.url().path().to_owned());
        let response = self.http.execute(request).await.expect("the gateway answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("a body");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if let Some(contract) = self.contract().await {
            let content_type = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default();
            if let Err(problem) = contract.check(method.as_str(), &path, status, content_type, &text) {
                panic!("{problem}");
            }
        }
        Reply { status, headers, body, text }
    }

    async fn contract(&self) -> Option<&Contract> {
        self.contract
            .get_or_init(|| async {
                let response = self.http.get(self.url("/api/v1/openapi.json")).send().await.ok()?;
                let document: Value = response.error_for_status().ok()?.json().await.ok()?;
                Some(Contract::new(&document))
            })
            .await
            .as_ref()
    }

    pub async fn call(&self, method: Method, path: &str, bearer: Option<&str>, body: Option<Value>) -> Reply {
        let mut request = self.http.request(method, self.url(path));
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        self.send(request).await
    }

    pub async fn get(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.call(Method::GET, path, bearer, None).await
    }

    pub async fn post(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.call(Method::POST, path, bearer, Some(body)).await
    }

    pub async fn put(&self, path: &str, bearer: Option<&str>, body: Value) -> Reply {
        self.call(Method::PUT, path, bearer, Some(body)).await
    }

    pub async fn delete(&self, path: &str, bearer: Option<&str>) -> Reply {
        self.call(Method::DELETE, path, bearer, None).await
    }

    /// A new account with a fresh email.
    pub async fn signup(&self) -> User {
        let email = format!("dev-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = "correct horse battery staple".to_owned();
        let reply =
            self.post("/api/v1/auth/signup", None, json!({"email": email, "password": password, "name": "Dev"})).await;
        assert_eq!(reply.status, 201, "signup: {}", reply.text);
        User {
            id: reply.body["user"]["id"].as_str().expect("user id").to_owned(),
            email,
            password,
            token: reply.str("access_token"),
            refresh_token: reply.str("refresh_token"),
        }
    }

    /// The mails of `kind` the development mailbox holds for `email`, newest first, waiting
    /// (up to 10 s) for the first one: mail leaves through an outbox.
    pub async fn mailbox(&self, email: &str, kind: &str) -> Vec<Value> {
        let path = format!("/dev/mailbox?to={}", email.replace('+', "%2B"));
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let reply = self.get(&path, None).await;
            assert_eq!(reply.status, 200, "mailbox: {}", reply.text);
            let found: Vec<Value> =
                reply.body.as_array().cloned().unwrap_or_default().into_iter().filter(|m| m["kind"] == kind).collect();
            if !found.is_empty() || tokio::time::Instant::now() >= deadline {
                return found;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
    }

    /// Verifies the user's address with the token the development mailbox received.
    pub async fn verify_email(&self, user: &User) {
        let mails = self.mailbox(&user.email, "verify_email").await;
        let token = mails.first().and_then(|m| m["token"].as_str()).expect("a verification mail with a token");
        let reply = self.post("/api/v1/auth/verify-email", None, json!({"token": token})).await;
        assert_eq!(reply.status, 200, "verify: {}", reply.text);
        assert_eq!(reply.body["user"]["email_verified"], true);
    }

    /// A new account whose address is verified.
    pub async fn verified_signup(&self) -> User {
        let user = self.signup().await;
        self.verify_email(&user).await;
        user
    }

    /// Makes `user` (verified) a member of `org` with `role`: invited with `admin`'s
    /// credential, accepted by `user`.
    pub async fn join(&self, admin: &str, org: &str, user: &User, role: &str) {
        let invited = self
            .post(
                &format!("/api/v1/developers/orgs/{org}/invitations"),
                Some(admin),
                json!({"email": user.email, "role": role}),
            )
            .await;
        assert_eq!(invited.status, 201, "invite: {}", invited.text);
        let accepted =
            self.post(&format!("/api/v1/invitations/{}/accept", invited.str("id")), Some(&user.token), json!({})).await;
        assert_eq!(accepted.status, 200, "accept: {}", accepted.text);
    }

    /// The user's developer org id, and its bootstrap key when one was minted.
    pub async fn dev_org(&self, user: &User, bootstrap_key: bool) -> (String, Option<String>) {
        let reply = self
            .post(
                "/api/ensure-dev-org",
                Some(&user.token),
                json!({"name": "Acme Corp", "bootstrap_key": bootstrap_key}),
            )
            .await;
        assert_eq!(reply.status, 200, "ensure-dev-org: {}", reply.text);
        let key = reply.body["first_key"]["key"].as_str().map(str::to_owned);
        (reply.str("id"), key)
    }

    /// A verified user and the developer org it owns, without a key.
    pub async fn verified_owner(&self) -> (User, String) {
        let owner = self.verified_signup().await;
        let (org, _) = self.dev_org(&owner, false).await;
        (owner, org)
    }

    /// Creates a key in `org` and answers the whole reply.
    pub async fn create_key(&self, bearer: &str, org: &str, body: Value) -> Reply {
        self.post(&format!("/api/v1/developers/orgs/{org}/keys"), Some(bearer), body).await
    }

    /// Regenerates key `id` of `org` with a grace period for the old secret.
    pub async fn regenerate(&self, bearer: &str, org: &str, id: &str, grace_seconds: i64) -> Reply {
        let path = format!("/api/v1/developers/orgs/{org}/keys/{id}/regenerate");
        self.post(&path, Some(bearer), json!({"grace_period_seconds": grace_seconds})).await
    }

    /// A new test key with the given fields; answers (id, secret).
    pub async fn key(&self, bearer: &str, org: &str, body: Value) -> (String, String) {
        let reply = self.create_key(bearer, org, body).await;
        assert_eq!(reply.status, 201, "create key: {}", reply.text);
        (reply.str("id"), reply.str("key"))
    }

    /// Every event of an org's audit log that `query` selects (`action=…&actor=…`),
    /// newest first, all pages.
    pub async fn audit_log(&self, bearer: &str, org: &str, query: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut cursor = String::new();
        loop {
            let path = format!("/api/v1/developers/orgs/{org}/audit-log?limit=100&{query}{cursor}");
            let reply = self.get(&path, Some(bearer)).await;
            assert_eq!(reply.status, 200, "audit log: {}", reply.text);
            events.extend(reply.body["data"].as_array().cloned().unwrap_or_default());
            match reply.body["next_cursor"].as_str() {
                Some(next) => cursor = format!("&cursor={next}"),
                None => return events,
            }
        }
    }
}
