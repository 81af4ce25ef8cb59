//! What the harness asks of Keyplane over REST, as a user would: an account, its org and
//! keys, revocations, usage.

use std::time::{Duration, Instant};

use futures_util::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
}

pub struct Account {
    pub session: String,
    pub org: String,
    /// The org's first key: full permission, test environment.
    pub key: String,
}

impl Client {
    pub fn new() -> Self {
        Self { http: reqwest::Client::builder().pool_max_idle_per_host(256).build().expect("an HTTP client") }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        bearer: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self.http.request(method, url);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let text = response.text().await?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    pub async fn account(&self, gateway: &str) -> anyhow::Result<Account> {
        let email = format!("bench-{}@example.com", std::process::id());
        let (status, signed_up) = self
            .call(
                reqwest::Method::POST,
                format!("{gateway}/api/v1/auth/signup"),
                None,
                Some(json!({"email": email, "password": "Bench-Password-9!", "name": "Bench"})),
            )
            .await?;
        anyhow::ensure!(status == 201, "signup: {status} {signed_up}");
        let session = signed_up["access_token"].as_str().unwrap_or_default().to_owned();
        let (status, org) = self
            .call(
                reqwest::Method::POST,
                format!("{gateway}/api/ensure-dev-org"),
                Some(&session),
                Some(json!({"name": "Bench", "bootstrap_key": true})),
            )
            .await?;
        anyhow::ensure!(status == 200, "ensure-dev-org: {status} {org}");
        Ok(Account {
            org: org["id"].as_str().unwrap_or_default().to_owned(),
            key: org["first_key"]["key"].as_str().unwrap_or_default().to_owned(),
            session,
        })
    }

    /// A new test key with every scope: (id, secret).
    pub async fn key(&self, gateway: &str, account: &Account, name: &str) -> anyhow::Result<(String, String)> {
        let url = format!("{gateway}/api/v1/developers/orgs/{}/keys", account.org);
        let (status, key) = self
            .call(
                reqwest::Method::POST,
                url,
                Some(&account.session),
                Some(json!({"name": name, "environment": "test"})),
            )
            .await?;
        anyhow::ensure!(status == 201, "create key: {status} {key}");
        Ok((key["id"].as_str().unwrap_or_default().to_owned(), key["key"].as_str().unwrap_or_default().to_owned()))
    }

    /// `count` new keys, made `parallel` at a time.
    pub async fn keys(
        &self,
        gateway: &str,
        account: &Account,
        count: usize,
        parallel: usize,
    ) -> anyhow::Result<Vec<(String, String)>> {
        stream::iter(0..count)
            .map(|i| async move { self.key(gateway, account, &format!("k{i}")).await })
            .buffer_unordered(parallel)
            .try_collect()
            .await
    }

    pub async fn revoke(&self, gateway: &str, account: &Account, id: &str) -> anyhow::Result<()> {
        let url = format!("{gateway}/api/v1/developers/orgs/{}/keys/{id}", account.org);
        let (status, body) = self.call(reqwest::Method::DELETE, url, Some(&account.session), None).await?;
        anyhow::ensure!(status == 200, "revoke: {status} {body}");
        Ok(())
    }

    /// `POST /keys/verify`: whether the key is valid, and how long the answer took.
    pub async fn verify(&self, gateway: &str, key: &str) -> anyhow::Result<(bool, Duration)> {
        let started = Instant::now();
        let (status, body) = self
            .call(reqwest::Method::POST, format!("{gateway}/api/v1/keys/verify"), None, Some(json!({"key": key})))
            .await?;
        anyhow::ensure!(status == 200, "verify: {status} {body}");
        Ok((body["valid"] == true, started.elapsed()))
    }

    /// A data-plane GET with `key`: its status.
    pub async fn get(&self, url: String, key: &str) -> anyhow::Result<u16> {
        Ok(self.call(reqwest::Method::GET, url, Some(key), None).await?.0)
    }

    /// Requests the org counted for `key_id` over the last day.
    pub async fn counted(&self, gateway: &str, account: &Account, key_id: &str) -> anyhow::Result<u64> {
        let now = chrono::Utc::now();
        let url = format!(
            "{gateway}/api/v1/developers/orgs/{}/usage?from={}&to={}&key_id={key_id}",
            account.org,
            (now - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ"),
            (now + chrono::Duration::hours(1)).format("%Y-%m-%dT%H:%M:%SZ"),
        );
        let (status, usage) = self.call(reqwest::Method::GET, url, Some(&account.session), None).await?;
        anyhow::ensure!(status == 200, "usage: {status} {usage}");
        Ok(usage["data"].as_array().map_or(0, |hours| hours.iter().filter_map(|h| h["requests"].as_u64()).sum()))
    }
}
