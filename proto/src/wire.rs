//! A borrowing protobuf reader.
//!
//! prost decodes into owned structs, which costs an allocation per string. The ingest
//! hot path only needs to look at keys and values once, validate them and copy them into
//! a raw batch, so it walks the wire format with this reader and borrows every
//! length-delimited field from the input. Writing goes through `prost::encoding`.

use std::fmt;

/// Why a buffer is not valid protobuf.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// The buffer ends inside a field.
    Truncated,
    /// A varint is longer than ten bytes or does not fit 64 bits.
    VarintOverflow,
    /// Field number zero, or one above 2^29 - 1.
    InvalidFieldNumber,
    /// Groups (wire types 3 and 4) or an unassigned wire type.
    UnsupportedWireType(u8),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("protobuf message is truncated"),
            Self::VarintOverflow => f.write_str("protobuf varint is too long"),
            Self::InvalidFieldNumber => f.write_str("protobuf field number is invalid"),
            Self::UnsupportedWireType(t) => write!(f, "protobuf wire type {t} is not supported"),
        }
    }
}

impl std::error::Error for WireError {}

/// The value of one field, borrowed from the input where it is length-delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Fixed32(u32),
}

/// Walks the fields of one message.
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    /// The next field number and value, or `None` at the end of the message.
    #[inline]
    pub fn next_field(&mut self) -> Result<Option<(u32, Value<'a>)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > u64::from(u32::MAX >> 3) {
            return Err(WireError::InvalidFieldNumber);
        }
        let value = match (key & 7) as u8 {
            0 => Value::Varint(self.varint()?),
            1 => Value::Fixed64(u64::from_le_bytes(self.take_array()?)),
            2 => {
                let len = self.varint()?;
                let len = usize::try_from(len).map_err(|_| WireError::Truncated)?;
                Value::Bytes(self.take(len)?)
            }
            5 => Value::Fixed32(u32::from_le_bytes(self.take_array()?)),
            other => return Err(WireError::UnsupportedWireType(other)),
        };
        Ok(Some((number as u32, value)))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireError> {
        if len > self.buf.len() {
            return Err(WireError::Truncated);
        }
        let (head, tail) = self.buf.split_at(len);
        self.buf = tail;
        Ok(head)
    }

    #[inline]
    fn take_array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let bytes = self.take(N)?;
        let mut array = [0u8; N];
        array.copy_from_slice(bytes);
        Ok(array)
    }

    #[inline]
    fn varint(&mut self) -> Result<u64, WireError> {
        match self.buf.first() {
            None => Err(WireError::Truncated),
            Some(&b) if b < 0x80 => {
                self.buf = &self.buf[1..];
                Ok(u64::from(b))
            }
            Some(_) => self.varint_slow(),
        }
    }

    fn varint_slow(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &b) in self.buf.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return Err(WireError::VarintOverflow);
            }
            value |= u64::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        if self.buf.len() < 10 { Err(WireError::Truncated) } else { Err(WireError::VarintOverflow) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sls::{Content, Log};
    use proptest::prelude::*;
    use prost::Message;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, Value<'_>)>, WireError> {
        let mut reader = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(field) = reader.next_field()? {
            out.push(field);
        }
        Ok(out)
    }

    #[test]
    fn reads_every_wire_type() {
        let log = Log {
            time: 1_700_000_000,
            contents: vec![Content { key: "k".into(), value: b"v".to_vec() }],
            time_ns: Some(7),
            values: vec![],
        };
        let bytes = log.encode_to_vec();
        let got = fields(&bytes).unwrap();
        assert_eq!(got[0], (1, Value::Varint(1_700_000_000)));
        assert_eq!(got[1].0, 2);
        assert_eq!(got[2], (4, Value::Fixed32(7)));
        let mut fixed64 = vec![0x09];
        fixed64.extend_from_slice(&42u64.to_le_bytes());
        assert_eq!(fields(&fixed64).unwrap(), vec![(1, Value::Fixed64(42))]);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(fields(&[0x0a, 0x05, b'a']), Err(WireError::Truncated));
        assert_eq!(fields(&[0x08]), Err(WireError::Truncated));
        assert_eq!(fields(&[0x00, 0x00]), Err(WireError::InvalidFieldNumber));
        assert_eq!(fields(&[0x0b]), Err(WireError::UnsupportedWireType(3)));
        assert_eq!(
            fields(&[0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]),
            Err(WireError::VarintOverflow)
        );
        assert_eq!(fields(&[0x08, 0xff, 0xff, 0xff]), Err(WireError::Truncated));
    }

    proptest! {
        #[test]
        fn varints_round_trip(v in any::<u64>()) {
            let mut buf = Vec::new();
            prost::encoding::encode_varint(8, &mut buf);
            prost::encoding::encode_varint(v, &mut buf);
            prop_assert_eq!(fields(&buf).unwrap(), vec![(1, Value::Varint(v))]);
        }

        #[test]
        fn never_panics(buf in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = fields(&buf);
        }
    }
}
