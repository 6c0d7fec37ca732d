//! Every error of wire.md, answered by `sluice serve` over HTTP with the product's status,
//! code and body, and nothing stored. The same cases run against the worker in
//! `worker.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY};
use sluice_tests::cases::{self, CLOSED_CONFIG, ERROR_CASE_LIMITS, Put, Target, send_put};
use sluice_tests::workerd::DEMO_CONFIG;
use sluice_tests::{Server, http, raw_batches};
use std::io::Write;
use std::path::Path;

fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_error_of_every_product() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &format!("{DEMO_CONFIG}{ERROR_CASE_LIMITS}"));
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    cases::sls_errors(&server);
    cases::proliferate_errors(&server);
    cases::lts_errors(&server);
}

#[test]
fn closed_projects_and_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), CLOSED_CONFIG);
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    cases::closed_project_errors(&server);
}

#[test]
fn storage_failures_answer_retryable_errors_and_store_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    // A file where the project's directory should be: every write under it fails.
    std::fs::create_dir_all(data.path().join("raw")).unwrap();
    std::fs::write(data.path().join("raw/demo"), b"in the way").unwrap();
    std::fs::write(data.path().join("raw/p1"), b"in the way").unwrap();
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (500, Some("InternalServerError")), "{body}");
    let now_ns = i128::from(cases::now()) * 1_000_000_000;
    let r = http()
        .post(server.url("/v2/p1/lts/groups/g1/streams/s1/tenant/contents"))
        .header("x-auth-token", DEMO_LTS_TOKEN)
        .body(format!(r#"{{"log_time_ns": {now_ns}, "contents": ["a"], "labels": {{}}}}"#))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(r.json::<Value>().unwrap()["errorCode"], "LTS.0010");
    let r = http()
        .post(server.url("/api/v1/logs/batch"))
        .body(serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"message": "x"}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.json::<Value>().unwrap(), serde_json::json!({"detail": "Log storage temporarily unavailable"}));
    assert!(raw_batches(data.path()).is_empty());
}

#[test]
fn a_busy_server_answers_server_busy() {
    let dir = tempfile::tempdir().unwrap();
    let config = config_file(dir.path(), &format!("{DEMO_CONFIG}\n[server]\nmax_concurrent_requests = 1\n"));
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    // Hold the only slot: headers sent, body still on its way.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(slow, "POST /api/v1/logs/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{").unwrap();
    slow.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (503, Some("ServerBusy")), "{body}");
    server.assert_nothing_stored("ServerBusy");
    // Once the slow request ends, the slot is free again.
    drop(slow);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!(status, 200, "{body}");
}
