//! SLS PutLogs with `Content-Type: application/json`, as the Java SDK and producer send
//! it: a JSON LogGroup.
//!
//! ```json
//! {"__topic__": "web", "__source__": "10.0.0.1",
//!  "__logs__": [{"__time__": 1700000000, "status": "200", "path": "/"}],
//!  "__tags__": {"host": "a"}}
//! ```
//!
//! `__time__` is seconds, a number or a numeric string (the time of arrival when absent);
//! `__time_ns_part__` adds nanoseconds. Contents are strings; another value is kept as its
//! JSON text, as SLS stores every value as text. Keys, values and times follow the same
//! rules as the protobuf form, and the same contents are promoted to columns.

use serde_json::value::RawValue;
use std::borrow::Cow;

use super::json::{self, MaybeMembers, Members, Scalar, scalar};
use super::sls::{Columns, check_key};
use crate::config::Limits;
use crate::error::IngestError;
use crate::record::{BodyWriter, EncodedBody, FieldRef, GroupRef, RecordRef};
use crate::time::NANOS_PER_SEC;

/// One log's time and contents, the values unescaped where they had escapes.
struct Log<'a> {
    time_ns: i64,
    contents: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

/// Validates a JSON LogGroup and writes its logs as records. `now_ns` is the time of a log
/// without `__time__`.
pub fn encode(raw: &[u8], limits: &Limits, now_ns: i64) -> Result<EncodedBody, IngestError> {
    let group: Members<'_> =
        json::parse(raw).map_err(|e| IngestError::InvalidBody(format!("a json log group: {e}")))?;
    let (mut topic, mut source) = (Cow::Borrowed(""), Cow::Borrowed(""));
    let mut tags: Vec<(Cow<'_, str>, Cow<'_, str>)> = Vec::new();
    let mut logs: Vec<Log<'_>> = Vec::new();
    for (key, value) in group.0 {
        match &*key {
            "__topic__" => topic = text(value, "__topic__")?,
            "__source__" => source = text(value, "__source__")?,
            "__tags__" => {
                let members: Members<'_> = serde_json::from_str(value.get())
                    .map_err(|_| IngestError::InvalidBody("__tags__ must be an object of strings".into()))?;
                for (k, v) in members.0 {
                    let name = format!("tag {:?}", &*k);
                    tags.push((k.0, text(v, &name)?));
                }
            }
            "__logs__" => {
                let entries: Vec<MaybeMembers<'_>> = serde_json::from_str(value.get())
                    .map_err(|_| IngestError::InvalidBody("__logs__ must be an array of objects".into()))?;
                logs.reserve(entries.len());
                for (index, entry) in entries.into_iter().enumerate() {
                    let MaybeMembers::Object(members) = entry else {
                        return Err(IngestError::InvalidLog { index, reason: "a log must be an object".into() });
                    };
                    logs.push(read_log(index, members, limits, now_ns)?);
                }
            }
            // `__category__` and anything newer: not stored, as in the protobuf form.
            _ => {}
        }
    }
    let tags: Vec<FieldRef<'_>> =
        tags.iter().map(|(k, v)| FieldRef { key: k, value: v.as_bytes(), json: false }).collect();
    let size: usize = logs.iter().flat_map(|l| &l.contents).map(|(k, v)| k.len() + v.len() + 4).sum();
    let mut writer = BodyWriter::with_capacity(size + 64);
    writer.push_group(&GroupRef { topic: &topic, source: &source, tags: &tags, ..Default::default() });
    let mut fields: Vec<FieldRef<'_>> = Vec::with_capacity(16);
    for log in &logs {
        fields.clear();
        let mut columns = Columns { time_ns: log.time_ns, ..Columns::default() };
        for (key, value) in &log.contents {
            if !columns.take(key, value.as_bytes()) {
                fields.push(FieldRef { key, value: value.as_bytes(), json: false });
            }
        }
        writer.push_record(&RecordRef {
            time_ns: columns.time_ns,
            level: columns.level,
            message: columns.message,
            trace_id: columns.trace_id,
            span_id: columns.span_id,
            fields: &fields,
            ..Default::default()
        });
    }
    Ok(writer.finish())
}

/// A log object: its time and its contents, checked.
fn read_log<'a>(index: usize, members: Members<'a>, limits: &Limits, now_ns: i64) -> Result<Log<'a>, IngestError> {
    let mut seconds: Option<u64> = None;
    let mut nanos: u64 = 0;
    let mut contents = Vec::with_capacity(members.0.len());
    let bad_time = |raw: &RawValue| IngestError::InvalidTimestamp { index, time: raw.get().to_owned() };
    for (key, value) in members.0 {
        match &*key {
            "__time__" => seconds = Some(number(value).ok_or_else(|| bad_time(value))?),
            "__time_ns_part__" => nanos = number(value).ok_or_else(|| bad_time(value))?,
            _ => {
                check_key(index, &key)?;
                let value = match scalar(value) {
                    // Null is no value: the content is left out.
                    Scalar::Null => continue,
                    Scalar::Str(s) => s,
                    Scalar::Other(text) => Cow::Borrowed(text),
                };
                if value.len() > limits.max_value_bytes {
                    return Err(IngestError::ValueTooLarge {
                        index,
                        key: key.0.into_owned(),
                        actual: value.len(),
                        limit: limits.max_value_bytes,
                    });
                }
                contents.push((key.0, value));
            }
        }
    }
    let time_ns = match seconds {
        None if nanos == 0 => now_ns,
        None => return Err(IngestError::InvalidLog { index, reason: "__time_ns_part__ without __time__".into() }),
        Some(s) if s == 0 || s > u64::from(u32::MAX) || nanos >= NANOS_PER_SEC as u64 => {
            return Err(IngestError::InvalidTimestamp { index, time: format!("{s}.{nanos:09}") });
        }
        Some(s) => s as i64 * NANOS_PER_SEC + nanos as i64,
    };
    if contents.is_empty() {
        return Err(IngestError::InvalidLog { index, reason: "a log needs at least one content".into() });
    }
    Ok(Log { time_ns, contents })
}

/// A non-negative integer, as a JSON number or a string of digits.
fn number(raw: &RawValue) -> Option<u64> {
    match scalar(raw) {
        Scalar::Str(s) => s.trim().parse().ok(),
        Scalar::Other(text) => text.parse().ok(),
        Scalar::Null => None,
    }
}

/// A string member of the group; null is empty.
fn text<'a>(raw: &'a RawValue, what: &str) -> Result<Cow<'a, str>, IngestError> {
    json::opt_str(Some(raw))
        .map(Option::unwrap_or_default)
        .map_err(|()| IngestError::InvalidBody(format!("{what} must be a string")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sluice_proto::batch::{BatchBody, Field};

    const NOW: i64 = 1_800_000_000 * NANOS_PER_SEC;

    fn encode_json(text: &str) -> Result<BatchBody, IngestError> {
        let body = encode(text.as_bytes(), &Limits::default(), NOW)?;
        Ok(BatchBody::decode(&body.bytes[..]).unwrap())
    }

    fn field(key: &str, value: &str) -> Field {
        Field { key: key.into(), value: value.as_bytes().to_vec(), json: false }
    }

    #[test]
    fn reads_the_java_sdks_json_log_group() {
        let body = encode_json(
            r#"{"__topic__": "web", "__source__": "10.0.0.1",
                "__logs__": [
                  {"__time__": 1700000000, "status": "200", "path": "/a\"b", "message": "hi"},
                  {"__time__": "1700000001", "__time_ns_part__": 5, "n": 3, "obj": {"a": [1]}, "gone": null}
                ],
                "__tags__": {"host": "a"}, "__category__": "ignored"}"#,
        )
        .unwrap();
        let group = &body.groups[0];
        assert_eq!((group.topic.as_str(), group.source.as_str()), ("web", "10.0.0.1"));
        assert_eq!(group.tags, vec![field("host", "a")]);
        assert_eq!(body.records.len(), 2);
        assert_eq!(body.records[0].time_ns, 1_700_000_000 * NANOS_PER_SEC);
        assert_eq!(body.records[0].fields, vec![field("status", "200"), field("path", "/a\"b")]);
        assert_eq!(body.records[0].message, "hi");
        assert_eq!(body.records[1].time_ns, 1_700_000_001 * NANOS_PER_SEC + 5);
        assert_eq!(body.records[1].fields, vec![field("n", "3"), field("obj", r#"{"a": [1]}"#)]);
    }

    #[test]
    fn a_log_without_time_gets_the_time_of_arrival() {
        let body = encode_json(r#"{"__logs__": [{"k": "v"}]}"#).unwrap();
        assert_eq!(body.records[0].time_ns, NOW);
        assert_eq!(encode_json(r#"{"__logs__": []}"#).unwrap().records.len(), 0);
        assert_eq!(encode_json("{}").unwrap().records.len(), 0);
    }

    #[test]
    fn refuses_what_the_protobuf_form_refuses() {
        type Check = fn(&IngestError) -> bool;
        let cases: [(&str, Check); 12] = [
            ("not json", |e| matches!(e, IngestError::InvalidBody(_))),
            ("[1]", |e| matches!(e, IngestError::InvalidBody(_))),
            (r#"{"__logs__": {"k": "v"}}"#, |e| matches!(e, IngestError::InvalidBody(_))),
            (r#"{"__logs__": ["text"]}"#, |e| matches!(e, IngestError::InvalidLog { .. })),
            (r#"{"__topic__": 3, "__logs__": []}"#, |e| matches!(e, IngestError::InvalidBody(_))),
            (r#"{"__tags__": {"a": 1}}"#, |e| matches!(e, IngestError::InvalidBody(_))),
            (r#"{"__logs__": [{"__time__": 0, "k": "v"}]}"#, |e| matches!(e, IngestError::InvalidTimestamp { .. })),
            (r#"{"__logs__": [{"__time__": "soon", "k": "v"}]}"#, |e| {
                matches!(e, IngestError::InvalidTimestamp { .. })
            }),
            (r#"{"__logs__": [{"__time__": 1, "__time_ns_part__": 1000000000, "k": "v"}]}"#, |e| {
                matches!(e, IngestError::InvalidTimestamp { .. })
            }),
            (r#"{"__logs__": [{"__time__": 1}]}"#, |e| matches!(e, IngestError::InvalidLog { .. })),
            (r#"{"__logs__": [{"__time__": 1, "__source__": "x"}]}"#, |e| matches!(e, IngestError::InvalidKey { .. })),
            (r#"{"__logs__": [{"__time__": 1, "": "x"}]}"#, |e| matches!(e, IngestError::InvalidKey { .. })),
        ];
        for (text, check) in cases {
            let err = encode_json(text).unwrap_err();
            assert!(check(&err), "{text}: {err:?}");
        }
        let big = format!(r#"{{"__logs__": [{{"__time__": 1, "k": "{}"}}]}}"#, "x".repeat(1024 * 1024 + 1));
        assert!(matches!(encode_json(&big), Err(IngestError::ValueTooLarge { .. })));
        assert!(matches!(
            encode(b"{\"__topic__\": \"\xff\"}", &Limits::default(), NOW),
            Err(IngestError::InvalidBody(_))
        ));
    }
}
