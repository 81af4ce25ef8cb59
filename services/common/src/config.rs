//! Configuration from environment variables, checked at start-up: every bad or missing
//! variable is collected and reported at once, then the process exits with status 2.

use std::{collections::BTreeMap, fmt, net::SocketAddr, path::PathBuf, str::FromStr, sync::Arc, time::Duration};

use crate::{credential::KeyFormat, crypto::Sealer, time::Clock};

/// The processes of the platform, as `keyplane serve --target` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Identity,
    Keys,
    Orgs,
    Usage,
    Advisors,
    Families,
    Gateway,
}

impl Target {
    pub const ALL: &'static [Target] =
        &[Self::Identity, Self::Keys, Self::Orgs, Self::Usage, Self::Advisors, Self::Families, Self::Gateway];

    pub fn name(self) -> &'static str {
        match self {
            Self::Identity => "identity",
            Self::Keys => "keys",
            Self::Orgs => "orgs",
            Self::Usage => "usage",
            Self::Advisors => "advisors",
            Self::Families => "families",
            Self::Gateway => "gateway",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|t| t.name() == s)
    }

    /// The infix of this target's variables: `KEYPLANE_<ENV>_ADDR`.
    pub fn env_name(self) -> String {
        self.name().to_ascii_uppercase()
    }

    /// The port it listens on unless told otherwise.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Gateway => 8080,
            Self::Families => 8081,
            Self::Identity => 50051,
            Self::Keys => 50052,
            Self::Orgs => 50053,
            Self::Usage => 50054,
            Self::Advisors => 50055,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Every problem found in the configuration, one line per variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration:")?;
        for problem in &self.0 {
            writeln!(f, "  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// A source of variables that remembers every problem it met.
#[derive(Debug, Default, Clone)]
pub struct Env {
    vars: BTreeMap<String, String>,
    problems: Vec<String>,
}

impl Env {
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        Self { vars: pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect(), problems: Vec::new() }
    }

    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.vars.insert(name.to_owned(), value.into());
    }

    /// A variable's value; empty counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    pub fn problem(&mut self, name: &str, problem: impl fmt::Display) {
        self.problems.push(format!("{name}: {problem}"));
    }

    pub fn required(&mut self, name: &str, what: &str) -> String {
        match self.get(name) {
            Some(v) => v.to_owned(),
            None => {
                self.problem(name, format_args!("is required ({what})"));
                String::new()
            }
        }
    }

    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.get(name).unwrap_or(default).to_owned()
    }

    pub fn parse_or<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.get(name).map(str::parse::<T>) {
            None => default,
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                self.problem(name, format_args!("{e}"));
                default
            }
        }
    }

    /// Seconds, bounded.
    pub fn seconds_or(&mut self, name: &str, default: u64, min: u64, max: u64) -> Duration {
        let value = self.parse_or::<u64>(name, default);
        if !(min..=max).contains(&value) {
            self.problem(name, format_args!("must be between {min} and {max} seconds"));
            return Duration::from_secs(default);
        }
        Duration::from_secs(value)
    }

    /// A rate written `requests/seconds` (`6000/60`).
    pub fn rate_or(&mut self, name: &str, default: crate::rate_limit::RateLimit) -> crate::rate_limit::RateLimit {
        match self.get(name) {
            None => default,
            Some(raw) => match crate::rate_limit::RateLimit::parse(raw) {
                Some(rate) => rate,
                None => {
                    let raw = raw.to_owned();
                    self.problem(name, format_args!("{raw:?} is not requests/seconds, like 6000/60"));
                    default
                }
            },
        }
    }

    pub fn bool_or(&mut self, name: &str, default: bool) -> bool {
        match self.get(name).map(str::to_ascii_lowercase).as_deref() {
            None => default,
            Some("1" | "true" | "yes" | "on") => true,
            Some("0" | "false" | "no" | "off") => false,
            Some(_) => {
                self.problem(name, "must be true or false");
                default
            }
        }
    }

    pub fn socket_addr_or(&mut self, name: &str, default: SocketAddr) -> SocketAddr {
        self.parse_or(name, default)
    }

    /// A peer's gRPC address (`http://host:port`).
    pub fn peer_addr(&mut self, target: Target, default: Option<String>) -> String {
        let name = format!("KEYPLANE_{}_ADDR", target.env_name());
        let value = self.get(&name).map(str::to_owned).or(default);
        match value {
            Some(v) if v.starts_with("http://") || v.starts_with("https://") => v,
            Some(v) => {
                self.problem(&name, format_args!("{v:?} is not an http:// or https:// address"));
                String::new()
            }
            None => {
                self.problem(
                    &name,
                    format_args!(
                        "is required (the {target} service's address, e.g. http://{target}:{})",
                        target.default_port()
                    ),
                );
                String::new()
            }
        }
    }

    /// Secrets of at least [`MIN_SECRET_LEN`] characters, comma-separated so they can be
    /// rotated (the first signs, all verify). `keyplane up` talks only to itself and makes
    /// one up when unset; a deployment must set it.
    pub fn secret(&mut self, name: &str, mode: Mode, shared_with: &str) -> Vec<Vec<u8>> {
        match self.get(name).map(str::to_owned) {
            Some(value) => {
                let secrets: Vec<Vec<u8>> = value.split(',').map(|s| s.trim().as_bytes().to_vec()).collect();
                if secrets.iter().any(|s| s.len() < MIN_SECRET_LEN) {
                    self.problem(
                        name,
                        format_args!("each comma-separated secret needs at least {MIN_SECRET_LEN} characters"),
                    );
                }
                secrets
            }
            None if mode == Mode::AllInOne => vec![random_secret()],
            None => {
                self.problem(name, format_args!("is required (shared by {shared_with}; e.g. `openssl rand -hex 32`)"));
                Vec::new()
            }
        }
    }

    /// A JSON list of `T`, empty when unset; `shape` names the fields for the message.
    pub fn json_list<T: serde::de::DeserializeOwned>(&mut self, name: &str, shape: &str) -> Option<Vec<T>> {
        let json = self.get(name)?.to_owned();
        match serde_json::from_str(&json) {
            Ok(list) => Some(list),
            Err(e) => {
                self.problem(name, format_args!("must be a JSON list of {shape} ({e})"));
                Some(Vec::new())
            }
        }
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.problems.is_empty() { Ok(()) } else { Err(ConfigError(self.problems)) }
    }
}

/// How the process was started: it decides the defaults that are safe to assume.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `keyplane up`: everything in one process on this machine.
    AllInOne,
    /// `keyplane serve --target <name>`: one process of a deployment.
    Single,
}

/// Settings every process of the platform shares.
#[derive(Clone)]
pub struct CommonConfig {
    /// Secrets that sign internal calls; the first signs, all verify (for rotation).
    pub internal_secrets: Vec<Vec<u8>>,
    /// None: the in-process cache and bus of the embedded default.
    pub redis_url: Option<String>,
    pub redis_prefix: String,
    pub key_format: KeyFormat,
    /// Deadline of one call between services.
    pub rpc_timeout: Duration,
    /// Where the embedded default keeps its SQLite files.
    pub data_dir: PathBuf,
    /// The database every service uses unless given its own.
    pub database_url: Option<String>,
    /// The operator's keys for secrets at rest; None: `keyplane up` keeps one under the
    /// data directory (see [`CommonConfig::sealer`]).
    pub encryption_keys: Option<Arc<Sealer>>,
    pub mode: Mode,
    /// The development mailbox (`GET /dev/mailbox`): on by default in `keyplane up` only.
    pub dev_mailbox: bool,
    /// The time rules are decided at (the system's, but for tests).
    pub clock: Clock,
    /// Where Prometheus scrapes this process (`KEYPLANE_METRICS_LISTEN`): `0.0.0.0:9464` in
    /// `serve`; off in `up`, whose gateway serves the same text at `/metrics`.
    pub metrics_listen: Option<SocketAddr>,
}

/// What every service's settings start with: where it listens and its database.
#[derive(Clone, Debug)]
pub struct ServiceBase {
    pub listen: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
}

impl ServiceBase {
    pub fn from_env(env: &mut Env, common: &CommonConfig, target: Target, mode: Mode) -> Self {
        let pool = format!("KEYPLANE_{}_DB_MAX_CONNECTIONS", target.env_name());
        Self {
            listen: common.listen_addr(env, target, mode),
            database_url: common.database_url(env, target),
            db_max_connections: env.parse_or(&pool, 10),
        }
    }
}

impl fmt::Debug for CommonConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommonConfig")
            .field("internal_secrets", &format_args!("[{} redacted]", self.internal_secrets.len()))
            .field("redis_url", &self.redis_url.as_deref().map(redact_url))
            .field("redis_prefix", &self.redis_prefix)
            .field("key_format", &self.key_format)
            .field("rpc_timeout", &self.rpc_timeout)
            .field("data_dir", &self.data_dir)
            .field("encryption_keys", &self.encryption_keys)
            .finish_non_exhaustive()
    }
}

/// A URL with its password replaced, for logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

pub const MIN_SECRET_LEN: usize = 32;

impl CommonConfig {
    pub fn from_env(env: &mut Env, mode: Mode) -> Self {
        let internal_secrets = env.secret("KEYPLANE_INTERNAL_SECRET", mode, "every service");
        let redis_url = env.get("KEYPLANE_REDIS_URL").or(env.get("REDIS_URL")).map(str::to_owned);
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+sentinel://"))
        {
            env.problem("KEYPLANE_REDIS_URL", "must start with redis://, rediss:// or redis+sentinel://");
        }
        let key_prefix = env.string_or("KEYPLANE_KEY_PREFIX", "phosra");
        let key_format = KeyFormat::new(&key_prefix).unwrap_or_else(|e| {
            env.problem("KEYPLANE_KEY_PREFIX", e);
            KeyFormat::default()
        });
        let rpc_timeout = Duration::from_millis(env.parse_or("KEYPLANE_RPC_TIMEOUT_MS", 5_000u64).clamp(100, 120_000));
        let database_url = env.get("KEYPLANE_DATABASE_URL").map(str::to_owned);
        if let Some(url) = &database_url {
            check_database_url(env, "KEYPLANE_DATABASE_URL", url);
        }
        let encryption_keys = env
            .get(ENCRYPTION_KEY)
            .map(Sealer::parse)
            .and_then(|parsed| parsed.map(Arc::new).map_err(|e| env.problem(ENCRYPTION_KEY, e)).ok());
        Self {
            encryption_keys,
            mode,
            dev_mailbox: env.bool_or("KEYPLANE_DEV_MAILBOX", mode == Mode::AllInOne),
            clock: Clock::system(),
            internal_secrets,
            redis_url,
            redis_prefix: env.string_or("KEYPLANE_REDIS_PREFIX", "keyplane:"),
            key_format,
            rpc_timeout,
            data_dir: PathBuf::from(env.string_or("KEYPLANE_DATA_DIR", "./data")),
            database_url,
            metrics_listen: match env.get(METRICS_LISTEN) {
                Some(_) => Some(env.socket_addr_or(METRICS_LISTEN, SocketAddr::from(([0, 0, 0, 0], 9464)))),
                None => (mode == Mode::Single).then(|| SocketAddr::from(([0, 0, 0, 0], 9464))),
            },
        }
    }

    /// Asks for the operator key where a process seals secrets: a deployment must set it.
    pub fn require_encryption_key(&self, env: &mut Env) {
        if self.mode == Mode::Single && env.get(ENCRYPTION_KEY).is_none() {
            env.problem(
                ENCRYPTION_KEY,
                "is required (seals secrets at rest; 64 hex characters, e.g. `openssl rand -hex 32`; \
                 comma-separate several to rotate: the first seals, all open)",
            );
        }
    }

    /// The operator's keys: the configured ones, else (in `keyplane up`) a key kept in
    /// `<data dir>/encryption.key`, made on first use and readable by its owner only.
    pub fn sealer(&self) -> anyhow::Result<Arc<Sealer>> {
        if let Some(keys) = &self.encryption_keys {
            return Ok(Arc::clone(keys));
        }
        anyhow::ensure!(self.mode == Mode::AllInOne, "{ENCRYPTION_KEY} is not set");
        let path = self.data_dir.join("encryption.key");
        let key = match std::fs::read_to_string(&path) {
            Ok(key) => key,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(&self.data_dir)?;
                let key = Sealer::generate_key();
                write_private(&path, &key)?;
                tracing::info!(path = %path.display(), "made an operator encryption key");
                key
            }
            Err(e) => anyhow::bail!("cannot read {}: {e}", path.display()),
        };
        Sealer::parse(key.trim()).map(Arc::new).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    /// A service's database: its own variable, else the shared one, else a SQLite file.
    pub fn database_url(&self, env: &mut Env, target: Target) -> String {
        let name = format!("KEYPLANE_{}_DATABASE_URL", target.env_name());
        match env.get(&name).map(str::to_owned) {
            Some(url) => {
                check_database_url(env, &name, &url);
                url
            }
            None => self
                .database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}/{}.db?mode=rwc", self.data_dir.display(), target.name())),
        }
    }

    /// A service's listen address.
    pub fn listen_addr(&self, env: &mut Env, target: Target, mode: Mode) -> SocketAddr {
        let host = if mode == Mode::AllInOne { [127, 0, 0, 1] } else { [0, 0, 0, 0] };
        let name = format!("KEYPLANE_{}_LISTEN", target.env_name());
        env.socket_addr_or(&name, SocketAddr::from((host, target.default_port())))
    }
}

fn check_database_url(env: &mut Env, name: &str, url: &str) {
    if !(url.starts_with("postgres://") || url.starts_with("postgresql://") || url.starts_with("sqlite:")) {
        env.problem(name, "must be a postgres:// or sqlite: URL");
    }
}

const ENCRYPTION_KEY: &str = "KEYPLANE_ENCRYPTION_KEY";
const METRICS_LISTEN: &str = "KEYPLANE_METRICS_LISTEN";

/// Writes a file only its owner can read.
fn write_private(path: &std::path::Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)?.write_all(contents.as_bytes())
}

/// A random internal secret for a process that talks only to itself.
pub fn random_secret() -> Vec<u8> {
    use rand::{TryRng, rngs::SysRng};
    let mut bytes = [0u8; 32];
    SysRng.try_fill_bytes(&mut bytes).expect("the operating system's random number generator failed");
    hex::encode(bytes).into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_reported_at_once() {
        let mut env = Env::from_pairs([
            ("KEYPLANE_KEY_PREFIX", "Bad_Prefix"),
            ("KEYPLANE_REDIS_URL", "http://localhost"),
            ("KEYPLANE_INTERNAL_SECRET", "short"),
        ]);
        let _ = CommonConfig::from_env(&mut env, Mode::Single);
        let _ = env.peer_addr(Target::Keys, None);
        let err = env.finish().unwrap_err();
        let text = err.to_string();
        for name in ["KEYPLANE_KEY_PREFIX", "KEYPLANE_REDIS_URL", "KEYPLANE_INTERNAL_SECRET", "KEYPLANE_KEYS_ADDR"] {
            assert!(text.contains(name), "{name} missing from {text}");
        }
    }

    #[test]
    fn all_in_one_needs_no_settings() {
        let mut env = Env::default();
        let config = CommonConfig::from_env(&mut env, Mode::AllInOne);
        let url = config.database_url(&mut env, Target::Keys);
        assert!(env.finish().is_ok());
        assert_eq!(url, "sqlite://./data/keys.db?mode=rwc");
        assert_eq!(config.key_format.prefix(), "phosra");
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://user:hunter2@host:6379/0"), "redis://user:***@host:6379/0");
        assert_eq!(redact_url("redis://host:6379"), "redis://host:6379");
    }
}
