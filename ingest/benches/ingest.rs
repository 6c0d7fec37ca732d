//! The ingest path per format against its floor, in the same run.
//!
//! - SLS: the floor is bare lz4 block decompression plus prost decoding of the same
//!   bytes into `LogGroup`. Sluice's path is decompress, validate, normalize, encode the
//!   raw batch (lz4 + checksum); the full request adds the signature check (MD5 of the
//!   body, HMAC).
//! - LTS and Proliferate: the floor is `serde_json` parsing the same body into
//!   `IgnoredAny`; Sluice's path is the whole request through `sluice_ingest::handle`.
//!
//! Throughput is raw (uncompressed) input bytes. `scripts/bench-report` turns criterion's
//! output into the ratio table in README.

#![allow(clippy::unwrap_used)]

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use prost::Message;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_ingest::format::sls::encode_log_group;
use sluice_ingest::quota::Unlimited;
use sluice_ingest::{Config, Context, Endpoint, Headers, Product, Request, compression};
use sluice_loggen::{Generator, Kind, lts_body, proliferate_batch, putlogs_body};
use sluice_proto::sls::LogGroup;
use std::hint::black_box;

const START_NS: i64 = 1_700_000_000_000_000_000;

fn sls(c: &mut Criterion) {
    let config = Config::development();
    for kind in [Kind::Nginx, Kind::App] {
        let mut generator = Generator::new(42, START_NS, 1_000_000);
        let group = generator.log_group_of_size(kind, 1 << 20);
        let logs = group.logs.len();
        let (raw, lz4) = putlogs_body(&group);
        let signer = Signer { key_id: DEMO_SLS_ACCESS_KEY_ID, secret: DEMO_SLS_ACCESS_KEY_SECRET };
        let mut headers: Headers = [
            ("host", "bench.localhost".to_owned()),
            ("content-type", "application/x-protobuf".to_owned()),
            ("content-length", lz4.len().to_string()),
            ("x-log-bodyrawsize", raw.len().to_string()),
            ("x-log-compresstype", "lz4".to_owned()),
        ]
        .into_iter()
        .collect();
        signer.sign_v1("POST", "/logstores/bench/shards/lb", &[], &mut headers, &lz4, START_NS / 1_000_000_000);

        let mut g = c.benchmark_group(format!("sls_lz4_{}", if kind == Kind::Nginx { "nginx" } else { "app" }));
        g.throughput(Throughput::Bytes(raw.len() as u64));
        g.bench_function(BenchmarkId::new("floor", format!("{logs}logs")), |b| {
            b.iter(|| {
                let raw = lz4_flex::block::decompress(black_box(&lz4), raw.len()).unwrap();
                black_box(LogGroup::decode(&raw[..]).unwrap())
            })
        });
        g.bench_function(BenchmarkId::new("sluice", format!("{logs}logs")), |b| {
            b.iter(|| {
                let raw =
                    compression::decompress(compression::Compression::Lz4, black_box(&lz4), Some(raw.len()), 10 << 20)
                        .unwrap();
                let body = encode_log_group(&raw, &config.limits).unwrap();
                let id = BatchId::derive(Product::Sls, "bench", "bench", "", &raw);
                black_box(batch::encode(id, Product::Sls, "bench", "bench", &body))
            })
        });
        g.bench_function(BenchmarkId::new("sluice_signed_request", format!("{logs}logs")), |b| {
            b.iter(|| {
                let req = Request {
                    method: "POST",
                    path: "/logstores/bench/shards/lb",
                    query: "",
                    headers: &headers,
                    body: black_box(&lz4),
                };
                let ctx = Context { now_ns: START_NS, request_id: "bench" };
                let endpoint = Endpoint::SlsPutLogs { logstore: "bench" };
                black_box(sluice_ingest::handle(&config, endpoint, &req, &ctx, &Unlimited).unwrap())
            })
        });
        g.finish();
    }
}

fn json(c: &mut Criterion) {
    let config = Config::development();
    let mut generator = Generator::new(7, START_NS, 1_000_000);
    let lines = generator.lines(Kind::App, 1000);
    let cases = [
        (
            "lts_contents",
            lts_body(&lines, false),
            "/v2/p/lts/groups/g/streams/s/tenant/contents",
            Endpoint::LtsContents { project_id: "p", group_id: "g", stream_id: "s", high_accuracy: false },
            1000,
        ),
        (
            "lts_high_accuracy",
            lts_body(&lines, true),
            "/v2/p/lts/groups/g/streams/s/tenant/contents/high-accuracy",
            Endpoint::LtsContents { project_id: "p", group_id: "g", stream_id: "s", high_accuracy: true },
            1000,
        ),
        (
            "proliferate_batch",
            proliferate_batch(&lines[..100], DEMO_PROLIFERATE_KEY),
            "/api/v1/logs/batch",
            Endpoint::ProliferateBatch,
            100,
        ),
    ];
    let headers: Headers =
        [("x-auth-token", DEMO_LTS_TOKEN.to_owned()), ("content-type", "application/json".to_owned())]
            .into_iter()
            .collect();
    for (name, body, path, endpoint, logs) in cases {
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(body.len() as u64));
        g.bench_function(BenchmarkId::new("floor", format!("{logs}logs")), |b| {
            b.iter(|| black_box(serde_json::from_slice::<serde::de::IgnoredAny>(black_box(body.as_bytes())).unwrap()))
        });
        g.bench_function(BenchmarkId::new("sluice", format!("{logs}logs")), |b| {
            b.iter(|| {
                let req =
                    Request { method: "POST", path, query: "", headers: &headers, body: black_box(body.as_bytes()) };
                let ctx = Context { now_ns: START_NS, request_id: "bench" };
                black_box(sluice_ingest::handle(&config, endpoint, &req, &ctx, &Unlimited).unwrap())
            })
        });
        g.finish();
    }
}

criterion_group!(benches, sls, json);
criterion_main!(benches);
