//! Calendar arithmetic for the few places that read or write UTC times (Docker's RFC 3339
//! times, log timestamps, host certificate validity): no date crate is a dependency for this
//! much. A leaf that every layer may use, like `config`. The one home of calendar code:
//! Docker's times are read here (`parse_rfc3339`) and log times written (`format_rfc3339`).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_index = (month + 9) % 12;
    let day_of_year = (153 * month_index + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date and time of day, UTC, of `secs` since 1970-01-01:
/// `(year, month, day, hour, minute, second)`.
pub fn utc_fields(secs: u64) -> (i64, i64, i64, u64, u64, u64) {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Days to a civil date, the inverse of `days_from_civil`.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day, rest / 3600, rest % 3600 / 60, rest % 60)
}

/// Seconds since 1970-01-01 UTC, now (0 for a clock set before then).
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// `YYYY-MM-DD HH:MM:SS UTC` of `secs` since 1970-01-01 (`u64::MAX`, a certificate's
/// "no end", is `forever`).
pub fn format_unix_time(secs: u64) -> String {
    if secs == u64::MAX {
        return "forever".to_string();
    }
    let (year, month, day, hour, minute, second) = utc_fields(secs);
    format!("{year:04}-{month:02}-{day:02} {hour:02}:{minute:02}:{second:02} UTC")
}

/// Parses an RFC 3339 time, as the Docker daemon writes them (`2026-11-25T11:38:22.472438429Z`). Docker's zero
/// time (`0001-01-01T00:00:00Z`, "never") and anything unparsable give `None`.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || bytes[10] != b'T' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i64> { text.get(range)?.parse().ok() };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    if year <= 1 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos: u32 = 0;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits: String = fraction.chars().take_while(char::is_ascii_digit).collect();
        let padded = format!("{:0<9}", &digits[..digits.len().min(9)]);
        nanos = padded.parse().ok()?;
        rest = &fraction[digits.len()..];
    }
    let offset_seconds = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let hours: i64 = rest.get(1..3)?.parse().ok()?;
            let minutes: i64 = rest.get(4..6)?.parse().ok()?;
            sign * (hours * 3600 + minutes * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_seconds;
    let seconds = u64::try_from(seconds).ok()?;
    Some(UNIX_EPOCH + Duration::new(seconds, nanos))
}

/// `2026-11-25T11:38:22.472438429Z`: UTC, nanoseconds, as the daemon writes its times.
pub fn format_rfc3339(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (year, month, day, hour, minute, second) = utc_fields(since.as_secs());
    format!(
        "{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}.{:09}Z",
        since.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_times() {
        let t = parse_rfc3339("2026-11-25T11:38:22.472438429Z");
        let expected = UNIX_EPOCH + Duration::new(1_795_606_702, 472_438_429);
        assert_eq!(t, Some(expected));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:00+01:00"), Some(UNIX_EPOCH));
        assert_eq!(parse_rfc3339("0001-01-01T00:00:00Z"), None);
        assert_eq!(parse_rfc3339("garbage"), None);
    }

    #[test]
    fn round_trips_and_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(utc_fields(0), (1970, 1, 1, 0, 0, 0));
        // 2024-02-29 12:34:56, a leap day.
        let secs = days_from_civil(2024, 2, 29) as u64 * 86_400 + 12 * 3600 + 34 * 60 + 56;
        assert_eq!(utc_fields(secs), (2024, 2, 29, 12, 34, 56));
        for days in [0i64, 59, 365, 10_956, 20_000, 47_482] {
            let (y, m, d, ..) = utc_fields(days as u64 * 86_400);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
