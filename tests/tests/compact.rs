//! Compaction end to end: the unmodified SLS SDK writes through `sluice serve`, `sluice
//! compact` turns raw batches into the logstore's Delta table, and an independent reader
//! (the Python `deltalake` package) finds exactly the logs sent. A crash injected at each
//! step of a run, a second compactor running at once and a client's late retry neither
//! lose nor duplicate a log.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use serde_json::Value;
use sluice_ingest::config::DEMO_PROLIFERATE_KEY;
use sluice_tests::garage::{BUCKET, Garage, REGION};
use sluice_tests::workerd::DEMO_CONFIG;
use sluice_tests::{SentLog, Server, http, put_logs, run_python, sluice_bin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

/// A configuration with the demo keys, no background compaction, `compaction` lines
/// added to `[compaction]`, and `extra` tables.
fn write_config(dir: &Path, compaction: &str, extra: &str) -> String {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, format!("{DEMO_CONFIG}[compaction]\ninterval_secs = 0\n{compaction}\n{extra}")).unwrap();
    path.display().to_string()
}

fn garage_storage(garage: &Garage) -> String {
    format!(
        "[storage]\nendpoint = \"{}\"\nregion = \"{REGION}\"\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        garage.endpoint(),
        garage.key_id,
        garage.secret
    )
}

fn compact(data: &str, config: &str, extra: &[&str]) -> Output {
    Command::new(sluice_bin())
        .args(["compact", "--data", data, "--config", config])
        .args(extra)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

fn compact_ok(data: &str, config: &str) -> String {
    let out = compact(data, config, &[]);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "sluice compact failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

#[derive(Deserialize)]
struct Read {
    partition_columns: Vec<String>,
    rows: Vec<Value>,
    #[serde(default)]
    files: Vec<Value>,
}

fn read_table(uri: &str, garage: Option<&Garage>, inspect: bool) -> Read {
    let mut args: Vec<String> = vec![uri.to_owned()];
    if let Some(g) = garage {
        args.extend([
            "--endpoint".into(),
            g.endpoint(),
            "--key".into(),
            g.key_id.clone(),
            "--secret".into(),
            g.secret.clone(),
        ]);
    }
    if inspect {
        args.push("--inspect".into());
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    serde_json::from_str(&run_python("read_table.py", &args)).unwrap()
}

/// (time_ns, contents) of every row, sorted: what an SLS log is.
fn sls_rows(read: &Read) -> Vec<(i64, Vec<(String, String)>)> {
    let mut rows: Vec<(i64, Vec<(String, String)>)> = read
        .rows
        .iter()
        .map(|r| {
            // SLS contents named level, message, trace_id and span_id have their own columns.
            let mut contents: Vec<(String, String)> = ["level", "message", "trace_id", "span_id"]
                .into_iter()
                .filter_map(|k| Some((k.to_owned(), r[k].as_str()?.to_owned())))
                .chain(
                    r["fields"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|kv| (kv[0].as_str().unwrap().to_owned(), kv[1].as_str().unwrap().to_owned())),
                )
                .collect();
            contents.sort();
            (r["time_ns"].as_i64().unwrap(), contents)
        })
        .collect();
    rows.sort();
    rows
}

fn sent_rows(sent: &[SentLog]) -> Vec<(i64, Vec<(String, String)>)> {
    let mut rows: Vec<_> = sent
        .iter()
        .map(|l| {
            let mut contents = l.contents.clone();
            contents.sort();
            (l.time * 1_000_000_000 + l.time_ns, contents)
        })
        .collect();
    rows.sort();
    rows
}

fn check_table(read: &Read, sent: &[SentLog]) {
    assert_eq!(read.partition_columns, ["date"]);
    assert_eq!(sls_rows(read), sent_rows(sent), "exactly the logs sent, once each");
    for row in &read.rows {
        let (time, received) = (row["time_ns"].as_i64().unwrap(), row["received_ns"].as_i64().unwrap());
        assert_eq!(
            row["date"].as_str().unwrap(),
            sluice_ingest::layout::Partition::of(time, received).to_string(),
            "each log in its own date's partition (or, arriving long after, its month's or year's)"
        );
        assert_eq!(row["topic"], "sdk");
        assert_eq!(row["source"], "10.0.0.1");
        assert_eq!(row["product"], "sls");
    }
}

#[test]
fn sdk_through_serve_to_garage_then_compact_read_by_python_deltalake() {
    let garage = Garage::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", &garage_storage(&garage));
    let data = format!("s3://{BUCKET}/sluice");
    let server = Server::start(Path::new(&data), &["--config", &config]);
    // Two dates, sent out of order: the later day first. Recent ones, so that each
    // date gets a partition of its own (logs arriving a week late share their month's).
    let today = sluice_tests::cases::now() - 3600;
    let mut sent = put_logs(server.port, today, 40, 3, &[]);
    sent.extend(put_logs(server.port, today - 86_400, 40, 2, &[]));
    assert_eq!(garage.objects("sluice/raw").len(), 5);
    let out = compact(&data, &config, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let summary = String::from_utf8_lossy(&out.stdout);
    assert!(summary.contains("5 batches, 200 records"), "{summary}");
    // Garage ignores If-None-Match: sluice says so, since concurrent compactors need it.
    assert!(String::from_utf8_lossy(&out.stderr).contains("ignores conditional writes"));
    assert!(garage.objects("sluice/raw").is_empty(), "raw batches are deleted after their commit");
    let read = read_table(&format!("s3://{BUCKET}/sluice/tables/demo/app"), Some(&garage), true);
    check_table(&read, &sent);
    let dates: std::collections::BTreeSet<&str> = read.rows.iter().map(|r| r["date"].as_str().unwrap()).collect();
    assert_eq!(dates.len(), 2);
    check_files(&read);
}

/// What the files look like to pyarrow: ZSTD for text, LZ4 (raw: Arrow names it LZ4) for
/// times and the columns of few values, sorted by time, page indexes, a bloom filter on
/// trace_id.
fn check_files(read: &Read) {
    assert!(!read.files.is_empty());
    for file in &read.files {
        let columns = file["columns"].as_object().unwrap();
        for text in ["message", "trace_id", "fields.key_value.value"] {
            assert_eq!(columns[text]["compression"], "ZSTD", "{text}: {file}");
        }
        for small in ["time_ns", "level", "batch_id"] {
            assert_eq!(columns[small]["compression"], "LZ4", "{small}: {file}");
        }
        assert_eq!(columns["time_ns"]["page_index"], true, "{file}");
        assert_eq!(file["sorting_columns"], serde_json::json!([[0, false]]), "{file}");
        assert_eq!(columns["trace_id"]["bloom_filter"], true, "{file}");
    }
}

#[test]
fn the_same_on_a_local_directory_and_a_late_retry_is_not_added_twice() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "", "");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config]);
    let sent = put_logs(server.port, 1_700_000_000, 30, 4, &[]);
    let data_url = data.display().to_string();
    let out = compact(&data_url, &config, &[]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("conditional writes"), "local directories honour them");
    let table = data.join("tables/demo/app").display().to_string();
    check_table(&read_table(&table, None, false), &sent);
    // A client retries a request that was already compacted (its response was lost).
    put_logs(server.port, 1_700_000_000, 30, 1, &[]);
    let summary = compact_ok(&data_url, &config);
    assert!(summary.contains("0 batches") && summary.contains("1 already compacted"), "{summary}");
    check_table(&read_table(&table, None, false), &sent);
    assert!(sluice_tests::raw_batches(&data).is_empty());
}

/// Proliferate batches with unique messages: (message, count) of what the table holds.
fn proliferate_messages(read: &Read) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for row in &read.rows {
        *out.entry(row["message"].as_str().unwrap().to_owned()).or_default() += 1;
    }
    out
}

fn send_proliferate(server: &Server, batches: usize, per_batch: usize) -> BTreeMap<String, usize> {
    let mut expected = BTreeMap::new();
    let now = sluice_tests::cases::now();
    for b in 0..batches {
        let logs: Vec<Value> = (0..per_batch)
            .map(|i| {
                let message = format!("batch {b} log {i}");
                expected.insert(message.clone(), 1);
                // Spread over three days, so that commits touch several partitions.
                serde_json::json!({"timestamp": now - (i as i64 % 3) * 86_400, "level": "info", "message": message, "trace_id": format!("t{b}")})
            })
            .collect();
        let body = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": logs}).to_string();
        let r = http().post(server.url("/api/v1/logs/batch")).body(body).send().unwrap();
        assert_eq!(r.status().as_u16(), 202);
    }
    expected
}

#[test]
fn a_crash_at_every_step_leaves_every_record_exactly_once() {
    for point in ["after-read", "after-write", "after-commit", "mid-delete"] {
        let dir = tempfile::tempdir().unwrap();
        // Every commit is split between writers (on a machine with more than one core).
        let config = write_config(dir.path(), "min_kb_per_writer = 1", "");
        let data = dir.path().join("data");
        let server = Server::start(&data, &["--config", &config]);
        let expected = send_proliferate(&server, 12, 20);
        let data_url = data.display().to_string();
        let crashed = compact(&data_url, &config, &["--fail-at", point]);
        assert_eq!(crashed.status.code(), Some(3), "{point}: {}", String::from_utf8_lossy(&crashed.stderr));
        let table = data.join("tables/demo/logs").display().to_string();
        if point == "after-commit" || point == "mid-delete" {
            // The commit is in: every record once, even with raw batches left behind.
            assert_eq!(proliferate_messages(&read_table(&table, None, false)), expected, "{point}");
            assert!(!sluice_tests::raw_batches(&data).is_empty(), "{point}: raw batches are left");
        }
        let summary = compact_ok(&data_url, &config);
        let read = read_table(&table, None, false);
        assert_eq!(proliferate_messages(&read), expected, "{point}: every record exactly once ({summary})");
        let ids: std::collections::HashSet<(String, i64)> = read
            .rows
            .iter()
            .map(|r| (r["batch_id"].as_str().unwrap().to_owned(), r["position"].as_i64().unwrap()))
            .collect();
        assert_eq!(ids.len(), read.rows.len(), "{point}: stable ids are unique");
        assert!(sluice_tests::raw_batches(&data).is_empty(), "{point}: raw batches are gone");
        for row in &read.rows {
            assert_eq!(row["level"], "info");
            assert_eq!(row["environment"], "production");
        }
    }
}

#[test]
fn two_compactors_at_once_lose_and_duplicate_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "max_mb_per_commit = 1\nmin_kb_per_writer = 1", "");
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config]);
    let expected = send_proliferate(&server, 60, 50);
    let data_url = data.display().to_string();
    let run = || {
        Command::new(sluice_bin())
            .args(["compact", "--data", &data_url, "--config", &config])
            .env("RUST_LOG", "warn")
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (run(), run());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let read = read_table(&data.join("tables/demo/logs").display().to_string(), None, false);
    assert_eq!(proliferate_messages(&read), expected);
    assert!(sluice_tests::raw_batches(&data).is_empty());
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(parquet_files(&path));
        } else if path.extension().is_some_and(|e| e == "parquet") {
            out.push(path);
        }
    }
    out
}

#[test]
fn small_files_are_merged_sorted_and_old_partitions_expire() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "min_small_files = 5\nvacuum_retention_hours = 0",
        "[[projects]]\nname = \"demo\"\nlogstores = [{ name = \"logs\", retention_days = 2 }]\n",
    );
    let data = dir.path().join("data");
    let server = Server::start(&data, &["--config", &config]);
    let data_url = data.display().to_string();
    let now = sluice_tests::cases::now();
    let mut expected = BTreeMap::new();
    // Five runs, each adding a file to today's partition, times interleaved across runs.
    for run in 0..5 {
        let logs: Vec<Value> = (0..40)
            .map(|i| {
                let message = format!("run {run} log {i}");
                expected.insert(message.clone(), 1);
                serde_json::json!({"timestamp": now - 600 + i * 10 + run, "level": "info", "message": message})
            })
            .collect();
        let body = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": logs}).to_string();
        assert_eq!(http().post(server.url("/api/v1/logs/batch")).body(body).send().unwrap().status().as_u16(), 202);
        if run == 4 {
            // And logs five days old, beyond the logstore's two days.
            let old = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"timestamp": now - 5 * 86_400, "message": "too old"}]});
            assert_eq!(
                http().post(server.url("/api/v1/logs/batch")).body(old.to_string()).send().unwrap().status().as_u16(),
                202
            );
        }
        let out = compact_ok(&data_url, &config);
        if run == 4 {
            assert!(out.contains("merged 5 small files in 1 partitions"), "{out}");
            assert!(out.contains("expired 1 files"), "{out}");
        }
    }
    let table = data.join("tables/demo/logs");
    let read = read_table(&table.display().to_string(), None, true);
    assert_eq!(proliferate_messages(&read), expected, "every log once, the old one gone");
    assert_eq!(read.files.len(), 1, "one file left: {:?}", read.files);
    let times: Vec<i64> = read.rows.iter().map(|r| r["time_ns"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "the merged file is sorted by time");
    check_files(&read);
    assert_eq!(parquet_files(&table).len(), 1, "vacuum deleted the merged and the expired files");
}
