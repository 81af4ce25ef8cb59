//! The advisors rules: what an advisor, a payload key and a consultation are, and what a
//! signature must cover to count.

pub mod advisor;
pub mod consultation;
pub mod payload_key;
pub mod proof;
