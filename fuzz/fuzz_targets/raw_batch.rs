//! Any bytes as a raw batch: never a panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = sluice_ingest::batch::decode(data, 1 << 24);
    let _ = sluice_ingest::batch::decode_header(data);
});
