//! Huawei Cloud LTS log reporting:
//!
//! - `.../tenant/contents`: `{"log_time_ns": t, "contents": ["log1", "log2"], "labels": {..}}`,
//!   log i's time is `t + i`;
//! - `.../tenant/contents/high-accuracy`: `{"contents": [{"log_time_ns": t, "log": ".."}], "labels": {..}}`.
//!
//! `log_time_ns` may be a number or a numeric string. Times more than two days from now
//! are refused, as LTS does. The body may be gzip or snappy compressed.

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;
use sluice_proto::batch::Product;
use std::borrow::Cow;

use super::Decoded;
use super::json::{self, Members, Scalar, Str, scalar};
use crate::auth;
use crate::batch::BatchId;
use crate::compression::{self, Compression};
use crate::config::{Config, Limits};
use crate::error::IngestError;
use crate::record::{BodyWriter, EncodedBody, FieldRef, GroupRef, RecordRef};
use crate::request::{Context, Request};
use crate::response;
use crate::time::NANOS_PER_SEC;

#[derive(Deserialize)]
struct PlainBody<'a> {
    #[serde(borrow)]
    log_time_ns: Option<&'a RawValue>,
    #[serde(borrow)]
    contents: Option<Vec<Str<'a>>>,
    #[serde(borrow, default)]
    labels: Option<Members<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    tenant_project_id: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct PreciseBody<'a> {
    #[serde(borrow)]
    contents: Option<Vec<PreciseLog<'a>>>,
    #[serde(borrow, default)]
    labels: Option<Members<'a>>,
    #[serde(default)]
    #[allow(dead_code)]
    tenant_project_id: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct PreciseLog<'a> {
    #[serde(borrow)]
    log_time_ns: Option<&'a RawValue>,
    #[serde(borrow)]
    log: Option<Str<'a>>,
}

/// The LTS endpoint's names.
#[derive(Clone, Copy, Debug)]
pub struct Stream<'a> {
    pub project_id: &'a str,
    pub group_id: &'a str,
    pub stream_id: &'a str,
    pub high_accuracy: bool,
}

pub fn decode(
    config: &Config,
    stream: Stream<'_>,
    req: &Request<'_>,
    ctx: &Context<'_>,
) -> Result<Decoded, IngestError> {
    let headers = req.headers;
    let named =
        auth::lts::Stream { project_id: stream.project_id, group_id: stream.group_id, stream_id: stream.stream_id };
    let target = auth::lts::authorize(config, headers, named)?;
    let limits = &config.limits;
    if req.body.len() > limits.max_body_bytes() {
        return Err(IngestError::BodyTooLarge { limit: limits.max_body_bytes(), actual: req.body.len() });
    }
    let encoding = headers.get("content-encoding");
    let codec = Compression::from_content_encoding(encoding)
        .ok_or_else(|| IngestError::InvalidContentEncoding(encoding.unwrap_or("").to_owned()))?;
    let raw = compression::decompress(codec, req.body, None, limits.max_raw_bytes)?;
    let body = if stream.high_accuracy {
        encode_precise(&raw, limits, ctx.now_ns)?
    } else {
        encode_plain(&raw, limits, ctx.now_ns)?
    };
    Ok(Decoded {
        id: BatchId::derive(Product::Lts, &target.project, &target.logstore, req.path, &raw),
        target,
        body,
        raw_len: raw.len(),
        response: response::lts_ok(),
    })
}

fn parse_time(index: usize, raw: Option<&RawValue>) -> Result<i64, IngestError> {
    let raw = raw.ok_or_else(|| IngestError::InvalidLog { index, reason: "log_time_ns is missing".into() })?;
    let parsed = match scalar(raw) {
        Scalar::Str(s) => s.trim().parse::<i64>().ok(),
        Scalar::Other(n) => n.parse::<i64>().ok(),
        Scalar::Null => None,
    };
    parsed.filter(|t| *t > 0).ok_or_else(|| IngestError::InvalidTimestamp { index, time: raw.get().to_owned() })
}

fn check_window(index: usize, time_ns: i64, now_ns: i64, limits: &Limits) -> Result<(), IngestError> {
    let window = limits.lts_time_window_secs;
    if (time_ns.saturating_sub(now_ns)).saturating_abs() / NANOS_PER_SEC >= window {
        return Err(IngestError::TimeOutOfWindow { index, time_ns, window_secs: window });
    }
    Ok(())
}

fn check_log(index: usize, log: &str, limits: &Limits) -> Result<(), IngestError> {
    if log.len() > limits.max_value_bytes {
        return Err(IngestError::ValueTooLarge {
            index,
            key: "log".into(),
            actual: log.len(),
            limit: limits.max_value_bytes,
        });
    }
    Ok(())
}

fn label_fields<'a>(labels: &'a Option<Members<'a>>) -> Vec<(Cow<'a, str>, Cow<'a, str>, bool)> {
    labels
        .iter()
        .flat_map(|m| m.0.iter())
        .map(|(k, v)| match scalar(v) {
            Scalar::Str(s) => (k.0.clone(), s, false),
            Scalar::Null => (k.0.clone(), Cow::Borrowed(""), false),
            Scalar::Other(text) => (k.0.clone(), Cow::Borrowed(text), true),
        })
        .collect()
}

fn writer_with_labels(raw_len: usize, labels: &Option<Members<'_>>) -> BodyWriter {
    let labels = label_fields(labels);
    let tags: Vec<FieldRef<'_>> =
        labels.iter().map(|(k, v, json)| FieldRef { key: k, value: v.as_bytes(), json: *json }).collect();
    let mut writer = BodyWriter::with_capacity(raw_len + 64);
    writer.push_group(&GroupRef { tags: &tags, ..Default::default() });
    writer
}

fn encode_plain(raw: &[u8], limits: &Limits, now_ns: i64) -> Result<EncodedBody, IngestError> {
    let body: PlainBody<'_> = json::parse(raw).map_err(IngestError::InvalidBody)?;
    let contents = body.contents.ok_or_else(|| IngestError::InvalidBody("contents is required".into()))?;
    if contents.is_empty() {
        return Err(IngestError::InvalidBody("contents is empty".into()));
    }
    let base = parse_time(0, body.log_time_ns)?;
    let mut writer = writer_with_labels(raw.len(), &body.labels);
    for (index, log) in contents.iter().enumerate() {
        let time_ns = base
            .checked_add(index as i64)
            .ok_or_else(|| IngestError::InvalidTimestamp { index, time: base.to_string() })?;
        check_window(index, time_ns, now_ns, limits)?;
        check_log(index, log, limits)?;
        writer.push_record(&RecordRef { time_ns, message: log, ..Default::default() });
    }
    Ok(writer.finish())
}

fn encode_precise(raw: &[u8], limits: &Limits, now_ns: i64) -> Result<EncodedBody, IngestError> {
    let body: PreciseBody<'_> = json::parse(raw).map_err(IngestError::InvalidBody)?;
    let contents = body.contents.ok_or_else(|| IngestError::InvalidBody("contents is required".into()))?;
    if contents.is_empty() {
        return Err(IngestError::InvalidBody("contents is empty".into()));
    }
    if body.labels.is_none() {
        return Err(IngestError::InvalidBody("labels is required".into()));
    }
    let mut writer = writer_with_labels(raw.len(), &body.labels);
    for (index, entry) in contents.iter().enumerate() {
        let time_ns = parse_time(index, entry.log_time_ns)?;
        check_window(index, time_ns, now_ns, limits)?;
        let log =
            entry.log.as_deref().ok_or_else(|| IngestError::InvalidLog { index, reason: "log is missing".into() })?;
        check_log(index, log, limits)?;
        writer.push_record(&RecordRef { time_ns, message: log, ..Default::default() });
    }
    Ok(writer.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sluice_proto::batch::BatchBody;

    const NOW: i64 = 1_586_850_540_000_000_000;

    fn plain(json: &str) -> Result<BatchBody, IngestError> {
        let body = encode_plain(json.as_bytes(), &Limits::default(), NOW)?;
        Ok(BatchBody::decode(&body.bytes[..]).unwrap())
    }

    fn precise(json: &str) -> Result<BatchBody, IngestError> {
        let body = encode_precise(json.as_bytes(), &Limits::default(), NOW)?;
        Ok(BatchBody::decode(&body.bytes[..]).unwrap())
    }

    #[test]
    fn plain_logs_count_up_from_the_batch_time() {
        for time in ["1586850540000000000", "\"1586850540000000000\""] {
            let body = plain(&format!(
                r#"{{"log_time_ns": {time}, "contents": ["log1", "log2"], "labels": {{"user_tag": "string"}}}}"#
            ))
            .unwrap();
            assert_eq!(body.records[0].time_ns, 1_586_850_540_000_000_000);
            assert_eq!(body.records[1].time_ns, 1_586_850_540_000_000_001);
            assert_eq!(body.records[1].message, "log2");
            assert_eq!(body.groups[0].tags[0].key, "user_tag");
            assert_eq!(body.groups[0].tags[0].value, b"string");
        }
    }

    #[test]
    fn precise_logs_carry_their_own_time() {
        let body = precise(
            r#"{"contents": [{"log_time_ns": "1586850540000000000", "log": "log3"}, {"log_time_ns": 1586850540000000008, "log": "log4"}], "labels": {"user_tag": "string"}}"#,
        )
        .unwrap();
        assert_eq!(body.records[1].time_ns, 1_586_850_540_000_000_008);
        assert_eq!(body.records[0].message, "log3");
    }

    #[test]
    fn refuses_what_lts_refuses() {
        assert!(matches!(plain("{not json"), Err(IngestError::InvalidBody(_))));
        assert!(matches!(plain(r#"{"log_time_ns": 1, "contents": []}"#), Err(IngestError::InvalidBody(_))));
        assert!(matches!(plain(r#"{"contents": ["a"]}"#), Err(IngestError::InvalidLog { .. })));
        assert!(matches!(
            plain(r#"{"log_time_ns": "soon", "contents": ["a"]}"#),
            Err(IngestError::InvalidTimestamp { .. })
        ));
        assert!(matches!(plain(r#"{"log_time_ns": 1, "contents": ["a"]}"#), Err(IngestError::TimeOutOfWindow { .. })));
        assert!(matches!(
            plain(r#"{"log_time_ns": 1586850540000000000, "contents": [1]}"#),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            precise(r#"{"contents": [{"log_time_ns": 1586850540000000000, "log": "x"}]}"#),
            Err(IngestError::InvalidBody(_))
        ));
        assert!(matches!(
            precise(r#"{"contents": [{"log_time_ns": 1586850540000000000}], "labels": {}}"#),
            Err(IngestError::InvalidLog { .. })
        ));
    }
}
