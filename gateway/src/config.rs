//! The gateway's settings.

use std::{net::SocketAddr, time::Duration};

use keyplane_common::{
    config::{CommonConfig, Env, Mode, Target},
    rate_limit::RateLimit,
};

use keyplane_common::scope::CATALOGUE;

#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub identity_addr: String,
    pub keys_addr: String,
    pub orgs_addr: String,
    pub usage_addr: String,
    pub advisors_addr: String,
    /// Where data-plane calls go: path prefix, upstream, scopes.
    pub routes: Vec<DataRoute>,
    /// Sign the identity headers sent to data-plane upstreams (the first signs).
    pub dataplane_secrets: Vec<Vec<u8>>,
    /// Deadline of a whole request, forwarding included.
    pub request_timeout: Duration,
    /// The longest a request's body may send nothing before its end: a `Content-Length`
    /// that lies, or a chunked body that stops, is 400 then rather than held to the deadline.
    pub body_idle: Duration,
    /// The proxies in front of the gateway, whose `X-Forwarded-For` entries are believed.
    pub trusted_proxies: TrustedProxies,
    /// Serve `GET /dev/mailbox` (the development mailbox of `keyplane up`).
    pub dev_mailbox: bool,
    /// `/metrics` on the public port: when the process has no metrics port of its own.
    pub public_metrics: bool,
    pub limits: Limits,
    /// How often counted usage goes to the usage service (writes there scale with it).
    pub usage_flush_every: Duration,
    /// GitHub's secret-scanning public keys (JSON), to check its alerts' signatures.
    pub github_keys_url: String,
}

/// Rate limits: per key (unless the key has its own), per session's user, and per source
/// address on the routes anyone may call.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub key: RateLimit,
    pub session: RateLimit,
    /// Signup, login, refresh and verify-email, together, per address.
    pub sign_in: RateLimit,
    /// `POST /keys/verify`, per address (the platform's own backends call it).
    pub verify: RateLimit,
    /// GitHub's secret-scanning alerts, per address.
    pub secret_scanning: RateLimit,
    /// How often each replica reconciles its counts with Redis.
    pub sync_every: Duration,
}

impl Limits {
    fn from_env(env: &mut Env) -> Self {
        let rate = |requests, per_seconds| RateLimit { requests, per_seconds };
        Self {
            key: env.rate_or("KEYPLANE_RATE_LIMIT_KEY", rate(6_000, 60)),
            session: env.rate_or("KEYPLANE_RATE_LIMIT_SESSION", rate(1_200, 60)),
            sign_in: env.rate_or("KEYPLANE_RATE_LIMIT_SIGN_IN", rate(60, 60)),
            verify: env.rate_or("KEYPLANE_RATE_LIMIT_VERIFY", rate(6_000, 60)),
            secret_scanning: env.rate_or("KEYPLANE_RATE_LIMIT_SECRET_SCANNING", rate(600, 60)),
            sync_every: Duration::from_millis(env.parse_or("KEYPLANE_RATE_LIMIT_SYNC_MS", 100u64).clamp(10, 10_000)),
        }
    }
}

/// Which hops of `X-Forwarded-For` are the deployment's own proxies. The client address
/// is the entry the outermost trusted proxy saw: counted from the right, since every
/// proxy appends and the client controls everything to the left.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrustedProxies {
    /// `X-Forwarded-For` is ignored: the client is the TCP peer.
    #[default]
    None,
    /// This many proxies, the TCP peer included, stand in front of the gateway.
    Count(usize),
    /// Proxies are the addresses in these networks (the TCP peer first of all).
    Networks(Vec<ipnet::IpNet>),
}

impl TrustedProxies {
    /// The scheme the client used: the gateway serves plain HTTP, so `https` only when a
    /// trusted proxy in front says so (`X-Forwarded-Proto`).
    pub fn scheme(&self, headers: &axum::http::HeaderMap) -> &'static str {
        let forwarded = headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok());
        match (self, forwarded) {
            (Self::None, _) | (_, None) => "http",
            (_, Some(proto)) if proto.trim().eq_ignore_ascii_case("https") => "https",
            _ => "http",
        }
    }

    /// `KEYPLANE_TRUSTED_PROXIES`: a count (`1`) or networks (`10.0.0.0/8, 192.0.2.7`).
    pub fn parse(value: &str) -> Result<Self, String> {
        let value = value.trim();
        if let Ok(count) = value.parse::<usize>() {
            return Ok(if count == 0 { Self::None } else { Self::Count(count) });
        }
        let networks = value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<ipnet::IpNet>()
                    .or_else(|_| s.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| format!("{s:?} is neither a count of proxies nor an address or CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::Networks(networks))
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("routes", &self.routes)
            .field("request_timeout", &self.request_timeout)
            .field("body_idle", &self.body_idle)
            .finish_non_exhaustive()
    }
}

/// Peers' addresses known in advance (all-in-one mode knows them; a deployment is told).
#[derive(Default, Clone)]
pub struct Peers {
    pub identity: Option<String>,
    pub keys: Option<String>,
    pub orgs: Option<String>,
    pub usage: Option<String>,
    pub advisors: Option<String>,
    pub families: Option<String>,
}

fn trusted_proxies(env: &mut Env) -> TrustedProxies {
    match env.get("KEYPLANE_TRUSTED_PROXIES").map(TrustedProxies::parse) {
        Some(Ok(trusted)) => trusted,
        Some(Err(problem)) => {
            env.problem("KEYPLANE_TRUSTED_PROXIES", problem);
            TrustedProxies::None
        }
        // The older switch: one proxy in front.
        None if env.bool_or("KEYPLANE_TRUST_FORWARDED_FOR", false) => TrustedProxies::Count(1),
        None => TrustedProxies::None,
    }
}

impl Config {
    pub fn from_env(
        env: &mut Env,
        common: &CommonConfig,
        mode: Mode,
        peers: Peers,
        dataplane_secrets: Vec<Vec<u8>>,
    ) -> Self {
        let routes = env
            .json_list::<DataRoute>(
                "KEYPLANE_GATEWAY_ROUTES",
                "{\"prefix\", \"upstream\", \"read_scope\", \"write_scope\"}",
            )
            .unwrap_or_else(|| {
                let families = env.get("KEYPLANE_FAMILIES_URL").map(str::to_owned).or(peers.families);
                families.map(|upstream| vec![DataRoute::families(upstream)]).unwrap_or_default()
            });
        for route in &routes {
            if let Err(problem) = route.check() {
                env.problem("KEYPLANE_GATEWAY_ROUTES", problem);
            }
        }
        // Answers kept for Idempotency-Key replays are sealed with it.
        common.require_encryption_key(env);
        let request_timeout = env.seconds_or("KEYPLANE_GATEWAY_TIMEOUT_SECS", 30, 1, 600);
        Self {
            listen: common.listen_addr(env, Target::Gateway, mode),
            identity_addr: env.peer_addr(Target::Identity, peers.identity),
            keys_addr: env.peer_addr(Target::Keys, peers.keys),
            orgs_addr: env.peer_addr(Target::Orgs, peers.orgs),
            usage_addr: env.peer_addr(Target::Usage, peers.usage),
            advisors_addr: env.peer_addr(Target::Advisors, peers.advisors),
            routes,
            dataplane_secrets,
            request_timeout,
            body_idle: body_idle(env, request_timeout),
            trusted_proxies: trusted_proxies(env),
            dev_mailbox: common.dev_mailbox,
            public_metrics: common.metrics_listen.is_none(),
            limits: Limits::from_env(env),
            usage_flush_every: Duration::from_millis(
                env.parse_or("KEYPLANE_USAGE_FLUSH_MS", 1_000u64).clamp(100, 60_000),
            ),
            github_keys_url: env.string_or("KEYPLANE_GITHUB_KEYS_URL", GITHUB_KEYS_URL),
        }
    }
}

/// How long a request's body may send nothing: under the request's deadline, which would
/// otherwise end it first (a 504 where a stalled body is the client's 400).
fn body_idle(env: &mut Env, request_timeout: Duration) -> Duration {
    const NAME: &str = "KEYPLANE_GATEWAY_BODY_IDLE_SECS";
    if env.get(NAME).is_none() {
        return Duration::from_secs(10).min(request_timeout / 2);
    }
    let idle = env.seconds_or(NAME, 10, 1, 600);
    if idle >= request_timeout {
        env.problem(
            NAME,
            format_args!("must be less than KEYPLANE_GATEWAY_TIMEOUT_SECS ({} s)", request_timeout.as_secs()),
        );
    }
    idle
}

/// Where GitHub publishes the keys that sign secret-scanning alerts.
pub const GITHUB_KEYS_URL: &str = "https://api.github.com/meta/public_keys/secret_scanning";

/// Where data-plane paths start.
pub const DATA_PLANE_PREFIX: &str = "/api/v1/developer/";

/// One entry of the route table.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataRoute {
    /// A path prefix under `/api/v1/developer/`; the next path segment is the resource id
    /// checked against a pinned key's `resource_ids`.
    pub prefix: String,
    /// Base URL of the backend; the request path is appended unchanged.
    pub upstream: String,
    /// Scope needed for GET, HEAD and OPTIONS.
    pub read_scope: String,
    /// Scope needed for every other method.
    pub write_scope: String,
}

impl DataRoute {
    pub fn families(upstream: String) -> Self {
        Self {
            prefix: "/api/v1/developer/families".into(),
            upstream,
            read_scope: "read:families".into(),
            write_scope: "write:families".into(),
        }
    }

    pub fn check(&self) -> Result<(), String> {
        if !self.prefix.starts_with(DATA_PLANE_PREFIX) || self.prefix.ends_with('/') {
            return Err(format!(
                "route prefix {:?} must start with {DATA_PLANE_PREFIX} and not end with /",
                self.prefix
            ));
        }
        // A base URL and nothing else: a query, a fragment or credentials in it would be
        // dropped on the way, not sent.
        let upstream = self.upstream.parse::<axum::http::Uri>().ok();
        let plain = upstream.as_ref().is_some_and(|u| {
            matches!(u.scheme_str(), Some("http" | "https"))
                && u.authority().is_some_and(|a| !a.host().is_empty() && !a.as_str().contains('@'))
                && u.query().is_none()
        });
        if !plain || self.upstream.contains('#') {
            return Err(format!(
                "route upstream {:?} must be an http(s) URL with a host, and no query, fragment or credentials",
                self.upstream
            ));
        }
        for scope in [&self.read_scope, &self.write_scope] {
            if !CATALOGUE.contains(&scope.as_str()) {
                return Err(format!("route scope {scope:?} is not in the catalogue"));
            }
        }
        Ok(())
    }

    /// The resource id a path names under this route, if it matches the route.
    pub fn matches<'p>(&self, path: &'p str) -> Option<Option<&'p str>> {
        let rest = path.strip_prefix(self.prefix.as_str())?;
        if rest.is_empty() {
            return Some(None);
        }
        let rest = rest.strip_prefix('/')?;
        Some(rest.split('/').next().filter(|s| !s.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_by_prefix_and_name_the_resource() {
        let route = DataRoute::families("http://f".into());
        assert_eq!(route.matches("/api/v1/developer/families"), Some(None));
        assert_eq!(route.matches("/api/v1/developer/families/abc"), Some(Some("abc")));
        assert_eq!(route.matches("/api/v1/developer/families/abc/members"), Some(Some("abc")));
        assert_eq!(route.matches("/api/v1/developer/familiesx"), None);
        assert_eq!(route.matches("/api/v1/developer/policies"), None);
    }

    #[test]
    fn routes_are_checked() {
        assert!(DataRoute::families("http://f".into()).check().is_ok());
        let bad = DataRoute { prefix: "/admin".into(), ..DataRoute::families("http://f".into()) };
        assert!(bad.check().is_err());
        let bad = DataRoute { read_scope: "read:everything".into(), ..DataRoute::families("http://f".into()) };
        assert!(bad.check().is_err());
        for good in ["https://f:8443/base/", "http://[::1]:9000"] {
            assert!(DataRoute::families(good.into()).check().is_ok(), "{good}");
        }
        for bad in ["ftp://f", "http://", "http:///x", "http://u:p@f", "http://f/b?tenant=a", "http://f/b#x", "f:80"] {
            assert!(DataRoute::families(bad.into()).check().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_body_may_pause_less_than_the_whole_request_takes() {
        let idle = |pairs: &[(&str, &str)]| {
            let mut env = Env::from_pairs(pairs.iter().copied());
            let timeout = env.seconds_or("KEYPLANE_GATEWAY_TIMEOUT_SECS", 30, 1, 600);
            (body_idle(&mut env, timeout), env.finish().is_ok())
        };
        assert_eq!(idle(&[]), (Duration::from_secs(10), true));
        assert_eq!(
            idle(&[("KEYPLANE_GATEWAY_TIMEOUT_SECS", "4")]),
            (Duration::from_secs(2), true),
            "under a short deadline"
        );
        assert_eq!(idle(&[("KEYPLANE_GATEWAY_BODY_IDLE_SECS", "3")]).0, Duration::from_secs(3));
        let (_, fine) = idle(&[("KEYPLANE_GATEWAY_TIMEOUT_SECS", "5"), ("KEYPLANE_GATEWAY_BODY_IDLE_SECS", "5")]);
        assert!(!fine, "a bound the deadline always beats is a mistake, said at start-up");
    }

    #[test]
    fn trusted_proxies_are_a_count_or_networks() {
        assert_eq!(TrustedProxies::parse("2").unwrap(), TrustedProxies::Count(2));
        assert_eq!(TrustedProxies::parse("0").unwrap(), TrustedProxies::None);
        assert!(
            matches!(TrustedProxies::parse("10.0.0.0/8, 192.0.2.7").unwrap(), TrustedProxies::Networks(n) if n.len() == 2)
        );
        assert!(TrustedProxies::parse("ten").is_err());
    }
}
