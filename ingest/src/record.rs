//! Writes a raw batch body (`sluice_proto::batch::BatchBody`) field by field from
//! borrowed input, and reads it back the same way.
//!
//! Building owned prost structs would cost an allocation per string of every log; this
//! writer copies each key and value once, straight from the request into the body, and
//! [`BodyRef::read`] hands the compactor every string borrowed from the decompressed
//! body. The bytes are exactly what prost would encode for the same records, and the
//! reader accepts and rejects exactly what prost's derived decoder does (property tests
//! below hold the three together).

use prost::encoding::{
    DecodeContext, WireType, decode_key, decode_varint, encode_varint, encoded_len_varint, skip_field,
};
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

/// A body read back without copying: every string borrowed from the body's bytes.
///
/// Its vectors are kept from one body to the next ([`BodyRef::read`] takes the previous
/// one), so that reading many batches allocates nothing per batch either.
#[derive(Debug, Default)]
pub struct BodyRef<'a> {
    pub groups: Vec<GroupRead<'a>>,
    pub records: Vec<RecordRead<'a>>,
    /// Every group's tags and every record's fields, in order.
    fields: Vec<FieldRef<'a>>,
}

/// A group as read: its tags are [`BodyRef::tags`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GroupRead<'a> {
    pub topic: &'a str,
    pub source: &'a str,
    pub environment: &'a str,
    pub release: &'a str,
    tags: (usize, usize),
}

/// A record as read: its fields are [`BodyRef::fields`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordRead<'a> {
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
    fields: (usize, usize),
}

/// Why a body cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    #[error(transparent)]
    Protobuf(#[from] prost::DecodeError),
    #[error("a length or a fixed-width value runs past the end of its message")]
    Underflow,
    #[error("field {0} has the wrong wire type")]
    WireType(u32),
    #[error("a string is not valid UTF-8")]
    Utf8,
}

impl<'a> BodyRef<'a> {
    /// Reads `bytes`, keeping the vectors of `previous` (emptied) for this body.
    pub fn read(bytes: &'a [u8], previous: BodyRef<'_>) -> Result<Self, ReadError> {
        let mut body = BodyRef {
            groups: recycle(previous.groups),
            records: recycle(previous.records),
            fields: recycle(previous.fields),
        };
        let mut input = Input(bytes);
        while let Some((tag, wire_type)) = input.key()? {
            match tag {
                tag::BODY_GROUPS => {
                    let group = body.read_group(input.message(tag, wire_type)?)?;
                    body.groups.push(group);
                }
                tag::BODY_RECORDS => {
                    let record = body.read_record(input.message(tag, wire_type)?)?;
                    body.records.push(record);
                }
                _ => input.skip(tag, wire_type)?,
            }
        }
        Ok(body)
    }

    /// A group's tags.
    pub fn tags(&self, group: &GroupRead<'_>) -> &[FieldRef<'a>] {
        &self.fields[group.tags.0..group.tags.1]
    }

    /// A record's fields.
    pub fn fields(&self, record: &RecordRead<'_>) -> &[FieldRef<'a>] {
        &self.fields[record.fields.0..record.fields.1]
    }

    /// This body's vectors, emptied, for the next.
    pub fn recycle(self) -> BodyRef<'static> {
        BodyRef { groups: recycle(self.groups), records: recycle(self.records), fields: recycle(self.fields) }
    }

    fn read_group(&mut self, bytes: &'a [u8]) -> Result<GroupRead<'a>, ReadError> {
        let mut group = GroupRead::default();
        let first = self.fields.len();
        let mut input = Input(bytes);
        while let Some((tag, wire_type)) = input.key()? {
            match tag {
                tag::GROUP_TOPIC => group.topic = input.string(tag, wire_type)?,
                tag::GROUP_SOURCE => group.source = input.string(tag, wire_type)?,
                tag::GROUP_TAGS => {
                    let field = read_field(input.message(tag, wire_type)?)?;
                    self.fields.push(field);
                }
                tag::GROUP_ENVIRONMENT => group.environment = input.string(tag, wire_type)?,
                tag::GROUP_RELEASE => group.release = input.string(tag, wire_type)?,
                _ => input.skip(tag, wire_type)?,
            }
        }
        group.tags = (first, self.fields.len());
        Ok(group)
    }

    fn read_record(&mut self, bytes: &'a [u8]) -> Result<RecordRead<'a>, ReadError> {
        let mut r = RecordRead::default();
        let first = self.fields.len();
        let mut input = Input(bytes);
        while let Some((tag, wire_type)) = input.key()? {
            match tag {
                tag::RECORD_TIME_NS => r.time_ns = input.fixed64(tag, wire_type)?,
                tag::RECORD_GROUP => r.group = input.varint(tag, wire_type)? as u32,
                tag::RECORD_LEVEL => r.level = input.string(tag, wire_type)?,
                tag::RECORD_MESSAGE => r.message = input.string(tag, wire_type)?,
                tag::RECORD_TEMPLATE => r.template = input.string(tag, wire_type)?,
                tag::RECORD_TRACE_ID => r.trace_id = input.string(tag, wire_type)?,
                tag::RECORD_SPAN_ID => r.span_id = input.string(tag, wire_type)?,
                tag::RECORD_USER_ID => r.user_id = input.string(tag, wire_type)?,
                tag::RECORD_USER_EMAIL => r.user_email = input.string(tag, wire_type)?,
                tag::RECORD_ACCOUNT_ID => r.account_id = input.string(tag, wire_type)?,
                tag::RECORD_ACCOUNT_NAME => r.account_name = input.string(tag, wire_type)?,
                tag::RECORD_LOGGER_NAME => r.logger_name = input.string(tag, wire_type)?,
                tag::RECORD_FILE_PATH => r.file_path = input.string(tag, wire_type)?,
                tag::RECORD_LINE_NUMBER => r.line_number = Some(input.varint(tag, wire_type)? as u32),
                tag::RECORD_FUNCTION_NAME => r.function_name = input.string(tag, wire_type)?,
                tag::RECORD_FIELDS => {
                    let field = read_field(input.message(tag, wire_type)?)?;
                    self.fields.push(field);
                }
                _ => input.skip(tag, wire_type)?,
            }
        }
        r.fields = (first, self.fields.len());
        Ok(r)
    }
}

fn read_field(bytes: &[u8]) -> Result<FieldRef<'_>, ReadError> {
    let mut field = FieldRef::default();
    let mut input = Input(bytes);
    while let Some((tag, wire_type)) = input.key()? {
        match tag {
            tag::FIELD_KEY => field.key = input.string(tag, wire_type)?,
            tag::FIELD_VALUE => field.value = input.message(tag, wire_type)?,
            tag::FIELD_JSON => field.json = input.varint(tag, wire_type)? != 0,
            _ => input.skip(tag, wire_type)?,
        }
    }
    Ok(field)
}

/// An empty vector in the allocation of another, whose elements borrow for another
/// lifetime (collecting an emptied vector into one of the same layout reuses it).
fn recycle<T, U>(mut v: Vec<T>) -> Vec<U> {
    v.clear();
    v.into_iter().map(|_| unreachable!("the vector is empty")).collect()
}

/// The rest of a message.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn key(&mut self) -> Result<Option<(u32, WireType)>, ReadError> {
        if self.0.is_empty() { Ok(None) } else { Ok(Some(decode_key(&mut self.0)?)) }
    }

    fn expect(tag: u32, actual: WireType, expected: WireType) -> Result<(), ReadError> {
        if actual == expected { Ok(()) } else { Err(ReadError::WireType(tag)) }
    }

    /// A length-delimited value.
    fn message(&mut self, tag: u32, wire_type: WireType) -> Result<&'a [u8], ReadError> {
        Self::expect(tag, wire_type, WireType::LengthDelimited)?;
        let len = decode_varint(&mut self.0)?;
        if len > self.0.len() as u64 {
            return Err(ReadError::Underflow);
        }
        let (value, rest) = self.0.split_at(len as usize);
        self.0 = rest;
        Ok(value)
    }

    fn string(&mut self, tag: u32, wire_type: WireType) -> Result<&'a str, ReadError> {
        std::str::from_utf8(self.message(tag, wire_type)?).map_err(|_| ReadError::Utf8)
    }

    fn varint(&mut self, tag: u32, wire_type: WireType) -> Result<u64, ReadError> {
        Self::expect(tag, wire_type, WireType::Varint)?;
        Ok(decode_varint(&mut self.0)?)
    }

    fn fixed64(&mut self, tag: u32, wire_type: WireType) -> Result<i64, ReadError> {
        Self::expect(tag, wire_type, WireType::SixtyFourBit)?;
        let (value, rest) = self.0.split_first_chunk::<8>().ok_or(ReadError::Underflow)?;
        self.0 = rest;
        Ok(i64::from_le_bytes(*value))
    }

    fn skip(&mut self, tag: u32, wire_type: WireType) -> Result<(), ReadError> {
        Ok(skip_field(wire_type, tag, &mut self.0, DecodeContext::default())?)
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

    /// What the reader read, as prost's owned types.
    fn owned(body: &BodyRef<'_>) -> BatchBody {
        let fields = |fields: &[FieldRef<'_>]| -> Vec<Field> {
            fields.iter().map(|f| Field { key: f.key.into(), value: f.value.into(), json: f.json }).collect()
        };
        BatchBody {
            groups: body
                .groups
                .iter()
                .map(|g| RecordGroup {
                    topic: g.topic.into(),
                    source: g.source.into(),
                    tags: fields(body.tags(g)),
                    environment: g.environment.into(),
                    release: g.release.into(),
                })
                .collect(),
            records: body
                .records
                .iter()
                .map(|r| Record {
                    time_ns: r.time_ns,
                    group: r.group,
                    level: r.level.into(),
                    message: r.message.into(),
                    template: r.template.into(),
                    trace_id: r.trace_id.into(),
                    span_id: r.span_id.into(),
                    user_id: r.user_id.into(),
                    user_email: r.user_email.into(),
                    account_id: r.account_id.into(),
                    account_name: r.account_name.into(),
                    logger_name: r.logger_name.into(),
                    file_path: r.file_path.into(),
                    line_number: r.line_number,
                    function_name: r.function_name.into(),
                    fields: fields(body.fields(r)),
                })
                .collect(),
        }
    }

    /// The reader and prost's derived decoder accept the same bytes and read the same.
    fn reads_as_prost(bytes: &[u8], previous: BodyRef<'_>) -> Result<BodyRef<'static>, TestCaseError> {
        let read = BodyRef::read(bytes, previous);
        match (BatchBody::decode(bytes), &read) {
            (Ok(expected), Ok(body)) => prop_assert_eq!(owned(body), expected),
            (Err(_), Err(_)) => {}
            (expected, read) => prop_assert!(false, "prost: {expected:?}, reader: {read:?}"),
        }
        Ok(read.map(BodyRef::recycle).unwrap_or_default())
    }

    proptest! {
        /// What prost encodes, the reader reads as prost does; and a body with bytes
        /// changed, cut or added (a corrupt batch, fields from a later version) is
        /// accepted or refused as prost does, and read the same when accepted.
        #[test]
        fn reads_what_prost_reads(
            groups in proptest::collection::vec(group(), 0..3),
            records in proptest::collection::vec(record(), 0..6),
            changes in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 0..4),
            cut in any::<prop::sample::Index>(),
            noise in proptest::collection::vec(any::<u8>(), 0..16),
        ) {
            let encoded = BatchBody { groups, records }.encode_to_vec();
            let previous = reads_as_prost(&encoded, BodyRef::default())?;
            let mut changed = encoded.clone();
            for (at, byte, how) in changes {
                if changed.is_empty() {
                    break;
                }
                let at = at.index(changed.len());
                match how {
                    0 => changed[at] = byte,
                    1 => changed.insert(at, byte),
                    _ => { changed.remove(at); }
                }
            }
            let previous = reads_as_prost(&changed, previous)?;
            let previous = reads_as_prost(&encoded[..cut.index(encoded.len() + 1)], previous)?;
            reads_as_prost(&noise, previous)?;
        }

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
