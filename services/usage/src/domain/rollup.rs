//! Counts of requests per (org, key, hour, status class), as the gateways send them, and
//! the hourly rows a query answers.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use uuid::Uuid;

/// The first digit of an HTTP status: five classes keep the rollups small.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct StatusClass(u8);

impl StatusClass {
    pub fn new(digit: u32) -> Option<Self> {
        u8::try_from(digit).ok().filter(|d| (1..=5).contains(d)).map(Self)
    }

    pub fn digit(self) -> u8 {
        self.0
    }

    /// `2xx`, `4xx`, …
    pub fn label(self) -> String {
        format!("{}xx", self.0)
    }

    /// Client and server errors.
    pub fn is_error(self) -> bool {
        self.0 >= 4
    }
}

/// Requests of one key (None: a session) of an org in one hour, answered in one class.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub org_id: Uuid,
    pub key_id: Option<Uuid>,
    pub hour: DateTime<Utc>,
    pub class: StatusClass,
    pub requests: u64,
}

/// The start of the hour `at` falls in.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// One count per (org, key, hour, class): a batch may name a row twice, and one insert
/// statement may touch each row once.
pub fn merge(counts: impl IntoIterator<Item = Count>) -> Vec<Count> {
    let mut merged: HashMap<(Uuid, Option<Uuid>, DateTime<Utc>, StatusClass), u64> = HashMap::new();
    for c in counts {
        *merged.entry((c.org_id, c.key_id, hour_of(c.hour), c.class)).or_default() += c.requests;
    }
    merged
        .into_iter()
        .filter(|(_, requests)| *requests > 0)
        .map(|((org_id, key_id, hour, class), requests)| Count { org_id, key_id, hour, class, requests })
        .collect()
}

/// One hour of an org's usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hourly {
    pub hour: DateTime<Utc>,
    pub requests: u64,
    pub errors: u64,
    pub by_status: BTreeMap<StatusClass, u64>,
}

/// Hourly rows, oldest first, from (hour, class, requests) sums; hours without requests
/// have no row.
pub fn hourly(sums: impl IntoIterator<Item = (DateTime<Utc>, StatusClass, u64)>) -> Vec<Hourly> {
    let mut hours: BTreeMap<DateTime<Utc>, Hourly> = BTreeMap::new();
    for (hour, class, requests) in sums {
        let row =
            hours.entry(hour).or_insert_with(|| Hourly { hour, requests: 0, errors: 0, by_status: BTreeMap::new() });
        row.requests += requests;
        if class.is_error() {
            row.errors += requests;
        }
        *row.by_status.entry(class).or_default() += requests;
    }
    hours.into_values().filter(|h| h.requests > 0).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().into()
    }

    #[test]
    fn only_the_five_status_classes_exist() {
        assert_eq!(StatusClass::new(0), None);
        assert_eq!(StatusClass::new(6), None);
        assert_eq!(StatusClass::new(4).map(StatusClass::label).as_deref(), Some("4xx"));
        assert!(StatusClass::new(5).unwrap().is_error() && !StatusClass::new(3).unwrap().is_error());
    }

    #[test]
    fn counts_of_one_row_are_merged_into_its_hour() {
        let (org, ok) = (Uuid::now_v7(), StatusClass::new(2).unwrap());
        let count = |at: &str, requests| Count { org_id: org, key_id: None, hour: self::at(at), class: ok, requests };
        let merged = merge([
            count("2026-11-24T10:05:00Z", 2),
            count("2026-11-24T10:59:59Z", 3),
            count("2026-11-24T11:00:00Z", 0),
        ]);
        assert_eq!(merged, vec![count("2026-11-24T10:00:00Z", 5)]);
    }

    #[test]
    fn hours_sum_their_classes_and_count_errors() {
        let class = |d| StatusClass::new(d).unwrap();
        let ten = at("2026-11-24T10:00:00Z");
        let rows = hourly([
            (ten, class(2), 7),
            (ten, class(4), 2),
            (ten, class(5), 1),
            (at("2026-11-24T09:00:00Z"), class(2), 1),
        ]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].hour, at("2026-11-24T09:00:00Z"), "oldest first");
        assert_eq!((rows[1].requests, rows[1].errors), (10, 3));
        assert_eq!(rows[1].by_status.get(&class(4)), Some(&2));
    }
}
