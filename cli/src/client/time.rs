//! Times and durations as people type them on a command line.

use chrono::{DateTime, NaiveDate, Utc};

/// RFC 3339 (`2030-01-01T12:00:00Z`, any offset) or a date (`2030-01-01`, midnight UTC).
pub fn parse_time(s: &str) -> Result<DateTime<Utc>, String> {
    if let Ok(at) = DateTime::parse_from_rfc3339(s) {
        return Ok(at.with_timezone(&Utc));
    }
    match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        Ok(day) => Ok(day.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc()),
        Err(_) => Err(format!("{s:?} is not a time: use RFC 3339 (2030-01-01T12:00:00Z) or a date (2030-01-01)")),
    }
}

/// Seconds, or a number with a unit: `90`, `90s`, `30m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let invalid = || format!("{s:?} is not a duration: use seconds (3600) or 30m, 12h, 7d");
    let (number, unit) = s.find(|c: char| !c.is_ascii_digit()).map_or((s, ""), |at| s.split_at(at));
    let number: u64 = number.parse().map_err(|_| invalid())?;
    let seconds_per = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(invalid()),
    };
    number.checked_mul(seconds_per).ok_or_else(invalid)
}

/// A time as the API takes it in a query: RFC 3339 in UTC, to the second.
pub fn query(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_rfc_3339_or_a_date() {
        assert_eq!(query(parse_time("2030-01-01T12:00:00+02:00").unwrap()), "2030-01-01T10:00:00Z");
        assert_eq!(query(parse_time("2030-01-01").unwrap()), "2030-01-01T00:00:00Z");
        assert!(parse_time("tomorrow").unwrap_err().contains("RFC 3339"));
    }

    #[test]
    fn durations_take_a_unit() {
        assert_eq!(parse_duration("90"), Ok(90));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("7d"), Ok(604_800));
        assert!(parse_duration("1w").is_err() && parse_duration("h").is_err() && parse_duration("-1").is_err());
    }
}
