//! A question to an advisor, its delivery to the advisor's endpoint, and its signed answer.

use chrono::{DateTime, Utc};
use keyplane_common::httpsig::Message;
use uuid::Uuid;

pub const PENDING: &str = "pending";
pub const ANSWERED: &str = "answered";
pub const MAX_QUESTION_LEN: usize = 10_000;
pub const MAX_CONTEXT_BYTES: usize = 64 * 1024;

/// Deliveries are tried this many times, with doubling waits from one second.
pub const DELIVERY_ATTEMPTS: u32 = 6;

#[derive(Clone, Debug, PartialEq)]
pub struct Consultation {
    pub id: Uuid,
    pub advisor_id: Uuid,
    pub org_id: Uuid,
    pub question: String,
    /// A JSON object, as text.
    pub context_json: String,
    pub status: String,
    pub requested_by: String,
    pub created_at: DateTime<Utc>,
    pub answer: Option<Answer>,
    pub delivery: Option<Delivery>,
}

/// The signed answer, with the request exactly as it was signed.
#[derive(Clone, Debug, PartialEq)]
pub struct Answer {
    pub text: String,
    pub answered_at: DateTime<Utc>,
    pub key_id: String,
    pub signed: Message,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryStatus {
    Pending,
    Delivered,
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// After a failed attempt (the `attempts`-th): when to try again, or None to give up.
pub fn retry_after(attempts: u32) -> Option<std::time::Duration> {
    (attempts < DELIVERY_ATTEMPTS).then(|| std::time::Duration::from_secs(1 << attempts.saturating_sub(1).min(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_back_off_then_give_up() {
        let waits: Vec<u64> = (1..=DELIVERY_ATTEMPTS).filter_map(retry_after).map(|d| d.as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16]);
    }
}
