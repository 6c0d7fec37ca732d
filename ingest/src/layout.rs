//! Object keys: the one place they are formatted and parsed.
//!
//! ```text
//! raw/{project}/{logstore}/{batch id}.batch     one raw batch per accepted request
//! tables/{project}/{logstore}/                  one Delta Lake table per logstore
//!   date=YYYY-MM-DD/part-....parquet              partitioned by event date (UTC)
//!   date=YYYY-MM/, date=YYYY/                     logs that arrived long after (or before)
//!                                                 their time, by month or year
//!   _delta_log/
//! ```
//!
//! The partition of a log ([`Partition::of`]) is its UTC date when it arrived within
//! [`RECENT_NS`] (7 days, SLS's line between real-time and historical data) of its own
//! time, its month when it arrived within [`NEAR_NS`] (a year), and its year otherwise.
//! One request whose logs carry two thousand dates then makes a handful of files, not
//! two thousand. The names sort so that every log of time `t` is in a partition between
//! [`partition_floor`]`(t)` and [`partition_date`]`(t)`, which is what queries filter on.
//!
//! Names are percent-encoded outside `[A-Za-z0-9_-]` (a leading `.` too), so that no
//! name can escape its prefix; [`crate::config::check_name`] keeps configured names
//! plain anyway.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use std::fmt;
use std::str::FromStr;

use crate::batch::BatchId;

/// The prefix under which every raw batch lives.
pub const RAW_ROOT: &str = "raw/";
/// The prefix under which every logstore's table lives.
pub const TABLES_ROOT: &str = "tables/";

/// Where one logstore's Delta table lives, without a trailing slash.
pub fn table_prefix(project: &str, logstore: &str) -> String {
    format!("{TABLES_ROOT}{}/{}", encode_segment(project), encode_segment(logstore))
}

/// The day partition of an event time: its UTC date, `YYYY-MM-DD`, the greatest
/// partition name a log of that time can have.
pub fn partition_date(time_ns: i64) -> String {
    Partition::Day(time_ns.div_euclid(NANOS_PER_DAY)).to_string()
}

/// The least partition name a log of time `time_ns` can have: its year, `YYYY`.
pub fn partition_floor(time_ns: i64) -> String {
    Partition::Year(crate::time::civil_from_days(time_ns.div_euclid(NANOS_PER_DAY)).0).to_string()
}

const NANOS_PER_DAY: i64 = crate::time::NANOS_PER_SEC * 86_400;
/// A log that arrives within this of its own time (either way) gets its day's partition.
pub const RECENT_NS: i64 = 7 * NANOS_PER_DAY;
/// A log that arrives within this of its own time gets at least its month's partition.
pub const NEAR_NS: i64 = 366 * NANOS_PER_DAY;

/// A table partition: a day, a month or a year (UTC).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Partition {
    /// Days since 1970-01-01.
    Day(i64),
    Month(i64, u32),
    Year(i64),
}

impl Partition {
    /// The partition of a log of time `time_ns` that arrived at `received_ns`.
    pub fn of(time_ns: i64, received_ns: i64) -> Self {
        let day = time_ns.div_euclid(NANOS_PER_DAY);
        let late = time_ns.abs_diff(received_ns);
        if late <= RECENT_NS.unsigned_abs() {
            return Self::Day(day);
        }
        let (year, month, _) = crate::time::civil_from_days(day);
        if late <= NEAR_NS.unsigned_abs() { Self::Month(year, month) } else { Self::Year(year) }
    }

    /// Every partition a log of time `time_ns` can be in: its day's, month's and year's.
    pub fn candidates(time_ns: i64) -> [Self; 3] {
        let day = time_ns.div_euclid(NANOS_PER_DAY);
        let (year, month, _) = crate::time::civil_from_days(day);
        [Self::Day(day), Self::Month(year, month), Self::Year(year)]
    }

    /// The first day it holds, since 1970-01-01.
    fn first_day(&self) -> i64 {
        match *self {
            Self::Day(day) => day,
            Self::Month(year, month) => crate::time::days_from_civil(year, month, 1),
            Self::Year(year) => crate::time::days_from_civil(year, 1, 1),
        }
    }

    /// The day after the last it holds.
    fn end_day(&self) -> i64 {
        match *self {
            Self::Day(day) => day + 1,
            Self::Month(year, 12) => crate::time::days_from_civil(year + 1, 1, 1),
            Self::Month(year, month) => crate::time::days_from_civil(year, month + 1, 1),
            Self::Year(year) => crate::time::days_from_civil(year + 1, 1, 1),
        }
    }

    /// Whether every log it can hold is older than `time_ns` (retention).
    pub fn ends_before(&self, time_ns: i64) -> bool {
        self.end_day().saturating_mul(NANOS_PER_DAY) <= time_ns
    }

    /// A number that tells partitions apart and orders them by their first day.
    pub fn key(&self) -> i64 {
        let kind = match self {
            Self::Day(_) => 0,
            Self::Month(..) => 1,
            Self::Year(_) => 2,
        };
        self.first_day() * 4 + kind
    }

    /// The partition of a [`Partition::key`].
    pub fn from_key(key: i64) -> Self {
        let (day, kind) = (key.div_euclid(4), key.rem_euclid(4));
        let (year, month, _) = crate::time::civil_from_days(day);
        match kind {
            0 => Self::Day(day),
            1 => Self::Month(year, month),
            _ => Self::Year(year),
        }
    }
}

impl fmt::Display for Partition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Day(day) => {
                let (year, month, day) = crate::time::civil_from_days(day);
                write!(f, "{year:04}-{month:02}-{day:02}")
            }
            Self::Month(year, month) => write!(f, "{year:04}-{month:02}"),
            Self::Year(year) => write!(f, "{year:04}"),
        }
    }
}

impl FromStr for Partition {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || KeyError(s.to_owned());
        let number = |part: &str, len: usize| -> Result<i64, KeyError> {
            if part.len() == len && part.bytes().all(|b| b.is_ascii_digit()) {
                part.parse().map_err(|_| err())
            } else {
                Err(err())
            }
        };
        let parts: Vec<&str> = s.split('-').collect();
        match parts.as_slice() {
            [year] => Ok(Self::Year(number(year, 4)?)),
            [year, month] => {
                let month = u32::try_from(number(month, 2)?).map_err(|_| err())?;
                if !(1..=12).contains(&month) {
                    return Err(err());
                }
                Ok(Self::Month(number(year, 4)?, month))
            }
            [year, month, day] => {
                let month = u32::try_from(number(month, 2)?).map_err(|_| err())?;
                let day = u32::try_from(number(day, 2)?).map_err(|_| err())?;
                Ok(Self::Day(crate::time::date_days(number(year, 4)?, month, day).ok_or_else(err)?))
            }
            _ => Err(err()),
        }
    }
}
const BATCH_SUFFIX: &str = ".batch";

const NAME: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.');

/// Writes a name as one path segment.
pub fn encode_segment(name: &str) -> String {
    let encoded = utf8_percent_encode(name, NAME).to_string();
    match encoded.strip_prefix('.') {
        Some(rest) => format!("%2E{rest}"),
        None => encoded,
    }
}

/// Reads a name back from a path segment; only the canonical encoding is accepted.
pub fn decode_segment(segment: &str) -> Option<String> {
    let name = percent_decode_str(segment).decode_utf8().ok()?.into_owned();
    (!name.is_empty() && encode_segment(&name) == segment).then_some(name)
}

/// The key of one raw batch.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RawBatchKey {
    pub project: String,
    pub logstore: String,
    pub id: BatchId,
}

impl RawBatchKey {
    /// The prefix of one logstore's raw batches.
    pub fn prefix(project: &str, logstore: &str) -> String {
        format!("{RAW_ROOT}{}/{}/", encode_segment(project), encode_segment(logstore))
    }
}

impl fmt::Display for RawBatchKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{BATCH_SUFFIX}", Self::prefix(&self.project, &self.logstore), self.id)
    }
}

/// Why a key is not a raw batch key.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a raw batch key")]
pub struct KeyError(pub String);

impl FromStr for RawBatchKey {
    type Err = KeyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || KeyError(s.to_owned());
        let rest = s.strip_prefix(RAW_ROOT).ok_or_else(err)?;
        let mut parts = rest.split('/');
        let (Some(project), Some(logstore), Some(file), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(err());
        };
        let id = file.strip_suffix(BATCH_SUFFIX).ok_or_else(err)?.parse().map_err(|_| err())?;
        Ok(Self {
            project: decode_segment(project).ok_or_else(err)?,
            logstore: decode_segment(logstore).ok_or_else(err)?,
            id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tables_and_partitions_look_like_this() {
        assert_eq!(table_prefix("shop", "nginx"), "tables/shop/nginx");
        assert_eq!(partition_date(0), "1970-01-01");
        assert_eq!(partition_date(1_736_937_000_123_000_000), "2025-01-15");
        assert_eq!(partition_date(-1), "1969-12-31");
        let t = 1_736_937_000_123_000_000;
        let day = 86_400 * 1_000_000_000i64;
        assert_eq!(Partition::of(t, t + 6 * day).to_string(), "2025-01-15");
        assert_eq!(Partition::of(t, t - 6 * day).to_string(), "2025-01-15", "a little early too");
        assert_eq!(Partition::of(t, t + 8 * day).to_string(), "2025-01");
        assert_eq!(Partition::of(t, t + 400 * day).to_string(), "2025");
        assert_eq!(partition_floor(t), "2025");
        assert_eq!("2025-01".parse::<Partition>().unwrap(), Partition::Month(2025, 1));
        assert!(Partition::Month(2025, 1).ends_before(t + 17 * day) && !Partition::Month(2025, 1).ends_before(t));
        assert!(Partition::Year(2024).ends_before(t));
        for bad in ["2025-13", "2025-1", "25", "2025-02-30", "x", "2025-01-15-1"] {
            assert!(bad.parse::<Partition>().is_err(), "{bad}");
        }
    }

    /// Regression: one request whose logs carried 2,000 dates made 2,000 files.
    #[test]
    fn far_stragglers_share_few_partitions() {
        let day = 86_400 * 1_000_000_000i64;
        let now = 1_780_000_000_000_000_000;
        let partitions: std::collections::HashSet<Partition> =
            (0..2000).map(|i| Partition::of(now - i * day, now)).collect();
        assert!(partitions.len() <= 8 + 13 + 6, "{}", partitions.len());
    }

    #[test]
    fn keys_look_like_this() {
        let key = RawBatchKey { project: "shop".into(), logstore: "nginx".into(), id: BatchId(0xab) };
        assert_eq!(key.to_string(), "raw/shop/nginx/000000000000000000000000000000ab.batch");
        assert_eq!(RawBatchKey::prefix("shop", "nginx"), "raw/shop/nginx/");
        assert_eq!(encode_segment(".."), "%2E.");
        assert_eq!(encode_segment("a/b"), "a%2Fb");
        assert!("raw/shop/nginx/x.batch".parse::<RawBatchKey>().is_err());
        assert!("raw/shop/nginx/000000000000000000000000000000ab.batch/x".parse::<RawBatchKey>().is_err());
        assert!("raw/sh%6Fp/nginx/000000000000000000000000000000ab.batch".parse::<RawBatchKey>().is_err());
    }

    proptest! {
        /// A log is in a partition that holds its time and whose name queries for that
        /// time look in: between its floor and its date.
        #[test]
        fn partitions_hold_their_logs_and_sort_between_floor_and_date(
            time in -9_000_000_000_000_000_000i64..9_000_000_000_000_000_000,
            late in -1_000_000_000_000_000_000i64..1_000_000_000_000_000_000,
        ) {
            let received = time.saturating_add(late);
            let p = Partition::of(time, received);
            let name = p.to_string();
            prop_assert!(partition_floor(time) <= name && name <= partition_date(time), "{name}");
            prop_assert_eq!(name.parse::<Partition>().unwrap(), p);
            prop_assert_eq!(Partition::from_key(p.key()), p);
            let day = time.div_euclid(NANOS_PER_DAY);
            prop_assert!(p.first_day() <= day && day < p.end_day());
            prop_assert!(!p.ends_before(time));
            prop_assert!(Partition::candidates(time).contains(&p));
        }

        #[test]
        fn keys_round_trip(project in ".{1,20}", logstore in ".{1,20}", id in any::<u128>()) {
            let key = RawBatchKey { project, logstore, id: BatchId(id) };
            let text = key.to_string();
            prop_assert!(text.starts_with(&RawBatchKey::prefix(&key.project, &key.logstore)));
            prop_assert_eq!(text.matches('/').count(), 3);
            prop_assert_eq!(text.parse::<RawBatchKey>().unwrap(), key);
        }
    }
}
