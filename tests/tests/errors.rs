//! Every error of wire.md, answered by `sluice serve` over HTTP with the product's status,
//! code and body, and nothing stored. The same cases run against the worker in
//! `worker.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_tests::cases::{self, CLOSED_CONFIG, ERROR_CASE_LIMITS, Put, Target, send_put};
use sluice_tests::workerd::DEMO_CONFIG;
use sluice_tests::{Server, http, raw_batches};
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
    cases::unrouted_answers(&server, true);
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
    let config = config_file(
        dir.path(),
        &format!("{DEMO_CONFIG}\n[server]\nmax_concurrent_requests = 1\nquery_deadline_secs = 2\n"),
    );
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    // Hold the only slot with a request being handled: a query that waits its deadline.
    // (A request whose body is still arriving holds no slot: see security.rs.)
    let port = server.port;
    let slow = std::thread::spawn(move || {
        let bomb = "* | select count(*) from generate_series(1, 10000000) a, generate_series(1, 10000000) b";
        let now = cases::now();
        sluice_tests::get_logs_in(
            port,
            (DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET),
            "demo",
            (now - 60, now),
            bomb,
        )
    });
    std::thread::sleep(std::time::Duration::from_millis(700));
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (503, Some("ServerBusy")), "{body}");
    server.assert_nothing_stored("ServerBusy");
    // Once the slow request ends, the slot is free again.
    let (status, _, progress) = slow.join().unwrap();
    assert_eq!((status, progress.as_str()), (200, "Incomplete"));
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!(status, 200, "{body}");
}
