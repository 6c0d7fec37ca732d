//! A signed PutLogs request with any body, form (protobuf, JSON, LoongCollector's
//! `batch_group`), compression and declared size: never a panic, and an accepted
//! request's batch reads back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_ingest::quota::Unlimited;
use sluice_ingest::{Config, Context, Endpoint, Headers, Request, batch};

const NOW: i64 = 1_700_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let Some((size, body)) = rest.split_first_chunk::<3>() else { return };
    let compress = ["lz4", "deflate", "zstd", ""][usize::from(selector % 4)];
    let form = (selector >> 2) % 3;
    let raw_size = match form {
        2 => body.len() as u32,
        _ => u32::from_le_bytes([size[0], size[1], size[2], 0]),
    };
    let content_type = if form == 1 { "application/json" } else { "application/x-protobuf" };
    let mut headers: Headers = [
        ("host", "fuzz.localhost".to_owned()),
        ("content-type", content_type.to_owned()),
        ("content-length", body.len().to_string()),
        ("x-log-bodyrawsize", raw_size.to_string()),
    ]
    .into_iter()
    .collect();
    if !compress.is_empty() {
        headers.insert("x-log-compresstype", compress);
    }
    if form == 2 {
        headers.insert("x-log-mode", "batch_group");
    }
    let path = "/logstores/app/shards/lb";
    Signer { key_id: DEMO_SLS_ACCESS_KEY_ID, secret: DEMO_SLS_ACCESS_KEY_SECRET }
        .sign_v1("POST", path, &[], &mut headers, body, NOW);
    let req = Request { method: "POST", path, query: "", headers: &headers, body };
    let ctx = Context { now_ns: NOW * 1_000_000_000, request_id: "fuzz" };
    let config = Config::development();
    if let Ok(accepted) = sluice_ingest::handle(&config, Endpoint::SlsPutLogs { logstore: "app" }, &req, &ctx, &Unlimited) {
        if let Some(stored) = accepted.batch {
            let decoded = batch::decode(&stored.bytes, 1 << 30).expect("stored batches decode");
            assert_eq!(decoded.body.records.len(), accepted.records as usize);
        }
    }
});
