//! Keyset pagination, once for every list: a page is the rows after a cursor (an id) in
//! the list's order, and the next cursor is the last id of a full page.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Select};
use uuid::Uuid;

use crate::error::FieldViolation;

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

    /// `select` narrowed to this page, oldest first by `id` (ids are time-ordered): the
    /// rows after the cursor, one more than the limit (it tells whether a page follows).
    pub fn apply<E: EntityTrait>(&self, select: Select<E>, id: impl ColumnTrait) -> Select<E> {
        let select = match self.after {
            Some(cursor) => select.filter(id.gt(cursor)),
            None => select,
        };
        select.order_by_asc(id).limit(self.limit + 1)
    }

    /// Like [`apply`](Self::apply), newest first: the rows before the cursor.
    pub fn apply_newest_first<E: EntityTrait>(&self, select: Select<E>, id: impl ColumnTrait) -> Select<E> {
        let select = match self.after {
            Some(cursor) => select.filter(id.lt(cursor)),
            None => select,
        };
        select.order_by_desc(id).limit(self.limit + 1)
    }

    /// Given up to `limit + 1` rows, the page and its next cursor (empty on the last page).
    pub fn split<T>(&self, mut rows: Vec<T>, id: impl Fn(&T) -> Uuid) -> (Vec<T>, String) {
        let limit = usize::try_from(self.limit).unwrap_or(usize::MAX);
        let next_cursor = if rows.len() > limit {
            rows.truncate(limit);
            rows.last().map(|r| id(r).to_string()).unwrap_or_default()
        } else {
            String::new()
        };
        (rows, next_cursor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_cursors_are_checked() {
        assert_eq!(Page::parse(0, "").unwrap().limit, DEFAULT_PAGE_SIZE);
        assert!(Page::parse(101, "").is_err());
        assert!(Page::parse(10, "not-a-cursor").is_err());
    }

    #[test]
    fn a_full_page_names_the_next_cursor() {
        let page = Page::parse(2, "").unwrap();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        let (rows, next) = page.split(ids.clone(), |id| *id);
        assert_eq!((rows.len(), next), (2, ids[1].to_string()));
        let (rows, next) = page.split(ids[..2].to_vec(), |id| *id);
        assert_eq!((rows.len(), next), (2, String::new()));
    }
}
