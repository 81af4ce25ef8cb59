use std::{sync::Arc, time::Duration};

use tonic::{
    Request,
    transport::{Channel, Endpoint},
};

use crate::{
    internal_auth::{CLIENT_IP_KEY, Caller, InternalAuth, REQUEST_ID_KEY, USER_AGENT_KEY},
    principal::Principal,
    telemetry,
};

/// A lazily connected channel to a peer: a peer that is down at start-up is an error per
/// call (503), not a start-up failure.
pub fn channel(addr: &str, timeout: Duration) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(addr.to_owned())?
        .timeout(timeout)
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_timeout(Duration::from_secs(10))
        .connect_lazy())
}

/// Builds outgoing requests: the internal token (with the principal the call acts for)
/// and the W3C trace context of the current span.
#[derive(Clone)]
pub struct Outbound {
    auth: Arc<InternalAuth>,
}

impl Outbound {
    pub fn new(auth: Arc<InternalAuth>) -> Self {
        Self { auth }
    }

    /// A request made for `principal` (None: the service acting on its own behalf).
    pub fn request<T>(&self, message: T, principal: Option<&Principal>) -> Request<T> {
        let mut request = Request::new(message);
        self.auth.attach(request.metadata_mut(), principal);
        telemetry::inject(request.metadata_mut());
        request
    }

    /// A request made on behalf of `caller`: its principal, and where the end user's
    /// request came from (for audit records downstream).
    pub fn request_as<T>(&self, message: T, caller: &Caller) -> Request<T> {
        let mut request = self.request(message, caller.principal.as_deref());
        let metadata = request.metadata_mut();
        for (key, value) in [
            (CLIENT_IP_KEY, &caller.client_ip),
            (USER_AGENT_KEY, &caller.user_agent),
            (REQUEST_ID_KEY, &caller.request_id),
        ] {
            if let Ok(value) = value.parse() {
                metadata.insert(key, value);
            }
        }
        request
    }
}
