//! The raw batch: one object per accepted request.
//!
//! ```text
//! offset  size  field
//!      0     4  magic "SLRB"
//!      4     2  format version (1), little endian
//!      6     1  body codec (1 = lz4 block)
//!      7     1  reserved (0)
//!      8     4  header length
//!     12     4  body length, uncompressed
//!     16     4  body length, stored
//!     20    16  batch id
//!     36     …  header: a protobuf `BatchHeader`
//!      …     …  body: a protobuf `BatchBody`, lz4 block
//!    end-8   8  checksum: xxh3-64 of every byte before it
//! ```
//!
//! The batch id is derived from the request's content (product, project, logstore and
//! the uncompressed request body), so a retried request lands on the same key with the
//! same bytes and is stored once.

use prost::Message;
use sluice_proto::batch::{BatchBody, BatchHeader, Product};
use std::fmt;
use std::str::FromStr;
use twox_hash::{XxHash3_64, XxHash3_128};

use crate::record::{BodyRef, EncodedBody};

pub const MAGIC: [u8; 4] = *b"SLRB";
pub const FORMAT_VERSION: u16 = 1;
const CODEC_LZ4: u8 = 1;
const PREFIX_LEN: usize = 36;
const TRAILER_LEN: usize = 8;

/// A content-derived batch id, written as 32 lowercase hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BatchId(pub u128);

impl BatchId {
    /// The id of a request's content: product, project, logstore, a scope the format
    /// chooses (LTS: the path, which names the stream) and the uncompressed request body.
    pub fn derive(product: Product, project: &str, logstore: &str, scope: &str, content: &[u8]) -> Self {
        let mut identity = Vec::with_capacity(16 + project.len() + logstore.len() + scope.len());
        identity.push(product as i32 as u8);
        for name in [project, logstore, scope] {
            identity.extend_from_slice(&(name.len() as u32).to_le_bytes());
            identity.extend_from_slice(name.as_bytes());
        }
        Self(XxHash3_128::oneshot_with_seed(XxHash3_64::oneshot(&identity), content))
    }

    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }
}

impl fmt::Display for BatchId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl FromStr for BatchId {
    type Err = BatchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 32 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BatchError::InvalidId(s.to_owned()));
        }
        u128::from_str_radix(s, 16).map(Self).map_err(|_| BatchError::InvalidId(s.to_owned()))
    }
}

/// A log's stable id: its batch and position, plus its time so that finding it again
/// reads one partition. Written `{batch id}-{position}-{time ns}`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EventId {
    pub batch: BatchId,
    pub position: u32,
    pub time_ns: i64,
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.batch, self.position, self.time_ns)
    }
}

impl FromStr for EventId {
    type Err = BatchError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || BatchError::InvalidId(s.to_owned());
        let mut parts = s.splitn(3, '-');
        let (Some(batch), Some(position), Some(time)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(position) || !digits(time) {
            return Err(invalid());
        }
        Ok(Self {
            batch: batch.parse()?,
            position: position.parse().map_err(|_| invalid())?,
            time_ns: time.parse().map_err(|_| invalid())?,
        })
    }
}

/// Why bytes are not a raw batch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BatchError {
    #[error("not a raw batch: bad magic")]
    BadMagic,
    #[error("raw batch format version {0} is not supported")]
    UnsupportedVersion(u16),
    #[error("raw batch codec {0} is not supported")]
    UnsupportedCodec(u8),
    #[error("raw batch is truncated")]
    Truncated,
    #[error("raw batch checksum does not match")]
    ChecksumMismatch,
    #[error("raw batch body of {declared} bytes exceeds the limit of {limit}")]
    TooLarge { declared: usize, limit: usize },
    #[error("raw batch is corrupt: {0}")]
    Corrupt(String),
    #[error("{0:?} is not a batch id")]
    InvalidId(String),
}

/// A raw batch read back.
#[derive(Clone, Debug, PartialEq)]
pub struct DecodedBatch {
    pub id: BatchId,
    pub header: BatchHeader,
    pub body: BatchBody,
}

/// Frames a header and an encoded body into raw batch bytes.
pub fn encode(id: BatchId, product: Product, project: &str, logstore: &str, body: &EncodedBody) -> Vec<u8> {
    let header = BatchHeader {
        product: product as i32,
        project: project.to_owned(),
        logstore: logstore.to_owned(),
        record_count: body.record_count,
        min_time_ns: body.min_time_ns,
        max_time_ns: body.max_time_ns,
    };
    let header_len = header.encoded_len();
    let max_stored = lz4_flex::block::get_maximum_output_size(body.bytes.len());
    let mut out = Vec::with_capacity(PREFIX_LEN + header_len + max_stored + TRAILER_LEN);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.push(CODEC_LZ4);
    out.push(0);
    out.extend_from_slice(&(header_len as u32).to_le_bytes());
    out.extend_from_slice(&(body.bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&id.to_bytes());
    header.encode(&mut out).expect("a vec grows as needed");
    let start = out.len();
    out.resize(start + max_stored, 0);
    let stored =
        lz4_flex::block::compress_into(&body.bytes, &mut out[start..]).expect("output is sized for the worst case");
    out.truncate(start + stored);
    out[16..20].copy_from_slice(&(stored as u32).to_le_bytes());
    let checksum = XxHash3_64::oneshot(&out);
    out.extend_from_slice(&checksum.to_le_bytes());
    out
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    let mut b = [0u8; 4];
    b.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(b) as usize
}

/// Reads only the header and id of a raw batch, after checking its checksum.
pub fn decode_header(bytes: &[u8]) -> Result<(BatchId, BatchHeader), BatchError> {
    let parts = split(bytes)?;
    Ok((parts.id, parts.header))
}

/// A checked raw batch, split into id, header, stored body and uncompressed body length.
struct Parts<'a> {
    id: BatchId,
    header: BatchHeader,
    stored: &'a [u8],
    body_len: usize,
}

fn split(bytes: &[u8]) -> Result<Parts<'_>, BatchError> {
    if bytes.len() < PREFIX_LEN + TRAILER_LEN {
        return Err(if bytes.starts_with(&MAGIC) { BatchError::Truncated } else { BatchError::BadMagic });
    }
    if bytes[..4] != MAGIC {
        return Err(BatchError::BadMagic);
    }
    let version = u16::from_le_bytes([bytes[4], bytes[5]]);
    if version != FORMAT_VERSION {
        return Err(BatchError::UnsupportedVersion(version));
    }
    if bytes[6] != CODEC_LZ4 {
        return Err(BatchError::UnsupportedCodec(bytes[6]));
    }
    let header_len = u32_at(bytes, 8);
    let body_len = u32_at(bytes, 12);
    let stored_len = u32_at(bytes, 16);
    if PREFIX_LEN + header_len + stored_len + TRAILER_LEN != bytes.len() {
        return Err(BatchError::Truncated);
    }
    let (content, trailer) = bytes.split_at(bytes.len() - TRAILER_LEN);
    let mut sum = [0u8; 8];
    sum.copy_from_slice(trailer);
    if XxHash3_64::oneshot(content) != u64::from_le_bytes(sum) {
        return Err(BatchError::ChecksumMismatch);
    }
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[20..36]);
    let header_end = PREFIX_LEN + header_len;
    let header = BatchHeader::decode(&bytes[PREFIX_LEN..header_end]).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    Ok(Parts {
        id: BatchId(u128::from_be_bytes(id)),
        header,
        stored: &bytes[header_end..bytes.len() - TRAILER_LEN],
        body_len,
    })
}

/// Reads a raw batch: checksum, header and records. `limit` caps the uncompressed body.
pub fn decode(bytes: &[u8], limit: usize) -> Result<DecodedBatch, BatchError> {
    let mut raw = Vec::new();
    let (id, header) = decompress(bytes, limit, &mut raw)?;
    let body = BatchBody::decode(&raw[..]).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    check_count(&header, body.records.len())?;
    Ok(DecodedBatch { id, header, body })
}

/// A raw batch read without copying its strings, which borrow from the decompression
/// buffer.
#[derive(Debug)]
pub struct BatchRef<'a> {
    pub id: BatchId,
    pub header: BatchHeader,
    pub body: BodyRef<'a>,
}

/// Reads a raw batch as [`decode`] does, the body borrowed from `raw` (a decompression
/// buffer used again from one batch to the next) and read into the vectors of
/// `previous`: no allocation per string, none per batch once warm.
pub fn read_into<'a>(
    bytes: &[u8],
    limit: usize,
    raw: &'a mut Vec<u8>,
    previous: BodyRef<'_>,
) -> Result<BatchRef<'a>, BatchError> {
    let (id, header) = decompress(bytes, limit, raw)?;
    let body = BodyRef::read(raw, previous).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    check_count(&header, body.records.len())?;
    Ok(BatchRef { id, header, body })
}

/// Checks a raw batch and decompresses its body into `raw`.
fn decompress(bytes: &[u8], limit: usize, raw: &mut Vec<u8>) -> Result<(BatchId, BatchHeader), BatchError> {
    let Parts { id, header, stored, body_len } = split(bytes)?;
    if body_len > limit {
        return Err(BatchError::TooLarge { declared: body_len, limit });
    }
    raw.clear();
    raw.resize(body_len, 0);
    let written = lz4_flex::block::decompress_into(stored, raw).map_err(|e| BatchError::Corrupt(e.to_string()))?;
    if written != body_len {
        return Err(BatchError::Corrupt(format!("body is {written} bytes, header says {body_len}")));
    }
    Ok((id, header))
}

fn check_count(header: &BatchHeader, records: usize) -> Result<(), BatchError> {
    if records == header.record_count as usize {
        Ok(())
    } else {
        Err(BatchError::Corrupt(format!("body holds {records} records, header says {}", header.record_count)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{BodyWriter, FieldRef, GroupRef, RecordRef};
    use proptest::prelude::*;

    fn body(messages: &[String]) -> EncodedBody {
        let mut writer = BodyWriter::with_capacity(64);
        writer.push_group(&GroupRef { topic: "t", ..Default::default() });
        for (i, m) in messages.iter().enumerate() {
            let fields = [FieldRef { key: "k", value: m.as_bytes(), json: false }];
            writer.push_record(&RecordRef {
                time_ns: 1_000 + i as i64,
                message: m,
                fields: &fields,
                ..Default::default()
            });
        }
        writer.finish()
    }

    proptest! {
        #[test]
        fn round_trips(messages in proptest::collection::vec(".{0,40}", 0..20), project in "[a-z]{1,8}") {
            let encoded = body(&messages);
            let id = BatchId::derive(Product::Sls, &project, "app", "", b"content");
            let bytes = encode(id, Product::Sls, &project, "app", &encoded);
            let decoded = decode(&bytes, 1 << 20).unwrap();
            prop_assert_eq!(decoded.id, id);
            prop_assert_eq!(&decoded.header.project, &project);
            prop_assert_eq!(decoded.header.record_count as usize, messages.len());
            prop_assert_eq!(decoded.body.records.len(), messages.len());
            for (r, m) in decoded.body.records.iter().zip(&messages) {
                prop_assert_eq!(&r.message, m);
            }
            prop_assert_eq!(decode_header(&bytes).unwrap().1, decoded.header);
        }

        #[test]
        fn ids_round_trip_as_text(v in any::<u128>()) {
            prop_assert_eq!(BatchId(v).to_string().parse::<BatchId>().unwrap(), BatchId(v));
        }

        #[test]
        fn event_ids_round_trip_as_text(batch in any::<u128>(), position in any::<u32>(), time_ns in 0i64..i64::MAX) {
            let id = EventId { batch: BatchId(batch), position, time_ns };
            prop_assert_eq!(id.to_string().parse::<EventId>().unwrap(), id);
        }

        #[test]
        fn event_ids_never_panic(text in "\\PC{0,80}") {
            let _ = text.parse::<EventId>();
        }

        #[test]
        fn any_flipped_byte_is_detected(at in 0usize..10_000, bit in 0u8..8) {
            let encoded = body(&["hello".to_owned(), "world".to_owned()]);
            let mut bytes = encode(BatchId(7), Product::Lts, "p", "l", &encoded);
            let at = at % bytes.len();
            bytes[at] ^= 1 << bit;
            prop_assert!(decode(&bytes, 1 << 20).is_err());
        }

        #[test]
        fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(&bytes, 1 << 20);
        }
    }

    #[test]
    fn ids_depend_on_every_part_of_the_identity() {
        let base = BatchId::derive(Product::Sls, "p", "l", "", b"x");
        assert_eq!(base, BatchId::derive(Product::Sls, "p", "l", "", b"x"));
        assert_ne!(base, BatchId::derive(Product::Lts, "p", "l", "", b"x"));
        assert_ne!(base, BatchId::derive(Product::Sls, "pl", "", "", b"x"));
        assert_ne!(base, BatchId::derive(Product::Sls, "p", "l", "s", b"x"));
        assert_ne!(base, BatchId::derive(Product::Sls, "p", "l", "", b"y"));
        assert!("xyz".parse::<BatchId>().is_err());
        assert!("0123456789ABCDEF0123456789abcdef".parse::<BatchId>().is_err());
    }
}
