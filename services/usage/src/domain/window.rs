//! The window a usage query reads: both ends given, `from < to`, at most 93 days, so one
//! answer stays small (93 × 24 hours × 5 status classes rows at most).

use chrono::{DateTime, Duration, Utc};
use keyplane_common::error::FieldViolation;

pub const MAX_DAYS: i64 = 93;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Window {
    pub fn new(from: Option<DateTime<Utc>>, to: Option<DateTime<Utc>>) -> Result<Self, Vec<FieldViolation>> {
        let (from, to) = match (from, to) {
            (Some(from), Some(to)) => (from, to),
            (from, to) => {
                let mut missing = Vec::new();
                if from.is_none() {
                    missing.push(FieldViolation::new("from", "is required (RFC 3339)"));
                }
                if to.is_none() {
                    missing.push(FieldViolation::new("to", "is required (RFC 3339)"));
                }
                return Err(missing);
            }
        };
        if from >= to {
            return Err(vec![FieldViolation::new("to", "must be after from")]);
        }
        if to - from > Duration::days(MAX_DAYS) {
            return Err(vec![FieldViolation::new("to", format!("must be at most {MAX_DAYS} days after from"))]);
        }
        Ok(Self { from, to })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Option<DateTime<Utc>> {
        Some(DateTime::parse_from_rfc3339(s).unwrap().into())
    }

    #[test]
    fn a_window_has_both_ends_in_order_and_is_at_most_93_days() {
        assert!(Window::new(at("2026-01-01T00:00:00Z"), at("2026-04-04T00:00:00Z")).is_ok(), "93 days");
        let fields = |r: Result<Window, Vec<FieldViolation>>| -> Vec<String> {
            r.unwrap_err().into_iter().map(|v| v.field).collect()
        };
        assert_eq!(fields(Window::new(None, None)), ["from", "to"]);
        assert_eq!(fields(Window::new(at("2026-01-02T00:00:00Z"), at("2026-01-01T00:00:00Z"))), ["to"]);
        assert_eq!(fields(Window::new(at("2026-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z"))), ["to"]);
        assert_eq!(fields(Window::new(at("2026-01-01T00:00:00Z"), at("2026-04-04T00:00:01Z"))), ["to"]);
    }
}
