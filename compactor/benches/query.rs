//! Query speed against DuckDB and chDB on the same Parquet files, in one run.
//!
//!     cargo bench -p sluice-compactor --bench query -- [LOGS] [RUNS]
//!
//! Generates LOGS (default 10,000,000) application logs over three days as SLS raw
//! batches (one holds a needle, one in a hundred a medium-rare word), compacts them into
//! the logstore's Delta table (kept under `$SLUICE_CACHE/bench/query-v5-LOGS` for later
//! runs), then runs each query RUNS times (default 5) the way `sluice serve` does (open
//! the logstore, plan, execute, render), then through HTTP with the unmodified SLS
//! Python SDK against a `sluice serve` in this process (`sdk_queries.py`), and the
//! equivalent SQL as many times in DuckDB and chDB (PyPI `duckdb`, `chdb`, through
//! `peers.py`, with the venv `scripts/setup-python bench` makes) over exactly the table's
//! current Parquet files, all on every core. It checks that all give the same answer and
//! prints the medians and their ratios. `SLUICE_BENCH_ONLY=word` runs only the cases whose
//! name holds it, in Sluice alone (to profile them).

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
/// In one log of a hundred.
const MEDIUM: &str = "mediumrare";

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
        for (i, log) in group.logs.iter_mut().enumerate() {
            if (written + i) % 100 == 42 {
                let message = log.contents.iter_mut().find(|c| c.key == "message").unwrap();
                message.value.extend_from_slice(format!(" {MEDIUM}").as_bytes());
            }
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

/// One query, as SLS asks it and as SQL for DuckDB and chDB.
struct Case {
    name: &'static str,
    range: (i64, i64),
    sls: String,
    histogram: bool,
    /// Newest first (GetLogs `reverse=true`).
    reverse: bool,
    duckdb: String,
    chdb: String,
}

/// The cases, in SQL for the table's layout: a field the table keeps as a column of its own
/// is `frequent.{key}`, others `fields['{key}']`.
fn cases(meta: &Meta, frequent: &[String]) -> Vec<Case> {
    // chDB reads a struct's field with `tupleElement` (`frequent.x` beside `*` fails there).
    let field = |key: &str, ch: bool| match (frequent.iter().any(|k| k == key), ch) {
        (true, false) => format!("frequent.{key}"),
        (true, true) => format!("tupleElement(frequent, '{key}')"),
        (false, _) => format!("fields['{key}']"),
    };
    // Full text: the message, every field's value, the frequent fields.
    let text = |word: &str, ch: bool| {
        let frequent: String = frequent
            .iter()
            .map(|k| {
                if ch {
                    format!(" OR positionCaseInsensitive(tupleElement(frequent, '{k}'), '{word}') > 0")
                } else {
                    format!(" OR contains(lower(frequent.{k}), '{word}')")
                }
            })
            .collect();
        if ch {
            format!(
                "(positionCaseInsensitive(message, '{word}') > 0 OR \
                 arrayExists(v -> positionCaseInsensitive(v, '{word}') > 0, mapValues(fields)){frequent})"
            )
        } else {
            format!(
                "(contains(lower(message), '{word}') OR \
                 coalesce(len(list_filter(map_values(fields), lambda v: contains(lower(v), '{word}'))), 0) > 0{frequent})"
            )
        }
    };
    let (from, to) = (START_NS / 1_000_000_000, (START_NS + SPAN_NS) / 1_000_000_000);
    let width = |from: i64, to: i64| {
        let (a, b) = sls::subintervals(from, to)[0];
        (b - a) * 1_000_000_000
    };
    let within =
        |from: i64, to: i64| format!("time_ns >= {} AND time_ns < {}", from * 1_000_000_000, to * 1_000_000_000);
    let histogram_sql = |from: i64, to: i64, filter: &str, ch: bool| {
        let bucket = if ch { "intDiv(time_ns - {f}, {w})" } else { "(time_ns - {f}) // {w}" }
            .replace("{f}", &(from * 1_000_000_000).to_string())
            .replace("{w}", &width(from, to).to_string());
        let logs = if ch { "{logs}" } else { "logs" };
        let count = if ch { "count()" } else { "count(*)" };
        format!(
            "SELECT {bucket} AS b, {count} AS c FROM {logs} WHERE {}{filter} GROUP BY b ORDER BY b",
            within(from, to)
        )
    };
    let page_sql = |from: i64, to: i64, filter: &str, desc: bool, ch: bool| {
        let logs = if ch { "{logs}" } else { "logs" };
        let d = if desc { " DESC" } else { "" };
        format!(
            "SELECT * FROM {logs} WHERE {} AND {filter} ORDER BY time_ns{d}, batch_id{d}, position{d} LIMIT 100",
            within(from, to)
        )
    };
    let hour = (from + 86_400 + 3600 * 5, from + 86_400 + 3600 * 6);
    let minute = (from + 86_400 + 3600 * 7, from + 86_400 + 3600 * 7 + 60);
    let both = |make: &dyn Fn(bool) -> String| (make(false), make(true));
    let mut out = Vec::new();
    let mut case = |name, range, sls: String, histogram, reverse, (duckdb, chdb): (String, String)| {
        out.push(Case { name, range, sls, histogram, reverse, duckdb, chdb });
    };
    let whole = (from, to);
    case("histogram, 3 days", whole, "*".into(), true, false, both(&|ch| histogram_sql(from, to, "", ch)));
    case(
        "histogram, 3 days, level: error",
        whole,
        "level: error".into(),
        true,
        false,
        both(&|ch| histogram_sql(from, to, " AND lower(level) = 'error'", ch)),
    );
    case("histogram, 1 hour", hour, "*".into(), true, false, both(&|ch| histogram_sql(hour.0, hour.1, "", ch)));
    case(
        "needle full-text search",
        whole,
        NEEDLE.into(),
        false,
        false,
        both(&|ch| page_sql(from, to, &text(NEEDLE, ch), false, ch)),
    );
    case(
        "medium-rare word (1%), newest 100",
        whole,
        MEDIUM.into(),
        false,
        true,
        both(&|ch| page_sql(from, to, &text(MEDIUM, ch), true, ch)),
    );
    case(
        "trace id lookup",
        whole,
        format!("trace_id: {}", meta.trace_id),
        false,
        false,
        both(&|ch| page_sql(from, to, &format!("trace_id = '{}'", meta.trace_id), false, ch)),
    );
    case(
        "newest 100, level: error",
        whole,
        "level: error".into(),
        false,
        true,
        both(&|ch| page_sql(from, to, "lower(level) = 'error'", true, ch)),
    );
    case(
        "1 minute, first 100",
        minute,
        "*".into(),
        false,
        false,
        both(&|ch| page_sql(minute.0, minute.1, "true", false, ch)),
    );
    // A minute before the first log: what a query costs when there is nothing to read.
    let empty = (from - 60, from);
    case(
        "empty range, newest 100",
        empty,
        "*".into(),
        false,
        true,
        both(&|ch| page_sql(empty.0, empty.1, "true", true, ch)),
    );
    case(
        "| SQL: count by level",
        whole,
        "* | select level, count(*) as c group by level order by c desc".into(),
        false,
        false,
        both(&|ch| {
            let (logs, count) = if ch { ("{logs}", "count()") } else { ("logs", "count(*)") };
            format!("SELECT level, {count} AS c FROM {logs} WHERE {} GROUP BY level ORDER BY c DESC", within(from, to))
        }),
    );
    case(
        "| SQL: top users of errors",
        whole,
        "level: error | select user_id, count(*) as c group by user_id order by c desc, user_id limit 10".into(),
        false,
        false,
        both(&|ch| {
            let (logs, count) = if ch { ("{logs}", "count()") } else { ("logs", "count(*)") };
            format!(
                "SELECT {} AS user_id, {count} AS c FROM {logs} WHERE {} AND lower(level) = 'error' \
                 GROUP BY 1 ORDER BY c DESC, user_id LIMIT 10",
                field("user_id", ch),
                within(from, to)
            )
        }),
    );
    out
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
            let page = Page { line: 100, offset: 0, reverse: case.reverse };
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

/// A peer's rows as the same answer as Sluice's.
fn peer_answer(case: &Case, rows: &[Value]) -> Value {
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

/// Runs `script` from the venv with `spec` on stdin; its JSON answer.
fn python(cache_root: &Path, script: &str, args: &[&str], spec: &Value) -> Vec<Value> {
    let python = cache_root.join("venv/bin/python");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches").join(script);
    let mut child = Command::new(&python)
        .arg(&script)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{} runs (scripts/setup-python bench makes it): {e}", python.display()));
    child.stdin.take().unwrap().write_all(spec.to_string().as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{} {args:?} failed", script.display());
    serde_json::from_slice(&output.stdout).unwrap()
}

/// A `sluice serve` of the bench's lake in this process (development settings: the demo
/// credentials); its port.
fn serve(rt: &tokio::runtime::Runtime, storage: &storage::Storage) -> u16 {
    use sluice_compactor::api;
    let settings = sluice_compactor::settings::Settings::development();
    let state = std::sync::Arc::new(api::AppState::new(&settings, storage.clone(), rt.handle().clone()));
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let port = listener.local_addr().unwrap().port();
    rt.spawn(async move { api::serve(listener, api::router(state), &settings.server, std::future::pending()).await });
    port
}

/// Bytes of a table's Parquet files and of its index sidecars.
fn sizes(dir: &Path) -> (u64, u64) {
    let (mut parquet, mut index) = (0, 0);
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let (path, meta) = (entry.path(), entry.metadata().unwrap());
            if meta.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                parquet += meta.len();
            } else if path.extension().is_some_and(|e| e == "idx") {
                index += meta.len();
            }
        }
    }
    (parquet, index)
}

fn seconds_of(answer: &Value) -> f64 {
    median(answer["seconds"].as_array().unwrap().iter().map(|s| s.as_f64().unwrap()).collect())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let logs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000_000);
    let runs: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
    let cache_root = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sluice"));
    let dir = cache_root.join(format!("bench/query-v5-{logs}"));
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
    let (parquet, index) = sizes(&table);
    println!(
        "table: {:.1} MB of Parquet; token index and rollups: {:.1} MB, {:.1}% of it, {:.2} bytes per log",
        parquet as f64 / 1e6,
        index as f64 / 1e6,
        index as f64 * 100.0 / parquet as f64,
        index as f64 / meta.logs as f64
    );
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
    let mut cases = cases(&meta, &frequent);
    // `SLUICE_BENCH_ONLY=word`: only the cases whose name holds it, in Sluice alone (to profile).
    let only = std::env::var("SLUICE_BENCH_ONLY").ok();
    if let Some(only) = &only {
        cases.retain(|c| c.name.contains(only.as_str()));
    }

    let mut sluice = Vec::new();
    for case in &cases {
        let mut seconds = Vec::new();
        let mut last = None;
        for _ in 0..runs {
            let started = Instant::now();
            last = Some(sluice_answer(&rt, &shared, case));
            seconds.push(started.elapsed().as_secs_f64());
        }
        let (answer, stats) = last.unwrap();
        eprintln!(
            "sluice: {}: {:.1} ms ({} files, {}/{} row groups)",
            case.name,
            median(seconds.clone()) * 1e3,
            stats.files,
            stats.row_groups_read,
            stats.row_groups
        );
        sluice.push((median(seconds), (answer, stats)));
    }
    if only.is_some() {
        return;
    }

    // Through HTTP: the SLS SDK against `sluice serve`, the queries without SQL.
    let port = serve(&rt, &storage);
    let sdk_cases: Vec<Value> = cases
        .iter()
        .filter(|c| !c.sls.contains('|'))
        .map(|c| {
            let kind = if c.histogram { "histogram" } else { "logs" };
            json!({"name": c.name, "kind": kind, "from": c.range.0, "to": c.range.1, "query": c.sls, "reverse": c.reverse})
        })
        .collect();
    let spec = json!({"port": port, "project": PROJECT, "logstore": LOGSTORE, "runs": runs, "queries": sdk_cases});
    let sdk = python(&cache_root, "sdk_queries.py", &[], &spec);
    let sdk_by_name: HashMap<&str, &Value> = sdk.iter().map(|a| (a["name"].as_str().unwrap(), a)).collect();

    let peer = |engine: &str, sql: &dyn Fn(&Case) -> &str| {
        let spec = json!({
            "table": table.display().to_string(),
            "runs": runs,
            "threads": threads,
            "queries": cases.iter().map(|c| json!({"name": c.name, "sql": sql(c)})).collect::<Vec<_>>(),
        });
        python(&cache_root, "peers.py", &[engine], &spec)
    };
    let duck = peer("duckdb", &|c| c.duckdb.as_str());
    let ch = peer("chdb", &|c| c.chdb.as_str());

    println!("{} logs, {runs} runs each, medians, {threads} threads", meta.logs);
    println!(
        "| query | Sluice | Sluice via HTTP (SLS SDK) | DuckDB | chDB | DuckDB / Sluice | chDB / Sluice | Sluice read (files, row groups) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---|");
    let mut all_agree = true;
    for (((case, (seconds, (answer, stats))), duck), ch) in cases.iter().zip(&sluice).zip(&duck).zip(&ch) {
        let (duck_seconds, ch_seconds) = (seconds_of(duck), seconds_of(ch));
        let duck_answer = peer_answer(case, duck["rows"].as_array().unwrap());
        let ch_answer = peer_answer(case, ch["rows"].as_array().unwrap());
        let sdk = sdk_by_name.get(case.name);
        // The SDK's count: the histogram's total, or the logs returned.
        let sdk_agrees = sdk.is_none_or(|s| {
            let expected = match answer {
                Value::Object(counts) => counts.values().map(|c| c.as_u64().unwrap()).sum::<u64>(),
                Value::Array(rows) => rows.len() as u64,
                _ => 0,
            };
            s["count"].as_u64() == Some(expected)
        });
        let agree = *answer == duck_answer && *answer == ch_answer && sdk_agrees;
        all_agree &= agree;
        let via_sdk = sdk.map_or("".to_owned(), |s| format!("{:.1} ms", seconds_of(s) * 1e3));
        println!(
            "| {} | {:.1} ms | {via_sdk} | {:.1} ms | {:.1} ms | {:.1}x | {:.1}x{} | {} files, {}/{} row groups{}{} |",
            case.name.replace('|', "\\|"),
            seconds * 1e3,
            duck_seconds * 1e3,
            ch_seconds * 1e3,
            duck_seconds / seconds,
            ch_seconds / seconds,
            if agree { "" } else { " (ANSWERS DIFFER)" },
            stats.files,
            stats.row_groups_read,
            stats.row_groups,
            if stats.row_groups_rolled_up > 0 {
                format!(", {} from rollups", stats.row_groups_rolled_up)
            } else {
                String::new()
            },
            if stats.row_groups_pruned_by_index + stats.slices_pruned_by_index > 0 {
                format!(
                    ", {} skipped by the index, and {} of the quarters of those read",
                    stats.row_groups_pruned_by_index, stats.slices_pruned_by_index
                )
            } else {
                String::new()
            },
        );
        if !agree {
            eprintln!("{}: Sluice {answer}\nDuckDB {duck_answer}\nchDB {ch_answer}\nSDK {sdk:?}", case.name);
        }
    }
    assert!(all_agree, "Sluice, DuckDB and chDB must give the same answers");
}
