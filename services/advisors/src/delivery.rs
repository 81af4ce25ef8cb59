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
const BATCH: u64 = 20;

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

    async fn deliver_due(&self) -> Result<(), crate::error::Error> {
        for (consultation, endpoint) in self.store.due_deliveries(self.clock.now(), BATCH).await? {
            let attempts = consultation.delivery.as_ref().map_or(0, |d| d.attempts) + 1;
            let now = self.clock.now();
            let attempt = match self.deliver(&consultation, &endpoint).await {
                Ok(()) => Attempt {
                    status: DeliveryStatus::Delivered,
                    attempts,
                    error: None,
                    next_at: None,
                    delivered_at: Some(now),
                },
                Err(error) => {
                    tracing::info!(consultation_id = %consultation.id, attempts, %error, "consultation delivery failed");
                    let next = retry_after(attempts).and_then(|wait| chrono::Duration::from_std(wait).ok());
                    Attempt {
                        status: if next.is_some() { DeliveryStatus::Pending } else { DeliveryStatus::Failed },
                        attempts,
                        error: Some(error),
                        next_at: next.map(|wait| now + wait),
                        delivered_at: None,
                    }
                }
            };
            self.store.record_attempt(consultation.id, &attempt).await?;
        }
        Ok(())
    }

    async fn deliver(&self, consultation: &Consultation, endpoint: &str) -> Result<(), String> {
        let url = reqwest::Url::parse(endpoint).map_err(|e| format!("bad endpoint: {e}"))?;
        let host = url.host_str().ok_or("the endpoint has no host")?.to_owned();
        let port = url.port_or_known_default().ok_or("the endpoint has no port")?;
        let address = self.checked_address(&host, port).await?;
        let body = serde_json::to_vec(&self.payload(consultation)).map_err(|e| e.to_string())?;
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
        let (input, signature) =
            self.keys.sign(&message, Utc::now().timestamp(), &nonce).map_err(|e| format!("signing: {e}"))?;
        message.headers.push(("signature-input".into(), input));
        message.headers.push(("signature".into(), signature));
        // Connect to the address checked above, not to whatever the name says by then.
        let client = reqwest::Client::builder()
            .resolve(&host, address)
            .timeout(ATTEMPT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let mut request = client.post(url);
        for (name, value) in &message.headers {
            request = request.header(name, value);
        }
        let response = request.body(message.body).send().await.map_err(|e| format!("unreachable: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("the endpoint answered {}", response.status()))
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
    async fn checked_address(&self, host: &str, port: u16) -> Result<std::net::SocketAddr, String> {
        let addresses: Vec<std::net::SocketAddr> =
            tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
        let first = *addresses.first().ok_or_else(|| format!("{host} has no address"))?;
        if !self.private_endpoints && addresses.iter().any(|a| is_internal(a.ip())) {
            return Err(format!("{host} resolves to a loopback or private address"));
        }
        Ok(first)
    }
}

/// Loopback, private, link-local (cloud metadata), unspecified or otherwise not public.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_internal(IpAddr::V4(v4));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
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
        ] {
            assert!(is_internal(internal.parse().unwrap()), "{internal}");
        }
        for public in ["93.184.216.34", "2606:4700::1111"] {
            assert!(!is_internal(public.parse().unwrap()), "{public}");
        }
    }
}
