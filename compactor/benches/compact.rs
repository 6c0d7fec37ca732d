//! Compaction throughput and size, on generated logs, in one run.
//!
//!     cargo bench -p sluice-compactor --bench compact -- [LOGS] [ROW_GROUP_ROWS]
//!
//! Writes LOGS (default 2,000,000) generated logs, half nginx access logs and half
//! application logs, as raw batches of 1 MiB SLS log groups into a local directory, the
//! way ingest does; then times one `compact_all` and compares the table's size with the
//! same logs as raw JSON (NDJSON of what GetLogs returns), as the raw batches, and as
//! zstd-compressed NDJSON (level 3, and 19).

#![allow(clippy::unwrap_used, clippy::expect_used)]

/// As in the `sluice` binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use prost::Message;
use sluice_compactor::compact::{self, CompactOptions, Quiet};
use sluice_compactor::lake::schema::FileSettings;
use sluice_compactor::lake::store as storage;
use sluice_ingest::Product;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::config::Limits;
use sluice_ingest::format::sls::encode_log_group;
use sluice_ingest::layout::RawBatchKey;
use sluice_loggen::{Generator, Kind};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn dir_size(path: &Path, suffix: &str) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            total += dir_size(&p, suffix);
        } else if p.to_string_lossy().ends_with(suffix) {
            total += entry.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
    total
}

/// The generated input and the sizes it is compared with, cached between runs.
#[derive(serde::Serialize, serde::Deserialize)]
struct Input {
    logs: usize,
    json_bytes: u64,
    zstd3: u64,
    zstd19: u64,
}

/// Writes `logs` generated logs as raw batches under `data`, measuring the same logs as
/// NDJSON, plain and zstd-compressed.
fn generate(data: &Path, logs: usize) -> Input {
    let limits = Limits::default();
    let started = Instant::now();
    let mut json_bytes = 0u64;
    let mut zstd3 = zstd::Encoder::new(Vec::new(), 3).unwrap();
    let mut zstd19 = zstd::Encoder::new(Vec::new(), 19).unwrap();
    let mut written = 0usize;
    let mut seed = 0u64;
    let start_ns = 1_735_689_600_000_000_000; // 2025-01-01
    let mut generators =
        [(Kind::Nginx, Generator::new(1, start_ns, 2_000_000)), (Kind::App, Generator::new(2, start_ns, 2_000_000))];
    while written < logs {
        let (kind, generator) = &mut generators[(seed % 2) as usize];
        seed += 1;
        let group = generator.log_group_of_size(*kind, 1 << 20);
        let raw = group.encode_to_vec();
        for log in &group.logs {
            let mut object = serde_json::Map::new();
            object.insert("__time__".into(), log.time.to_string().into());
            object.insert("__time_ns_part__".into(), log.time_ns.unwrap_or(0).to_string().into());
            object.insert("__topic__".into(), group.topic.clone().unwrap_or_default().into());
            object.insert("__source__".into(), group.source.clone().unwrap_or_default().into());
            for tag in &group.log_tags {
                object.insert(format!("__tag__:{}", tag.key), tag.value.clone().into());
            }
            for c in &log.contents {
                object.insert(c.key.clone(), String::from_utf8_lossy(&c.value).into_owned().into());
            }
            let mut line = serde_json::to_vec(&object).unwrap();
            line.push(b'\n');
            json_bytes += line.len() as u64;
            zstd3.write_all(&line).unwrap();
            zstd19.write_all(&line).unwrap();
        }
        written += group.logs.len();
        let logstore = if *kind == Kind::Nginx { "nginx" } else { "app" };
        let body = encode_log_group(&raw, &limits).unwrap();
        let id = BatchId::derive(Product::Sls, "bench", logstore, "", &raw);
        let key = RawBatchKey { project: "bench".into(), logstore: logstore.into(), id };
        let path = data.join(key.to_string());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, batch::encode(id, Product::Sls, "bench", logstore, &body)).unwrap();
    }
    let input = Input {
        logs: written,
        json_bytes,
        zstd3: zstd3.finish().unwrap().len() as u64,
        zstd19: zstd19.finish().unwrap().len() as u64,
    };
    eprintln!("generated {written} logs in {:.1} s", started.elapsed().as_secs_f64());
    input
}

/// Bytes per column path over every Parquet file under `path`, largest first.
fn column_sizes(path: &Path) -> Vec<(String, u64)> {
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut sizes = std::collections::BTreeMap::<String, u64>::new();
    let mut stack = vec![path.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".parquet") {
                let reader = SerializedFileReader::new(std::fs::File::open(&p).unwrap()).unwrap();
                for group in reader.metadata().row_groups() {
                    for column in group.columns() {
                        *sizes.entry(column.column_path().string()).or_default() += column.compressed_size() as u64;
                    }
                }
            }
        }
    }
    let mut sizes: Vec<_> = sizes.into_iter().collect();
    sizes.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
    sizes
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let logs: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(2_000_000);
    let row_group_rows: usize =
        args.get(1).and_then(|a| a.parse().ok()).unwrap_or(FileSettings::default().row_group_rows);
    // The input (zstd -19 of the NDJSON takes minutes) is kept for later runs.
    let cache_root = std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/sluice"));
    // v2: the NDJSON has `__time_ns_part__`, as GetLogs answers.
    let cached = cache_root.join(format!("bench/compact-v2-{logs}"));
    let input: Input = match std::fs::read(cached.join("input.json")) {
        Ok(bytes) => serde_json::from_slice(&bytes).unwrap(),
        Err(_) => {
            let _ = std::fs::remove_dir_all(&cached);
            let input = generate(&cached.join("data"), logs);
            std::fs::write(cached.join("input.json"), serde_json::to_vec(&input).unwrap()).unwrap();
            input
        }
    };
    let (written, json_bytes, zstd3, zstd19) = (input.logs, input.json_bytes, input.zstd3, input.zstd19);
    let dir = tempfile::tempdir().unwrap();
    if std::env::var_os("SLUICE_BENCH_KEEP").is_some() {
        eprintln!("keeping the table under {}", dir.path().display());
    }
    let data = dir.path().join("data");
    copy_dir(&cached.join("data"), &data);
    let raw_batches = dir_size(&data.join("raw"), ".batch");

    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let storage = storage::open(&data.display().to_string(), &Default::default()).unwrap();
    let options = CompactOptions {
        files: FileSettings { row_group_rows, ..FileSettings::default() },
        ..CompactOptions::default()
    };
    let started = Instant::now();
    let now_ns = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64;
    let summary = runtime.block_on(compact::compact_all(&storage, &options, &Quiet, now_ns)).unwrap();
    let seconds = started.elapsed().as_secs_f64();
    let table = dir_size(&data.join("tables"), ".parquet");
    let index = dir_size(&data.join("tables"), ".idx");
    assert_eq!(summary.records, written);

    let mb = |b: u64| b as f64 / 1e6;
    println!("logs                      {written}");
    println!("row group rows            {row_group_rows}");
    println!("compaction                {seconds:.2} s, {} commits", summary.commits);
    println!("throughput, raw batches   {:.1} MB/s ({:.1} MB)", mb(raw_batches) / seconds, mb(raw_batches));
    println!("throughput, raw JSON      {:.1} MB/s ({:.1} MB)", mb(json_bytes) / seconds, mb(json_bytes));
    println!("throughput, logs          {:.0} logs/s", written as f64 / seconds);
    println!("table (parquet)           {:.2} MB, {:.1} bytes per log", mb(table), table as f64 / written as f64);
    println!(
        "token index               {:.2} MB, {:.1}% of the table, {:.2} bytes per log",
        mb(index),
        100.0 * index as f64 / table as f64,
        index as f64 / written as f64
    );
    println!("  vs raw JSON             {:.3}x", table as f64 / json_bytes as f64);
    println!("  vs raw batches          {:.3}x", table as f64 / raw_batches as f64);
    println!(
        "  vs zstd-3 NDJSON        {:.3}x ({:.2} MB, {:.1} bytes per log)",
        table as f64 / zstd3 as f64,
        mb(zstd3),
        zstd3 as f64 / written as f64
    );
    println!("  vs zstd-19 NDJSON       {:.3}x ({:.2} MB)", table as f64 / zstd19 as f64, mb(zstd19));
    if std::env::var_os("SLUICE_BENCH_KEEP").is_some() {
        let _ = dir.keep();
    }
    println!("bytes per log by column (column chunks, without footers)");
    for (column, size) in column_sizes(&data.join("tables")).into_iter().take(12) {
        println!("  {column:<24}{:.2}", size as f64 / written as f64);
    }
}
