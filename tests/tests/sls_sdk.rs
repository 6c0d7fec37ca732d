//! The unmodified official SLS Python SDK writes to `sluice serve`, and the raw batches
//! hold exactly the logs it sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use sluice_tests::{Server, read_batches, run_python};

#[derive(Deserialize)]
struct Sent {
    logs: Vec<SentLog>,
}

#[derive(Deserialize, PartialEq, Debug, Clone)]
struct SentLog {
    time: i64,
    time_ns: i64,
    contents: Vec<(String, String)>,
}

fn stored_logs(dir: &std::path::Path) -> Vec<SentLog> {
    let mut logs: Vec<SentLog> = read_batches(dir)
        .into_iter()
        .flat_map(|b| {
            assert_eq!(b.header.project, "demo");
            assert_eq!(b.body.groups[0].topic, "sdk");
            assert_eq!(b.body.groups[0].source, "10.0.0.1");
            b.body.records.into_iter().map(|r| SentLog {
                time: r.time_ns / 1_000_000_000,
                time_ns: r.time_ns % 1_000_000_000,
                contents: sluice_tests::sls_contents(&r),
            })
        })
        .collect();
    logs.sort_by_key(|l| (l.time, l.time_ns));
    logs
}

#[test]
fn sdk_put_logs_with_lz4_zstd_hash_key_v4_and_uncompressed() {
    for case in ["lz4", "zstd", "hashkey", "v4", "none"] {
        let data = tempfile::tempdir().unwrap();
        let server = Server::start(data.path(), &[]);
        let out = run_python(
            "put_logs.py",
            &["--port", &server.port.to_string(), "--case", case, "--count", "50", "--requests", "3"],
        );
        let mut sent: Sent = serde_json::from_str(&out).unwrap();
        sent.logs.sort_by_key(|l| (l.time, l.time_ns));
        for log in &mut sent.logs {
            log.contents.sort();
        }
        assert_eq!(sent.logs.len(), 150);
        let batches = read_batches(data.path());
        assert_eq!(batches.len(), 3, "{case}: one raw batch per request");
        assert_eq!(stored_logs(data.path()), sent.logs, "{case}");
    }
}

#[test]
fn a_retried_request_is_stored_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    for _ in 0..3 {
        run_python("put_logs.py", &["--port", &server.port.to_string(), "--count", "10"]);
    }
    let batches = read_batches(data.path());
    assert_eq!(batches.len(), 1, "the same logs sent three times are one batch");
    assert_eq!(batches[0].body.records.len(), 10);
}
