//! Dates, signatures, endpoints and keys from any text: never a panic, and keys that
//! parse print back the same.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_ingest::auth::sls::Authorization;
use sluice_ingest::layout::RawBatchKey;
use sluice_ingest::{Endpoint, time};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = time::parse_rfc1123(text);
    let _ = time::parse_iso8601_basic(text);
    let _ = time::parse_rfc3339_nanos(text);
    let _ = time::parse_decimal_seconds(text);
    let _ = Authorization::parse(text);
    let _ = Endpoint::recognize("POST", text);
    let _ = sluice_ingest::endpoint::sls_project_from_host(text);
    if let Ok(key) = text.parse::<RawBatchKey>() {
        assert_eq!(key.to_string(), text);
    }
});
