//! The editable fields of an org.

use keyplane_common::{error::FieldViolation, text};

pub const MAX_NAME_LEN: usize = 100;
pub const MAX_DESCRIPTION_LEN: usize = 1000;
pub const MAX_URL_LEN: usize = 2048;

pub fn name(raw: &str) -> Result<String, FieldViolation> {
    text::display_text("name", raw, MAX_NAME_LEN)
}

pub fn description(raw: &str) -> Result<String, FieldViolation> {
    text::optional_text("description", raw, MAX_DESCRIPTION_LEN)
}

/// Empty, or an absolute http(s) URL.
pub fn website_url(raw: &str) -> Result<String, FieldViolation> {
    let url = raw.trim();
    if url.is_empty() {
        return Ok(String::new());
    }
    let host = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
    let valid = url.len() <= MAX_URL_LEN
        && host.is_some_and(|h| !h.is_empty() && !h.starts_with('/'))
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(url.to_owned())
    } else {
        Err(FieldViolation::new("website_url", "must be an http:// or https:// URL"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        assert_eq!(website_url("https://acme.example.com").unwrap(), "https://acme.example.com");
        assert_eq!(website_url("").unwrap(), "");
        for bad in ["acme.example.com", "javascript:alert(1)", "https://", "https://a b"] {
            assert!(website_url(bad).is_err(), "{bad}");
        }
    }
}
