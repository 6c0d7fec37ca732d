//! What a holder of any valid credential must not be able to do to `sluice serve`, tried
//! as an attacker would: write or read files through the `| SQL` part, reach another
//! project's logs, run the server out of memory or CPU, hold its connections with slow
//! clients, or make it write a file per date. Each test is named after what broke.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use flate2::Compression;
use flate2::write::GzEncoder;
use serde_json::Value;
use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY};
use sluice_tests::cases::{Put, group, log, now, send_put, send_put_with};
use sluice_tests::{Server, get_logs_in, http, sluice_bin};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Projects `demo` and `other`; key `all` reads both, key `demo-only` reads `demo`.
const CONFIG: &str = r#"
open = true
[compaction]
interval_secs = 0
[[sls.access_keys]]
id = "all"
secret = "all-secret"
[[sls.access_keys]]
id = "demo-only"
secret = "demo-secret"
projects = ["demo"]
[[lts.tokens]]
token = "sluice-demo-token"
[[proliferate.keys]]
key = "pk_sluice_demo"
project = "demo"
logstore = "app"
"#;

/// What another project's logs say; no answer to the `demo` project may hold it.
const SECRET: &str = "secret-of-the-other-project";

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    server: Server,
}

fn start(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sluice.toml");
    std::fs::write(&config, format!("{CONFIG}\n{extra}\n")).unwrap();
    let server = Server::start(&dir.path().join("data"), &["--config", config.to_str().unwrap()]);
    Setup { dir, config, server }
}

fn put(setup: &Setup, key: (&'static str, &'static str), project: &'static str, messages: &[String]) {
    let t = now() as u32;
    let logs = messages.iter().map(|m| log(t, "message", m)).collect();
    let (status, body, _) =
        send_put(&setup.server, Put { project, key_id: key.0, secret: key.1, raw: group(logs), ..Put::default() });
    assert_eq!(status, 200, "{body}");
}

fn compact(setup: &Setup) {
    let out = std::process::Command::new(sluice_bin())
        .args(["compact", "--data", setup.dir.path().join("data").to_str().unwrap()])
        .args(["--config", setup.config.to_str().unwrap()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A signed GetLogs (V1) of the last hour, as the SDKs send it.
fn get_logs(port: u16, key: (&str, &str), project: &str, query: &str) -> (u16, Value, String) {
    get_logs_in(port, key, project, (now() - 3600, now() + 600), query)
}

/// Calls again while the answer is `Incomplete`, with the same parameters, as the SDKs do.
fn get_logs_until_done(port: u16, key: (&str, &str), project: &str, query: &str) -> (u16, Value) {
    let range = (now() - 3600, now() + 600);
    loop {
        let (status, body, progress) = get_logs_in(port, key, project, range, query);
        if status != 200 || progress != "Incomplete" {
            return (status, body);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Every file under a directory, with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
            }
        }
    }
    out
}

const ALL: (&str, &str) = ("all", "all-secret");
const DEMO_ONLY: (&str, &str) = ("demo-only", "demo-secret");

/// Regression: `* | COPY (...) TO '/path' --` wrote (and overwrote) files as the server's
/// user, `CREATE EXTERNAL TABLE` read any file, and `FROM logs` saw beyond the range.
#[test]
fn hostile_sql_is_refused_and_reaches_nothing_outside_the_selected_logs() {
    let setup = start("");
    let port = setup.server.port;
    put(&setup, ALL, "demo", &["first demo log".into(), "second demo log".into()]);
    put(&setup, ALL, "other", &[format!("{SECRET} one"), format!("{SECRET} two")]);
    compact(&setup);
    put(&setup, ALL, "demo", &["fresh demo log".into()]);
    put(&setup, ALL, "other", &[format!("{SECRET} fresh")]);

    // Files an attacker would aim at: a directory outside the data, the server's own
    // configuration, and the other project's table.
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep.txt"), b"untouched").unwrap();
    let target = outside.path().join("pwned.json");
    let config = setup.config.display().to_string();
    let other_table = setup.dir.path().join("data/tables/other/app").display().to_string();
    let before_outside = snapshot(outside.path());
    let before_config = std::fs::read(&setup.config).unwrap();
    let before_other = snapshot(&setup.dir.path().join("data/tables/other"));
    let t = target.display();

    let statements = [
        format!("COPY (SELECT 'x' AS x) TO '{t}' --"),
        format!("COPY (SELECT * FROM logs) TO '{t}'"),
        format!("copy (select 1) to '{config}' (format csv) --"),
        format!("COPY (SELECT 'x') TO '{other_table}/date=2020-01-01/x.parquet'"),
        format!("CREATE EXTERNAL TABLE stolen STORED AS PARQUET LOCATION '{other_table}'"),
        format!("create external table t stored as csv location '{config}'"),
        "CREATE TABLE t AS SELECT * FROM log".into(),
        "CREATE VIEW v AS SELECT 1".into(),
        "INSERT INTO log VALUES (1)".into(),
        "DELETE FROM log".into(),
        "UPDATE log SET message = 'x'".into(),
        "DROP TABLE log".into(),
        "TRUNCATE log".into(),
        "SET datafusion.execution.target_partitions = 64".into(),
        "SHOW TABLES".into(),
        "DESCRIBE log".into(),
        format!("EXPLAIN ANALYZE COPY (SELECT 1) TO '{t}'"),
        "EXPLAIN SELECT 1".into(),
        "PREPARE p AS SELECT 1".into(),
        "EXECUTE p".into(),
        "BEGIN".into(),
        "CREATE FUNCTION f() RETURNS INT RETURN 1".into(),
        format!("select 1; copy (select 1) to '{t}' --"),
        format!("select 1 /* */ ; COPY (SELECT 1) TO '{t}'"),
    ];
    for statement in &statements {
        for key in [ALL, DEMO_ONLY] {
            let (status, body, _) = get_logs(port, key, "demo", &format!("* | {statement}"));
            assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{statement}: {body}");
        }
    }
    let unreachable = [
        "select * from compacted".to_owned(),
        "select * from fresh".into(),
        "select * from information_schema.tables".into(),
        "select * from datafusion.information_schema.df_settings".into(),
        "select * from datafusion.public.log".into(),
        format!("select * from '{config}'"),
        format!("select * from '{other_table}'"),
        format!("select * from \"file://{other_table}\""),
        "select * from '/etc/passwd'".into(),
        format!("select * from read_parquet('{other_table}')"),
        "select * from read_csv('/etc/passwd')".into(),
        "select * from other.app".into(),
        "select * from log, secrets".into(),
        "with a as (select 1) select * from b".into(),
        "select 1 into stolen from log".into(),
    ];
    for query in &unreachable {
        for key in [ALL, DEMO_ONLY] {
            let (status, body, _) = get_logs(port, key, "demo", &format!("* | {query}"));
            assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{query}: {body}");
        }
    }
    // What the SQL may read is the logs the search selected, by either name, and only those.
    for query in ["* | select message from logs", "* | select message from log", "first | select message from logs"] {
        for key in [ALL, DEMO_ONLY] {
            let (status, body) = get_logs_until_done(port, key, "demo", query);
            assert_eq!(status, 200, "{query}: {body}");
            let text = body.to_string();
            assert!(!text.contains(SECRET), "{query}: {text}");
            let expected = if query.starts_with("first") { 1 } else { 3 };
            assert_eq!(body.as_array().unwrap().len(), expected, "{query}: {text}");
        }
    }
    // The restricted key cannot name the other project at all.
    let (status, body, _) = get_logs(port, DEMO_ONLY, "other", "*");
    assert_eq!((status, body["errorCode"].as_str()), (401, Some("Unauthorized")), "{body}");
    // Path and name tricks for the other project.
    for project in ["..", "other%2F..", "%2e%2e"] {
        let (status, body, _) = get_logs(port, DEMO_ONLY, project, "*");
        assert!(status == 401 || status == 404, "{project}: {status} {body}");
    }

    // Resource bombs: refused, or bounded.
    let bombs = [
        "* | select count(*) from generate_series(1, 100000000000)",
        "* | select count(*) from range(0, 9223372036854775807)",
        "* | select range(1, 100000000000)",
        "* | select repeat('x', 1000000000000)",
        "* | select lpad('', 1000000000000, 'x')",
        "* | select length(repeat(repeat('x', 100000), 100000))",
        "* | select regexp_like(message, '(a{1000}){1000}') from log",
        "* | select message from log where message ~ '((((a{100}){100}){100}){100})'",
        "* | select level from log limit 2000000",
    ];
    for query in bombs {
        let (status, body) = get_logs_until_done(port, ALL, "demo", query);
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{query}: {body}");
    }
    let deep = format!("* | select {}1{}", "(".repeat(300), ")".repeat(300));
    let long_chain = format!("* | select {}", vec!["1"; 3000].join(" + "));
    for query in [deep, long_chain, format!("{}a{}", "(".repeat(1000), ")".repeat(1000))] {
        let (status, body) = get_logs_until_done(port, ALL, "demo", &query);
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{body}");
    }
    // SLS returns 100 rows unless the SQL says LIMIT.
    let (status, body) = get_logs_until_done(port, ALL, "demo", "* | select * from generate_series(1, 500)");
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(100)), "{body}");
    let (status, body) = get_logs_until_done(port, ALL, "demo", "* | select * from generate_series(1, 500) limit 300");
    assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(300)), "{body}");

    // The same through Proliferate's search parameters: text, never SQL.
    let proliferate = |params: &[(&str, &str)]| {
        let r = http()
            .get(reqwest::Url::parse_with_params(&setup.server.url("/api/v1/projects/demo/logs"), params).unwrap())
            .header("authorization", format!("Bearer {DEMO_PROLIFERATE_KEY}"))
            .send()
            .unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    for statement in statements.iter().chain(&unreachable) {
        for name in ["search", "trace_id"] {
            let (status, text) = proliferate(&[(name, statement)]);
            assert_eq!(status, 200, "{name}={statement}: {text}");
            assert!(!text.contains(SECRET), "{text}");
        }
        let (status, _) = proliferate(&[("levels", statement)]);
        assert_eq!(status, 422, "levels={statement}");
    }
    for (name, value) in [
        ("start_time", "'; DROP TABLE log; --"),
        ("end_time", "9999-12-31T23:59:59Z"),
        ("limit", "100000000"),
        ("offset", "-1"),
    ] {
        let (status, text) = proliferate(&[(name, value)]);
        assert_eq!(status, 422, "{name}={value}: {text}");
    }
    for path in
        ["/api/v1/projects/other/logs", "/api/v1/projects/..%2Fother/logs", "/api/v1/projects/demo%2F..%2Fother/logs"]
    {
        let r = http()
            .get(setup.server.url(path))
            .header("authorization", format!("Bearer {DEMO_PROLIFERATE_KEY}"))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }

    assert_eq!(snapshot(outside.path()), before_outside, "no file outside the data directory was written");
    assert!(!target.exists());
    assert_eq!(std::fs::read(&setup.config).unwrap(), before_config, "the configuration is untouched");
    assert_eq!(snapshot(&setup.dir.path().join("data/tables/other")), before_other, "the other table is untouched");
    let stray: Vec<PathBuf> = snapshot(setup.dir.path())
        .into_keys()
        .filter(|p| !p.starts_with(setup.dir.path().join("data")) && *p != setup.config)
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

/// CPU seconds `sluice serve` has used so far (user + system, from /proc).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap().split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// PutLogs latencies, from one client kept open (as an SDK keeps its connection).
fn put_latencies(setup: &Setup, count: usize) -> Vec<Duration> {
    let client = http();
    let mut latencies: Vec<Duration> = (0..count)
        .map(|i| {
            let raw = group(vec![log(now() as u32, "message", &format!("latency probe {i}"))]);
            let started = Instant::now();
            let put = Put { project: "demo", key_id: ALL.0, secret: ALL.1, raw, ..Put::default() };
            let (status, body, _) = send_put_with(&client, &setup.server, put);
            let took = started.elapsed();
            assert_eq!(status, 200, "{body}");
            took
        })
        .collect();
    latencies.sort();
    latencies
}

/// Regression: expensive SQL ran without bounds and "kept running in the background"
/// past its deadline, pinning the cores; repeating it stacked more work.
#[test]
fn expensive_queries_are_cancelled_at_their_budget_and_ingest_keeps_being_answered() {
    let setup = start(
        "[server]\nquery_deadline_secs = 1\n[query]\ntimeout_secs = 4\nmax_concurrent = 3\nmax_concurrent_per_credential = 2\n",
    );
    let port = setup.server.port;
    for chunk in 0..4 {
        let messages: Vec<String> = (0..500).map(|i| format!("row {chunk} {i}")).collect();
        put(&setup, ALL, "demo", &messages);
    }
    let idle = put_latencies(&setup, 100);

    let bomb = |n: usize| format!("* | select count(*) as c from log a, log b, log c, log d where a.message <> '{n}'");
    let started = Instant::now();
    let bombs: Vec<_> = (0..3)
        .map(|n| {
            let query = bomb(n);
            let key = if n == 2 { DEMO_ONLY } else { ALL };
            std::thread::spawn(move || get_logs_until_done(port, key, "demo", &query))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    // Three run; a fourth for a credential at its share, and any at the server's limit,
    // wait their turn.
    let (status, body, _) = get_logs(port, ALL, "demo", &bomb(9));
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("ExceedQuota")), "{body}");
    let loaded = put_latencies(&setup, 100);
    for bomb in bombs {
        let (status, body) = bomb.join().unwrap();
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{body}");
        assert!(body["errorMessage"].as_str().unwrap().contains("cancelled after 4 s"), "{body}");
    }
    let took = started.elapsed();
    // Cancelled means stopped: the server goes quiet.
    std::thread::sleep(Duration::from_millis(500));
    let cpu = cpu_seconds(setup.server.pid());
    std::thread::sleep(Duration::from_secs(2));
    let spent = cpu_seconds(setup.server.pid()) - cpu;
    assert!(spent < 1.0, "the server used {spent:.2} s of CPU in 2 s after every query was cancelled");
    let (status, body) = get_logs_until_done(port, ALL, "demo", "* | select count(*) as c");
    assert_eq!(status, 200, "{body}");
    println!(
        "PutLogs latency: idle p50 {:?} p99 {:?}; under 3 cancelled 4-way cross joins p50 {:?} p99 {:?}; bombs ended after {took:?}",
        percentile(&idle, 0.5),
        percentile(&idle, 0.99),
        percentile(&loaded, 0.5),
        percentile(&loaded, 0.99),
    );
}

/// Regression: the query APIs were not counted against `max_concurrent_requests`.
#[test]
fn queries_take_request_slots_too() {
    let setup = start("[server]\nmax_concurrent_requests = 1\nquery_deadline_secs = 3\n[query]\ntimeout_secs = 3\n");
    let port = setup.server.port;
    put(&setup, ALL, "demo", &["m".into()]);
    // Holds its slot until the deadline: it cannot finish before.
    let bomb = "* | select count(*) from generate_series(1, 10000000) a, generate_series(1, 10000000) b";
    let slow = std::thread::spawn(move || get_logs(port, ALL, "demo", bomb));
    std::thread::sleep(Duration::from_millis(700));
    let (status, body, _) = get_logs(port, ALL, "demo", "*");
    assert_eq!((status, body["errorCode"].as_str()), (503, Some("ServerBusy")), "{body}");
    slow.join().unwrap();
}

/// Regression: deep nesting overflowed the stack, time arithmetic overflowed.
#[test]
fn deep_queries_and_extreme_times_get_clean_errors() {
    let setup = start("");
    let port = setup.server.port;
    put(&setup, ALL, "demo", &["x".into()]);
    for query in [
        format!("{}a{}", "(".repeat(1000), ")".repeat(1000)),
        vec!["a"; 3000].join(" and "),
        vec!["a"; 3000].join(" or "),
        format!("{}a", "not ".repeat(100)),
    ] {
        let (status, body, _) = get_logs(port, ALL, "demo", &query);
        assert_eq!((status, body["errorCode"].as_str()), (400, Some("InvalidQueryString")), "{body}");
    }
    let histogram = |from: &str, to: &str| {
        let path = "/logstores/app";
        let pairs: Vec<(String, String)> = [("type", "histogram"), ("from", from), ("to", to)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut headers: Headers = [("host", "demo.localhost".to_owned())].into_iter().collect();
        Signer { key_id: ALL.0, secret: ALL.1 }.sign_v1("GET", path, &pairs, &mut headers, &[], now());
        let mut request = http().get(reqwest::Url::parse_with_params(&setup.server.url(path), &pairs).unwrap());
        for (k, v) in headers.iter() {
            request = request.header(k, v);
        }
        let r = request.send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let (status, body) = histogram(&i64::MIN.to_string(), &i64::MAX.to_string());
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("ParameterInvalid")), "{body}");
    let (status, body) = histogram("0", &i64::MAX.to_string());
    assert_eq!(status, 400, "{body}");
    let (status, _) = histogram("0", "4294967295");
    assert_eq!(status, 200, "the whole range SLS times can have");
    let proliferate = |path: &str, params: &[(&str, &str)]| {
        let r = http()
            .get(reqwest::Url::parse_with_params(&setup.server.url(path), params).unwrap())
            .header("authorization", format!("Bearer {DEMO_PROLIFERATE_KEY}"))
            .send()
            .unwrap();
        r.status().as_u16()
    };
    assert_eq!(proliferate("/api/v1/projects/demo/logs", &[("end_time", "2262-04-11T23:47:16.854775807Z")]), 200);
    assert_eq!(proliferate("/api/v1/projects/demo/logs", &[("end_time", "9999-12-31T00:00:00Z")]), 422);
    let near_the_end = format!("{:032x}-0-{}", 1u128, i64::MAX);
    assert_eq!(proliferate(&format!("/api/v1/events/{near_the_end}/logs"), &[]), 404);
    let near_the_start = format!("{:032x}-0-0", 1u128);
    assert_eq!(proliferate(&format!("/api/v1/events/{near_the_start}/logs"), &[]), 404);
    // Still up.
    assert_eq!(http().get(setup.server.url("/health")).send().unwrap().status().as_u16(), 200);
}

/// Regression: a Proliferate batch with a bad key was parsed in full (5 million entries
/// from 10 KB of gzip) before the key was refused; three at once exhausted the server.
#[test]
fn a_bad_key_is_refused_before_the_entries_are_built() {
    let setup = start("");
    let mut entries = String::from(r#"{"api_key": "pk_wrong", "logs": ["#);
    entries.push_str(&"{},".repeat(3_000_000));
    entries.push_str("{}]}");
    let mut gz = GzEncoder::new(Vec::new(), Compression::best());
    gz.write_all(entries.as_bytes()).unwrap();
    let body = gz.finish().unwrap();
    assert!(body.len() < 64 * 1024, "{} bytes of gzip", body.len());
    let url = setup.server.url("/api/v1/logs/batch");
    let senders: Vec<_> = (0..3)
        .map(|_| {
            let (url, body) = (url.clone(), body.clone());
            std::thread::spawn(move || {
                let r = http().post(url).header("content-encoding", "gzip").body(body).send().unwrap();
                (r.status().as_u16(), r.text().unwrap())
            })
        })
        .collect();
    for sender in senders {
        let (status, text) = sender.join().unwrap();
        assert_eq!((status, text.as_str()), (401, r#"{"detail":"Invalid API key"}"#));
    }
    let peak = peak_rss_mb(setup.server.pid());
    assert!(peak < 400, "sluice serve peaked at {peak} MB refusing three bad batches");
    // The right key with too many entries: refused as too many, also before building.
    let many = format!(r#"{{"api_key": "{DEMO_PROLIFERATE_KEY}", "logs": [{}{{}}]}}"#, "{},".repeat(200_000));
    let r = http().post(&url).body(many).send().unwrap();
    assert_eq!(r.status().as_u16(), 422);
    assert!(sluice_tests::raw_batches(&setup.server.data).is_empty());
}

/// The peak resident memory of a process, in MB.
fn peak_rss_mb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
}

/// Regression: a body trickled a byte at a time held a request slot until everybody got
/// `ServerBusy`; a client that never finished its headers was never timed out.
#[test]
fn slow_clients_are_cut_off_and_hold_nothing() {
    let setup = start(
        "[server]\nmax_concurrent_requests = 2\nheader_timeout_secs = 1\nbody_timeout_secs = 1\nmin_body_bytes_per_sec = 100\n",
    );
    let addr = format!("127.0.0.1:{}", setup.server.port);
    // More tricklers than request slots.
    let tricklers: Vec<_> = (0..4)
        .map(|_| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                write!(
                    stream,
                    "POST /api/v1/logs/batch HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n"
                )
                .unwrap();
                let started = Instant::now();
                for _ in 0..40 {
                    if stream.write_all(b" ").is_err() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
                let mut answer = String::new();
                let _ = stream.read_to_string(&mut answer);
                (answer, started.elapsed())
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // Meanwhile, a normal client is served.
    for _ in 0..5 {
        let (status, body, _) = send_put(&setup.server, Put { key_id: ALL.0, secret: ALL.1, ..Put::default() });
        assert_eq!(status, 200, "{body}");
    }
    for trickler in tricklers {
        let (answer, _) = trickler.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    }
    // Headers that never end: the connection is closed.
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    stream.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\nx-slow: ").unwrap();
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(started.elapsed() < Duration::from_secs(20), "closed by the server, not by the test's own timeout");
    // Headers larger than the server takes.
    let huge = format!("GET /health HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n", "a".repeat(200 * 1024));
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let _ = stream.write_all(huge.as_bytes());
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(answer.is_empty() || answer.starts_with("HTTP/1.1 431"), "{answer}");
    assert_eq!(http().get(setup.server.url("/health")).send().unwrap().status().as_u16(), 200);
}

/// Regression: in open mode LTS `a.b`/`c` and `a`/`b.c` both went to logstore `a.b.c`.
#[test]
fn lts_streams_never_share_a_logstore() {
    let setup = start("");
    let report = |group: &str, stream: &str| {
        let now_ns = i128::from(now()) * 1_000_000_000;
        let r = http()
            .post(setup.server.url(&format!("/v2/p1/lts/groups/{group}/streams/{stream}/tenant/contents")))
            .header("x-auth-token", DEMO_LTS_TOKEN)
            .body(format!(r#"{{"log_time_ns": {now_ns}, "contents": ["x"], "labels": {{}}}}"#))
            .send()
            .unwrap();
        r.status().as_u16()
    };
    assert_eq!(report("a", "b.c"), 200);
    assert_eq!(report("a.b", "c"), 404);
    let stored: Vec<String> = sluice_tests::raw_batches(&setup.server.data)
        .iter()
        .map(|p| p.strip_prefix(&setup.server.data).unwrap().display().to_string())
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].starts_with("raw/p1/a.b.c/"), "{stored:?}");
}

/// Regression: a Proliferate timestamp of 1e12 seconds was kept at the largest time,
/// where no search finds it.
#[test]
fn times_beyond_the_representable_are_dropped() {
    let setup = start("");
    let body = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [
        {"timestamp": 1e12, "message": "far"},
        {"timestamp": 9.3e9, "message": "too far"},
        {"message": "now"},
    ]});
    let r = http().post(setup.server.url("/api/v1/logs/batch")).body(body.to_string()).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.json::<Value>().unwrap(), serde_json::json!({"accepted": 1, "dropped": 2}));
}

/// Regression: one broken table stopped the compaction of every logstore after it.
#[test]
fn a_broken_table_does_not_stop_the_others() {
    let setup = start("");
    put(&setup, ALL, "a", &["first".into()]);
    put(&setup, ALL, "b", &["second".into()]);
    compact(&setup);
    put(&setup, ALL, "a", &["third".into()]);
    put(&setup, ALL, "b", &["fourth".into()]);
    // Table a's log is now garbage.
    let log = setup.dir.path().join("data/tables/a/app/_delta_log/00000000000000000000.json");
    std::fs::write(&log, b"{not json").unwrap();
    let out = std::process::Command::new(sluice_bin())
        .args(["compact", "--data", setup.dir.path().join("data").to_str().unwrap()])
        .args(["--config", setup.config.to_str().unwrap()])
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stderr.contains("some logstores failed") && stderr.contains("compacting a/app"), "{stderr}");
    assert!(!stderr.contains("b/app"), "{stderr}");
    assert!(stdout.contains("1 batches"), "b was compacted: {stdout}");
    let left: Vec<PathBuf> = sluice_tests::raw_batches(&setup.dir.path().join("data"));
    assert_eq!(left.len(), 1, "only a's batch waits: {left:?}");
    assert!(left[0].display().to_string().contains("/raw/a/app/"));
}

/// Regression: one 56 KB request whose logs carried 2,000 dates made 2,000 Parquet files.
#[test]
fn a_request_spread_over_thousands_of_dates_makes_a_few_files() {
    let setup = start("");
    let day = 86_400u32;
    let base = now();
    let logs = (0..2000u32).map(|i| log(base as u32 - i * day, "message", &format!("day {i}"))).collect();
    let (status, body, _) =
        send_put(&setup.server, Put { raw: group(logs), key_id: ALL.0, secret: ALL.1, ..Put::default() });
    assert_eq!(status, 200, "{body}");
    compact(&setup);
    let files: Vec<PathBuf> = snapshot(&setup.dir.path().join("data/tables/demo/app"))
        .into_keys()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    assert!(files.len() <= 30, "{} files", files.len());
    // Every log is still found by its time.
    let range = (base - 2001 * i64::from(day), base + 600);
    let (status, body, _) = get_logs_in(setup.server.port, ALL, "demo", range, "* | select count(*) as c from log");
    assert_eq!((status, body[0]["c"].as_str()), (200, Some("2000")), "{body}");
    for i in [0, 6, 8, 30, 400, 1999] {
        let t = base - i * i64::from(day);
        let (status, body, _) = get_logs_in(setup.server.port, ALL, "demo", (t - 1, t + 1), &format!("\"day {i}\""));
        assert_eq!((status, body.as_array().map(Vec::len)), (200, Some(1)), "day {i}: {body}");
    }
}
