//! The unmodified official SLS Python SDK writes to `sluice serve`, and the raw batches
//! hold exactly the logs it sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::json;
use sluice_ingest::config::{DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
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

/// What `query_logs.py catalog` and `context` print.
fn query(port: u16, args: &[&str]) -> serde_json::Value {
    let port = port.to_string();
    serde_json::from_str(&run_python("query_logs.py", &[args, &["--port", &port]].concat())).unwrap()
}

/// The read APIs clients call before and beside GetLogs, through the unmodified SDK:
/// ListLogStores lists the logstores that have data (development mode), by page and
/// name; GetLogStore and ListShards describe one; GetContextLogs goes from a log GetLogs
/// found to the logs received around it, across raw batches.
#[test]
fn list_logstore_get_logstore_list_shards_and_get_context_logs() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let start = sluice_tests::cases::now() - 600;
    // Two requests of 50 logs to `app` (two raw batches), one to `nginx`.
    let sent = sluice_tests::put_logs(server.port, start, 50, 2, &[]);
    sluice_tests::put_logs(server.port, start, 5, 1, &["--logstore", "nginx"]);

    let all = query(server.port, &["catalog"]);
    assert_eq!((&all["logstores"], &all["count"], &all["total"]), (&json!(["app", "nginx"]), &json!(2), &json!(2)));
    let paged = query(server.port, &["catalog", "--offset", "1", "--line", "1"]);
    assert_eq!((&paged["logstores"], &paged["count"], &paged["total"]), (&json!(["nginx"]), &json!(1), &json!(2)));
    let named = query(server.port, &["catalog", "--pattern", "ngi"]);
    assert_eq!(named["logstores"], json!(["nginx"]));
    assert_eq!(all["logstore"], json!({"name": "app", "ttl": 3650, "shard_count": 1}));
    assert_eq!(all["shards"][0]["shardID"], 0);
    assert_eq!(all["shards"][0]["status"], "readwrite");
    assert!(all["request_id"].as_str().is_some_and(|id| !id.is_empty()));

    // The second request's third log (message `lz4-1 2: ...`): five logs back reach into
    // the first request.
    let (from, to) = ((start - 10).to_string(), (start + 200).to_string());
    let context = query(
        server.port,
        &["context", "--from", &from, "--to", &to, "--query", "lz4-1 and 2", "--back", "5", "--forward", "3"],
    );
    let message = |log: &serde_json::Value| log["message"].as_str().unwrap().to_owned();
    assert_eq!(message(&context["anchor"]), sent[52].get("message"));
    assert!(context["anchor"]["__tag__:__pack_id__"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(
        (&context["back_lines"], &context["forward_lines"], &context["total_lines"]),
        (&json!(5), &json!(3), &json!(9))
    );
    assert_eq!(context["complete"], true);
    let got: Vec<String> = context["logs"].as_array().unwrap().iter().map(message).collect();
    let expected: Vec<String> = sent[47..56].iter().map(|l| l.get("message").to_owned()).collect();
    assert_eq!(got, expected, "in the order they were received");
    let numbers: Vec<&str> =
        context["logs"].as_array().unwrap().iter().map(|l| l["__index_number__"].as_str().unwrap()).collect();
    assert_eq!(numbers, ["-5", "-4", "-3", "-2", "-1", "0", "1", "2", "3"]);

    // At the edge of what there is: fewer lines than asked.
    let edge = query(
        server.port,
        &["context", "--from", &from, "--to", &to, "--query", "lz4-1 and 2", "--back", "100", "--forward", "100"],
    );
    assert_eq!((&edge["back_lines"], &edge["forward_lines"]), (&json!(52), &json!(47)));
}

/// Each SLS PutLogs form the Python SDK does not send (JSON, LoongCollector's
/// `batch_group` with `Log.values`, HMAC-SHA256, `x-log-project`) is stored exactly:
/// every log with its topic and contents, one raw batch per request. (`worker.rs` checks
/// that the worker stores the same bytes.)
#[test]
fn every_request_form_is_stored_exactly() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let mut sent = sluice_tests::cases::sls_forms(&server, sluice_tests::cases::now());
    let batches = read_batches(data.path());
    assert_eq!(batches.len(), 4, "one raw batch per request");
    let mut stored: Vec<sluice_tests::cases::SlsLog> = batches
        .iter()
        .flat_map(|b| {
            b.body
                .records
                .iter()
                .map(|r| (b.body.groups[r.group as usize].topic.clone(), sluice_tests::sls_contents(r)))
        })
        .collect();
    stored.sort();
    sent.sort();
    assert_eq!(stored, sent);
    let json = batches.iter().find(|b| b.body.groups[0].topic == "json").unwrap();
    assert_eq!(json.body.groups[0].source, "10.0.0.2");
    assert_eq!(
        (json.body.groups[0].tags[0].key.as_str(), &json.body.groups[0].tags[0].value[..]),
        ("host", &b"web-02"[..])
    );
    assert_eq!(json.body.records[1].time_ns % 1_000_000_000, 7);
    let listed = batches.iter().find(|b| b.body.groups.len() == 3).expect("the batch_group request");
    let topics: Vec<&str> = listed.body.groups.iter().map(|g| g.topic.as_str()).collect();
    assert_eq!(topics, ["bg-lz4", "bg-deflate", "bg-none"]);
}

/// GetHistograms and GetLogs at `/logstores/{ls}/index` (the Java and OpenAPI SDKs'
/// path) answer exactly what they answer at `/logstores/{ls}`.
#[test]
fn the_index_path_answers_histograms_and_logs() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let start = sluice_tests::cases::now() - 600;
    sluice_tests::put_logs(server.port, start, 30, 1, &[]);
    let key = (DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET);
    for kind in ["histogram", "log"] {
        let params = [
            ("type", kind.to_owned()),
            ("from", (start - 10).to_string()),
            ("to", (start + 100).to_string()),
            ("query", "level: warn".to_owned()),
        ];
        let (status, plain, _) = sluice_tests::sls_get(server.port, key, "demo", "/logstores/app", &params);
        assert_eq!(status, 200, "{plain}");
        let (status, index, headers) = sluice_tests::sls_get(server.port, key, "demo", "/logstores/app/index", &params);
        assert_eq!(status, 200, "{index}");
        assert_eq!(index, plain, "{kind}");
        assert_eq!(headers["x-log-progress"], "Complete");
    }
    let (_, logs, _) = sluice_tests::sls_get(
        server.port,
        key,
        "demo",
        "/logstores/app/index",
        &[("type", "log".to_owned()), ("from", (start - 10).to_string()), ("to", (start + 100).to_string())],
    );
    assert_eq!(logs.as_array().unwrap().len(), 30);
}
