//! The conformance suite a store must pass, in the manner of quickwit's
//! `storage_test_suite` and object_store's `integration.rs`: one set of checks, run in
//! process on `memory://` and on a directory (this crate's tests) and on a real
//! S3-compatible server (Garage, from `tests/`).
//!
//! - [`exactly_once_through_crashes`]: compaction stopped at each of its steps (after
//!   reading, after writing files, after committing, halfway through deleting), a client
//!   retrying a compacted request, then a run to the end: every log once.
//! - [`fresh_logs_are_searchable`]: logs are found as soon as their raw batch is stored,
//!   and the same answers come back once part, then all of them are compacted.
//! - [`merging_and_retention`]: small files merged into one without losing a row, and an
//!   expired partition deleted while the others stay.
//!
//! Each check uses logstores of its own under project `suite`, so checks can share a
//! store. They panic with what went wrong.

use anyhow::Context as _;
use object_store::{ObjectStoreExt, PutPayload};
use prost::Message as _;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::config::Limits;
use sluice_ingest::format::sls::encode_log_group;
use sluice_ingest::layout::{Partition, RawBatchKey};
use sluice_proto::batch::Product;
use sluice_proto::sls::{Content, Log, LogGroup};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::compact::{self, CompactError, CompactOptions, FailPoint, Quiet};
use crate::lake::schema::{DATE, FileSettings, MESSAGE};
use crate::lake::{Storage, index, raw, table};
use crate::maintain::{self, MaintenanceOptions};
use crate::query::sls::{self, Page, Range};
use crate::query::source::{Cache, Reading, Shared, Source};
use crate::query::syntax;
use crate::query::{QueryError, QueryLimits};

const PROJECT: &str = "suite";
const SECOND: i64 = 1_000_000_000;

/// Every check, on one store, as of `now_ns`.
pub async fn run_all(storage: &Storage, now_ns: i64) -> anyhow::Result<()> {
    exactly_once_through_crashes(storage, now_ns).await.context("exactly once through crashes")?;
    fresh_logs_are_searchable(storage, now_ns).await.context("fresh logs are searchable")?;
    merging_and_retention(storage, now_ns).await.context("merging and retention")?;
    Ok(())
}

/// Logs `{prefix} {n}` for `n` in `numbers`, one second apart from `start_ns`.
fn group(prefix: &str, numbers: std::ops::Range<usize>, start_ns: i64) -> LogGroup {
    let logs = numbers
        .map(|n| {
            let time_ns = start_ns + n as i64 * SECOND;
            Log {
                time: u32::try_from(time_ns.div_euclid(SECOND)).unwrap_or(u32::MAX),
                contents: vec![
                    Content { key: "message".into(), value: format!("{prefix} {n}").into_bytes() },
                    Content { key: "level".into(), value: ["info", "warn", "error"][n % 3].as_bytes().to_vec() },
                ],
                time_ns: Some(u32::try_from(time_ns.rem_euclid(SECOND)).unwrap_or(0)),
                values: vec![],
            }
        })
        .collect();
    LogGroup { logs, topic: Some("suite".into()), ..LogGroup::default() }
}

/// Stores a log group as a raw batch, as the edges do (the same content, the same key).
pub(crate) async fn store(storage: &Storage, logstore: &str, group: &LogGroup) -> anyhow::Result<RawBatchKey> {
    let raw = group.encode_to_vec();
    let body = encode_log_group(&raw, &Limits::default())?;
    let id = BatchId::derive(Product::Sls, PROJECT, logstore, "", &raw);
    let key = RawBatchKey { project: PROJECT.into(), logstore: logstore.into(), id };
    let bytes = batch::encode(id, Product::Sls, PROJECT, logstore, &body);
    storage.store.put(&object_store::path::Path::parse(key.to_string())?, PutPayload::from(bytes)).await?;
    Ok(key)
}

/// Options that split every commit between writers, as large commits are.
fn options(fail_at: Option<FailPoint>) -> CompactOptions {
    CompactOptions { min_bytes_per_writer: 1, fail_at, ..CompactOptions::default() }
}

pub(crate) fn shared(storage: &Storage) -> Shared {
    Shared {
        storage: storage.clone(),
        cache: Cache::default(),
        lookback: Duration::from_secs(86_400),
        listing_for: Duration::ZERO,
        limits: QueryLimits::default(),
    }
}

/// How many times each message is found in `[from_ns, to_ns)`, through the SLS query path.
async fn messages(
    shared: &Shared,
    logstore: &str,
    window: (i64, i64),
    now_ns: i64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    messages_matching(shared, logstore, "*", window, now_ns).await
}

/// How many times each message matching `search` is found in `[from_ns, to_ns)`.
async fn messages_matching(
    shared: &Shared,
    logstore: &str,
    search: &str,
    (from_ns, to_ns): (i64, i64),
    now_ns: i64,
) -> anyhow::Result<BTreeMap<String, u64>> {
    let reading = Reading { project: PROJECT, logstore, from_ns, to_ns, now_ns };
    // A batch compacted while the query was set up sends it back to the listing.
    let mut attempts = 0;
    let source = loop {
        match Source::open(shared, reading).await {
            Err(QueryError::Retry) if attempts < 5 => attempts += 1,
            other => break other?,
        }
    };
    let query = syntax::parse(&format!("{search} | select message, count(*) as c group by message limit 1000000"))?;
    let range = Range { from_ns, to_ns };
    let page = Page { line: 100, offset: 0, reverse: false };
    let logs = sls::logs(&source, range, None, &query, &page, &Default::default()).await?;
    let mut out = BTreeMap::new();
    for batch in &logs.batches {
        let message = batch.column_by_name(MESSAGE).context("a message column")?;
        for row in 0..batch.num_rows() {
            let text = crate::lake::rows::text_at(message.as_ref(), row).unwrap_or_default();
            let count = crate::lake::rows::int_at(batch, "c", row).unwrap_or_default();
            out.insert(text, u64::try_from(count).unwrap_or(0));
        }
    }
    Ok(out)
}

/// The histogram's total over `[from_ns, to_ns)` (whole seconds).
async fn histogram_total(
    shared: &Shared,
    logstore: &str,
    (from_ns, to_ns): (i64, i64),
    now_ns: i64,
) -> anyhow::Result<u64> {
    let (from, to) = (from_ns.div_euclid(SECOND), to_ns.div_euclid(SECOND));
    let range = Range::new(from, 0, to, 0).context("a range")?;
    let reading = Reading { project: PROJECT, logstore, from_ns: range.from_ns, to_ns: range.to_ns, now_ns };
    let source = Source::open(shared, reading).await?;
    let buckets = sls::histogram(&source, range, from, to, None, &syntax::parse("*")?).await?;
    Ok(buckets.iter().map(|b| b.2).sum())
}

fn one(message: &str) -> BTreeMap<String, u64> {
    BTreeMap::from([(message.to_owned(), 1)])
}

fn each_once(prefix: &str, count: usize) -> BTreeMap<String, u64> {
    (0..count).map(|n| (format!("{prefix} {n}"), 1)).collect()
}

/// Compaction stopped at each of its steps, then run again, keeps every log once; so
/// does a client's retry of a request already compacted.
pub async fn exactly_once_through_crashes(storage: &Storage, now_ns: i64) -> anyhow::Result<()> {
    let start = now_ns - 3600 * SECOND;
    let window = (start - SECOND, now_ns + SECOND);
    for point in [FailPoint::AfterRead, FailPoint::AfterWrite, FailPoint::AfterCommit, FailPoint::MidDelete] {
        let logstore = format!("crash-{point:?}").to_lowercase();
        let groups: Vec<LogGroup> = (0..4).map(|i| group("log", i * 25..i * 25 + 25, start)).collect();
        for g in &groups {
            store(storage, &logstore, g).await?;
        }
        let crashed =
            compact::compact_logstore(storage, PROJECT, &logstore, &options(Some(point)), &Quiet, now_ns).await;
        anyhow::ensure!(matches!(crashed, Err(CompactError::Injected(p)) if p == point), "{point:?}: {crashed:?}");
        // Searchable all along, once each, whatever the crash left.
        let found = messages(&shared(storage), &logstore, window, now_ns).await?;
        anyhow::ensure!(found == each_once("log", 100), "{point:?}, after the crash: {found:?}");
        // A search the token index answers: indexes written before the crash are not seen
        // without their files, nor do they hide anything.
        let needle = messages_matching(&shared(storage), &logstore, "57", window, now_ns).await?;
        anyhow::ensure!(needle == one("log 57"), "{point:?}, a needle: {needle:?}");
        let (live, indexed, stored) = indexes(storage, &logstore).await?;
        anyhow::ensure!(indexed.is_subset(&stored), "{point:?}: an index without its data file");
        anyhow::ensure!(live.is_subset(&indexed), "{point:?}: a committed file without its index");
        // The client retries a request (same content, same key) the crashed run may have
        // committed already.
        store(storage, &logstore, &groups[0]).await?;
        let summary = compact::compact_logstore(storage, PROJECT, &logstore, &options(None), &Quiet, now_ns).await?;
        anyhow::ensure!(summary.failed.is_empty(), "{point:?}: {summary:?}");
        let left = raw::list(storage.store.as_ref(), PROJECT, &logstore).await?;
        anyhow::ensure!(left.is_empty(), "{point:?}: raw batches left after the rerun: {left:?}");
        let found = messages(&shared(storage), &logstore, window, now_ns).await?;
        anyhow::ensure!(found == each_once("log", 100), "{point:?}, after the rerun: {found:?}");
        let needle = messages_matching(&shared(storage), &logstore, "57", window, now_ns).await?;
        anyhow::ensure!(needle == one("log 57"), "{point:?}, rerun, a needle: {needle:?}");
        let (live, indexed, stored) = indexes(storage, &logstore).await?;
        anyhow::ensure!(indexed.is_subset(&stored) && live.is_subset(&indexed), "{point:?}, rerun: indexes");
    }
    Ok(())
}

/// Logs are searchable as soon as stored, and the answers do not change as they are
/// compacted, in part and then in full.
pub async fn fresh_logs_are_searchable(storage: &Storage, now_ns: i64) -> anyhow::Result<()> {
    let logstore = "fresh";
    let start = now_ns - 600 * SECOND;
    let window = (start - SECOND, now_ns + SECOND);
    let shared = shared(storage);
    store(storage, logstore, &group("early", 0..60, start)).await?;
    anyhow::ensure!(messages(&shared, logstore, window, now_ns).await? == each_once("early", 60), "before compaction");
    anyhow::ensure!(histogram_total(&shared, logstore, window, now_ns).await? == 60, "histogram before compaction");
    compact::compact_all(storage, &options(None), &Quiet, now_ns).await?;
    store(storage, logstore, &group("late", 0..40, start + 60 * SECOND)).await?;
    let mut expected = each_once("early", 60);
    expected.extend(each_once("late", 40));
    anyhow::ensure!(messages(&shared, logstore, window, now_ns).await? == expected, "half compacted");
    anyhow::ensure!(histogram_total(&shared, logstore, window, now_ns).await? == 100, "histogram half compacted");
    compact::compact_all(storage, &options(None), &Quiet, now_ns).await?;
    anyhow::ensure!(raw::list(storage.store.as_ref(), PROJECT, logstore).await?.is_empty(), "all compacted");
    anyhow::ensure!(messages(&shared, logstore, window, now_ns).await? == expected, "compacted");
    anyhow::ensure!(histogram_total(&shared, logstore, window, now_ns).await? == 100, "histogram compacted");
    Ok(())
}

/// A table's committed data files, the data files its token indexes name, and the data
/// files in the store (committed or not), as paths relative to the table.
async fn indexes(
    storage: &Storage,
    logstore: &str,
) -> anyhow::Result<(BTreeSet<String>, BTreeSet<String>, BTreeSet<String>)> {
    use futures::{StreamExt, TryStreamExt};
    let table = table::open(storage, PROJECT, logstore).await?.context("the table")?;
    let snapshot = table.snapshot()?;
    let mut views = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
    let mut live = BTreeSet::new();
    while let Some(view) = views.next().await {
        live.insert(view?.path().to_string());
    }
    let prefix = sluice_ingest::layout::table_prefix(PROJECT, logstore);
    let listed: Vec<String> = storage
        .store
        .list(Some(&object_store::path::Path::parse(&prefix)?))
        .map_ok(|m| m.location.as_ref().strip_prefix(&format!("{prefix}/")).unwrap_or_default().to_owned())
        .try_collect()
        .await?;
    let indexed = listed.iter().filter_map(|p| index::data_path_of(p)).map(str::to_owned).collect();
    let stored =
        listed.iter().filter(|p| p.ends_with(".parquet") && !p.starts_with(index::INDEX_DIR)).cloned().collect();
    Ok((live, indexed, stored))
}

/// How many data files a partition of a table has.
async fn files_in(storage: &Storage, logstore: &str, partition: &str) -> anyhow::Result<usize> {
    use futures::StreamExt;
    let table = table::open(storage, PROJECT, logstore).await?.context("the table")?;
    let snapshot = table.snapshot()?;
    let mut views = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
    let mut count = 0;
    while let Some(view) = views.next().await {
        if view?.partition_values_map().get(DATE).cloned().flatten().as_deref() == Some(partition) {
            count += 1;
        }
    }
    Ok(count)
}

/// Small files are merged into one per partition without losing a row; a partition
/// older than the retention is deleted, the others stay.
pub async fn merging_and_retention(storage: &Storage, now_ns: i64) -> anyhow::Result<()> {
    let logstore = "maintained";
    let day = 86_400 * SECOND;
    let recent = now_ns - 3600 * SECOND;
    let old = now_ns - 5 * day;
    let shared = shared(storage);
    for run in 0..4 {
        store(storage, logstore, &group(&format!("run{run}"), 0..10, recent)).await?;
        if run == 3 {
            store(storage, logstore, &group("old", 0..10, old)).await?;
        }
        compact::compact_logstore(storage, PROJECT, logstore, &CompactOptions::default(), &Quiet, now_ns).await?;
    }
    let today = Partition::of(recent, now_ns).to_string();
    anyhow::ensure!(files_in(storage, logstore, &today).await? == 4, "four runs, four files in {today}");
    let options = MaintenanceOptions {
        min_small_files: 3,
        vacuum_retention_hours: 0,
        files: FileSettings::default(),
        ..MaintenanceOptions::default()
    };
    let done = maintain::maintain(storage, PROJECT, logstore, Some(2), &options, now_ns).await?;
    anyhow::ensure!(done.merges == 1 && done.merged_files == 4, "{done:?}");
    anyhow::ensure!(done.expired_files == 1, "{done:?}");
    anyhow::ensure!(files_in(storage, logstore, &today).await? == 1, "merged into one file");
    let mut expected = BTreeMap::new();
    for run in 0..4 {
        expected.extend(each_once(&format!("run{run}"), 10));
    }
    let found = messages(&shared, logstore, (old - day, now_ns + SECOND), now_ns).await?;
    anyhow::ensure!(found == expected, "every recent row once, the expired ones gone: {found:?}");
    // The merged file has its index; the merged-away and expired files' went with them.
    let (live, indexed, _) = indexes(storage, logstore).await?;
    anyhow::ensure!(done.vacuumed_indexes == 5 && live == indexed, "{done:?}: {live:?} {indexed:?}");
    let needle = messages_matching(&shared, logstore, "run2 and 7", (old - day, now_ns + SECOND), now_ns).await?;
    anyhow::ensure!(needle == one("run2 7"), "a needle after the merge: {needle:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now_ns() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        let storage = crate::lake::store::open("memory://", &Default::default()).unwrap();
        run_all(&storage, now_ns()).await.unwrap();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn directory() {
        let dir = tempfile::tempdir().unwrap();
        let storage = crate::lake::store::open(dir.path().to_str().unwrap(), &Default::default()).unwrap();
        run_all(&storage, now_ns()).await.unwrap();
    }
}
