//! Capped decompression of request bodies.
//!
//! Every decoder here checks the size a client declared against the limit before it
//! allocates, never produces more than the limit, and checks what it produced against
//! the declared size. No other module decompresses untrusted bytes.

use std::io::Read;

/// A body encoding the ingest APIs accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    /// A raw LZ4 block (no frame, no size prefix): SLS `x-log-compresstype: lz4`.
    Lz4,
    /// A zlib stream (RFC 1950): SLS `deflate`.
    Deflate,
    /// A zstd frame: SLS `zstd`.
    Zstd,
    /// gzip (RFC 1952), possibly several members: LTS `Content-Encoding: gzip`.
    Gzip,
    /// Snappy, raw block or framed stream: LTS `Content-Encoding: snappy`.
    Snappy,
}

impl Compression {
    /// The SLS `x-log-compresstype` header's value.
    pub fn from_sls_header(value: Option<&str>) -> Option<Self> {
        match value.map(str::trim) {
            None | Some("") => Some(Self::None),
            Some(v) if v.eq_ignore_ascii_case("lz4") => Some(Self::Lz4),
            Some(v) if v.eq_ignore_ascii_case("deflate") => Some(Self::Deflate),
            Some(v) if v.eq_ignore_ascii_case("zstd") => Some(Self::Zstd),
            Some(_) => None,
        }
    }

    /// The `Content-Encoding` header's value, as LTS accepts it.
    pub fn from_content_encoding(value: Option<&str>) -> Option<Self> {
        match value.map(str::trim) {
            None | Some("") => Some(Self::None),
            Some(v) if v.eq_ignore_ascii_case("identity") => Some(Self::None),
            Some(v) if v.eq_ignore_ascii_case("gzip") => Some(Self::Gzip),
            Some(v) if v.eq_ignore_ascii_case("snappy") => Some(Self::Snappy),
            Some(_) => None,
        }
    }
}

/// Why a body could not be decompressed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecompressError {
    #[error("declared size {declared} exceeds the limit of {limit} bytes")]
    TooLarge { declared: usize, limit: usize },
    #[error("{codec} output is {actual} bytes, but {declared} were declared")]
    SizeMismatch { codec: &'static str, declared: usize, actual: usize },
    #[error("{codec} data is corrupt: {reason}")]
    Corrupt { codec: &'static str, reason: String },
    #[error("{codec} needs the uncompressed size")]
    SizeRequired { codec: &'static str },
}

/// Decompresses `input`. `declared` is the client's uncompressed size, when the protocol
/// has one (SLS `x-log-bodyrawsize`); `limit` caps the output either way.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    declared: Option<usize>,
    limit: usize,
) -> Result<std::borrow::Cow<'_, [u8]>, DecompressError> {
    if let Some(declared) = declared
        && declared > limit
    {
        return Err(DecompressError::TooLarge { declared, limit });
    }
    let out = match codec {
        Compression::None => {
            check_size("identity", declared, input.len())?;
            if input.len() > limit {
                return Err(DecompressError::TooLarge { declared: input.len(), limit });
            }
            return Ok(std::borrow::Cow::Borrowed(input));
        }
        Compression::Lz4 => {
            let declared = declared.ok_or(DecompressError::SizeRequired { codec: "lz4" })?;
            let mut out = vec![0u8; declared];
            let written = lz4_flex::block::decompress_into(input, &mut out).map_err(|e| match e {
                // The block holds more than was declared.
                lz4_flex::block::DecompressError::OutputTooSmall { expected, .. } => {
                    DecompressError::SizeMismatch { codec: "lz4", declared, actual: expected }
                }
                e => DecompressError::Corrupt { codec: "lz4", reason: e.to_string() },
            })?;
            check_size("lz4", Some(declared), written)?;
            out
        }
        Compression::Deflate => read_capped("deflate", flate2::read::ZlibDecoder::new(input), declared, limit)?,
        Compression::Zstd => {
            let decoder = ruzstd::decoding::StreamingDecoder::new(input)
                .map_err(|e| DecompressError::Corrupt { codec: "zstd", reason: e.to_string() })?;
            read_capped("zstd", decoder, declared, limit)?
        }
        Compression::Gzip => read_capped("gzip", flate2::read::MultiGzDecoder::new(input), declared, limit)?,
        Compression::Snappy => snappy(input, declared, limit)?,
    };
    Ok(std::borrow::Cow::Owned(out))
}

fn check_size(codec: &'static str, declared: Option<usize>, actual: usize) -> Result<(), DecompressError> {
    match declared {
        Some(declared) if declared != actual => Err(DecompressError::SizeMismatch { codec, declared, actual }),
        _ => Ok(()),
    }
}

/// Reads at most `limit + 1` bytes so that an oversized stream is detected without
/// holding more than that.
fn read_capped(
    codec: &'static str,
    reader: impl Read,
    declared: Option<usize>,
    limit: usize,
) -> Result<Vec<u8>, DecompressError> {
    let cap = declared.unwrap_or(limit);
    let mut out = Vec::with_capacity(declared.unwrap_or(0).min(limit));
    reader
        .take(cap as u64 + 1)
        .read_to_end(&mut out)
        .map_err(|e| DecompressError::Corrupt { codec, reason: e.to_string() })?;
    if out.len() > limit {
        return Err(DecompressError::TooLarge { declared: out.len(), limit });
    }
    check_size(codec, declared, out.len())?;
    Ok(out)
}

const SNAPPY_STREAM_MAGIC: &[u8] = b"\xff\x06\x00\x00sNaPpY";

fn snappy(input: &[u8], declared: Option<usize>, limit: usize) -> Result<Vec<u8>, DecompressError> {
    if input.starts_with(SNAPPY_STREAM_MAGIC) {
        return read_capped("snappy", snap::read::FrameDecoder::new(input), declared, limit);
    }
    let corrupt = |e: snap::Error| DecompressError::Corrupt { codec: "snappy", reason: e.to_string() };
    let len = snap::raw::decompress_len(input).map_err(corrupt)?;
    if len > limit {
        return Err(DecompressError::TooLarge { declared: len, limit });
    }
    check_size("snappy", declared, len)?;
    snap::raw::Decoder::new().decompress_vec(input).map_err(corrupt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn sample() -> Vec<u8> {
        (0..10_000u32).flat_map(|i| format!("line {i} status=200\n").into_bytes()).collect()
    }

    #[test]
    fn round_trips_every_codec() {
        let raw = sample();
        let lz4 = lz4_flex::block::compress(&raw);
        assert_eq!(&*decompress(Compression::Lz4, &lz4, Some(raw.len()), 1 << 20).unwrap(), &raw[..]);

        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&raw).unwrap();
        let zlib = zlib.finish().unwrap();
        assert_eq!(&*decompress(Compression::Deflate, &zlib, Some(raw.len()), 1 << 20).unwrap(), &raw[..]);

        let zstd = ruzstd::encoding::compress_to_vec(&raw[..], ruzstd::encoding::CompressionLevel::Fastest);
        assert_eq!(&*decompress(Compression::Zstd, &zstd, Some(raw.len()), 1 << 20).unwrap(), &raw[..]);

        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(&*decompress(Compression::Gzip, &gz, None, 1 << 20).unwrap(), &raw[..]);

        let snappy = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        assert_eq!(&*decompress(Compression::Snappy, &snappy, None, 1 << 20).unwrap(), &raw[..]);
        let mut framed = snap::write::FrameEncoder::new(Vec::new());
        framed.write_all(&raw).unwrap();
        let framed = framed.into_inner().unwrap();
        assert_eq!(&*decompress(Compression::Snappy, &framed, None, 1 << 20).unwrap(), &raw[..]);

        assert_eq!(&*decompress(Compression::None, &raw, Some(raw.len()), 1 << 20).unwrap(), &raw[..]);
    }

    #[test]
    fn refuses_declared_sizes_over_the_limit_before_allocating() {
        let err = decompress(Compression::Lz4, b"x", Some(usize::MAX), 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }));
    }

    #[test]
    fn stops_a_bomb_at_the_limit() {
        let raw = vec![0u8; 4 << 20];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 10_000);
        let err = decompress(Compression::Gzip, &gz, None, 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }));
        let zstd = ruzstd::encoding::compress_to_vec(&raw[..], ruzstd::encoding::CompressionLevel::Fastest);
        let err = decompress(Compression::Zstd, &zstd, Some(1000), 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::SizeMismatch { .. }), "{err:?}");
        let snappy = snap::raw::Encoder::new().compress_vec(&raw).unwrap();
        let err = decompress(Compression::Snappy, &snappy, None, 1 << 20).unwrap_err();
        assert!(matches!(err, DecompressError::TooLarge { .. }));
    }

    #[test]
    fn checks_output_against_the_declared_size() {
        let raw = sample();
        let lz4 = lz4_flex::block::compress(&raw);
        assert!(decompress(Compression::Lz4, &lz4, Some(raw.len() + 1), 1 << 20).is_err());
        assert!(decompress(Compression::Lz4, &lz4, Some(raw.len() - 1), 1 << 20).is_err());
        assert!(matches!(
            decompress(Compression::None, &raw, Some(raw.len() - 1), 1 << 20),
            Err(DecompressError::SizeMismatch { .. })
        ));
    }

    #[test]
    fn reports_garbage_as_corrupt() {
        for codec in [Compression::Lz4, Compression::Deflate, Compression::Zstd, Compression::Gzip, Compression::Snappy]
        {
            let err = decompress(codec, b"\xff\xfe garbage \x00\x01", Some(100), 1 << 20).unwrap_err();
            assert!(
                matches!(err, DecompressError::Corrupt { .. } | DecompressError::SizeMismatch { .. }),
                "{codec:?}: {err:?}"
            );
        }
    }
}
