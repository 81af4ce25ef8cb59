//! Calendar months in UTC: the unit of retention (and of PostgreSQL partitions).

use chrono::{DateTime, Datelike, TimeZone, Utc};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month {
    pub year: i32,
    pub month: u32,
}

impl Month {
    pub fn of(at: DateTime<Utc>) -> Self {
        Self { year: at.year(), month: at.month() }
    }

    /// `months` before this one.
    pub fn back(self, months: u32) -> Self {
        let index = self.year * 12 + i32::try_from(self.month).unwrap_or(1) - 1 - i32::try_from(months).unwrap_or(0);
        Self { year: index.div_euclid(12), month: u32::try_from(index.rem_euclid(12)).unwrap_or(0) + 1 }
    }

    pub fn next(self) -> Self {
        if self.month == 12 { Self { year: self.year + 1, month: 1 } } else { Self { month: self.month + 1, ..self } }
    }

    pub fn start(self) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(self.year, self.month, 1, 0, 0, 0).single().unwrap_or_default()
    }

    /// The oldest month a retention of `months` keeps at `now`, the current one included.
    pub fn oldest_kept(now: DateTime<Utc>, months: u32) -> Self {
        Self::of(now).back(months.saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_step_over_years() {
        let nov = Month { year: 2026, month: 11 };
        assert_eq!(nov.back(12), Month { year: 2025, month: 11 });
        assert_eq!(nov.back(11), Month { year: 2025, month: 12 });
        assert_eq!(Month { year: 2026, month: 12 }.next(), Month { year: 2027, month: 1 });
        assert_eq!(nov.start().to_rfc3339(), "2026-11-01T00:00:00+00:00");
        assert_eq!(
            Month::oldest_kept(nov.start(), 13),
            Month { year: 2025, month: 11 },
            "13 months, this one included"
        );
    }
}
