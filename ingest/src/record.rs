//! Writes a raw batch body (`sluice_proto::batch::BatchBody`) field by field from
//! borrowed input.
//!
//! Building owned prost structs would cost an allocation per string of every log; this
//! writer copies each key and value once, straight from the request into the body. The
//! bytes are exactly what prost would encode for the same records (a property test below
//! holds the two together), so the compactor reads them back with the derived types.

use prost::encoding::{WireType, encode_varint, encoded_len_varint};
use sluice_proto::batch::tag;

/// A key and a value, borrowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FieldRef<'a> {
    pub key: &'a str,
    pub value: &'a [u8],
    /// The value is JSON text of a non-string value.
    pub json: bool,
}

/// Context shared by records, borrowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct GroupRef<'a> {
    pub topic: &'a str,
    pub source: &'a str,
    pub tags: &'a [FieldRef<'a>],
    pub environment: &'a str,
    pub release: &'a str,
}

/// One normalized record, borrowed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RecordRef<'a> {
    pub time_ns: i64,
    pub group: u32,
    pub level: &'a str,
    pub message: &'a str,
    pub template: &'a str,
    pub trace_id: &'a str,
    pub span_id: &'a str,
    pub user_id: &'a str,
    pub user_email: &'a str,
    pub account_id: &'a str,
    pub account_name: &'a str,
    pub logger_name: &'a str,
    pub file_path: &'a str,
    pub line_number: Option<u32>,
    pub function_name: &'a str,
    pub fields: &'a [FieldRef<'a>],
    /// Fields already encoded as `Field` messages (canonically: key, then a non-empty
    /// value, minimal lengths), written after `fields`. An SLS `Content` is exactly such
    /// a message, so SLS logs are copied through without re-encoding.
    pub encoded_fields: &'a [&'a [u8]],
}

/// An encoded body and what the batch header says about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EncodedBody {
    pub bytes: Vec<u8>,
    pub record_count: u32,
    pub min_time_ns: i64,
    pub max_time_ns: i64,
}

/// The canonical encoding of a `Field` with this key and a non-JSON value, as prost
/// writes it: `0x0a len key`, then `0x12 len value` when the value is not empty.
pub fn is_canonical_field(encoded: &[u8], key: &[u8], value: &[u8]) -> bool {
    let expected = len_field(tag::FIELD_KEY, key.len()) + len_field(tag::FIELD_VALUE, value.len());
    !key.is_empty() && !value.is_empty() && encoded.len() == expected
}

/// Appends groups, then records, to a body.
#[derive(Debug)]
pub struct BodyWriter {
    buf: Vec<u8>,
    groups: u32,
    records: u32,
    min_time_ns: i64,
    max_time_ns: i64,
}

#[inline]
fn len_field(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { key_len(tag) + encoded_len_varint(len as u64) + len }
}

#[inline]
fn key_len(tag: u32) -> usize {
    if tag < 16 { 1 } else { 2 }
}

/// A field key: one byte below tag 16, two up to tag 2047 (all Sluice uses).
#[inline(always)]
fn encode_key(tag: u32, wire_type: WireType, buf: &mut Vec<u8>) {
    debug_assert!(tag < 2048);
    let key = (tag << 3) | wire_type as u32;
    if key < 0x80 {
        buf.push(key as u8);
    } else {
        buf.extend_from_slice(&[(key as u8) | 0x80, (key >> 7) as u8]);
    }
}

#[inline(always)]
fn put_varint(buf: &mut Vec<u8>, value: u64) {
    if value < 0x80 {
        buf.push(value as u8);
    } else {
        encode_varint(value, buf);
    }
}

#[inline(always)]
fn put_len_field(buf: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        put_varint(buf, bytes.len() as u64);
        buf.extend_from_slice(bytes);
    }
}

impl FieldRef<'_> {
    #[inline]
    fn encoded_len(&self) -> usize {
        len_field(tag::FIELD_KEY, self.key.len())
            + len_field(tag::FIELD_VALUE, self.value.len())
            + if self.json { 2 } else { 0 }
    }

    #[inline]
    fn encode(&self, outer_tag: u32, buf: &mut Vec<u8>) {
        encode_key(outer_tag, WireType::LengthDelimited, buf);
        put_varint(buf, self.encoded_len() as u64);
        put_len_field(buf, tag::FIELD_KEY, self.key.as_bytes());
        put_len_field(buf, tag::FIELD_VALUE, self.value);
        if self.json {
            encode_key(tag::FIELD_JSON, WireType::Varint, buf);
            buf.push(1);
        }
    }
}

#[inline]
fn fields_len(outer_tag: u32, fields: &[FieldRef<'_>]) -> usize {
    fields
        .iter()
        .map(|f| {
            let len = f.encoded_len();
            key_len(outer_tag) + encoded_len_varint(len as u64) + len
        })
        .sum()
}

impl GroupRef<'_> {
    fn encoded_len(&self) -> usize {
        len_field(tag::GROUP_TOPIC, self.topic.len())
            + len_field(tag::GROUP_SOURCE, self.source.len())
            + fields_len(tag::GROUP_TAGS, self.tags)
            + len_field(tag::GROUP_ENVIRONMENT, self.environment.len())
            + len_field(tag::GROUP_RELEASE, self.release.len())
    }
}

impl RecordRef<'_> {
    /// The string fields numbered before `line_number`, in field order.
    #[inline]
    fn strings(&self) -> [(u32, &str); 11] {
        [
            (tag::RECORD_LEVEL, self.level),
            (tag::RECORD_MESSAGE, self.message),
            (tag::RECORD_TEMPLATE, self.template),
            (tag::RECORD_TRACE_ID, self.trace_id),
            (tag::RECORD_SPAN_ID, self.span_id),
            (tag::RECORD_USER_ID, self.user_id),
            (tag::RECORD_USER_EMAIL, self.user_email),
            (tag::RECORD_ACCOUNT_ID, self.account_id),
            (tag::RECORD_ACCOUNT_NAME, self.account_name),
            (tag::RECORD_LOGGER_NAME, self.logger_name),
            (tag::RECORD_FILE_PATH, self.file_path),
        ]
    }

    #[inline]
    fn encoded_len(&self) -> usize {
        let mut len = if self.time_ns != 0 { 1 + 8 } else { 0 };
        if self.group != 0 {
            len += 1 + encoded_len_varint(u64::from(self.group));
        }
        for (tag, s) in self.strings() {
            len += len_field(tag, s.len());
        }
        if let Some(line) = self.line_number {
            len += 1 + encoded_len_varint(u64::from(line));
        }
        len += len_field(tag::RECORD_FUNCTION_NAME, self.function_name.len());
        len += fields_len(tag::RECORD_FIELDS, self.fields);
        for f in self.encoded_fields {
            len += len_field(tag::RECORD_FIELDS, f.len());
        }
        len
    }
}

impl BodyWriter {
    /// A writer with room for about `capacity` bytes.
    pub fn with_capacity(capacity: usize) -> Self {
        Self { buf: Vec::with_capacity(capacity), groups: 0, records: 0, min_time_ns: i64::MAX, max_time_ns: i64::MIN }
    }

    /// Appends a group and returns its index. Groups must come before records.
    pub fn push_group(&mut self, group: &GroupRef<'_>) -> u32 {
        debug_assert_eq!(self.records, 0, "groups are written before records");
        let buf = &mut self.buf;
        encode_key(tag::BODY_GROUPS, WireType::LengthDelimited, buf);
        put_varint(buf, group.encoded_len() as u64);
        put_len_field(buf, tag::GROUP_TOPIC, group.topic.as_bytes());
        put_len_field(buf, tag::GROUP_SOURCE, group.source.as_bytes());
        for t in group.tags {
            t.encode(tag::GROUP_TAGS, buf);
        }
        put_len_field(buf, tag::GROUP_ENVIRONMENT, group.environment.as_bytes());
        put_len_field(buf, tag::GROUP_RELEASE, group.release.as_bytes());
        self.groups += 1;
        self.groups - 1
    }

    /// Appends a record.
    #[inline]
    pub fn push_record(&mut self, record: &RecordRef<'_>) {
        let buf = &mut self.buf;
        encode_key(tag::BODY_RECORDS, WireType::LengthDelimited, buf);
        put_varint(buf, record.encoded_len() as u64);
        if record.time_ns != 0 {
            encode_key(tag::RECORD_TIME_NS, WireType::SixtyFourBit, buf);
            buf.extend_from_slice(&record.time_ns.to_le_bytes());
        }
        if record.group != 0 {
            encode_key(tag::RECORD_GROUP, WireType::Varint, buf);
            put_varint(buf, u64::from(record.group));
        }
        for (tag, s) in record.strings() {
            put_len_field(buf, tag, s.as_bytes());
        }
        if let Some(line) = record.line_number {
            encode_key(tag::RECORD_LINE_NUMBER, WireType::Varint, buf);
            put_varint(buf, u64::from(line));
        }
        put_len_field(buf, tag::RECORD_FUNCTION_NAME, record.function_name.as_bytes());
        for f in record.fields {
            f.encode(tag::RECORD_FIELDS, buf);
        }
        for f in record.encoded_fields {
            put_len_field(buf, tag::RECORD_FIELDS, f);
        }
        self.records += 1;
        self.min_time_ns = self.min_time_ns.min(record.time_ns);
        self.max_time_ns = self.max_time_ns.max(record.time_ns);
    }

    /// Records written so far.
    pub fn record_count(&self) -> u32 {
        self.records
    }

    pub fn finish(self) -> EncodedBody {
        let empty = self.records == 0;
        EncodedBody {
            bytes: self.buf,
            record_count: self.records,
            min_time_ns: if empty { 0 } else { self.min_time_ns },
            max_time_ns: if empty { 0 } else { self.max_time_ns },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use prost::Message;
    use sluice_proto::batch::{BatchBody, Field, Record, RecordGroup};

    fn field() -> impl Strategy<Value = Field> {
        (".{0,8}", proptest::collection::vec(any::<u8>(), 0..12), any::<bool>()).prop_map(|(key, value, json)| Field {
            key,
            value,
            json,
        })
    }

    fn group() -> impl Strategy<Value = RecordGroup> {
        (".{0,6}", ".{0,6}", proptest::collection::vec(field(), 0..3), ".{0,4}", ".{0,4}").prop_map(
            |(topic, source, tags, environment, release)| RecordGroup { topic, source, tags, environment, release },
        )
    }

    fn record() -> impl Strategy<Value = Record> {
        (
            any::<i64>(),
            0u32..300,
            proptest::collection::vec(".{0,5}", 12),
            proptest::option::of(any::<u32>()),
            proptest::collection::vec(field(), 0..4),
        )
            .prop_map(|(time_ns, group, s, line_number, fields)| Record {
                time_ns,
                group,
                level: s[0].clone(),
                message: s[1].clone(),
                template: s[2].clone(),
                trace_id: s[3].clone(),
                span_id: s[4].clone(),
                user_id: s[5].clone(),
                user_email: s[6].clone(),
                account_id: s[7].clone(),
                account_name: s[8].clone(),
                logger_name: s[9].clone(),
                file_path: s[10].clone(),
                line_number,
                function_name: s[11].clone(),
                fields,
            })
    }

    fn field_refs(fields: &[Field]) -> Vec<FieldRef<'_>> {
        fields.iter().map(|f| FieldRef { key: &f.key, value: &f.value, json: f.json }).collect()
    }

    proptest! {
        /// The streaming writer and prost's derived encoder agree byte for byte.
        #[test]
        fn writes_what_prost_writes(
            groups in proptest::collection::vec(group(), 0..3),
            records in proptest::collection::vec(record(), 0..6),
        ) {
            let body = BatchBody { groups: groups.clone(), records: records.clone() };
            let mut writer = BodyWriter::with_capacity(0);
            for g in &groups {
                let tags = field_refs(&g.tags);
                writer.push_group(&GroupRef {
                    topic: &g.topic, source: &g.source, tags: &tags,
                    environment: &g.environment, release: &g.release,
                });
            }
            for r in &records {
                let fields = field_refs(&r.fields);
                writer.push_record(&RecordRef {
                    time_ns: r.time_ns, group: r.group, level: &r.level, message: &r.message,
                    template: &r.template, trace_id: &r.trace_id, span_id: &r.span_id,
                    user_id: &r.user_id, user_email: &r.user_email, account_id: &r.account_id,
                    account_name: &r.account_name, logger_name: &r.logger_name, file_path: &r.file_path,
                    line_number: r.line_number, function_name: &r.function_name, fields: &fields,
                    encoded_fields: &[],
                });
            }
            let encoded = writer.finish();
            prop_assert_eq!(&encoded.bytes, &body.encode_to_vec());
            prop_assert_eq!(BatchBody::decode(&encoded.bytes[..]).unwrap(), body);
            prop_assert_eq!(encoded.record_count as usize, records.len());
            if let (Some(min), Some(max)) = (records.iter().map(|r| r.time_ns).min(), records.iter().map(|r| r.time_ns).max()) {
                prop_assert_eq!((encoded.min_time_ns, encoded.max_time_ns), (min, max));
            }
        }
    }
}
