//! Reading identifiers and pages from requests.

use uuid::Uuid;

use crate::error::FieldViolation;

/// A UUID from a request field, or a violation naming the field.
pub fn parse_uuid(field: &str, value: &str) -> Result<Uuid, FieldViolation> {
    Uuid::parse_str(value).map_err(|_| FieldViolation::new(field, "must be a UUID"))
}

pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 100;

/// A validated page request: `limit` 1 to 100 (0 means the default), `cursor` an id.
#[derive(Debug, Clone, Copy)]
pub struct Page {
    pub limit: u64,
    pub after: Option<Uuid>,
}

impl Page {
    pub fn from_proto(page: Option<&keyplane_proto::types::v1::PageRequest>) -> Result<Self, FieldViolation> {
        let (limit, cursor) = page.map(|p| (p.limit, p.cursor.as_str())).unwrap_or((0, ""));
        Self::parse(limit, cursor)
    }

    pub fn parse(limit: u32, cursor: &str) -> Result<Self, FieldViolation> {
        let limit = match u64::from(limit) {
            0 => DEFAULT_PAGE_SIZE,
            n if n <= MAX_PAGE_SIZE => n,
            _ => return Err(FieldViolation::new("limit", "must be between 1 and 100")),
        };
        let after = if cursor.is_empty() {
            None
        } else {
            Some(Uuid::parse_str(cursor).map_err(|_| FieldViolation::new("cursor", "is not a cursor from this list"))?)
        };
        Ok(Self { limit, after })
    }

    /// Given up to `limit + 1` rows, the page and its next cursor.
    pub fn split<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, keyplane_proto::types::v1::PageInfo) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| id(r).to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        (rows, keyplane_proto::types::v1::PageInfo { next_cursor })
    }
}
