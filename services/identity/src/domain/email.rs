use keyplane_common::{error::FieldViolation, text};

/// An email address as accounts are keyed by it: trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldViolation> {
        text::email_address("email", raw).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}
