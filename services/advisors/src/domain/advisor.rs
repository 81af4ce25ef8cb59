//! An advisor agent of an org, and what registering one asks for.

use chrono::{DateTime, Utc};
use keyplane_common::{error::FieldViolation, text};
use uuid::Uuid;

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 2_000;
pub const MAX_URL_LEN: usize = 2_048;

#[derive(Clone, Debug, PartialEq)]
pub struct Advisor {
    pub id: Uuid,
    pub org_id: Uuid,
    pub name: String,
    pub description: String,
    /// Where new consultations are delivered; empty for none.
    pub endpoint_url: String,
    pub status: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
}

/// The fields of a new advisor, checked: a name, a description, and an `http(s)` endpoint
/// without credentials in it (those would be stored and shown).
pub fn fields(
    name: &str,
    description: &str,
    endpoint_url: &str,
) -> Result<(String, String, String), Vec<FieldViolation>> {
    let mut violations = Vec::new();
    let name = text::display_text("name", name, MAX_NAME_LEN).map_err(|v| violations.push(v)).ok();
    let description = if description.trim().is_empty() {
        Some(String::new())
    } else {
        text::long_text("description", description, MAX_DESCRIPTION_LEN).map_err(|v| violations.push(v)).ok()
    };
    let endpoint = endpoint(endpoint_url.trim()).map_err(|v| violations.push(v)).ok();
    match (name, description, endpoint) {
        (Some(n), Some(d), Some(e)) => Ok((n, d, e)),
        _ => Err(violations),
    }
}

fn endpoint(url: &str) -> Result<String, FieldViolation> {
    if url.is_empty() {
        return Ok(String::new());
    }
    let problem = |p: &str| FieldViolation::new("endpoint_url", p.to_owned());
    if url.len() > MAX_URL_LEN {
        return Err(problem("is too long"));
    }
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| problem("must be an http(s) URL"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.is_empty() || authority.contains('@') {
        return Err(problem("must name a host, without credentials"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(problem("must not contain spaces or control characters"));
    }
    Ok(url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_is_http_without_credentials() {
        assert!(fields("Acme", "", "https://advisor.example/hook").is_ok());
        assert!(fields("Acme", "", "").is_ok(), "no endpoint");
        for bad in ["ftp://x", "https://user:pass@host/x", "https:///x", "http://a b", "javascript:alert(1)"] {
            assert_eq!(fields("Acme", "", bad).unwrap_err()[0].field, "endpoint_url", "{bad}");
        }
        assert_eq!(fields("", "", "").unwrap_err()[0].field, "name");
    }
}
