//! UTC date rendering and parsing, by hand (no chrono): Dart's
//! `DateTime.toString()` for stored metadata dates, ISO-8601 for the
//! post-2024 `cAt/uAt/eAt/aAt` fields, `notify:list`'s `yyyy-mm-dd` days, and
//! the `info` uptime words.

/// Milliseconds in a UTC day (no leap seconds, as in Dart and Unix time):
/// a day parsed by [`parse_utc_day`] ends this much minus one after it starts.
pub const MS_PER_DAY: i64 = 86_400_000;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// days-from-civil, valid for every i32 year).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

struct Parts {
    y: i64,
    mo: i64,
    d: i64,
    h: i64,
    mi: i64,
    s: i64,
    ms: i64,
}

fn split(epoch_ms: i64) -> Parts {
    let days = epoch_ms.div_euclid(MS_PER_DAY);
    let rem = epoch_ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    Parts {
        y,
        mo,
        d,
        h: rem / 3_600_000,
        mi: rem / 60_000 % 60,
        s: rem / 1000 % 60,
        ms: rem % 1000,
    }
}

/// Dart's year rendering: four digits (with `-` when negative), or a signed
/// six-digit form once the year needs five digits.
fn year(y: i64) -> String {
    match y {
        10_000.. => format!("+{y:06}"),
        ..=-10_000 => format!("-{:06}", -y),
        0.. => format!("{y:04}"),
        _ => format!("-{:04}", -y),
    }
}

/// `2024-10-24 10:00:00.123Z`: Dart `DateTime.toString()` of a UTC time with
/// millisecond precision (always three fractional digits).
pub fn format_dart_utc(epoch_ms: i64) -> String {
    format_utc(epoch_ms, ' ')
}

/// `2024-10-24T10:00:00.123Z`: ISO-8601 UTC with milliseconds.
pub fn format_iso_utc(epoch_ms: i64) -> String {
    format_utc(epoch_ms, 'T')
}

/// Date and time separated by `separator`, three fractional digits, `Z`.
fn format_utc(epoch_ms: i64, separator: char) -> String {
    let p = split(epoch_ms);
    format!(
        "{}-{:02}-{:02}{separator}{:02}:{:02}:{:02}.{:03}Z",
        year(p.y),
        p.mo,
        p.d,
        p.h,
        p.mi,
        p.s,
        p.ms
    )
}

fn digits(b: &[u8]) -> Option<i64> {
    if b.is_empty() || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(
        b.iter()
            .fold(0i64, |acc, &c| acc * 10 + i64::from(c - b'0')),
    )
}

/// Length of the metadata fragment's timestamp at the start of `s`
/// (`\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z`, letters in any case as the
/// reference regex is case-insensitive), or `None`.
pub fn iso_prefix_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd";
    if b.len() < shape.len() + 1 {
        return None;
    }
    for (c, want) in b.iter().zip(shape) {
        let ok = match want {
            b'd' => c.is_ascii_digit(),
            b'T' => c.eq_ignore_ascii_case(&b'T'),
            _ => c == want,
        };
        if !ok {
            return None;
        }
    }
    let mut i = shape.len();
    if b.get(i) == Some(&b'.') {
        let start = i + 1;
        i = start;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return None;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => Some(i + 1),
        _ => None,
    }
}

/// Parses the fragment timestamp form into epoch milliseconds, truncating
/// extra fractional digits (clients send microseconds; the server keeps ms).
/// Out-of-range fields (month 13, hour 24, Feb 30) are refused.
pub fn parse_iso_utc(s: &str) -> Option<i64> {
    if iso_prefix_len(s)? != s.len() {
        return None;
    }
    let b = s.as_bytes();
    let y = digits(&b[0..4])?;
    let mo = digits(&b[5..7])?;
    let d = digits(&b[8..10])?;
    let h = digits(&b[11..13])?;
    let mi = digits(&b[14..16])?;
    let sec = digits(&b[17..19])?;
    let mut ms = 0;
    if b[19] == b'.' {
        let frac = &b[20..b.len() - 1];
        let mut scale = 100;
        for &c in frac.iter().take(3) {
            ms += i64::from(c - b'0') * scale;
            scale /= 10;
        }
    }
    if h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(day_start_ms(y, mo, d)? + ((h * 60 + mi) * 60 + sec) * 1000 + ms)
}

/// Epoch ms of 00:00 UTC on a calendar day, or `None` when the month or
/// day does not exist (month 13, Feb 30).
fn day_start_ms(y: i64, mo: i64, d: i64) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(mo).ok()?.checked_sub(1)?)?;
    if d < 1 || d > max_day {
        return None;
    }
    Some(days_from_civil(y, mo, d) * MS_PER_DAY)
}

/// Parses a `yyyy-mm-dd` day (`notify:list`'s dates) into the epoch ms of
/// its first millisecond, UTC. Exactly four, two and two digits: the
/// reference parses the date with Dart's `DateTime.parse`, which needs
/// two-digit months and days too. A day that does not exist is refused
/// rather than rolled over into the next month.
pub fn parse_utc_day(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    day_start_ms(digits(&b[0..4])?, digits(&b[5..7])?, digits(&b[8..10])?)
}

/// `info`'s uptime: larger units appear only once they (or a larger one) are
/// non-zero; seconds always (verbs.md §19).
pub fn uptime_words(ms: u64) -> String {
    let secs = ms / 1000;
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d} days {h} hours {m} minutes {s} seconds")
    } else if h > 0 {
        format!("{h} hours {m} minutes {s} seconds")
    } else if m > 0 {
        format!("{m} minutes {s} seconds")
    } else {
        format!("{s} seconds")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(format_dart_utc(0), "1970-01-01 00:00:00.000Z");
        // 2024-10-24T10:00:00.123Z
        assert_eq!(
            format_dart_utc(1_729_764_000_123),
            "2024-10-24 10:00:00.123Z"
        );
        assert_eq!(
            format_iso_utc(1_729_764_000_123),
            "2024-10-24T10:00:00.123Z"
        );
        // A leap day and the day after.
        assert_eq!(format_iso_utc(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(format_iso_utc(951_868_799_999), "2000-02-29T23:59:59.999Z");
        assert_eq!(format_iso_utc(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(
            format_dart_utc(253_402_300_800_000),
            "+010000-01-01 00:00:00.000Z"
        );
    }

    #[test]
    fn parses_iso_and_truncates_to_ms() {
        assert_eq!(
            parse_iso_utc("2024-10-24T10:00:00.123Z"),
            Some(1_729_764_000_123)
        );
        assert_eq!(
            parse_iso_utc("2024-10-24T10:00:00.123456Z"),
            Some(1_729_764_000_123)
        );
        assert_eq!(
            parse_iso_utc("2024-10-24t10:00:00z"),
            Some(1_729_764_000_000)
        );
        assert_eq!(
            parse_iso_utc("2024-10-24T10:00:00.1Z"),
            Some(1_729_764_000_100)
        );
        assert_eq!(parse_iso_utc("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        for bad in [
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-10-24T24:00:00Z",
            "2024-10-24T10:00:00.Z",
            "2024-10-24 10:00:00Z",
            "2024-10-24T10:00:00",
            "x",
        ] {
            assert_eq!(parse_iso_utc(bad), None, "{bad}");
        }
    }

    #[test]
    fn days_parse_to_their_first_millisecond_and_only_real_days_parse() {
        assert_eq!(parse_utc_day("2024-10-24"), Some(1_729_728_000_000));
        assert_eq!(parse_utc_day("1970-01-01"), Some(0));
        assert_eq!(parse_utc_day("2000-02-29"), Some(951_782_400_000));
        for bad in [
            "2023-02-29",
            "2024-13-01",
            "2024-00-10",
            "2024-10-00",
            "2024-1-5",
            "2024-10-5",
            "2024-10-24T",
            "2024/10/24",
            "abcd-ef-gh",
            "",
        ] {
            assert_eq!(parse_utc_day(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trips_every_day_for_a_few_centuries() {
        let mut t = days_from_civil(1890, 1, 1) * MS_PER_DAY + 45_296_789;
        let end = days_from_civil(2210, 1, 1) * MS_PER_DAY;
        while t < end {
            assert_eq!(parse_iso_utc(&format_iso_utc(t)), Some(t));
            t += MS_PER_DAY;
        }
    }

    #[test]
    fn uptime_words_match_the_reference_shapes() {
        assert_eq!(uptime_words(5_999), "5 seconds");
        assert_eq!(uptime_words(125_000), "2 minutes 5 seconds");
        assert_eq!(uptime_words(5_729_000), "1 hours 35 minutes 29 seconds");
        assert_eq!(
            uptime_words(86_407_000),
            "1 days 0 hours 0 minutes 7 seconds"
        );
    }
}
