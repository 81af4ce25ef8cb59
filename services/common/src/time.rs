//! Timestamps between chrono and protobuf.

use std::sync::{
    Arc,
    atomic::{AtomicI64, Ordering},
};

use chrono::{DateTime, Utc};

pub fn to_proto(t: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }
}

pub fn from_proto(t: &prost_types::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds, u32::try_from(t.nanos).ok()?)
}

/// Now, truncated to microseconds: what PostgreSQL stores, so a value read back
/// compares equal to the one written.
pub fn now() -> DateTime<Utc> {
    // From the system time in one step: chrono's `Utc::now` and a round trip through
    // microseconds did the calendar arithmetic three times (it runs thrice a request).
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs())
        .ok()
        .and_then(|seconds| DateTime::from_timestamp(seconds, since_epoch.subsec_micros() * 1000))
        .unwrap_or_else(Utc::now)
}

/// The time at which expiry and grace periods are decided: the system's, or one a test
/// moves forward (so no test waits for a key to expire).
#[derive(Clone, Debug, Default)]
pub struct Clock {
    /// Microseconds added to the system's time; None for the system clock itself.
    ahead: Option<Arc<AtomicI64>>,
}

impl Clock {
    pub fn system() -> Self {
        Self { ahead: None }
    }

    /// A clock that starts at the system's time and can be moved forward.
    pub fn adjustable() -> Self {
        Self { ahead: Some(Arc::new(AtomicI64::new(0))) }
    }

    pub fn now(&self) -> DateTime<Utc> {
        let now = now();
        match &self.ahead {
            None => now,
            Some(ahead) => now + chrono::Duration::microseconds(ahead.load(Ordering::SeqCst)),
        }
    }

    /// Whole seconds since the Unix epoch: what rate-limit windows are counted in, read
    /// without chrono's calendar arithmetic (it runs on every limited request).
    pub fn unix_seconds(&self) -> u64 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let ahead_micros = self.ahead.as_ref().map_or(0, |ahead| ahead.load(Ordering::SeqCst));
        let micros = i128::try_from(since_epoch.as_micros()).unwrap_or(i128::MAX) + i128::from(ahead_micros);
        u64::try_from(micros / 1_000_000).unwrap_or(0)
    }

    /// Moves an adjustable clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: std::time::Duration) {
        let ahead = self.ahead.as_ref().expect("only an adjustable clock moves");
        ahead.fetch_add(i64::try_from(by.as_micros()).unwrap_or(i64::MAX), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_adjustable_clock_moves_forward_and_its_clones_with_it() {
        let clock = Clock::adjustable();
        let copy = clock.clone();
        let before = copy.now();
        clock.advance(std::time::Duration::from_secs(3600));
        assert!(copy.now() - before >= chrono::Duration::seconds(3600));
        let seconds = u64::try_from(copy.now().timestamp()).unwrap();
        assert!(copy.unix_seconds().abs_diff(seconds) <= 1, "the same time, in seconds");
        assert!(Clock::system().now() - now() < chrono::Duration::seconds(1));
    }
}
