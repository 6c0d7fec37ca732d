//! SLS PutLogs, signed, in the forms the official clients send:
//!
//! - a protobuf `LogGroup` (`application/x-protobuf`), lz4/deflate/zstd compressed;
//! - a JSON LogGroup (`application/json`, the Java SDK and producer: see [`super::sls_json`]);
//! - LoongCollector's `x-log-mode: batch_group`: an `SlsLogPackageList` whose packages are
//!   LogGroups compressed one by one, each with its own size and compression.
//!
//! A `Log`'s field 3 (LoongCollector's `values`) is kept as the JSON field `__values__`.
//! All or nothing: if any log (of any package) is invalid, the request fails and nothing
//! is stored.

use sluice_proto::batch::Product;
use sluice_proto::sls::tag;
use sluice_proto::wire::{Reader, Value, WireError};

use super::Decoded;
use crate::auth;
use crate::batch::BatchId;
use crate::compression::{self, Compression};
use crate::config::{Config, Limits};
use crate::error::IngestError;
use crate::record::{BodyWriter, EncodedBody, FieldRef, GroupRef, RecordRef, is_canonical_field};
use crate::request::{Context, Request};
use crate::response;
use crate::time::NANOS_PER_SEC;

/// Content keys SLS reserves for its own fields.
const RESERVED_KEYS: [&str; 4] = ["__time__", "__time_ns_part__", "__source__", "__topic__"];

/// Contents with these exact keys fill the record's own columns (the data model's level,
/// message, trace and span ids) instead of its fields, so that they are stored and
/// searched as columns; the query APIs give them back under the same keys.
pub const PROMOTED_KEYS: [&str; 4] = ["level", "message", "trace_id", "span_id"];

/// A log's time and the contents that went to columns.
#[derive(Debug, Default)]
pub(super) struct Columns<'a> {
    pub(super) time_ns: i64,
    pub(super) level: &'a str,
    pub(super) message: &'a str,
    pub(super) trace_id: &'a str,
    pub(super) span_id: &'a str,
}

impl<'a> Columns<'a> {
    /// Takes a content into its column if its key is promoted and the column is free.
    #[inline]
    pub(super) fn take(&mut self, key: &str, value: &'a [u8]) -> bool {
        let slot = match key {
            "level" => &mut self.level,
            "message" => &mut self.message,
            "trace_id" => &mut self.trace_id,
            "span_id" => &mut self.span_id,
            _ => return false,
        };
        if !slot.is_empty() || value.is_empty() {
            return false;
        }
        match std::str::from_utf8(value) {
            Ok(text) => {
                *slot = text;
                true
            }
            Err(_) => false,
        }
    }
}

pub fn decode(config: &Config, logstore: &str, req: &Request<'_>, ctx: &Context<'_>) -> Result<Decoded, IngestError> {
    let headers = req.headers;
    if !headers.contains("content-length") {
        return Err(IngestError::MissingContentLength);
    }
    let content_type = headers.get("content-type");
    let media = content_type.and_then(|ct| ct.split(';').next()).map(str::trim).unwrap_or("");
    let json = if media.eq_ignore_ascii_case("application/x-protobuf") {
        false
    } else if media.eq_ignore_ascii_case("application/json") {
        true
    } else {
        return Err(IngestError::InvalidContentType {
            found: content_type.unwrap_or("").to_owned(),
            expected: "application/x-protobuf or application/json",
        });
    };
    let batch_group = match headers.get("x-log-mode").map(str::trim) {
        None | Some("") => false,
        Some(mode) if mode.eq_ignore_ascii_case(BATCH_GROUP) && !json => true,
        Some(mode) => return Err(IngestError::InvalidBody(format!("x-log-mode {mode:?} is not supported here"))),
    };
    let (target, _key) = auth::sls::authorize(config, req, logstore, ctx.now_ns)?;

    let limits = &config.limits;
    let raw_size = headers.get("x-log-bodyrawsize").ok_or(IngestError::MissingBodyRawSize)?;
    let raw_size: usize = raw_size.trim().parse().map_err(|_| IngestError::InvalidBodyRawSize(raw_size.to_owned()))?;
    if raw_size > limits.max_raw_bytes {
        return Err(IngestError::BodyTooLarge { limit: limits.max_raw_bytes, actual: raw_size });
    }
    if req.body.len() > limits.max_body_bytes() {
        return Err(IngestError::BodyTooLarge { limit: limits.max_body_bytes(), actual: req.body.len() });
    }
    let compress_type = headers.get("x-log-compresstype");
    let codec = Compression::from_sls_header(compress_type)
        .ok_or_else(|| IngestError::InvalidCompressType(compress_type.unwrap_or("").to_owned()))?;
    if batch_group {
        // The list itself is sent as is (its raw size is its size); the compression
        // header names how its packages are compressed, and each package says its own.
        if req.body.len() != raw_size {
            return Err(IngestError::BodyRawSizeMismatch { declared: raw_size, actual: req.body.len() });
        }
        let (body, raw_len) = encode_package_list(req.body, limits)?;
        return Ok(Decoded {
            id: BatchId::derive(Product::Sls, &target.project, &target.logstore, BATCH_GROUP, req.body),
            target,
            body,
            raw_len,
            response: response::sls_ok(ctx.request_id),
        });
    }
    let raw = match codec {
        Compression::None if req.body.len() != raw_size => {
            return Err(IngestError::BodyRawSizeMismatch { declared: raw_size, actual: req.body.len() });
        }
        _ => compression::decompress(codec, req.body, Some(raw_size), limits.max_raw_bytes)?,
    };
    let (body, scope) = if json {
        (super::sls_json::encode(&raw, limits, ctx.now_ns)?, "json")
    } else {
        (encode_log_group(&raw, limits)?, "")
    };
    Ok(Decoded {
        id: BatchId::derive(Product::Sls, &target.project, &target.logstore, scope, &raw),
        target,
        body,
        raw_len: raw.len(),
        response: response::sls_ok(ctx.request_id),
    })
}

/// LoongCollector's `x-log-mode`.
const BATCH_GROUP: &str = "batch_group";

/// An `SlsLogPackageList`: every package decompressed (its total raw size within
/// `max_raw_bytes`) and every LogGroup validated, then all written as one body. Returns
/// the body and the raw size of the LogGroups.
fn encode_package_list(list: &[u8], limits: &Limits) -> Result<(EncodedBody, usize), IngestError> {
    let mut reader = Reader::new(list);
    let mut packages: Vec<&[u8]> = Vec::new();
    while let Some((number, value)) = reader.next_field().map_err(malformed)? {
        match (number, value) {
            (tag::PACKAGE_LIST_PACKAGES, Value::Bytes(b)) => packages.push(b),
            (tag::PACKAGE_LIST_PACKAGES, _) => return Err(wrong_type("a package")),
            _ => {}
        }
    }
    let mut budget = limits.max_raw_bytes;
    let mut raws = Vec::with_capacity(packages.len());
    for (index, package) in packages.iter().enumerate() {
        let bad = |reason: &str| IngestError::InvalidLogGroup(format!("package {index}: {reason}"));
        let mut reader = Reader::new(package);
        let (mut data, mut size, mut kind) = (None, None, None);
        while let Some((number, value)) = reader.next_field().map_err(malformed)? {
            match (number, value) {
                (tag::PACKAGE_DATA, Value::Bytes(b)) => data = Some(b),
                (tag::PACKAGE_UNCOMPRESS_SIZE, Value::Varint(n)) => size = Some(n),
                (tag::PACKAGE_COMPRESS_TYPE, Value::Varint(n)) => kind = Some(n),
                (tag::PACKAGE_DATA | tag::PACKAGE_UNCOMPRESS_SIZE | tag::PACKAGE_COMPRESS_TYPE, _) => {
                    return Err(bad("a field has the wrong wire type"));
                }
                _ => {}
            }
        }
        let data = data.ok_or_else(|| bad("data is missing"))?;
        // SlsCompressType: lz4 when absent.
        let codec = match kind.unwrap_or(2) {
            0 => Compression::None,
            1 => Compression::Deflate,
            2 => Compression::Lz4,
            3 => Compression::Zstd,
            other => return Err(IngestError::InvalidCompressType(format!("package {index}: compress_type {other}"))),
        };
        let size = match size {
            Some(n) => Some(usize::try_from(n).map_err(|_| bad("uncompress_size is not a size"))?),
            None if codec == Compression::Lz4 => return Err(bad("uncompress_size is required for lz4")),
            None => None,
        };
        if codec == Compression::None && size.is_some_and(|n| n != data.len()) {
            return Err(IngestError::BodyRawSizeMismatch { declared: size.unwrap_or(0), actual: data.len() });
        }
        let raw = compression::decompress(codec, data, size, budget)?;
        budget -= raw.len().min(budget);
        raws.push(raw);
    }
    let groups = raws.iter().map(|raw| parse_group(raw)).collect::<Result<Vec<_>, _>>()?;
    let raw_len = raws.iter().map(|r| r.len()).sum();
    Ok((write_groups(&groups, limits)?, raw_len))
}

fn malformed(e: WireError) -> IngestError {
    IngestError::InvalidLogGroup(e.to_string())
}

fn wrong_type(what: &str) -> IngestError {
    IngestError::InvalidLogGroup(format!("{what} has the wrong wire type"))
}

fn utf8(bytes: &[u8], what: impl FnOnce() -> String) -> Result<&str, IngestError> {
    std::str::from_utf8(bytes).map_err(|_| IngestError::InvalidEncoding(what()))
}

/// A `Content` or `LogTag`: key and value, both required.
#[inline]
fn pair(bytes: &[u8]) -> Result<(&[u8], &[u8]), IngestError> {
    if let Some(kv) = canonical_pair(bytes) {
        return Ok(kv);
    }
    let mut reader = Reader::new(bytes);
    let (mut key, mut value) = (None, None);
    while let Some((number, v)) = reader.next_field().map_err(malformed)? {
        match (number, v) {
            (tag::PAIR_KEY, Value::Bytes(b)) => key = Some(b),
            (tag::PAIR_VALUE, Value::Bytes(b)) => value = Some(b),
            (tag::PAIR_KEY | tag::PAIR_VALUE, _) => return Err(wrong_type("key or value")),
            _ => {}
        }
    }
    match (key, value) {
        (Some(k), Some(v)) => Ok((k, v)),
        _ => Err(IngestError::InvalidLogGroup("a key/value pair lacks its key or value".into())),
    }
}

/// The common shape of a pair, `0x0a len key 0x12 len value` and nothing else, read
/// without the general field loop; `None` for anything else.
#[inline(always)]
fn canonical_pair(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&0x0a, rest) = bytes.split_first()? else { return None };
    let (key_len, rest) = short_len(rest)?;
    let (key, rest) = rest.split_at_checked(key_len)?;
    let (&0x12, rest) = rest.split_first()? else { return None };
    let (value_len, rest) = short_len(rest)?;
    (rest.len() == value_len).then_some((key, rest))
}

/// A length varint of one or two bytes.
#[inline(always)]
fn short_len(bytes: &[u8]) -> Option<(usize, &[u8])> {
    match *bytes {
        [b0, ref rest @ ..] if b0 < 0x80 => Some((usize::from(b0), rest)),
        [b0, b1, ref rest @ ..] if b1 < 0x80 => Some((usize::from(b0 & 0x7f) | usize::from(b1) << 7, rest)),
        _ => None,
    }
}

/// A LogGroup's parts: its own fields, and its logs still encoded.
struct GroupParts<'a> {
    topic: &'a str,
    source: &'a str,
    tags: Vec<FieldRef<'a>>,
    logs: Vec<&'a [u8]>,
}

/// Validates a `LogGroup` and writes its logs as records.
pub fn encode_log_group(raw: &[u8], limits: &Limits) -> Result<EncodedBody, IngestError> {
    write_groups(&[parse_group(raw)?], limits)
}

/// Reads a `LogGroup`'s own fields and finds its logs.
fn parse_group(raw: &[u8]) -> Result<GroupParts<'_>, IngestError> {
    let mut reader = Reader::new(raw);
    let mut logs: Vec<&[u8]> = Vec::with_capacity(raw.len() / 256 + 1);
    let (mut topic, mut source) = ("", "");
    let mut tags: Vec<FieldRef<'_>> = Vec::new();
    while let Some((number, value)) = reader.next_field().map_err(malformed)? {
        match (number, value) {
            (tag::LOG_GROUP_LOGS, Value::Bytes(b)) => logs.push(b),
            (tag::LOG_GROUP_TOPIC, Value::Bytes(b)) => topic = utf8(b, || "topic".into())?,
            (tag::LOG_GROUP_SOURCE, Value::Bytes(b)) => source = utf8(b, || "source".into())?,
            (tag::LOG_GROUP_TAGS, Value::Bytes(b)) => {
                let (k, v) = pair(b)?;
                let key = utf8(k, || "tag key".into())?;
                let value = utf8(v, || format!("tag {key:?}"))?;
                tags.push(FieldRef { key, value: value.as_bytes(), json: false });
            }
            (tag::LOG_GROUP_CATEGORY | tag::LOG_GROUP_MACHINE_UUID, Value::Bytes(_)) => {}
            (
                tag::LOG_GROUP_LOGS
                | tag::LOG_GROUP_TOPIC
                | tag::LOG_GROUP_SOURCE
                | tag::LOG_GROUP_TAGS
                | tag::LOG_GROUP_CATEGORY
                | tag::LOG_GROUP_MACHINE_UUID,
                _,
            ) => return Err(wrong_type("a log group field")),
            _ => {}
        }
    }
    Ok(GroupParts { topic, source, tags, logs })
}

/// Writes log groups: all of them first, then every log of each as a record of its group.
fn write_groups(groups: &[GroupParts<'_>], limits: &Limits) -> Result<EncodedBody, IngestError> {
    let size: usize = groups.iter().flat_map(|g| &g.logs).map(|l| l.len()).sum();
    let mut writer = BodyWriter::with_capacity(size + size / 8 + 64 * groups.len());
    for g in groups {
        writer.push_group(&GroupRef { topic: g.topic, source: g.source, tags: &g.tags, ..Default::default() });
    }
    let mut fields: Vec<FieldRef<'_>> = Vec::with_capacity(16);
    let mut encoded: Vec<&[u8]> = Vec::with_capacity(16);
    let mut values: Vec<&str> = Vec::new();
    // Logs of a group mostly repeat the same keys in the same order: a key equal to the
    // previous log's key at the same position was already validated.
    let mut previous_keys: Vec<&str> = Vec::with_capacity(16);
    let mut index = 0;
    for (group, g) in groups.iter().enumerate() {
        previous_keys.clear();
        for log in &g.logs {
            fields.clear();
            encoded.clear();
            values.clear();
            let mut columns = Columns::default();
            let mut parts =
                LogParts { columns: &mut columns, fields: &mut fields, encoded: &mut encoded, values: &mut values };
            decode_log(index, log, limits, &previous_keys, &mut parts)?;
            index += 1;
            previous_keys.clear();
            previous_keys.extend(fields.iter().map(|f| f.key));
            let record = RecordRef {
                time_ns: columns.time_ns,
                group: u32::try_from(group).unwrap_or(u32::MAX),
                level: columns.level,
                message: columns.message,
                trace_id: columns.trace_id,
                span_id: columns.span_id,
                ..Default::default()
            };
            if !values.is_empty() {
                // LoongCollector's `values`, kept as one JSON field.
                let text = serde_json::to_string(&values).map_err(|e| IngestError::InvalidBody(e.to_string()))?;
                let mut all = fields.clone();
                all.push(FieldRef { key: VALUES_FIELD, value: text.as_bytes(), json: true });
                writer.push_record(&RecordRef { fields: &all, ..record });
            } else if encoded.len() == fields.len() {
                // Every content is already a canonical `Field`: copy them through.
                writer.push_record(&RecordRef { encoded_fields: &encoded, ..record });
            } else {
                writer.push_record(&RecordRef { fields: &fields, ..record });
            }
        }
    }
    Ok(writer.finish())
}

/// The field a `Log`'s `values` (field 3) are kept in, as a JSON array.
pub const VALUES_FIELD: &str = "__values__";

/// Where [`decode_log`] puts what it reads.
struct LogParts<'p, 'a> {
    columns: &'p mut Columns<'a>,
    fields: &'p mut Vec<FieldRef<'a>>,
    encoded: &'p mut Vec<&'a [u8]>,
    values: &'p mut Vec<&'a str>,
}

/// Reads one `Log`: its time, its promoted contents, its other contents both as fields
/// and, where a content is the canonical encoding of a `Field`, as those bytes, and its
/// `values`.
#[inline]
fn decode_log<'a>(
    index: usize,
    log: &'a [u8],
    limits: &Limits,
    previous_keys: &[&'a str],
    parts: &mut LogParts<'_, 'a>,
) -> Result<(), IngestError> {
    let LogParts { columns, fields, encoded, values } = parts;
    let invalid = |reason: &str| IngestError::InvalidLog { index, reason: reason.to_owned() };
    let mut reader = Reader::new(log);
    let mut time: Option<u64> = None;
    let mut nanos: u32 = 0;
    while let Some((number, value)) = reader.next_field().map_err(malformed)? {
        match (number, value) {
            (tag::LOG_CONTENTS, Value::Bytes(b)) => {
                let (k, v) = pair(b)?;
                let key = match previous_keys.get(fields.len()) {
                    // The same bytes as a key already checked (in the same buffer).
                    Some(seen) if seen.as_bytes() == k => seen,
                    _ => {
                        let key = std::str::from_utf8(k)
                            .map_err(|_| IngestError::InvalidEncoding(format!("log {index}: a key")))?;
                        check_key(index, key)?;
                        key
                    }
                };
                if v.len() > limits.max_value_bytes {
                    return Err(IngestError::ValueTooLarge {
                        index,
                        key: key.to_owned(),
                        actual: v.len(),
                        limit: limits.max_value_bytes,
                    });
                }
                if columns.take(key, v) {
                    continue;
                }
                if is_canonical_field(b, k, v) {
                    encoded.push(b);
                }
                fields.push(FieldRef { key, value: v, json: false });
            }
            (tag::LOG_TIME, Value::Varint(t)) => time = Some(t),
            (tag::LOG_TIME_NS, Value::Fixed32(ns)) => nanos = ns,
            (tag::LOG_VALUES, Value::Bytes(b)) => {
                if b.len() > limits.max_value_bytes {
                    return Err(IngestError::ValueTooLarge {
                        index,
                        key: VALUES_FIELD.to_owned(),
                        actual: b.len(),
                        limit: limits.max_value_bytes,
                    });
                }
                values.push(utf8(b, || format!("log {index}: a value"))?);
            }
            (tag::LOG_CONTENTS | tag::LOG_TIME | tag::LOG_TIME_NS | tag::LOG_VALUES, _) => {
                return Err(wrong_type("a log field"));
            }
            _ => {}
        }
    }
    let time = time.ok_or_else(|| invalid("time is missing"))?;
    if time == 0 || time > u64::from(u32::MAX) || i64::from(nanos) >= NANOS_PER_SEC {
        return Err(IngestError::InvalidTimestamp { index, time: format!("{time}.{nanos:09}") });
    }
    let promoted = [columns.level, columns.message, columns.trace_id, columns.span_id];
    if fields.is_empty() && values.is_empty() && promoted.iter().all(|c| c.is_empty()) {
        return Err(invalid("a log needs at least one content"));
    }
    columns.time_ns = time as i64 * NANOS_PER_SEC + i64::from(nanos);
    Ok(())
}

#[inline]
pub(super) fn check_key(index: usize, key: &str) -> Result<(), IngestError> {
    let reason = if key.is_empty() {
        "keys may not be empty"
    } else if key.starts_with("__") && (RESERVED_KEYS.contains(&key) || key.starts_with("__tag__:")) {
        "the name is reserved"
    } else {
        return Ok(());
    };
    Err(IngestError::InvalidKey { index, key: key.to_owned(), reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;
    use sluice_proto::batch::BatchBody;
    use sluice_proto::sls::{Content, Log, LogGroup, LogTag};

    fn log(time: u32, pairs: &[(&str, &str)]) -> Log {
        Log {
            time,
            contents: pairs.iter().map(|(k, v)| Content { key: k.to_string(), value: v.as_bytes().to_vec() }).collect(),
            ..Default::default()
        }
    }

    fn encode(group: &LogGroup) -> Result<BatchBody, IngestError> {
        let body = encode_log_group(&group.encode_to_vec(), &Limits::default())?;
        Ok(BatchBody::decode(&body.bytes[..]).unwrap())
    }

    #[test]
    fn normalizes_a_log_group() {
        let group = LogGroup {
            logs: vec![
                log(1_700_000_000, &[("status", "200"), ("path", "/")]),
                Log { time_ns: Some(5), ..log(1_700_000_001, &[("k", "v")]) },
            ],
            topic: Some("web".into()),
            source: Some("10.0.0.1".into()),
            log_tags: vec![LogTag { key: "host".into(), value: "a".into() }],
            category: Some("legacy".into()),
            machine_uuid: Some("legacy".into()),
        };
        let body = encode(&group).unwrap();
        assert_eq!(body.groups.len(), 1);
        assert_eq!(body.groups[0].topic, "web");
        assert_eq!(body.groups[0].source, "10.0.0.1");
        assert_eq!(body.groups[0].tags[0].key, "host");
        assert_eq!(body.records.len(), 2);
        assert_eq!(body.records[0].time_ns, 1_700_000_000_000_000_000);
        assert_eq!(body.records[1].time_ns, 1_700_000_001_000_000_005);
        assert_eq!(body.records[0].fields[1].key, "path");
        assert_eq!(body.records[0].fields[1].value, b"/");
    }

    #[test]
    fn rejects_invalid_logs() {
        type Check = fn(&IngestError) -> bool;
        let cases: Vec<(LogGroup, Check)> = vec![
            (LogGroup { logs: vec![log(0, &[("k", "v")])], ..Default::default() }, |e| {
                matches!(e, IngestError::InvalidTimestamp { .. })
            }),
            (
                LogGroup {
                    logs: vec![Log { time_ns: Some(1_000_000_000), ..log(1, &[("k", "v")]) }],
                    ..Default::default()
                },
                |e| matches!(e, IngestError::InvalidTimestamp { .. }),
            ),
            (LogGroup { logs: vec![log(1, &[])], ..Default::default() }, |e| {
                matches!(e, IngestError::InvalidLog { .. })
            }),
            (LogGroup { logs: vec![log(1, &[("", "v")])], ..Default::default() }, |e| {
                matches!(e, IngestError::InvalidKey { .. })
            }),
            (LogGroup { logs: vec![log(1, &[("__topic__", "v")])], ..Default::default() }, |e| {
                matches!(e, IngestError::InvalidKey { .. })
            }),
            (LogGroup { logs: vec![log(1, &[("__tag__:x", "v")])], ..Default::default() }, |e| {
                matches!(e, IngestError::InvalidKey { .. })
            }),
        ];
        for (group, check) in cases {
            let err = encode(&group).unwrap_err();
            assert!(check(&err), "{err:?}");
        }
        let big = "x".repeat(1024 * 1024 + 1);
        let err = encode(&LogGroup { logs: vec![log(1, &[("k", &big)])], ..Default::default() }).unwrap_err();
        assert!(matches!(err, IngestError::ValueTooLarge { .. }));
    }

    #[test]
    fn accepts_binary_values_but_not_binary_keys() {
        let mut group = LogGroup { logs: vec![log(1, &[("k", "v")])], ..Default::default() };
        group.logs[0].contents[0].value = vec![0xff, 0xfe];
        assert_eq!(encode(&group).unwrap().records[0].fields[0].value, vec![0xff, 0xfe]);
        let mut bytes = LogGroup { logs: vec![log(1, &[("k\u{e9}", "v")])], ..Default::default() }.encode_to_vec();
        let at = bytes.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
        bytes[at] = 0xff;
        assert!(matches!(encode_log_group(&bytes, &Limits::default()), Err(IngestError::InvalidEncoding(_))));
        let mut bytes = LogGroup { topic: Some("t\u{e9}".into()), ..Default::default() }.encode_to_vec();
        let at = bytes.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
        bytes[at] = 0xff;
        assert!(matches!(encode_log_group(&bytes, &Limits::default()), Err(IngestError::InvalidEncoding(_))));
    }

    #[test]
    fn rejects_garbage() {
        assert!(matches!(encode_log_group(b"\x0a\x05ab", &Limits::default()), Err(IngestError::InvalidLogGroup(_))));
        assert!(matches!(encode_log_group(b"\x08\x01", &Limits::default()), Err(IngestError::InvalidLogGroup(_))));
    }

    fn package(group: &LogGroup, compress_type: Option<i32>) -> sluice_proto::sls::SlsLogPackage {
        let raw = group.encode_to_vec();
        let data = match compress_type {
            Some(0) => raw.clone(),
            Some(1) => {
                use std::io::Write;
                let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                z.write_all(&raw).unwrap();
                z.finish().unwrap()
            }
            _ => lz4_flex::block::compress(&raw),
        };
        sluice_proto::sls::SlsLogPackage { data, uncompress_size: Some(raw.len() as i32), compress_type }
    }

    fn package_list(packages: Vec<sluice_proto::sls::SlsLogPackage>) -> Vec<u8> {
        sluice_proto::sls::SlsLogPackageList { packages }.encode_to_vec()
    }

    #[test]
    fn a_batch_group_is_every_package_in_order() {
        let first = LogGroup { logs: vec![log(1, &[("a", "1")])], topic: Some("one".into()), ..Default::default() };
        let second = LogGroup {
            logs: vec![log(2, &[("b", "2")]), log(3, &[("c", "3")])],
            source: Some("host".into()),
            ..Default::default()
        };
        let third = LogGroup { logs: vec![log(4, &[("d", "4")])], ..Default::default() };
        let list = package_list(vec![package(&first, None), package(&second, Some(1)), package(&third, Some(0))]);
        let (body, raw_len) = encode_package_list(&list, &Limits::default()).unwrap();
        assert_eq!(raw_len, first.encoded_len() + second.encoded_len() + third.encoded_len());
        let body = BatchBody::decode(&body.bytes[..]).unwrap();
        let topics: Vec<(&str, &str)> = body.groups.iter().map(|g| (g.topic.as_str(), g.source.as_str())).collect();
        assert_eq!(topics, [("one", ""), ("", "host"), ("", "")]);
        let placed: Vec<(u32, i64)> = body.records.iter().map(|r| (r.group, r.time_ns / NANOS_PER_SEC)).collect();
        assert_eq!(placed, [(0, 1), (1, 2), (1, 3), (2, 4)]);
    }

    #[test]
    fn a_batch_group_with_one_bad_package_is_refused_whole() {
        let good = LogGroup { logs: vec![log(1, &[("a", "1")])], ..Default::default() };
        let bad_log = LogGroup { logs: vec![log(0, &[("a", "1")])], ..Default::default() };
        let limits = Limits::default();
        let refuse = |packages: Vec<sluice_proto::sls::SlsLogPackage>| {
            encode_package_list(&package_list(packages), &limits).map(|_| ()).unwrap_err()
        };
        assert!(matches!(
            refuse(vec![package(&good, None), package(&bad_log, None)]),
            IngestError::InvalidTimestamp { .. }
        ));
        let mut wrong_size = package(&good, None);
        wrong_size.uncompress_size = Some(wrong_size.uncompress_size.unwrap() + 1);
        assert!(matches!(refuse(vec![wrong_size]), IngestError::Uncompress(_)));
        let mut no_size = package(&good, None);
        no_size.uncompress_size = None;
        assert!(matches!(refuse(vec![no_size]), IngestError::InvalidLogGroup(_)));
        let mut unknown = package(&good, None);
        unknown.compress_type = Some(9);
        assert!(matches!(refuse(vec![unknown]), IngestError::InvalidCompressType(_)));
        let mut corrupt = package(&good, Some(1));
        corrupt.data.truncate(3);
        assert!(matches!(refuse(vec![corrupt]), IngestError::Uncompress(_)));
        let mut plain_mismatch = package(&good, Some(0));
        plain_mismatch.uncompress_size = Some(1);
        assert!(matches!(refuse(vec![plain_mismatch]), IngestError::BodyRawSizeMismatch { .. }));
        assert!(matches!(
            encode_package_list(b"\x0a\x05ab", &limits).map(|_| ()).unwrap_err(),
            IngestError::InvalidLogGroup(_)
        ));
        // The raw budget counts every package together.
        let big = LogGroup { logs: vec![log(1, &[("k", &"x".repeat(600))])], ..Default::default() };
        let small = Limits { max_raw_bytes: 1000, ..Limits::default() };
        let list = package_list(vec![package(&big, None), package(&big, None)]);
        assert!(matches!(encode_package_list(&list, &small).map(|_| ()).unwrap_err(), IngestError::Uncompress(_)));
    }

    #[test]
    fn values_are_kept_as_one_json_field() {
        let group = LogGroup {
            logs: vec![
                Log { values: vec!["GET".into(), "/a\"b".into()], ..log(1, &[("status", "200")]) },
                Log { values: vec!["only".into()], ..log(2, &[]) },
            ],
            ..Default::default()
        };
        let body = encode(&group).unwrap();
        let values = |i: usize| body.records[i].fields.iter().find(|f| f.key == VALUES_FIELD).cloned().unwrap();
        assert_eq!(values(0).value, br#"["GET","/a\"b"]"#);
        assert!(values(0).json);
        assert_eq!(body.records[0].fields[0].key, "status");
        assert_eq!(values(1).value, br#"["only"]"#);
        let mut bytes =
            LogGroup { logs: vec![Log { values: vec!["\u{e9}".into()], ..log(1, &[]) }], ..Default::default() }
                .encode_to_vec();
        let at = bytes.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
        bytes[at] = 0xff;
        assert!(matches!(encode_log_group(&bytes, &Limits::default()), Err(IngestError::InvalidEncoding(_))));
    }

    /// The record a valid log becomes: promoted contents in their columns (the first
    /// non-empty UTF-8 one of each key), the rest in order as fields.
    fn expected_record(log: &Log) -> sluice_proto::batch::Record {
        let mut r = sluice_proto::batch::Record {
            time_ns: i64::from(log.time) * NANOS_PER_SEC + i64::from(log.time_ns.unwrap_or(0)),
            ..Default::default()
        };
        for c in &log.contents {
            let slot = match c.key.as_str() {
                "level" => Some(&mut r.level),
                "message" => Some(&mut r.message),
                "trace_id" => Some(&mut r.trace_id),
                "span_id" => Some(&mut r.span_id),
                _ => None,
            };
            match (slot, std::str::from_utf8(&c.value)) {
                (Some(slot), Ok(text)) if slot.is_empty() && !text.is_empty() => *slot = text.to_owned(),
                _ => r.fields.push(sluice_proto::batch::Field {
                    key: c.key.clone(),
                    value: c.value.clone(),
                    json: false,
                }),
            }
        }
        r
    }

    #[test]
    fn promotes_level_message_and_trace_ids_to_columns() {
        let group = LogGroup {
            logs: vec![log(
                1,
                &[("message", "hello"), ("status", "200"), ("level", "warn"), ("trace_id", "t1"), ("message", "again")],
            )],
            ..Default::default()
        };
        let body = encode(&group).unwrap();
        let r = &body.records[0];
        assert_eq!((r.message.as_str(), r.level.as_str(), r.trace_id.as_str()), ("hello", "warn", "t1"));
        let keys: Vec<&str> = r.fields.iter().map(|f| f.key.as_str()).collect();
        assert_eq!(keys, ["status", "message"], "a second message stays a field");
        let only_message = LogGroup { logs: vec![log(1, &[("message", "alone")])], ..Default::default() };
        assert_eq!(encode(&only_message).unwrap().records[0].message, "alone");
    }

    fn arb_log() -> impl Strategy<Value = Log> {
        (
            1u32..,
            proptest::option::of(0u32..1_000_000_000),
            proptest::collection::vec(
                (
                    prop_oneof![
                        "[a-z][a-z0-9_]{0,8}",
                        Just("level".to_owned()),
                        Just("message".to_owned()),
                        Just("trace_id".to_owned())
                    ],
                    proptest::collection::vec(any::<u8>(), 0..200),
                ),
                1..5,
            ),
        )
            .prop_map(|(time, time_ns, contents)| Log {
                time,
                time_ns,
                values: vec![],
                contents: contents.into_iter().map(|(key, value)| Content { key, value }).collect(),
            })
    }

    proptest! {
        /// Every log, key and value of a valid group comes out as a record, in order.
        #[test]
        fn keeps_every_log(
            logs in proptest::collection::vec(arb_log(), 0..20),
            topic in proptest::option::of(".{0,8}"),
            tags in proptest::collection::vec(("[a-z]{1,5}", ".{0,5}"), 0..3),
        ) {
            let group = LogGroup {
                logs: logs.clone(),
                topic: topic.clone(),
                log_tags: tags.iter().map(|(k, v)| LogTag { key: k.clone(), value: v.clone() }).collect(),
                ..Default::default()
            };
            let body = encode(&group).unwrap();
            prop_assert_eq!(body.records.len(), logs.len());
            prop_assert_eq!(&body.groups[0].topic, &topic.unwrap_or_default());
            prop_assert_eq!(body.groups[0].tags.len(), tags.len());
            for (record, log) in body.records.iter().zip(&logs) {
                prop_assert_eq!(record.time_ns, i64::from(log.time) * NANOS_PER_SEC + i64::from(log.time_ns.unwrap_or(0)));
                prop_assert_eq!(record, &expected_record(log));
            }
        }

        /// Copying canonical contents through gives exactly prost's encoding of the same
        /// records, empty values included.
        #[test]
        fn writes_what_prost_writes(
            logs in proptest::collection::vec(arb_log(), 0..10),
            empty_value_at in proptest::option::of(0usize..40),
        ) {
            let mut group = LogGroup { logs, ..Default::default() };
            if let Some(at) = empty_value_at
                && let Some(c) = group.logs.iter_mut().flat_map(|l| l.contents.iter_mut()).nth(at)
            {
                c.value.clear();
            }
            let body = encode_log_group(&group.encode_to_vec(), &Limits::default()).unwrap();
            let expected = BatchBody {
                groups: vec![sluice_proto::batch::RecordGroup::default()],
                records: group.logs.iter().map(expected_record).collect(),
            };
            prop_assert_eq!(body.bytes, expected.encode_to_vec());
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = encode_log_group(&bytes, &Limits::default());
        }
    }
}
