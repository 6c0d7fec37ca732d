//! Times each stage of the SLS ingest path on 1 MiB log groups, for profiling on wasm:
//!     cargo build --release --example stages --target wasm32-wasip1 -p sluice-ingest
//!     node --no-warnings scripts/run-wasi.mjs target/wasm32-wasip1/release/examples/stages.wasm
#![allow(clippy::unwrap_used)]

use sluice_ingest::auth::sls::Signer;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::format::sls::encode_log_group;
use sluice_ingest::quota::Unlimited;
use sluice_ingest::{Config, Context, Endpoint, Headers, Product, Request};
use sluice_loggen::{Generator, Kind, putlogs_body};
use std::hint::black_box;
use std::time::Instant;

fn time(name: &str, n: u32, mut f: impl FnMut()) {
    f();
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!("{name:>28}: {:7.3} ms", t.elapsed().as_secs_f64() * 1e3 / f64::from(n));
}

fn main() {
    let config = Config::development();
    let group = Generator::new(1, 1_700_000_000_000_000_000, 1_000_000).log_group_of_size(Kind::Nginx, 1 << 20);
    let (raw, lz4) = putlogs_body(&group);
    let n = 20;
    time("lz4 decompress", n, || {
        black_box(lz4_flex::block::decompress(&lz4, raw.len()).unwrap());
    });
    time("md5 of body", n, || {
        use md5::Digest;
        black_box(md5::Md5::digest(&lz4));
    });
    time("xxh3-128 of raw", n, || {
        black_box(twox_hash::XxHash3_128::oneshot(&raw));
    });
    let body = encode_log_group(&raw, &config.limits).unwrap();
    time("parse+validate+encode", n, || {
        black_box(encode_log_group(&raw, &config.limits).unwrap());
    });
    time("lz4 compress records", n, || {
        black_box(lz4_flex::block::compress(&body.bytes));
    });
    time("batch::encode (lz4+xxh3)", n, || {
        black_box(batch::encode(BatchId(1), Product::Sls, "p", "l", &body));
    });
    let signer = Signer { key_id: "sluice-demo", secret: "sluice-demo-secret" };
    let mut headers: Headers = [
        ("host", "bench.localhost".to_owned()),
        ("content-type", "application/x-protobuf".to_owned()),
        ("content-length", lz4.len().to_string()),
        ("x-log-bodyrawsize", raw.len().to_string()),
        ("x-log-compresstype", "lz4".to_owned()),
    ]
    .into_iter()
    .collect();
    signer.sign_v1("POST", "/logstores/bench/shards/lb", &[], &mut headers, &lz4, 1_700_000_000);
    time("whole signed request", n, || {
        let req =
            Request { method: "POST", path: "/logstores/bench/shards/lb", query: "", headers: &headers, body: &lz4 };
        let ctx = Context { now_ns: 1_700_000_000_000_000_000, request_id: "x" };
        black_box(
            sluice_ingest::handle(&config, Endpoint::SlsPutLogs { logstore: "bench" }, &req, &ctx, &Unlimited).unwrap(),
        );
    });
    println!("raw {} bytes, lz4 {} bytes, records {} bytes", raw.len(), lz4.len(), body.bytes.len());
}
