//! Where Redis is: one address (`redis://`, `rediss://`), or the master that Redis Sentinel
//! names (`redis+sentinel://[user:password@]host:port[,host:port…]/<master>[/<db>]`),
//! followed across failovers: asked again whenever a command fails to connect or meets a
//! read-only replica, and every few seconds by the bus subscriptions.

use std::{
    sync::{Arc, RwLock},
    time::Duration,
};

use redis::{
    Client, ConnectionAddr, RedisResult,
    aio::ConnectionManager,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};

/// How long one command may take, connecting included.
pub const REDIS_TIMEOUT: Duration = Duration::from_millis(500);
const SCHEME: &str = "redis+sentinel://";

/// One Redis server: the client (for subscriptions) and the shared connection.
pub struct Link {
    pub client: Client,
    pub manager: ConnectionManager,
    /// Which server, to notice that Sentinel moved the master.
    pub addr: String,
}

pub struct RedisLink {
    current: RwLock<Option<Arc<Link>>>,
    sentinel: Option<tokio::sync::Mutex<SentinelClient>>,
}

impl RedisLink {
    /// Connects lazily: a Redis (or Sentinel) that is down at start-up degrades the
    /// platform rather than stopping it.
    pub fn open(url: &str) -> RedisResult<Arc<Self>> {
        let Some(sentinel) = url.strip_prefix(SCHEME) else {
            let link = link(Client::open(url)?)?;
            return Ok(Arc::new(Self { current: RwLock::new(Some(Arc::new(link))), sentinel: None }));
        };
        let this = Arc::new(Self {
            current: RwLock::new(None),
            sentinel: Some(tokio::sync::Mutex::new(sentinel_client(sentinel)?)),
        });
        this.refresh();
        Ok(this)
    }

    /// The server commands go to now (None until Sentinel has named one).
    pub fn current(&self) -> Option<Arc<Link>> {
        self.current.read().expect("redis link lock").clone()
    }

    pub fn follows_sentinel(&self) -> bool {
        self.sentinel.is_some()
    }

    /// Asks Sentinel for the master again, in the background (one question at a time), and
    /// moves to it if it changed. Nothing to do for a single address.
    pub fn refresh(self: &Arc<Self>) {
        if self.sentinel.is_none() || tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let Some(sentinel) = &this.sentinel else { return };
            let Ok(mut sentinel) = sentinel.try_lock() else { return };
            let client = match tokio::time::timeout(REDIS_TIMEOUT * 4, sentinel.async_get_client()).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => return tracing::debug!(error = %e, "redis sentinel did not name a master"),
                Err(_) => return tracing::debug!("redis sentinel did not answer"),
            };
            let addr = client.get_connection_info().addr().to_string();
            if this.current().is_some_and(|link| link.addr == addr) {
                return;
            }
            match link(client) {
                Ok(link) => {
                    tracing::info!(master = %addr, "redis sentinel names a new master");
                    *this.current.write().expect("redis link lock") = Some(Arc::new(link));
                }
                Err(e) => tracing::warn!(error = %e, "cannot connect to the master sentinel named"),
            }
        });
    }
}

fn link(client: Client) -> RedisResult<Link> {
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(REDIS_TIMEOUT))
        .set_response_timeout(Some(REDIS_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_millis(200));
    let addr = client.get_connection_info().addr().to_string();
    let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)?;
    Ok(Link { client, manager, addr })
}

/// `[user:password@]host:port[,host:port…]/<master>[/<db>]`: the credentials and database
/// are the Redis servers'; the sentinels are asked without.
fn sentinel_client(rest: &str) -> RedisResult<SentinelClient> {
    let invalid = |what: &str| {
        redis::RedisError::from((redis::ErrorKind::InvalidClientConfig, "redis+sentinel URL", what.to_owned()))
    };
    let (userinfo, rest) = match rest.rsplit_once('@') {
        Some((userinfo, rest)) => (Some(userinfo), rest),
        None => (None, rest),
    };
    let (hosts, path) = rest.split_once('/').ok_or_else(|| invalid("no /<master name> after the sentinels"))?;
    let mut path = path.split('/');
    let master = path.next().filter(|m| !m.is_empty()).ok_or_else(|| invalid("no master name"))?;
    let db = path
        .next()
        .filter(|d| !d.is_empty())
        .map(str::parse::<i64>)
        .transpose()
        .map_err(|_| invalid("the database is not a number"))?;
    let sentinels = hosts
        .split(',')
        .map(|host| {
            let (name, port) = host.rsplit_once(':').unwrap_or((host, "26379"));
            let port = port.parse::<u16>().map_err(|_| invalid("a sentinel's port is not a number"))?;
            Ok(ConnectionAddr::Tcp(name.to_owned(), port))
        })
        .collect::<RedisResult<Vec<_>>>()?;
    if sentinels.is_empty() || sentinels.iter().any(|s| matches!(s, ConnectionAddr::Tcp(h, _) if h.is_empty())) {
        return Err(invalid("no sentinel address"));
    }
    let mut builder = SentinelClientBuilder::new(sentinels, master, SentinelServerType::Master)?;
    if let Some(userinfo) = userinfo {
        let (user, password) = userinfo.split_once(':').unwrap_or(("", userinfo));
        if !user.is_empty() {
            builder = builder.set_client_to_redis_username(user);
        }
        if !password.is_empty() {
            builder = builder.set_client_to_redis_password(password);
        }
    }
    if let Some(db) = db {
        builder = builder.set_client_to_redis_db(db);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinel_urls_are_read_or_refused() {
        assert!(sentinel_client("s1:26379,s2:26380/mymaster").is_ok());
        assert!(sentinel_client(":secret@s1/mymaster/2").is_ok());
        assert!(sentinel_client("s1:26379").is_err(), "no master");
        assert!(sentinel_client("s1:port/m").is_err(), "a port that is no number");
        assert!(sentinel_client("s1/m/x").is_err(), "a database that is no number");
    }
}
