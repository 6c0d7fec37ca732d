//! Dates as SLS clients send them, and conversions to and from the Unix epoch.
//!
//! No clock here: callers pass the current time in.

/// Nanoseconds in a second.
pub const NANOS_PER_SEC: i64 = 1_000_000_000;

const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = i64::from(month);
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day number since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// The day number of a calendar date, if it is one.
pub fn date_days(year: i64, month: u32, day: u32) -> Option<i64> {
    ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month))
        .then(|| days_from_civil(year, month, day))
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

fn epoch_seconds(year: i64, month: u32, day: u32, hour: u32, minute: u32, second: u32) -> Option<i64> {
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + i64::from(hour) * 3600 + i64::from(minute) * 60 + i64::from(second))
}

fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Parses an RFC 1123 date in GMT, as in `Mon, 3 Jan 2010 08:33:47 GMT`. The day may
/// have one or two digits (the official Go SDK's test vector uses one).
pub fn parse_rfc1123(s: &str) -> Option<i64> {
    let mut parts = s.trim().split_ascii_whitespace();
    let weekday = parts.next()?.strip_suffix(',')?;
    let day = digits(parts.next()?, 1, 2)?;
    let month = parts.next()?;
    let month = MONTHS.iter().position(|m| m.eq_ignore_ascii_case(month))? as u32 + 1;
    let year = digits(parts.next()?, 4, 4)?;
    let mut clock = parts.next()?.split(':');
    let hour = digits(clock.next()?, 2, 2)?;
    let minute = digits(clock.next()?, 2, 2)?;
    let second = digits(clock.next()?, 2, 2)?;
    if clock.next().is_some() || !matches!(parts.next()?, "GMT" | "UTC") || parts.next().is_some() {
        return None;
    }
    // The weekday is not checked against the date: the official Go SDK's own test vector
    // says "Mon, 3 Jan 2010", a Sunday, and its clients must still be understood.
    if !WEEKDAYS.iter().any(|d| d.eq_ignore_ascii_case(weekday)) {
        return None;
    }
    epoch_seconds(i64::from(year), month, day, hour, minute, second)
}

/// Formats seconds since the epoch as an RFC 1123 date, `Mon, 03 Jan 2010 08:33:47 GMT`.
pub fn format_rfc1123(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[days.rem_euclid(7) as usize],
        day,
        MONTHS[month as usize - 1],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses the compact ISO 8601 form SLS signature V4 uses, `20220808T032330Z`.
pub fn parse_iso8601_basic(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || !s.is_ascii() || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    epoch_seconds(
        i64::from(digits(&s[0..4], 4, 4)?),
        digits(&s[4..6], 2, 2)?,
        digits(&s[6..8], 2, 2)?,
        digits(&s[9..11], 2, 2)?,
        digits(&s[11..13], 2, 2)?,
        digits(&s[13..15], 2, 2)?,
    )
}

/// Formats seconds since the epoch as `20220808T032330Z`.
pub fn format_iso8601_basic(secs: i64) -> String {
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{year:04}{month:02}{day:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Parses an ISO 8601 / RFC 3339 date-time (`2025-01-15T10:30:00.123Z`, an offset, or a
/// bare date) into nanoseconds since the epoch. A missing offset means UTC.
pub fn parse_rfc3339_nanos(s: &str) -> Option<i64> {
    let s = s.trim();
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let mut d = date.split('-');
    let year = digits(d.next()?, 4, 4)?;
    let month = digits(d.next()?, 2, 2)?;
    let day = digits(d.next()?, 2, 2)?;
    if d.next().is_some() {
        return None;
    }
    if rest.is_empty() {
        return epoch_seconds(i64::from(year), month, day, 0, 0, 0).map(|s| s * NANOS_PER_SEC);
    }
    let (clock, offset_secs) = if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']) {
        let (c, off) = rest.split_at(i);
        let sign = if off.starts_with('-') { -1 } else { 1 };
        let off = &off[1..];
        let (h, m) = off.split_once(':').unwrap_or((off.get(..2)?, off.get(2..)?));
        (c, sign * (i64::from(digits(h, 2, 2)?) * 3600 + i64::from(digits(m, 2, 2)?) * 60))
    } else {
        (rest, 0)
    };
    let (hms, frac) = clock.split_once(['.', ',']).unwrap_or((clock, ""));
    let mut t = hms.split(':');
    let hour = digits(t.next()?, 2, 2)?;
    let minute = digits(t.next()?, 2, 2)?;
    let second = match t.next() {
        Some(sec) => digits(sec, 2, 2)?,
        None => 0,
    };
    if t.next().is_some() {
        return None;
    }
    let mut nanos = 0i64;
    if !frac.is_empty() {
        if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        nanos = frac.parse::<i64>().ok()? * 10i64.pow(9 - frac.len() as u32);
    }
    let secs = epoch_seconds(i64::from(year), month, day, hour, minute, second)? - offset_secs;
    secs.checked_mul(NANOS_PER_SEC)?.checked_add(nanos)
}

/// Formats nanoseconds since the epoch as RFC 3339 in UTC with milliseconds,
/// `2025-01-15T10:30:00.123Z`, as Proliferate answers.
pub fn format_rfc3339_millis(nanos: i64) -> String {
    let secs = nanos.div_euclid(NANOS_PER_SEC);
    let millis = nanos.rem_euclid(NANOS_PER_SEC) / 1_000_000;
    let (year, month, day) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// The first second whose nanoseconds no longer fit an i64.
const MAX_SECONDS_F64: f64 = 9_223_372_036.0;

/// Parses a decimal number of seconds (`1736938200.123`, `1.7e9`) into nanoseconds,
/// exactly for plain decimals with up to nine fractional digits.
pub fn parse_decimal_seconds(s: &str) -> Option<i64> {
    let s = s.trim();
    let (negative, digits_part) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int, frac) = digits_part.split_once('.').unwrap_or((digits_part, ""));
    let plain = !int.is_empty()
        && int.bytes().all(|b| b.is_ascii_digit())
        && frac.bytes().all(|b| b.is_ascii_digit())
        && int.len() <= 12;
    let nanos = if plain {
        let whole: i64 = int.parse().ok()?;
        let mut frac_nanos = 0i64;
        for (i, b) in frac.bytes().take(9).enumerate() {
            frac_nanos += i64::from(b - b'0') * 10i64.pow(8 - i as u32);
        }
        whole.checked_mul(NANOS_PER_SEC)?.checked_add(frac_nanos)?
    } else {
        let value: f64 = digits_part.parse().ok()?;
        // Beyond what nanoseconds in an i64 hold (the year 2262) is not a time: refused,
        // not saturated to the largest one.
        if !value.is_finite() || value >= MAX_SECONDS_F64 {
            return None;
        }
        (value * 1e9).round() as i64
    };
    Some(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_sdk_dates() {
        assert_eq!(parse_rfc1123("Mon, 3 Jan 2010 08:33:47 GMT"), Some(1_262_507_627));
        assert_eq!(parse_rfc1123("Mon, 03 Jan 2010 08:33:47 GMT"), Some(1_262_507_627));
        assert_eq!(parse_rfc1123("Thu, 12 Nov 2015 06:54:26 GMT"), Some(1_447_311_266));
        assert_eq!(parse_rfc1123("Sun, 3 Jan 2010 08:33:47 GMT"), Some(1_262_507_627));
        assert_eq!(parse_rfc1123("Xyz, 3 Jan 2010 08:33:47 GMT"), None);
        assert_eq!(parse_rfc1123("Mon, 3 Jan 2010 08:33:47"), None);
        assert_eq!(parse_rfc1123("Mon, 31 Feb 2010 08:33:47 GMT"), None);
        assert_eq!(parse_rfc1123("yesterday"), None);
        assert_eq!(parse_iso8601_basic("20220808T032330Z"), Some(1_659_929_010));
        assert_eq!(parse_iso8601_basic("20220808T032330"), None);
    }

    #[test]
    fn parses_rfc3339() {
        assert_eq!(parse_rfc3339_nanos("2025-01-15T10:30:00.123Z"), Some(1_736_937_000_123_000_000));
        assert_eq!(parse_rfc3339_nanos("2025-01-15T12:30:00.123+02:00"), Some(1_736_937_000_123_000_000));
        assert_eq!(parse_rfc3339_nanos("2025-01-15"), Some(1_736_899_200_000_000_000));
        assert_eq!(parse_rfc3339_nanos("2025-01-15T23:59:59Z"), Some(1_736_985_599_000_000_000));
        assert_eq!(parse_rfc3339_nanos("2025-13-15T23:59:59Z"), None);
        assert_eq!(format_rfc3339_millis(1_736_937_000_123_456_789), "2025-01-15T10:30:00.123Z");
    }

    #[test]
    fn parses_decimal_seconds_exactly() {
        assert_eq!(parse_decimal_seconds("1736938200.123"), Some(1_736_938_200_123_000_000));
        assert_eq!(parse_decimal_seconds("1736938200.123456789"), Some(1_736_938_200_123_456_789));
        assert_eq!(parse_decimal_seconds("1736938200"), Some(1_736_938_200_000_000_000));
        assert_eq!(parse_decimal_seconds("1.7369382e9"), Some(1_736_938_200_000_000_000));
        assert_eq!(parse_decimal_seconds("abc"), None);
        assert_eq!(parse_decimal_seconds("1e300"), None);
        // Regression: 1e12 seconds used to saturate to the largest time, where no search
        // ever found it.
        assert_eq!(parse_decimal_seconds("1e12"), None);
        assert_eq!(parse_decimal_seconds("9223372037"), None);
        assert_eq!(parse_decimal_seconds("9.3e9"), None);
        assert_eq!(parse_decimal_seconds("9.2e9"), Some(9_200_000_000_000_000_000));
    }

    /// Found by the `text_parsers` fuzz target: a multi-byte character in `x-log-date`
    /// made the parser slice inside it and panic.
    #[test]
    fn iso8601_basic_with_a_multibyte_char_is_refused_not_a_panic() {
        assert_eq!(parse_iso8601_basic("20220\u{43e}8T032330Z"), None);
        assert_eq!(parse_iso8601_basic("2022080\u{e9}032330Z"), None);
    }

    proptest! {
        #[test]
        fn never_panic_on_any_text(s in "\\PC{0,40}") {
            let _ = parse_rfc1123(&s);
            let _ = parse_iso8601_basic(&s);
            let _ = parse_rfc3339_nanos(&s);
            let _ = parse_decimal_seconds(&s);
        }

        #[test]
        fn rfc1123_round_trips(secs in 0i64..10_000_000_000) {
            prop_assert_eq!(parse_rfc1123(&format_rfc1123(secs)), Some(secs));
            prop_assert_eq!(parse_iso8601_basic(&format_iso8601_basic(secs)), Some(secs));
        }

        #[test]
        fn rfc3339_round_trips(millis in 0i64..4_000_000_000_000) {
            let nanos = millis * 1_000_000;
            prop_assert_eq!(parse_rfc3339_nanos(&format_rfc3339_millis(nanos)), Some(nanos));
        }

        #[test]
        fn civil_round_trips(days in -1_000_000i64..1_000_000) {
            let (y, m, d) = civil_from_days(days);
            prop_assert_eq!(days_from_civil(y, m, d), days);
        }
    }
}
