//! Proliferate batch log ingestion: `POST /api/v1/logs/batch`.
//!
//! ```json
//! {"api_key": "pk_..", "environment": "production", "release": "v1.2.3",
//!  "logs": [{"timestamp": 1736938200.123, "level": "info", "message": "..", "attributes": {..}, ..}]}
//! ```
//!
//! The key in the body picks the project. Entries are checked one by one: an invalid
//! entry is dropped and counted, the rest are kept, and the answer is
//! `202 {"accepted": n, "dropped": m}`.

use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use sluice_proto::batch::Product;
use std::borrow::Cow;
use std::fmt;

use super::Decoded;
use super::json::{self, MaybeMembers, Scalar, Str, opt_str, scalar};
use crate::auth;
use crate::batch::BatchId;
use crate::compression::{self, Compression};
use crate::config::{Config, Limits};
use crate::error::IngestError;
use crate::record::{BodyWriter, EncodedBody, FieldRef, GroupRef, RecordRef};
use crate::request::{Context, Request};
use crate::response;
use crate::time;

/// The levels Proliferate knows, lowest first.
pub const LEVELS: [&str; 6] = ["trace", "debug", "info", "warn", "error", "fatal"];
const DEFAULT_ENVIRONMENT: &str = "production";

#[derive(Deserialize)]
struct Batch<'a> {
    #[serde(borrow)]
    environment: Option<Str<'a>>,
    #[serde(borrow)]
    release: Option<Str<'a>>,
    #[serde(borrow)]
    logs: Option<Vec<Entry<'a>>>,
}

/// What is read of a batch before anything is built: its key and how many entries it
/// holds. A batch with a bad key or too many entries is refused after one pass over its
/// bytes that allocates nothing per entry.
struct Preflight<'a> {
    api_key: Option<Str<'a>>,
    logs: Option<usize>,
}

/// The length of a JSON array, its elements skipped; `None` for anything else.
struct Count(Option<usize>);

impl<'de> Deserialize<'de> for Count {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl<'de> Visitor<'de> for CountVisitor {
            type Value = Count;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array")
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Count, S::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Count(Some(n)))
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Count, M::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Count(None))
            }
            fn visit_unit<E>(self) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Count, E> {
                Ok(Count(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Count, E> {
                Ok(Count(None))
            }
        }
        deserializer.deserialize_any(CountVisitor)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Preflight<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PreflightVisitor;
        impl<'de> Visitor<'de> for PreflightVisitor {
            type Value = Preflight<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a batch object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut out = Preflight { api_key: None, logs: None };
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    match &*key {
                        "api_key" => out.api_key = map.next_value::<Option<Str<'de>>>()?,
                        "logs" => out.logs = map.next_value::<Count>()?.0,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(out)
            }
        }
        deserializer.deserialize_map(PreflightVisitor)
    }
}

/// One entry as sent: any JSON value. Objects keep their known members as raw values so
/// that a wrong type in one entry drops that entry only.
#[derive(Default)]
struct Entry<'a> {
    object: bool,
    timestamp: Option<&'a RawValue>,
    level: Option<&'a RawValue>,
    message: Option<&'a RawValue>,
    template: Option<&'a RawValue>,
    attributes: Option<MaybeMembers<'a>>,
    trace_id: Option<&'a RawValue>,
    span_id: Option<&'a RawValue>,
    user: Option<MaybeMembers<'a>>,
    account: Option<MaybeMembers<'a>>,
    logger_name: Option<&'a RawValue>,
    file_path: Option<&'a RawValue>,
    line_number: Option<&'a RawValue>,
    function_name: Option<&'a RawValue>,
}

impl<'de: 'a, 'a> Deserialize<'de> for Entry<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = Entry<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a log entry")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                let mut e = Entry { object: true, ..Default::default() };
                while let Some(key) = map.next_key::<Str<'de>>()? {
                    let slot = match &*key {
                        "timestamp" => &mut e.timestamp,
                        "level" => &mut e.level,
                        "message" => &mut e.message,
                        "template" => &mut e.template,
                        "attributes" => {
                            e.attributes = Some(map.next_value()?);
                            continue;
                        }
                        "user" => {
                            e.user = Some(map.next_value()?);
                            continue;
                        }
                        "account" => {
                            e.account = Some(map.next_value()?);
                            continue;
                        }
                        "trace_id" => &mut e.trace_id,
                        "span_id" => &mut e.span_id,
                        "logger_name" => &mut e.logger_name,
                        "file_path" => &mut e.file_path,
                        "line_number" => &mut e.line_number,
                        "function_name" => &mut e.function_name,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = Some(map.next_value::<&'de RawValue>()?);
                }
                Ok(e)
            }
            fn visit_seq<S: SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Entry::default())
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Entry::default())
            }
        }
        deserializer.deserialize_any(EntryVisitor)
    }
}

/// An entry that passed its checks, ready to encode.
#[derive(Debug, Default)]
struct Normalized<'a> {
    time_ns: i64,
    level: &'static str,
    message: Cow<'a, str>,
    template: Cow<'a, str>,
    trace_id: Cow<'a, str>,
    span_id: Cow<'a, str>,
    user_id: Cow<'a, str>,
    user_email: Cow<'a, str>,
    account_id: Cow<'a, str>,
    account_name: Cow<'a, str>,
    logger_name: Cow<'a, str>,
    file_path: Cow<'a, str>,
    line_number: Option<u32>,
    function_name: Cow<'a, str>,
    /// Attributes, then extra `user.*` / `account.*` members: key, value, is-json.
    fields: Vec<(Cow<'a, str>, Cow<'a, str>, bool)>,
}

pub fn decode(config: &Config, req: &Request<'_>, ctx: &Context<'_>) -> Result<Decoded, IngestError> {
    let limits = &config.limits;
    if req.body.len() > limits.max_body_bytes() {
        return Err(IngestError::BodyTooLarge { limit: limits.max_body_bytes(), actual: req.body.len() });
    }
    let encoding = req.headers.get("content-encoding");
    let codec = Compression::from_content_encoding(encoding)
        .ok_or_else(|| IngestError::InvalidContentEncoding(encoding.unwrap_or("").to_owned()))?;
    let raw = compression::decompress(codec, req.body, None, limits.max_raw_bytes)?;
    // The key and the count first, entries after.
    let preflight: Preflight<'_> = json::parse(&raw).map_err(IngestError::InvalidBody)?;
    let api_key = preflight.api_key.ok_or_else(|| IngestError::InvalidBody("api_key is required".into()))?;
    let (target, _key) = auth::proliferate::authorize(config, Some(&api_key), None)?;
    let count = preflight.logs.ok_or_else(|| IngestError::InvalidBody("logs is required".into()))?;
    if count > limits.max_batch_logs {
        return Err(IngestError::TooManyLogs { limit: limits.max_batch_logs, actual: count });
    }
    let batch: Batch<'_> = json::parse(&raw).map_err(IngestError::InvalidBody)?;
    let logs = batch.logs.ok_or_else(|| IngestError::InvalidBody("logs is required".into()))?;
    let environment = batch.environment.unwrap_or(Str(Cow::Borrowed(DEFAULT_ENVIRONMENT)));
    let release = batch.release.unwrap_or_default();
    let (body, dropped) = encode_entries(&logs, &environment, &release, limits, ctx.now_ns);
    let accepted = body.record_count as usize;
    Ok(Decoded {
        id: BatchId::derive(Product::Proliferate, &target.project, &target.logstore, "", &raw),
        target,
        body,
        raw_len: raw.len(),
        response: response::proliferate_accepted(accepted, dropped),
    })
}

fn encode_entries(
    logs: &[Entry<'_>],
    environment: &str,
    release: &str,
    limits: &Limits,
    now_ns: i64,
) -> (EncodedBody, usize) {
    let kept: Vec<Normalized<'_>> = logs.iter().filter_map(|e| normalize(e, limits, now_ns)).collect();
    let dropped = logs.len() - kept.len();
    let mut writer = BodyWriter::with_capacity(kept.len() * 256 + 64);
    writer.push_group(&GroupRef { environment, release, ..Default::default() });
    let mut fields: Vec<FieldRef<'_>> = Vec::new();
    for n in &kept {
        fields.clear();
        fields.extend(n.fields.iter().map(|(k, v, json)| FieldRef { key: k, value: v.as_bytes(), json: *json }));
        writer.push_record(&RecordRef {
            time_ns: n.time_ns,
            group: 0,
            level: n.level,
            message: &n.message,
            template: &n.template,
            trace_id: &n.trace_id,
            span_id: &n.span_id,
            user_id: &n.user_id,
            user_email: &n.user_email,
            account_id: &n.account_id,
            account_name: &n.account_name,
            logger_name: &n.logger_name,
            file_path: &n.file_path,
            line_number: n.line_number,
            function_name: &n.function_name,
            fields: &fields,
            encoded_fields: &[],
        });
    }
    (writer.finish(), dropped)
}

/// The level, lowercased, if it is one Proliferate knows.
pub fn parse_level(level: &str) -> Option<&'static str> {
    LEVELS.iter().copied().find(|l| l.eq_ignore_ascii_case(level.trim()))
}

/// Checks one entry. `None` drops it.
fn normalize<'a>(e: &Entry<'a>, limits: &Limits, now_ns: i64) -> Option<Normalized<'a>> {
    if !e.object {
        return None;
    }
    let time_ns = match e.timestamp.map(scalar) {
        None | Some(Scalar::Null) => now_ns,
        Some(Scalar::Other(n)) => time::parse_decimal_seconds(n)?,
        Some(Scalar::Str(s)) => time::parse_decimal_seconds(&s).or_else(|| time::parse_rfc3339_nanos(&s))?,
    };
    if time_ns <= 0 {
        return None;
    }
    let level = match opt_str(e.level).ok()? {
        None => "info",
        Some(l) => parse_level(&l)?,
    };
    let message = opt_str(e.message).ok()??;
    let text = |raw: Option<&'a RawValue>| opt_str(raw).map(Option::unwrap_or_default);
    let line_number = match e.line_number.map(scalar) {
        None | Some(Scalar::Null) => None,
        Some(Scalar::Other(n)) => Some(n.parse::<u32>().ok()?),
        Some(Scalar::Str(_)) => return None,
    };
    let mut n = Normalized {
        time_ns,
        level,
        message,
        template: text(e.template).ok()?,
        trace_id: text(e.trace_id).ok()?,
        span_id: text(e.span_id).ok()?,
        logger_name: text(e.logger_name).ok()?,
        file_path: text(e.file_path).ok()?,
        line_number,
        function_name: text(e.function_name).ok()?,
        ..Default::default()
    };
    match &e.attributes {
        Some(MaybeMembers::Object(attributes)) => {
            n.fields.reserve(attributes.0.len());
            for (key, value) in &attributes.0 {
                n.fields.push(field(key.0.clone(), value));
            }
        }
        Some(MaybeMembers::Other) => return None,
        Some(MaybeMembers::Null) | None => {}
    }
    for (prefix, object, first, second) in [("user", &e.user, "id", "email"), ("account", &e.account, "id", "name")] {
        let members = match object {
            Some(MaybeMembers::Object(members)) => members,
            Some(MaybeMembers::Other) => return None,
            Some(MaybeMembers::Null) | None => continue,
        };
        for (key, value) in &members.0 {
            let (_, text, _) = field(Cow::Borrowed(""), value);
            match (prefix, &**key) {
                ("user", k) if k == first => n.user_id = text,
                ("user", k) if k == second => n.user_email = text,
                ("account", k) if k == first => n.account_id = text,
                ("account", k) if k == second => n.account_name = text,
                _ => n.fields.push((Cow::Owned(format!("{prefix}.{}", &**key)), text, false)),
            }
        }
    }
    let too_big = [&n.message, &n.template].iter().any(|s| s.len() > limits.max_value_bytes)
        || n.fields.iter().any(|(_, v, _)| v.len() > limits.max_value_bytes);
    (!too_big).then_some(n)
}

fn field<'a>(key: Cow<'a, str>, value: &'a RawValue) -> (Cow<'a, str>, Cow<'a, str>, bool) {
    match scalar(value) {
        Scalar::Str(s) => (key, s, false),
        Scalar::Null => (key, Cow::Borrowed("null"), true),
        Scalar::Other(text) => (key, Cow::Borrowed(text), true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sluice_proto::batch::BatchBody;

    const NOW: i64 = 1_736_938_300_000_000_000;

    fn encode(json: &str) -> (BatchBody, usize) {
        let batch: Batch<'_> = json::parse(json.as_bytes()).unwrap();
        let (body, dropped) = encode_entries(&batch.logs.unwrap(), "production", "", &Limits::default(), NOW);
        (BatchBody::decode(&body.bytes[..]).unwrap(), dropped)
    }

    /// The seed document's example batch.
    #[test]
    fn normalizes_the_documented_example() {
        let (body, dropped) = encode(
            r#"{"api_key": "pk_abc123def456ghi789", "environment": "production", "release": "v1.2.3", "logs": [
              {"timestamp": 1736938200.123, "level": "info", "message": "User logged in successfully",
               "template": "User {user_id} logged in successfully",
               "attributes": {"user_id": "user_123", "ip_address": "192.168.1.1"},
               "trace_id": "trace_abc123def456", "span_id": "span_xyz789",
               "user": {"id": "user_123", "email": "user@example.com"},
               "account": {"id": "acct_456", "name": "Acme Corp"},
               "logger_name": "auth.service", "file_path": "src/auth/login.py", "line_number": 42,
               "function_name": "handle_login"},
              {"timestamp": 1736938205.456, "level": "error", "message": "Database connection failed: timeout after 5000ms",
               "template": "Database connection failed: {error}",
               "attributes": {"error": "timeout after 5000ms", "retry_count": 3},
               "trace_id": "trace_abc123def456", "logger_name": "db.pool"}]}"#,
        );
        assert_eq!(dropped, 0);
        let [a, b] = &body.records[..] else { panic!("two records") };
        assert_eq!(a.time_ns, 1_736_938_200_123_000_000);
        assert_eq!(a.level, "info");
        assert_eq!(a.user_id, "user_123");
        assert_eq!(a.user_email, "user@example.com");
        assert_eq!(a.account_name, "Acme Corp");
        assert_eq!(a.line_number, Some(42));
        assert_eq!(a.fields[1].key, "ip_address");
        assert_eq!(b.fields[1].key, "retry_count");
        assert_eq!((b.fields[1].value.as_slice(), b.fields[1].json), (&b"3"[..], true));
        assert_eq!(b.level, "error");
        assert_eq!(b.trace_id, "trace_abc123def456");
    }

    #[test]
    fn drops_invalid_entries_and_keeps_the_rest() {
        let (body, dropped) = encode(
            r#"{"logs": [
              {"timestamp": 1736938200.5, "level": "info", "message": "kept"},
              {"timestamp": 1736938200.5, "level": "verbose", "message": "bad level"},
              {"timestamp": 1736938200.5, "level": "info"},
              {"timestamp": "yesterday", "message": "bad time"},
              {"timestamp": 1736938200.5, "message": 5},
              {"timestamp": 1736938200.5, "message": "bad attrs", "attributes": [1]},
              {"timestamp": 1736938200.5, "message": "bad line", "line_number": -1},
              42, "text", null, [1, 2],
              {"message": "no time, no level: now and info", "extra": {"ignored": true}},
              {"timestamp": "2025-01-15T10:30:00.123Z", "level": "WARN", "message": "iso time"}
            ]}"#,
        );
        assert_eq!(dropped, 10);
        let messages: Vec<&str> = body.records.iter().map(|r| r.message.as_str()).collect();
        assert_eq!(messages, ["kept", "no time, no level: now and info", "iso time"]);
        assert_eq!((body.records[1].time_ns, body.records[1].level.as_str()), (NOW, "info"));
        assert_eq!((body.records[2].time_ns, body.records[2].level.as_str()), (1_736_937_000_123_000_000, "warn"));
    }
}
