//! Delivering each new consultation to its advisor's endpoint: a POST signed with the
//! platform's delivery key (RFC 9421), retried with doubling waits, its status recorded on
//! the consultation. An endpoint that resolves to loopback or a private network is refused
//! unless the operator allows it (`keyplane up` does): an org's endpoint must not reach the
//! platform's inside.

use std::{net::IpAddr, sync::Arc, time::Duration};

use chrono::Utc;
use keyplane_common::{
    httpsig::{Message, digest},
    time::Clock,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    delivery_keys::DeliveryKeys,
    domain::consultation::{Consultation, DeliveryStatus, retry_after},
    store::{Attempt, Store},
};

const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a claimed delivery is this replica's: longer than an attempt can take.
const LEASE: chrono::Duration = chrono::Duration::seconds(30);
const BATCH: u64 = 64;
/// Deliveries in flight at once, and of one advisor: a slow endpoint holds its own.
const PARALLEL: usize = 16;
const PER_ADVISOR: usize = 2;

pub struct Deliverer {
    pub store: Store,
    pub keys: Arc<DeliveryKeys>,
    pub clock: Clock,
    pub private_endpoints: bool,
    pub public_url: Option<String>,
}

impl Deliverer {
    /// Delivers what is due whenever woken, and every second, until `shutdown`.
    pub fn spawn(self: Arc<Self>, wake: Arc<Notify>, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.deliver_due().await {
                    tracing::warn!(error = %e, "delivering consultations failed; will retry");
                }
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = wake.notified() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        })
    }

    /// Delivers what is due, several at once but few per advisor: one advisor's slow
    /// endpoint does not hold back another's.
    async fn deliver_due(&self) -> Result<(), crate::error::Error> {
        use futures_util::{StreamExt, stream};
        let claimed = self.store.claim_due(self.clock.now(), LEASE, BATCH, PER_ADVISOR).await?;
        let results: Vec<Result<(), crate::error::Error>> = stream::iter(claimed)
            .map(|(consultation, endpoint)| async move { self.attempt(&consultation, &endpoint).await })
            .buffer_unordered(PARALLEL)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn attempt(&self, consultation: &Consultation, endpoint: &str) -> Result<(), crate::error::Error> {
        let attempts = consultation.delivery.as_ref().map_or(0, |d| d.attempts) + 1;
        let result = self.deliver(consultation, endpoint).await;
        let now = self.clock.now();
        let attempt = match result {
            Ok(()) => Attempt {
                status: DeliveryStatus::Delivered,
                attempts,
                error: None,
                next_at: None,
                delivered_at: Some(now),
            },
            Err(failure) => {
                tracing::info!(consultation_id = %consultation.id, attempts, cause = %failure.cause, "consultation delivery failed");
                let next = retry_after(attempts).and_then(|wait| chrono::Duration::from_std(wait).ok());
                Attempt {
                    status: if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
                    attempts,
                    error: Some(failure.told.to_owned()),
                    next_at: next.map(|wait| now + wait),
                    delivered_at: None,
                }
            }
        };
        self.store.record_attempt(consultation.id, &attempt).await
    }

    async fn deliver(&self, consultation: &Consultation, endpoint: &str) -> Result<(), Failure> {
        let url = reqwest::Url::parse(endpoint).map_err(|e| Failure::new(NOT_ALLOWED, format!("bad endpoint: {e}")))?;
        let host = url.host_str().ok_or_else(|| Failure::new(NOT_ALLOWED, "no host"))?.to_owned();
        let port = url.port_or_known_default().ok_or_else(|| Failure::new(NOT_ALLOWED, "no port"))?;
        let address = self.checked_address(&host, port).await?;
        let body =
            serde_json::to_vec(&self.payload(consultation)).map_err(|e| Failure::new(UNREACHABLE, e.to_string()))?;
        let mut message = Message {
            method: "POST".into(),
            scheme: url.scheme().into(),
            authority: match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.clone(),
            },
            path: url.path().into(),
            query: url.query().unwrap_or_default().into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("content-digest".into(), digest::content_digest(&body)),
            ],
            body,
        };
        let nonce = uuid::Uuid::now_v7().to_string();
        let (input, signature) = self
            .keys
            .sign(&message, Utc::now().timestamp(), &nonce)
            .map_err(|e| Failure::new(UNREACHABLE, format!("signing: {e}")))?;
        message.headers.push(("signature-input".into(), input));
        message.headers.push(("signature".into(), signature));
        // Connect to the address checked above, not to whatever the name says by then.
        let client = reqwest::Client::builder()
            .resolve(&host, address)
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would connect elsewhere than the address checked.
            .no_proxy()
            .build()
            .map_err(|e| Failure::new(UNREACHABLE, e.to_string()))?;
        let mut request = client.post(url);
        for (name, value) in &message.headers {
            request = request.header(name, value);
        }
        let response = request.body(message.body).send().await.map_err(|e| {
            let told = if e.is_timeout() { "the endpoint took too long" } else { UNREACHABLE };
            // Without the URL: its query may carry the advisor's own token.
            Failure::new(told, e.without_url().to_string())
        })?;
        if response.status().is_success() {
            Ok(())
        } else {
            let status = response.status();
            Err(Failure { told: answered(status.as_u16()), cause: format!("the endpoint answered {status}") })
        }
    }

    fn payload(&self, c: &Consultation) -> serde_json::Value {
        let respond_to = format!(
            "{}/api/v1/advisors/{}/consultations/{}/response",
            self.public_url.as_deref().unwrap_or("").trim_end_matches('/'),
            c.advisor_id,
            c.id
        );
        serde_json::json!({
            "type": "consultation",
            "consultation": {
                "id": c.id,
                "advisor_id": c.advisor_id,
                "org_id": c.org_id,
                "question": c.question,
                "context": serde_json::from_str::<serde_json::Value>(&c.context_json).unwrap_or_default(),
                "created_at": c.created_at,
            },
            "respond_to": respond_to,
        })
    }

    /// The endpoint's address, if the operator allows delivering there.
    async fn checked_address(&self, host: &str, port: u16) -> Result<std::net::SocketAddr, Failure> {
        // An IPv6 literal comes bracketed from the URL.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let lookup = tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((bare, port)))
            .await
            .map_err(|_| Failure::new(UNREACHABLE, format!("resolving {host} took too long")))?
            .map_err(|e| Failure::new(UNREACHABLE, format!("cannot resolve {host}: {e}")))?;
        let addresses: Vec<std::net::SocketAddr> = lookup.collect();
        let first = *addresses.first().ok_or_else(|| Failure::new(UNREACHABLE, format!("{host} has no address")))?;
        if !self.private_endpoints && addresses.iter().any(|a| is_internal(a.ip())) {
            return Err(Failure::new(NOT_ALLOWED, format!("{host} resolves to a loopback or private address")));
        }
        Ok(first)
    }
}

/// What the org's admin reads of a failure: never what the platform's network looks like
/// (names it resolves, ports that answer), which would make deliveries a scanner.
const UNREACHABLE: &str = "the endpoint could not be reached";
const NOT_ALLOWED: &str = "the endpoint is not one the platform delivers to";

fn answered(status: u16) -> &'static str {
    if status >= 500 { "the endpoint answered a server error" } else { "the endpoint refused the delivery" }
}

/// A failed attempt: what the consultation says, and the cause for the log.
struct Failure {
    told: &'static str,
    cause: String,
}

impl Failure {
    fn new(told: &'static str, cause: impl Into<String>) -> Self {
        Self { told, cause: cause.into() }
    }
}

/// Loopback, private, link-local (cloud metadata), shared, reserved or documentation
/// space, unspecified or multicast: anything but the public internet. IPv6 addresses that
/// carry an IPv4 one (mapped, compatible, NAT64, 6to4) are judged by it.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || a >= 240
                || (a == 100 && (b & 0xc0) == 64)
                || (a == 198 && (b & 0xfe) == 18)
                || (a == 192 && b == 0)
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let embedded =
                |hi: u16, lo: u16| IpAddr::V4(std::net::Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)));
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            if s[..6] == [0; 6] || (s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4]) {
                return is_internal(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return is_internal(embedded(s[1], s[2]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] == 0x2001 && s[1] == 0x0db8)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_known() {
        for internal in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "172.16.0.1",
            "169.254.169.254",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "198.18.0.1",
            "240.0.0.1",
            "64:ff9b::a00:1",
            "::7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::",
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
