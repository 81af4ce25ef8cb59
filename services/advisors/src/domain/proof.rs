//! What a signature must cover to prove something here: declaring a key proves its
//! possession over the method, the path and the body's digest; an answer is signed over
//! the same (the body is the answer). Freshness: `created` within 300 s.

use std::time::Duration;

use keyplane_common::httpsig::Policy;

pub const MAX_AGE: Duration = Duration::from_secs(300);
const COVERED: &[&str] = &["@method", "@path", "content-digest"];

/// The policy at `now` (unix seconds).
pub fn policy(now: i64) -> Policy<'static> {
    Policy { required: COVERED, max_age: MAX_AGE, now }
}
