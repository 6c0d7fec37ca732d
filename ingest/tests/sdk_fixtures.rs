//! Replays PutLogs requests captured from the official SLS Python SDK (see
//! `fixtures/sls/README.md`) through the ingest core, with the clock at each request's
//! own date.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use sluice_ingest::batch;
use sluice_ingest::quota::Unlimited;
use sluice_ingest::time::{NANOS_PER_SEC, parse_iso8601_basic, parse_rfc1123};
use sluice_ingest::{Config, Context, Endpoint, Headers, Request};

#[derive(Deserialize)]
struct Fixture {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    logs: Vec<SentLog>,
    topic: String,
    source: String,
    tags: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct SentLog {
    time: i64,
    time_ns: i64,
    contents: Vec<(String, String)>,
}

const CASES: [(&str, &str, &[u8]); 4] = [
    ("lz4", include_str!("fixtures/sls/lz4.json"), include_bytes!("fixtures/sls/lz4.body")),
    ("zstd", include_str!("fixtures/sls/zstd.json"), include_bytes!("fixtures/sls/zstd.body")),
    ("hashkey", include_str!("fixtures/sls/hashkey.json"), include_bytes!("fixtures/sls/hashkey.body")),
    ("v4", include_str!("fixtures/sls/v4.json"), include_bytes!("fixtures/sls/v4.body")),
];

fn request_time(headers: &Headers) -> i64 {
    let secs = headers
        .get("date")
        .and_then(parse_rfc1123)
        .or_else(|| headers.get("x-log-date").and_then(parse_iso8601_basic))
        .expect("the SDK sends a date");
    secs * NANOS_PER_SEC
}

#[test]
fn sdk_requests_are_accepted_with_every_log_intact() {
    let config = Config::development();
    for (name, json, body) in CASES {
        let fixture: Fixture = serde_json::from_str(json).unwrap();
        let headers: Headers = fixture.headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
        let req =
            Request { method: &fixture.method, path: &fixture.path, query: &fixture.query, headers: &headers, body };
        let endpoint = Endpoint::recognize(req.method, req.path).expect("a PutLogs path");
        let ctx = Context { now_ns: request_time(&headers) + 30 * NANOS_PER_SEC, request_id: "fixture" };
        let accepted = sluice_ingest::handle(&config, endpoint, &req, &ctx, &Unlimited)
            .unwrap_or_else(|r| panic!("{name}: {} {}", r.status, String::from_utf8_lossy(&r.body)));
        assert_eq!(accepted.response.status, 200, "{name}");
        assert_eq!(accepted.target.project, "fixtures", "{name}");
        assert_eq!(accepted.target.logstore, "app", "{name}");
        let stored = accepted.batch.expect("a batch");
        assert!(stored.key.to_string().starts_with("raw/fixtures/app/"), "{name}");
        let decoded = batch::decode(&stored.bytes, 1 << 30).unwrap();
        assert_eq!(decoded.id, stored.key.id);
        let group = &decoded.body.groups[0];
        assert_eq!((group.topic.as_str(), group.source.as_str()), (fixture.topic.as_str(), fixture.source.as_str()));
        let tags: Vec<(String, String)> =
            group.tags.iter().map(|t| (t.key.clone(), String::from_utf8(t.value.clone()).unwrap())).collect();
        assert_eq!(tags, fixture.tags, "{name}");
        assert_eq!(decoded.body.records.len(), fixture.logs.len(), "{name}");
        for (record, sent) in decoded.body.records.iter().zip(&fixture.logs) {
            assert_eq!(record.time_ns, sent.time * NANOS_PER_SEC + sent.time_ns, "{name}");
            // The SDK sends message and level as contents: they fill the record's columns.
            let promoted = [("level", &record.level), ("message", &record.message)];
            let mut stored: Vec<(String, String)> = promoted
                .iter()
                .filter(|(_, v)| !v.is_empty())
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .chain(record.fields.iter().map(|f| (f.key.clone(), String::from_utf8(f.value.clone()).unwrap())))
                .collect();
            stored.sort();
            let mut sent = sent.contents.clone();
            sent.sort();
            assert_eq!(stored, sent, "{name}");
            assert_eq!(record.fields.len(), 2, "{name}: latency_ms and path stay fields");
        }
    }
}

#[test]
fn a_tampered_sdk_request_is_refused() {
    let config = Config::development();
    let (_, json, body) = CASES[0];
    let fixture: Fixture = serde_json::from_str(json).unwrap();
    let mut headers: Headers = fixture.headers.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let ctx = Context { now_ns: request_time(&headers), request_id: "fixture" };
    let endpoint = Endpoint::SlsPutLogs { logstore: "app" };
    let other_path = Request { method: "POST", path: "/logstores/other/shards/lb", query: "", headers: &headers, body };
    let refused = sluice_ingest::handle(&config, endpoint, &other_path, &ctx, &Unlimited).unwrap_err();
    assert_eq!(refused.status, 401);
    assert!(String::from_utf8_lossy(&refused.body).contains("SignatureNotMatch"));
    headers.insert("x-log-bodyrawsize", "1");
    let req = Request { method: "POST", path: &fixture.path, query: "", headers: &headers, body };
    assert_eq!(sluice_ingest::handle(&config, endpoint, &req, &ctx, &Unlimited).unwrap_err().status, 401);
}
