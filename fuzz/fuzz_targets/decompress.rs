//! Every decompressor with any input and declared size: never a panic, never more than
//! the limit, always the declared size when one is given.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_ingest::compression::{Compression, decompress};

const LIMIT: usize = 1 << 20;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let codec = match selector % 6 {
        0 => Compression::None,
        1 => Compression::Lz4,
        2 => Compression::Deflate,
        3 => Compression::Zstd,
        4 => Compression::Gzip,
        _ => Compression::Snappy,
    };
    let (declared, body) = match rest.split_first_chunk::<3>() {
        Some((size, body)) if selector & 0x80 != 0 => {
            (Some(u32::from_le_bytes([size[0], size[1], size[2], 0]) as usize * 4), body)
        }
        _ => (None, rest),
    };
    if let Ok(out) = decompress(codec, body, declared, LIMIT) {
        assert!(out.len() <= LIMIT);
        if let Some(declared) = declared {
            assert_eq!(out.len(), declared);
        }
    }
});
