//! A rate: at most `requests` per window of `per_seconds`. The gateway's defaults, an
//! operator's ceiling and a key's own limit are all one.

use std::fmt;

use keyplane_proto::types::v1 as pb;

use crate::error::FieldViolation;

/// Bounds of any rate: windows from a second to a day.
pub const MAX_REQUESTS: u32 = 10_000_000;
pub const MAX_WINDOW_SECS: u32 = 86_400;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

impl RateLimit {
    /// A rate inside the bounds, or the violation naming `field`.
    pub fn new(field: &str, requests: u32, per_seconds: u32) -> Result<Self, FieldViolation> {
        if !(1..=MAX_REQUESTS).contains(&requests) {
            return Err(FieldViolation::new(format!("{field}.requests"), format!("must be 1 to {MAX_REQUESTS}")));
        }
        if !(1..=MAX_WINDOW_SECS).contains(&per_seconds) {
            return Err(FieldViolation::new(format!("{field}.per_seconds"), format!("must be 1 to {MAX_WINDOW_SECS}")));
        }
        Ok(Self { requests, per_seconds })
    }

    /// `6000/60`: requests per seconds, as settings spell it.
    pub fn parse(s: &str) -> Option<Self> {
        let (requests, per) = s.split_once('/')?;
        Self::new("rate", requests.trim().parse().ok()?, per.trim().parse().ok()?).ok()
    }

    /// Whether this rate allows more requests per second than `other` (a key asking for
    /// more than its creator key, or than the operator's ceiling).
    pub fn exceeds(self, other: Self) -> bool {
        u64::from(self.requests) * u64::from(other.per_seconds)
            > u64::from(other.requests) * u64::from(self.per_seconds)
    }

    /// Whether this rate stays inside `bound`: no more requests in a window, and no faster
    /// on average. (A rate with a longer window but the same average could still be spent
    /// at once: 10,000,000 a day is not inside 60,000 a minute.)
    pub fn within(self, bound: Self) -> bool {
        self.requests <= bound.requests && !self.exceeds(bound)
    }

    pub fn to_proto(self) -> pb::RateLimit {
        pb::RateLimit { requests: self.requests, per_seconds: self.per_seconds }
    }

    /// A rate from the wire; an empty or out-of-bounds one reads as none.
    pub fn from_proto(rate: Option<&pb::RateLimit>) -> Option<Self> {
        rate.and_then(|r| Self::new("rate_limit", r.requests, r.per_seconds).ok())
    }
}

impl fmt::Display for RateLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.requests, self.per_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_compare_and_stay_in_bounds() {
        let rate = RateLimit::parse("6000/60").unwrap();
        assert_eq!(rate, RateLimit { requests: 6000, per_seconds: 60 });
        assert_eq!(rate.to_string(), "6000/60");
        for bad in ["", "60", "0/60", "60/0", "1/86401", "x/60", "-1/60"] {
            assert_eq!(RateLimit::parse(bad), None, "{bad}");
        }
        let faster = RateLimit::parse("101/1").unwrap();
        assert!(faster.exceeds(rate) && !rate.exceeds(faster) && !rate.exceeds(rate));
        assert!(!RateLimit::parse("100/1").unwrap().exceeds(rate), "the same rate, another window");
        assert!(RateLimit::parse("100/1").unwrap().within(rate) && rate.within(rate));
        assert!(
            !RateLimit::parse("10000000/86400").unwrap().within(RateLimit::parse("60000/60").unwrap()),
            "a day's burst"
        );
        assert!(RateLimit::parse("3/61").unwrap().within(RateLimit::parse("5/60").unwrap()));
        assert_eq!(RateLimit::new("rate_limit", 0, 1).unwrap_err().field, "rate_limit.requests");
    }
}
