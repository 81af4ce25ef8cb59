//! The identity service's settings.

use std::time::Duration;

use keyplane_common::config::{CommonConfig, Env, Mode, ServiceBase, Target};

pub use crate::mailer::MailSettings;

/// An external OIDC issuer (WorkOS AuthKit style) whose access tokens are sessions.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExternalIssuer {
    pub issuer: String,
    pub jwks_url: String,
    pub audience: String,
    /// How the issuer marks its access tokens; ID tokens are never sessions.
    #[serde(default)]
    pub access_token: AccessTokenMark,
}

/// `{"typ": "at+jwt"}` (RFC 9068, the default) or `{"claim": {"name": "token_use",
/// "value": "access"}}`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AccessTokenMark {
    Typ(String),
    Claim { name: String, value: String },
}

impl Default for AccessTokenMark {
    fn default() -> Self {
        Self::Typ("at+jwt".to_owned())
    }
}

#[derive(Clone, Debug)]
pub struct Config {
    pub base: ServiceBase,
    pub keys_addr: String,
    /// Where audit events go.
    pub orgs_addr: String,
    /// `iss` and `aud` of self-issued session bearers.
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    /// Clock skew tolerated on `exp` and `nbf`, for our tokens and external ones.
    pub jwt_leeway: Duration,
    pub external_issuers: Vec<ExternalIssuer>,
    /// How long external JWKS are used without a successful refresh.
    pub jwks_max_age: Duration,
    pub mail: MailSettings,
    /// Where users reach the console, for links in mail.
    pub public_url: Option<String>,
    /// Argon2 hashes running at once, and how long a sign-in waits for a turn.
    pub hash_concurrency: usize,
    pub hash_wait: Duration,
}

impl Config {
    pub fn from_env(
        env: &mut Env,
        common: &CommonConfig,
        mode: Mode,
        keys_addr: Option<String>,
        orgs_addr: Option<String>,
    ) -> Self {
        let external_issuers: Vec<ExternalIssuer> = env
            .json_list("KEYPLANE_OIDC_ISSUERS", "{\"issuer\", \"jwks_url\", \"audience\", \"access_token\"?}")
            .unwrap_or_default();
        for issuer in &external_issuers {
            if !(issuer.jwks_url.starts_with("https://") || issuer.jwks_url.starts_with("http://")) {
                env.problem(
                    "KEYPLANE_OIDC_ISSUERS",
                    format_args!("jwks_url {:?} is not an http(s) URL", issuer.jwks_url),
                );
            }
        }
        common.require_encryption_key(env);
        Self {
            base: ServiceBase::from_env(env, common, Target::Identity, mode),
            keys_addr: env.peer_addr(Target::Keys, keys_addr),
            orgs_addr: env.peer_addr(Target::Orgs, orgs_addr),
            jwt_issuer: env.string_or("KEYPLANE_JWT_ISSUER", "keyplane"),
            jwt_audience: env.string_or("KEYPLANE_JWT_AUDIENCE", "keyplane"),
            access_token_ttl: env.seconds_or("KEYPLANE_ACCESS_TOKEN_TTL_SECS", 900, 60, 86_400),
            refresh_token_ttl: env.seconds_or("KEYPLANE_REFRESH_TOKEN_TTL_SECS", 30 * 86_400, 3_600, 365 * 86_400),
            jwt_leeway: env.seconds_or("KEYPLANE_JWT_LEEWAY_SECS", 30, 0, 300),
            external_issuers,
            jwks_max_age: env.seconds_or("KEYPLANE_JWKS_MAX_AGE_SECS", 3_600, 60, 86_400),
            mail: mail_settings(env, common),
            public_url: env.get("KEYPLANE_PUBLIC_URL").map(str::to_owned),
            hash_concurrency: env.parse_or(
                "KEYPLANE_PASSWORD_HASH_CONCURRENCY",
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            ),
            hash_wait: Duration::from_millis(env.parse_or("KEYPLANE_PASSWORD_HASH_WAIT_MS", 1_000u64)),
        }
    }
}

/// Where mail goes, checked now rather than when the mailer starts: a bad URL or sender is
/// named with every other problem (the URL is not repeated: it may hold a password).
fn mail_settings(env: &mut Env, common: &CommonConfig) -> MailSettings {
    use lettre::{AsyncSmtpTransport, Tokio1Executor, message::Mailbox};
    let smtp_url = env.get("KEYPLANE_SMTP_URL").map(str::to_owned);
    if let Some(url) = &smtp_url
        && AsyncSmtpTransport::<Tokio1Executor>::from_url(url).is_err()
    {
        env.problem(
            "KEYPLANE_SMTP_URL",
            "is not an smtp:// or smtps:// URL (e.g. smtp://user:pass@host:587?tls=required)",
        );
    }
    let from = env.string_or("KEYPLANE_MAIL_FROM", "Keyplane <no-reply@keyplane.localhost>");
    if from.parse::<Mailbox>().is_err() {
        env.problem("KEYPLANE_MAIL_FROM", "is not a mail address (e.g. Keyplane <no-reply@example.com>)");
    }
    MailSettings { smtp_url, from, dev_mailbox: common.dev_mailbox }
}
