//! Query speed against DuckDB on the same Parquet files, in one run.
//!
//!     cargo bench -p sluice-compactor --bench query -- [LOGS] [RUNS]
//!
//! Generates LOGS (default 10,000,000) application logs over three days as SLS raw
//! batches, compacts them into the logstore's Delta table (kept under
//! `$SLUICE_CACHE/bench/query-LOGS` for later runs), then runs each query RUNS times
//! (default 5) the way `sluice serve` does (open the table, plan, execute, render) and
//! the equivalent SQL as many times in DuckDB (PyPI `duckdb`, through
//! `duckdb_queries.py`, with the venv `scripts/setup-python` makes) over exactly the
//! table's current Parquet files, both on every core. It checks that both give the same
//! answer and prints the medians and their ratio.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message;
use serde_json::{Value, json};
use sluice_compactor::compact::{self, CompactOptions, Quiet};
use sluice_compactor::lake::rows::{int_at, text_at};
use sluice_compactor::lake::schema::TIME_NS;
use sluice_compactor::lake::store as storage;
use sluice_compactor::query::scan::ScanStats;
use sluice_compactor::query::sls::{self, Page, Range};
use sluice_compactor::query::source::{Cache, Reading, Shared, Source};
use sluice_compactor::query::syntax;
use sluice_ingest::Product;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::config::Limits;
use sluice_ingest::format::sls::encode_log_group;
use sluice_ingest::layout::RawBatchKey;
use sluice_loggen::{Generator, Kind};
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const PROJECT: &str = "bench";
const LOGSTORE: &str = "app";
const START_NS: i64 = 1_735_689_600_000_000_000; // 2025-01-01
const SPAN_NS: i64 = 3 * 86_400 * 1_000_000_000;
const NEEDLE: &str = "zq9needlex7";

/// What the generated data holds that the queries look for.
#[derive(serde::Serialize, serde::Deserialize)]
struct Meta {
    logs: usize,
    trace_id: String,
}

fn generate(dir: &Path, logs: usize) -> Meta {
    let data = dir.join("data");
    let limits = Limits::default();
    let step_ns = (SPAN_NS / logs as i64).max(1);
    let mut generator = Generator::new(7, START_NS, step_ns);
    let (mut written, mut groups) = (0usize, 0usize);
    let mut trace_id = String::new();
    let started = Instant::now();
    while written < logs {
        let mut group = generator.log_group_of_size(Kind::App, 1 << 20);
        group.logs.truncate(logs - written);
        // One log, in the middle, holds the needle; one trace, two thirds in, is looked up.
        if written <= logs / 2 && logs / 2 < written + group.logs.len() {
            let log = &mut group.logs[logs / 2 - written];
            let message = log.contents.iter_mut().find(|c| c.key == "message").unwrap();
            message.value = format!("payment gateway answered {NEEDLE} after a retry").into_bytes();
        }
        if trace_id.is_empty() && written + group.logs.len() > logs * 2 / 3 {
            let log = &group.logs[group.logs.len() / 2];
            trace_id =
                String::from_utf8(log.contents.iter().find(|c| c.key == "trace_id").unwrap().value.clone()).unwrap();
        }
        written += group.logs.len();
        groups += 1;
        let raw = group.encode_to_vec();
        let body = encode_log_group(&raw, &limits).unwrap();
        let id = BatchId::derive(Product::Sls, PROJECT, LOGSTORE, &groups.to_string(), &raw);
        let key = RawBatchKey { project: PROJECT.into(), logstore: LOGSTORE.into(), id };
        let path = data.join(key.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, batch::encode(id, Product::Sls, PROJECT, LOGSTORE, &body)).unwrap();
    }
    eprintln!("generated {written} logs in {groups} raw batches in {:.1} s", started.elapsed().as_secs_f64());
    let storage = storage::open(&data.display().to_string(), &Default::default()).unwrap();
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let summary =
        runtime.block_on(compact::compact_all(&storage, &CompactOptions::default(), &Quiet, now_ns())).unwrap();
    assert_eq!(summary.records, written);
    eprintln!("compacted in {:.1} s ({} commits)", started.elapsed().as_secs_f64(), summary.commits);
    Meta { logs: written, trace_id }
}

/// One query, as SLS asks it and as SQL for DuckDB.
struct Case {
    name: &'static str,
    range: (i64, i64),
    sls: String,
    histogram: bool,
    duckdb: String,
}

/// The cases, in SQL for the table's layout: a field the table keeps as a column of its own
/// is `frequent.{key}`, others `fields['{key}']`.
fn cases(meta: &Meta, frequent: &[String]) -> Vec<Case> {
    let field = |key: &str| {
        if frequent.iter().any(|k| k == key) { format!("frequent.{key}") } else { format!("fields['{key}']") }
    };
    let in_frequent: String =
        frequent.iter().map(|k| format!(" OR contains(lower(frequent.{k}), '{NEEDLE}')")).collect();
    let (from, to) = (START_NS / 1_000_000_000, (START_NS + SPAN_NS) / 1_000_000_000);
    let width = |from: i64, to: i64| {
        let (a, b) = sls::subintervals(from, to)[0];
        (b - a) * 1_000_000_000
    };
    let within =
        |from: i64, to: i64| format!("time_ns >= {} AND time_ns < {}", from * 1_000_000_000, to * 1_000_000_000);
    let histogram_sql = |from: i64, to: i64, filter: &str| {
        format!(
            "SELECT (time_ns - {}) // {} AS b, count(*) AS c FROM logs WHERE {}{filter} GROUP BY b ORDER BY b",
            from * 1_000_000_000,
            width(from, to),
            within(from, to)
        )
    };
    let hour = (from + 86_400 + 3600 * 5, from + 86_400 + 3600 * 6);
    vec![
        Case {
            name: "histogram, 3 days",
            range: (from, to),
            sls: "*".into(),
            histogram: true,
            duckdb: histogram_sql(from, to, ""),
        },
        Case {
            name: "histogram, 3 days, level: error",
            range: (from, to),
            sls: "level: error".into(),
            histogram: true,
            duckdb: histogram_sql(from, to, " AND lower(level) = 'error'"),
        },
        Case {
            name: "histogram, 1 hour",
            range: hour,
            sls: "*".into(),
            histogram: true,
            duckdb: histogram_sql(hour.0, hour.1, ""),
        },
        Case {
            name: "needle full-text search",
            range: (from, to),
            sls: NEEDLE.into(),
            histogram: false,
            duckdb: format!(
                "SELECT * FROM logs WHERE {} AND (contains(lower(message), '{NEEDLE}') OR \
                 coalesce(len(list_filter(map_values(fields), lambda v: contains(lower(v), '{NEEDLE}'))), 0) > 0{in_frequent}) \
                 ORDER BY time_ns, batch_id, position LIMIT 100",
                within(from, to)
            ),
        },
        Case {
            name: "trace id lookup",
            range: (from, to),
            sls: format!("trace_id: {}", meta.trace_id),
            histogram: false,
            duckdb: format!(
                "SELECT * FROM logs WHERE {} AND trace_id = '{}' ORDER BY time_ns, batch_id, position LIMIT 100",
                within(from, to),
                meta.trace_id
            ),
        },
        Case {
            name: "| SQL: count by level",
            range: (from, to),
            sls: "* | select level, count(*) as c group by level order by c desc".into(),
            histogram: false,
            duckdb: format!(
                "SELECT level, count(*) AS c FROM logs WHERE {} GROUP BY level ORDER BY c DESC",
                within(from, to)
            ),
        },
        Case {
            name: "| SQL: top users of errors",
            range: (from, to),
            sls: "level: error | select user_id, count(*) as c group by user_id order by c desc, user_id limit 10"
                .into(),
            histogram: false,
            duckdb: format!(
                "SELECT {} AS user_id, count(*) AS c FROM logs WHERE {} AND lower(level) = 'error' \
                 GROUP BY 1 ORDER BY c DESC, user_id LIMIT 10",
                field("user_id"),
                within(from, to)
            ),
        },
    ]
}

/// An answer in a form both engines can give: histogram counts by bucket, the times of
/// the logs found, or the SQL rows as strings.
fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn sluice_answer(rt: &tokio::runtime::Runtime, shared: &Shared, case: &Case) -> (Value, ScanStats) {
    let (from, to) = case.range;
    let range = Range::new(from, 0, to, 0).expect("a range in the bench's days");
    let query = syntax::parse(&case.sls).unwrap();
    let reading =
        Reading { project: PROJECT, logstore: LOGSTORE, from_ns: range.from_ns, to_ns: range.to_ns, now_ns: now_ns() };
    rt.block_on(async {
        let source = Source::open(shared, reading).await.unwrap();
        let answer = if case.histogram {
            let buckets = sls::histogram(&source, range, from, to, None, &query).await.unwrap();
            let counts: BTreeMap<String, u64> =
                buckets.iter().enumerate().filter(|(_, b)| b.2 > 0).map(|(i, b)| (i.to_string(), b.2)).collect();
            json!(counts)
        } else {
            let page = Page { line: 100, offset: 0, reverse: false };
            let logs = sls::logs(&source, range, None, &query, &page, &HashMap::new()).await.unwrap();
            if logs.has_sql {
                let rows: Vec<serde_json::Map<String, Value>> = logs
                    .batches
                    .iter()
                    .flat_map(|b| {
                        (0..b.num_rows()).map(move |row| {
                            b.schema()
                                .fields()
                                .iter()
                                .zip(b.columns())
                                .map(|(f, c)| {
                                    (f.name().clone(), Value::String(text_at(c.as_ref(), row).unwrap_or("null".into())))
                                })
                                .collect()
                        })
                    })
                    .collect();
                json!(rows)
            } else {
                let times: Vec<String> = logs
                    .batches
                    .iter()
                    .flat_map(|b| (0..b.num_rows()).map(move |row| int_at(b, TIME_NS, row).unwrap().to_string()))
                    .collect();
                json!(times)
            }
        };
        (answer, source.scanned.get())
    })
}

fn duckdb_answer(case: &Case, rows: &[Value]) -> Value {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if case.histogram {
        let counts: BTreeMap<String, u64> =
            rows.iter().map(|r| (text(&r["b"]), text(&r["c"]).parse().unwrap())).collect();
        json!(counts)
    } else if case.sls.contains('|') {
        let rows: Vec<BTreeMap<String, String>> =
            rows.iter().map(|r| r.as_object().unwrap().iter().map(|(k, v)| (k.clone(), text(v))).collect()).collect();
        json!(rows)
    } else {
        json!(rows.iter().map(|r| text(&r["time_ns"])).collect::<Vec<_>>())
    }
}

fn median(mut seconds: Vec<f64>) -> f64 {
    seconds.sort_by(f64::total_cmp);
    seconds[seconds.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let logs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let cache_root = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sluice"));
    let dir = cache_root.join(format!("bench/query-{logs}"));
    let meta_path = dir.join("meta.json");
    let meta: Meta = match std::fs::read(&meta_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => {
            let _ = std::fs::remove_dir_all(&dir);
            let meta = generate(&dir, logs);
            std::fs::write(&meta_path, serde_json::to_vec(&meta).unwrap()).unwrap();
            meta
        }
    };
    let data = dir.join("data");
    let table = data.join(format!("tables/{PROJECT}/{LOGSTORE}"));
    let storage = storage::open(&data.display().to_string(), &Default::default()).unwrap();
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    let shared = Shared {
        storage: storage.clone(),
        cache: Cache::default(),
        lookback: Duration::from_secs(86_400),
        listing_for: Duration::from_secs(1),
        limits: sluice_compactor::query::QueryLimits::default(),
    };
    let nothing = Reading { project: PROJECT, logstore: LOGSTORE, from_ns: 0, to_ns: 1, now_ns: now_ns() };
    let frequent = rt.block_on(Source::open(&shared, nothing)).unwrap().functions.frequent;
    let cases = cases(&meta, &frequent);

    let mut sluice = Vec::new();
    for case in &cases {
        let mut seconds = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let started = Instant::now();
            last = Some(sluice_answer(&rt, &shared, case));
            seconds.push(started.elapsed().as_secs_f64());
        }
        eprintln!("sluice: {}: {:.1} ms", case.name, median(seconds.clone()) * 1e3);
        sluice.push((median(seconds), last.unwrap()));
    }

    let python = cache_root.join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/duckdb_queries.py");
    let spec = json!({
        "table": table.display().to_string(),
        "runs": runs,
        "threads": threads,
        "queries": cases.iter().map(|c| json!({"name": c.name, "sql": c.duckdb})).collect::<Vec<_>>(),
    });
    let mut child = Command::new(&python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs (scripts/setup-python makes it): {e}", python.display()));
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "duckdb_queries.py failed");
    let duck: Vec<Value> = serde_json::from_slice(&output.stdout).unwrap();

    println!("{} logs, {runs} runs each, medians, {threads} threads", meta.logs);
    println!("| query | Sluice | DuckDB | DuckDB time / Sluice time | Sluice read (files, row groups) |");
    println!("|---|---:|---:|---:|---|");
    let mut all_agree = true;
    for ((case, (seconds, (answer, stats))), duck) in cases.iter().zip(&sluice).zip(&duck) {
        let duck_seconds = median(duck["seconds"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect());
        let duck_answer = duckdb_answer(case, duck["rows"].as_array().unwrap());
        let agree = *answer == duck_answer;
        all_agree &= agree;
        println!(
            "| {} | {:.1} ms | {:.1} ms | {:.2}x{} | {} files, {}/{} row groups |",
            case.name,
            seconds * 1e3,
            duck_seconds * 1e3,
            duck_seconds / seconds,
            if agree { "" } else { " (ANSWERS DIFFER)" },
            stats.files,
            stats.row_groups_read,
            stats.row_groups
        );
        if !agree {
            eprintln!("{}: Sluice {answer}\nDuckDB {duck_answer}", case.name);
        }
    }
    assert!(all_agree, "Sluice and DuckDB must give the same answers");
}
