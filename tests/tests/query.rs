//! Query APIs end to end: the unmodified SLS Python SDK's `get_histograms` and `get_logs`
//! (V2 and V1, search and SQL) against `sluice serve` on data that is partly compacted
//! and partly not, checked against the logs sent and cross-checked with DuckDB over the
//! table's Parquet files; Proliferate search and event correlation.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use sluice_tests::{SentLog, Server, http, put_logs, run_python, sluice_bin};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

const CONFIG: &str = r#"
open = true
[compaction]
interval_secs = 0
[[projects]]
name = "demo"
logstores = [{ name = "app", field_types = { latency_ms = "long" } }, { name = "logs" }]
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"
[[proliferate.keys]]
key = "pk_sluice_demo"
project = "demo"
[[proliferate.keys]]
key = "pk_other"
project = "other"
"#;

fn setup() -> (tempfile::TempDir, Server, String) {
    setup_with("")
}

fn setup_with(server_settings: &str) -> (tempfile::TempDir, Server, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, format!("{CONFIG}\n{server_settings}\n")).unwrap();
    let config = config.display().to_string();
    let server = Server::start(&dir.path().join("data"), &["--config", &config]);
    (dir, server, config)
}

fn compact(dir: &Path, config: &str) {
    let out = Command::new(sluice_bin())
        .args(["compact", "--data", &dir.join("data").display().to_string(), "--config", config])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

fn sdk(args: &[&str]) -> Value {
    serde_json::from_str(&run_python("query_logs.py", args)).unwrap()
}

fn logs(port: u16, from: i64, to: i64, query: &str, extra: &[&str]) -> Value {
    let (port, from, to) = (port.to_string(), from.to_string(), to.to_string());
    let mut args = vec!["logs", "--port", &port, "--from", &from, "--to", &to, "--query", query];
    args.extend_from_slice(extra);
    sdk(&args)
}

fn duckdb(dir: &Path, sql: &str) -> Vec<Value> {
    let table = dir.join("data/tables/demo/app").display().to_string();
    let out = sdk(&["duckdb", &table, sql]);
    out["rows"].as_array().unwrap().clone()
}

const S: i64 = 1_700_000_000;

#[test]
fn sls_sdk_histograms_and_logs_on_partly_compacted_data() {
    let (dir, server, config) = setup();
    let mut sent = put_logs(server.port, S, 60, 2, &[]);
    compact(dir.path(), &config);
    // More logs, not compacted: queries union the table with the raw batches.
    sent.extend(put_logs(server.port, S + 200, 30, 1, &[]));
    let raw = sluice_tests::raw_batches(&dir.path().join("data"));
    assert_eq!(raw.len(), 1, "one raw batch waits for compaction");
    let (from, to) = (S, S + 300);

    // Histograms: 300 s in 60 subintervals of 5 s.
    let h =
        sdk(&["histogram", "--port", &server.port.to_string(), "--from", &from.to_string(), "--to", &to.to_string()]);
    assert_eq!(h["complete"], true);
    assert_eq!(h["count"], 150);
    let buckets = h["histograms"].as_array().unwrap();
    assert_eq!(buckets.len(), 60);
    for b in buckets {
        let (a, z) = (b["from"].as_i64().unwrap(), b["to"].as_i64().unwrap());
        let expected = sent.iter().filter(|l| l.time >= a && l.time < z).count();
        assert_eq!(b["count"].as_u64().unwrap() as usize, expected, "[{a}, {z})");
        assert_eq!(b["progress"], "Complete");
    }
    // The compacted row groups are counted from their time rollups, not read.
    let params = [("type", "histogram".to_owned()), ("from", from.to_string()), ("to", to.to_string())];
    let (status, body, headers) =
        sluice_tests::sls_get(server.port, ("sluice-demo", "sluice-demo-secret"), "demo", "/logstores/app", &params);
    let scanned = headers["x-sluice-scanned"].to_str().unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_array().unwrap().iter().map(|b| b["count"].as_u64().unwrap()).sum::<u64>(), 150);
    assert!(scanned.starts_with("files=0 ") && !scanned.contains("rolled_up=0"), "{scanned}");
    let filtered = sdk(&[
        "histogram",
        "--port",
        &server.port.to_string(),
        "--from",
        &from.to_string(),
        "--to",
        &to.to_string(),
        "--query",
        "level: error",
    ]);
    assert_eq!(filtered["count"].as_u64().unwrap() as usize, sent.iter().filter(|l| l.get("level") == "error").count());

    // Logs, V2 (the SDK's default) and V1, with each kind of search.
    for v1 in [false, true] {
        let extra: &[&str] = if v1 { &["--v1"] } else { &[] };
        let errors = logs(server.port, from, to, "level: error", extra);
        assert_eq!(errors["complete"], true);
        let expected: Vec<&SentLog> = sent.iter().filter(|l| l.get("level") == "error").collect();
        assert_eq!(errors["count"].as_u64().unwrap() as usize, expected.len());
        let mut got: Vec<(String, String)> = errors["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| (l["__time__"].as_str().unwrap().to_owned(), l["message"].as_str().unwrap().to_owned()))
            .collect();
        got.sort();
        let mut want: Vec<(String, String)> =
            expected.iter().map(|l| (l.time.to_string(), l.get("message").to_owned())).collect();
        want.sort();
        assert_eq!(got, want, "v1={v1}");
        let one = &errors["logs"][0];
        assert_eq!(one["__source__"], "10.0.0.1");
        assert_eq!(one["__topic__"], "sdk");
        assert_eq!(one["__tag__:host"], "web-01");
        assert!(one["latency_ms"].is_string() && one["path"].as_str().unwrap().starts_with("/api/v1/items/"));

        let all = logs(server.port, from, to, "ünïcödé", extra);
        assert_eq!(all["count"], 100, "a page holds at most 100");
        let rest = logs(server.port, from, to, "ünïcödé", &[extra, &["--offset", "100"]].concat());
        assert_eq!(rest["count"], 50);
        let slow = logs(server.port, from, to, "latency_ms > 400 and not level: warn", extra);
        let expected = sent
            .iter()
            .filter(|l| l.get("latency_ms").parse::<i64>().unwrap() > 400 && l.get("level") != "warn")
            .count();
        assert_eq!(slow["count"].as_u64().unwrap() as usize, expected);
        let tagged = logs(server.port, from, to, "__tag__:host: web-01 and __topic__: sdk and path: items", extra);
        assert_eq!(tagged["count"], 100);
        let newest = logs(server.port, from, to, "*", &[extra, &["--reverse", "--line", "3"]].concat());
        let times: Vec<i64> = newest["logs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["__time__"].as_str().unwrap().parse().unwrap())
            .collect();
        assert_eq!(times, vec![S + 229, S + 228, S + 227]);
    }

    // The SQL part.
    let by_level = logs(server.port, from, to, "* | select level, count(*) as c group by level order by level", &[]);
    assert_eq!(by_level["has_sql"], true);
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    for l in &sent {
        *expected.entry(l.get("level").to_owned()).or_default() += 1;
    }
    let got: BTreeMap<String, usize> = by_level["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["level"].as_str().unwrap().to_owned(), r["c"].as_str().unwrap().parse().unwrap()))
        .collect();
    assert_eq!(got, expected);
    // Counted by a frequent field's value, the filter evaluated beside the count.
    const ERRORS_BY_PATH: &str =
        "level: error | select path, count(*) as c group by path order by c desc, path limit 1000";
    let mut errors_by_path: BTreeMap<String, usize> = BTreeMap::new();
    for l in sent.iter().filter(|l| l.get("level") == "error") {
        *errors_by_path.entry(l.get("path").to_owned()).or_default() += 1;
    }
    let counted = |answer: &Value| -> BTreeMap<String, usize> {
        let rows = answer["logs"].as_array().unwrap_or_else(|| panic!("{answer}"));
        rows.iter()
            .map(|r| (r["path"].as_str().unwrap().to_owned(), r["c"].as_str().unwrap().parse().unwrap()))
            .collect()
    };
    assert_eq!(counted(&logs(server.port, from, to, ERRORS_BY_PATH, &[])), errors_by_path);
    let sum = logs(server.port, from, to, "path: items | select sum(latency_ms) as s", &[]);
    let want: i64 = sent.iter().map(|l| l.get("latency_ms").parse::<i64>().unwrap()).sum();
    assert_eq!(sum["logs"][0]["s"], want.to_string(), "latency_ms is a long for SQL (field_types)");

    // Errors as SLS gives them.
    let bad = logs(server.port, from, to, "(level: error", &[]);
    assert_eq!(bad["error"], "InvalidQueryString", "{bad}");
    assert!(bad["message"].as_str().unwrap().contains("position"));
    let bad_sql = logs(server.port, from, to, "* | select nonsense(", &[]);
    assert_eq!(bad_sql["error"], "InvalidQueryString", "{bad_sql}");
    let empty = sdk(&["histogram", "--port", &server.port.to_string(), "--from", "100", "--to", "100"]);
    assert_eq!(empty["error"], "InvalidTimeRange", "{empty}");

    // Everything compacted: the answers do not change, and DuckDB agrees.
    compact(dir.path(), &config);
    assert!(sluice_tests::raw_batches(&dir.path().join("data")).is_empty());
    for footers in ["not read yet", "cached"] {
        let after = logs(server.port, from, to, ERRORS_BY_PATH, &[]);
        assert_eq!(counted(&after), errors_by_path, "footers {footers}");
    }
    // With the footers read, the count reads every row's keys, and filters beside it.
    let (status, body, headers) = sluice_tests::get_logs_answer(
        server.port,
        ("sluice-demo", "sluice-demo-secret"),
        "demo",
        (from, to),
        ERRORS_BY_PATH,
    );
    assert_eq!(status, 200, "{body}");
    let scanned = headers["x-sluice-scanned"].to_str().unwrap();
    assert!(scanned.ends_with(" rows=150"), "{scanned}");
    let after = logs(server.port, from, to, "* | select level, count(*) as c group by level order by level", &[]);
    assert_eq!(after["logs"], by_level["logs"]);
    let duck = duckdb(dir.path(), "SELECT level, count(*) AS c FROM logs GROUP BY level ORDER BY level");
    let duck: BTreeMap<String, usize> =
        duck.iter().map(|r| (r["level"].as_str().unwrap().to_owned(), r["c"].as_u64().unwrap() as usize)).collect();
    assert_eq!(duck, expected, "DuckDB over the same Parquet files");
    let duck = duckdb(
        dir.path(),
        "SELECT frequent.path AS path, count(*) AS c FROM logs WHERE level = 'error' GROUP BY 1 ORDER BY 1",
    );
    let duck: BTreeMap<String, usize> =
        duck.iter().map(|r| (r["path"].as_str().unwrap().to_owned(), r["c"].as_u64().unwrap() as usize)).collect();
    assert_eq!(duck, errors_by_path, "DuckDB over the same Parquet files");
    let slow = logs(server.port, from, to, "latency_ms > 400", &[]);
    // Every log has latency_ms: the table keeps it as a column of its own.
    let duck_slow =
        duckdb(dir.path(), "SELECT count(*) AS c FROM logs WHERE TRY_CAST(frequent.latency_ms AS DOUBLE) > 400");
    assert_eq!(slow["count"].as_u64().unwrap(), duck_slow[0]["c"].as_u64().unwrap());
    let h =
        sdk(&["histogram", "--port", &server.port.to_string(), "--from", &from.to_string(), "--to", &to.to_string()]);
    let duck_h = duckdb(
        dir.path(),
        &format!("SELECT (time_ns // 1000000000 - {from}) // 5 AS b, count(*) AS c FROM logs GROUP BY b ORDER BY b"),
    );
    for row in duck_h {
        let b = row["b"].as_i64().unwrap() as usize;
        assert_eq!(h["histograms"][b]["count"], row["c"], "bucket {b}");
    }
}

#[test]
fn a_log_is_queryable_as_soon_as_it_is_accepted() {
    let (dir, server, config) = setup();
    let now = sluice_tests::cases::now();
    let (from, to) = (now - 60, now + 60);
    let key = ("sluice-demo", "sluice-demo-secret");
    let count = |port: u16| {
        let (status, body, _) = sluice_tests::get_logs_in(port, key, "demo", (from, to), "*");
        assert_eq!(status, 200, "{body}");
        body.as_array().unwrap().len()
    };
    // Queries before anything arrives: the logstore's view (listing and table) is kept,
    // and an empty range answers from it.
    assert_eq!(count(server.port), 0);
    let mut times: Vec<f64> = (0..20)
        .map(|_| {
            let started = std::time::Instant::now();
            let params = [("type", "log".to_owned()), ("from", "100".to_owned()), ("to", "200".to_owned())];
            let (status, _, _) = sluice_tests::sls_get(server.port, key, "demo", "/logstores/app", &params);
            assert_eq!(status, 200);
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    println!("GetLogs over an empty range, through HTTP: median {:.1} ms of 20", times[10]);

    // Stored by this server: seen at once, though the view is younger than `listing_ms`.
    let mut sent = put_logs(server.port, now - 10, 5, 1, &[]);
    assert_eq!(count(server.port), sent.len(), "the server notes what it stores");
    let got = logs(server.port, from, to, "*", &[]);
    assert_eq!(got["count"].as_u64().unwrap() as usize, sent.len());

    // Stored by another node (as the edge does): seen once the view is renewed, within
    // `listing_ms` (1 s by default).
    let other = Server::start(&dir.path().join("data"), &["--config", &config]);
    let stored = std::time::Instant::now();
    sent.extend(put_logs(other.port, now - 5, 5, 1, &[]));
    let mut seen = count(server.port);
    while seen < sent.len() && stored.elapsed() < std::time::Duration::from_millis(1000) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        seen = count(server.port);
    }
    if seen < sent.len() {
        seen = count(server.port);
    }
    assert_eq!(seen, sent.len(), "a batch another node stored is seen after listing_ms");
    println!("a log stored by another node was searchable here after {:.0} ms", stored.elapsed().as_secs_f64() * 1e3);
}

#[test]
fn a_query_cut_short_is_incomplete_and_repeating_it_finishes_it() {
    // A deadline of zero: every answer is what is ready at once.
    let (_dir, server, _config) = setup_with("[server]\nquery_deadline_secs = 0");
    let sent = put_logs(server.port, S, 40, 1, &[]);
    let (port, from, to) = (server.port.to_string(), S.to_string(), (S + 60).to_string());
    let histogram = || sdk(&["histogram", "--port", &port, "--from", &from, "--to", &to]);
    let first = histogram();
    assert_eq!(first["complete"], false, "the query cannot be done at once: {first}");
    let mut answer = first;
    for _ in 0..100 {
        if answer["complete"] == true {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        answer = histogram();
    }
    assert_eq!(answer["complete"], true, "a repeated call gets the finished query");
    assert_eq!(answer["count"].as_u64().unwrap() as usize, sent.len(), "{answer}");

    // The SDK's get_log repeats an Incomplete query by itself (5 times, 0.5 s apart).
    let got = logs(server.port, S, S + 60, "level: error", &[]);
    assert_eq!(got["complete"], true, "{got}");
    assert_eq!(got["count"].as_u64().unwrap() as usize, sent.iter().filter(|l| l.get("level") == "error").count());
}

fn proliferate_get(server: &Server, path: &str, key: &str) -> (u16, Value) {
    let r = http().get(server.url(path)).header("authorization", format!("Bearer {key}")).send().unwrap();
    (r.status().as_u16(), r.json().unwrap_or(Value::Null))
}

#[test]
fn proliferate_search_and_trace_correlation() {
    let (dir, server, config) = setup();
    let base = sluice_tests::cases::now() - 3600;
    let mut logs = Vec::new();
    for i in 0..60i64 {
        let level = ["debug", "info", "warn", "error"][(i % 4) as usize];
        let trace = format!("trace_{}", i / 10);
        let message =
            if i % 7 == 0 { format!("Database connection failed #{i}") } else { format!("request {i} handled") };
        logs.push(serde_json::json!({
            "timestamp": base + i * 20, "level": level, "message": message, "trace_id": trace,
            "attributes": {"n": i, "kind": "test"}, "logger_name": "svc", "line_number": i,
        }));
    }
    for chunk in logs.chunks(30) {
        let body = serde_json::json!({"api_key": "pk_sluice_demo", "environment": "staging", "logs": chunk});
        assert_eq!(
            http().post(server.url("/api/v1/logs/batch")).body(body.to_string()).send().unwrap().status().as_u16(),
            202
        );
    }
    // Half compacted, half not.
    compact(dir.path(), &config);
    let body = serde_json::json!({"api_key": "pk_sluice_demo", "logs": [{"timestamp": base + 1300, "level": "error", "message": "late database error", "trace_id": "trace_5"}]});
    assert_eq!(
        http().post(server.url("/api/v1/logs/batch")).body(body.to_string()).send().unwrap().status().as_u16(),
        202
    );

    let (status, page) = proliferate_get(
        &server,
        "/api/v1/projects/demo/logs?levels=error,warn&search=database&limit=5",
        "pk_sluice_demo",
    );
    assert_eq!(status, 200, "{page}");
    let expected: Vec<i64> = (0..60).filter(|i| i % 7 == 0 && (i % 4 == 2 || i % 4 == 3)).collect();
    assert_eq!(page["total"].as_u64().unwrap() as usize, expected.len() + 1);
    let first = &page["logs"][0];
    assert_eq!(first["message"], "late database error", "newest first");
    let second = &page["logs"][1];
    assert!(second["message"].as_str().unwrap().starts_with("Database connection failed"));
    assert!(second["attributes"]["n"].is_number(), "attributes keep their JSON types: {second}");
    assert_eq!(second["attributes"]["kind"], "test");
    assert_eq!(second["environment"], "staging");
    assert!(second["timestamp"].as_str().unwrap().ends_with('Z'));

    let (_, page) = proliferate_get(&server, "/api/v1/projects/demo/logs?limit=25&offset=50", "pk_sluice_demo");
    assert_eq!(
        (page["total"].as_u64(), page["logs"].as_array().unwrap().len(), page["has_more"].as_bool()),
        (Some(61), 11, Some(false))
    );
    let (_, page) = proliferate_get(&server, "/api/v1/projects/demo/logs?limit=25", "pk_sluice_demo");
    assert_eq!(page["has_more"], true);
    let start = sluice_ingest::time::format_rfc3339_millis((base + 100) * 1_000_000_000);
    let end = sluice_ingest::time::format_rfc3339_millis((base + 300) * 1_000_000_000);
    let (_, page) = proliferate_get(
        &server,
        &format!("/api/v1/projects/demo/logs?start_time={start}&end_time={end}&limit=1000"),
        "pk_sluice_demo",
    );
    assert_eq!(page["total"], 11, "20 s apart, [100 s, 300 s]");

    // The logs leading up to an error: its trace, within five minutes, oldest first.
    let (_, errors) =
        proliferate_get(&server, "/api/v1/projects/demo/logs?trace_id=trace_5&levels=error", "pk_sluice_demo");
    let event = errors["logs"].as_array().unwrap().iter().find(|l| l["message"] == "request 55 handled").unwrap();
    let (status, related) =
        proliferate_get(&server, &format!("/api/v1/events/{}/logs", event["id"].as_str().unwrap()), "pk_sluice_demo");
    assert_eq!(status, 200, "{related}");
    let messages: Vec<&str> =
        related["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    // trace_5 is logs 50..59 at base+1000..base+1180, and the late error at base+1300; all
    // within five minutes of log 55 (base+1100).
    assert_eq!(messages.len(), 11, "{messages:?}");
    assert_eq!(messages[0], "request 50 handled");
    assert_eq!(messages[10], "late database error");

    // A trace id lookup reads no row group that cannot hold it: `trace_3x` sorts between
    // ids the compacted row group holds, so statistics keep it; its token index drops it
    // before the file is opened (the bloom filter would drop it next).
    let r = http()
        .get(server.url("/api/v1/projects/demo/logs?trace_id=trace_3x"))
        .header("authorization", "Bearer pk_sluice_demo")
        .send()
        .unwrap();
    let scanned = r.headers()["x-sluice-scanned"].to_str().unwrap().to_owned();
    assert_eq!(r.json::<Value>().unwrap()["total"], 0);
    assert!(scanned.contains("index_pruned=") && !scanned.contains("index_pruned=0"), "{scanned}");
    assert!(scanned.contains(" row_groups=0/") && scanned.contains("files=0"), "{scanned}");

    // A key sees only its own project.
    assert_eq!(proliferate_get(&server, "/api/v1/projects/demo/logs", "pk_wrong").0, 401);
    assert_eq!(proliferate_get(&server, "/api/v1/projects/demo/logs", "pk_other").0, 403);
    let (status, _) =
        proliferate_get(&server, &format!("/api/v1/events/{}/logs", event["id"].as_str().unwrap()), "pk_other");
    assert_eq!(status, 404, "another project's event is not found");
    assert_eq!(proliferate_get(&server, "/api/v1/projects/demo/logs?limit=0", "pk_sluice_demo").0, 422);
    assert_eq!(proliferate_get(&server, "/api/v1/projects/demo/logs?levels=loud", "pk_sluice_demo").0, 422);
}
