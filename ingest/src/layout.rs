//! Object keys: the one place they are formatted and parsed.
//!
//! ```text
//! raw/{project}/{logstore}/{batch id}.batch     one raw batch per accepted request
//! tables/{project}/{logstore}/                  one Delta Lake table per logstore
//!   date=YYYY-MM-DD/part-....parquet              partitioned by event date (UTC)
//!   _delta_log/
//! ```
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

/// The partition value of an event time: its UTC date, `YYYY-MM-DD`.
pub fn partition_date(time_ns: i64) -> String {
    let (year, month, day) = crate::time::civil_from_days(time_ns.div_euclid(crate::time::NANOS_PER_SEC * 86_400));
    format!("{year:04}-{month:02}-{day:02}")
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
