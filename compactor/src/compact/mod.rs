//! Compaction: raw batches into the logstore's Delta table, exactly once.
//!
//! For each logstore: list its raw batches, read which ones recent commits consumed,
//! [`plan::plan`], delete the consumed ones, and for each planned group: read and decode,
//! write sorted Parquet files per partition, commit them together with one application
//! transaction per batch, then delete the raw batches. A crash anywhere leaves either
//! uncommitted files (invisible, vacuumed later) or committed batches whose raw objects
//! are still there (the next run deletes them without adding them again).
//!
//! It stands on [`crate::lake`] only: raw batches, rows, the schema and the table.

pub mod plan;

use bytes::Bytes;
use delta_kernel::expressions::Scalar;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Add};
use deltalake::protocol::{DeltaOperation, SaveMode};
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::{StreamExt, TryStreamExt};
use indexmap::IndexMap;
use object_store::ObjectStore;
use sluice_ingest::batch::{self, BatchId};
use sluice_ingest::layout::table_prefix;
use sluice_ingest::record::BodyRef;
use std::fmt;
use std::str::FromStr;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

use crate::lake::index::{self, PartitionIndexes};
use crate::lake::raw::ReceivedBatch;
use crate::lake::rows::{Rows, Sizes, TimeOrder, choose_frequent_keys, mostly_distinct_keys};
use crate::lake::schema::{self, DATE, FileSettings};
use crate::lake::{LakeError, Storage, raw, table};
use plan::{Pending, plan};

/// Where a test can make a run stop as if the process had crashed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailPoint {
    /// Raw batches read, nothing written.
    AfterRead,
    /// Parquet files written, not committed.
    AfterWrite,
    /// Committed, no raw batch deleted.
    AfterCommit,
    /// Committed, half of the raw batches deleted.
    MidDelete,
}

impl FromStr for FailPoint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "after-read" => Ok(Self::AfterRead),
            "after-write" => Ok(Self::AfterWrite),
            "after-commit" => Ok(Self::AfterCommit),
            "mid-delete" => Ok(Self::MidDelete),
            other => Err(format!("unknown fail point {other:?}: after-read, after-write, after-commit, mid-delete")),
        }
    }
}

/// How a run behaves.
#[derive(Clone, Debug)]
pub struct CompactOptions {
    /// Raw batch bytes per commit.
    pub max_bytes_per_commit: u64,
    /// How far back to look for batches recent commits consumed.
    pub lookback: Duration,
    /// A commit's batches are split across cores, one writer each, when each gets at
    /// least this many raw batch bytes (more, smaller files would cost queries more than
    /// the split saves).
    pub min_bytes_per_writer: u64,
    pub files: FileSettings,
    /// Raw batches read at once.
    pub read_concurrency: usize,
    pub fail_at: Option<FailPoint>,
}

impl Default for CompactOptions {
    fn default() -> Self {
        Self {
            max_bytes_per_commit: 256 * 1024 * 1024,
            lookback: Duration::from_secs(24 * 3600),
            min_bytes_per_writer: 4 << 20,
            files: FileSettings::default(),
            read_concurrency: 16,
            fail_at: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub logstores: usize,
    pub batches: usize,
    pub records: usize,
    /// Raw batch bytes read.
    pub bytes_in: u64,
    /// Parquet bytes written.
    pub bytes_out: u64,
    pub commits: usize,
    /// Raw batches that were already in the table and were only deleted.
    pub already_compacted: usize,
    /// Raw batches that could not be read and were moved to `quarantine/`.
    pub quarantined: usize,
    /// Logstores whose compaction failed, and why; the others went on.
    pub failed: Vec<Failed>,
}

/// A logstore whose compaction failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failed {
    pub project: String,
    pub logstore: String,
    pub error: String,
}

impl fmt::Display for Failed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}: {}", self.project, self.logstore, self.error)
    }
}

impl Summary {
    fn add(&mut self, other: &Summary) {
        self.logstores += other.logstores;
        self.batches += other.batches;
        self.records += other.records;
        self.bytes_in += other.bytes_in;
        self.bytes_out += other.bytes_out;
        self.commits += other.commits;
        self.already_compacted += other.already_compacted;
        self.quarantined += other.quarantined;
        self.failed.extend(other.failed.iter().cloned());
    }
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompactError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("delta table: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] deltalake::parquet::errors::ParquetError),
    #[error("token index: {0}")]
    Index(#[from] crate::lake::index::IndexError),
    #[error("a writer task failed: {0}")]
    WriterTask(#[from] tokio::task::JoinError),
    #[error("stopped at fail point {0:?}")]
    Injected(FailPoint),
    #[error("{project}/{logstore}: commits kept conflicting with other compactors")]
    Contended { project: String, logstore: String },
}

/// Progress reports, for a terminal bar.
pub trait Progress: Send + Sync {
    fn planned(&self, _batches: usize, _bytes: u64) {}
    fn done(&self, _batches: usize, _bytes: u64) {}
}

/// No progress reports.
#[derive(Debug, Default)]
pub struct Quiet;
impl Progress for Quiet {}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} batches, {} records, {:.1} MB in, {:.1} MB out, {} commits in {} logstores",
            self.batches,
            self.records,
            self.bytes_in as f64 / 1e6,
            self.bytes_out as f64 / 1e6,
            self.commits,
            self.logstores
        )?;
        if self.already_compacted > 0 {
            write!(f, ", {} already compacted", self.already_compacted)?;
        }
        if self.quarantined > 0 {
            write!(f, ", {} quarantined", self.quarantined)?;
        }
        if !self.failed.is_empty() {
            write!(f, ", {} logstores failed", self.failed.len())?;
        }
        Ok(())
    }
}

/// Compacts every logstore that has raw batches. A logstore that fails (a broken
/// table, a store error under its prefix) is logged and counted in
/// [`Summary::failed`], and the others go on; only an injected crash stops the run.
pub async fn compact_all(
    storage: &Storage,
    options: &CompactOptions,
    progress: &dyn Progress,
    now_ns: i64,
) -> Result<Summary, CompactError> {
    let mut total = Summary::default();
    for (project, logstore) in raw::logstores(storage.store.as_ref()).await? {
        match compact_logstore(storage, &project, &logstore, options, progress, now_ns).await {
            Ok(summary) => total.add(&summary),
            Err(error @ CompactError::Injected(_)) => return Err(error),
            Err(error) => {
                tracing::error!(project, logstore, %error, "compacting this logstore failed; going on with the others");
                total.failed.push(Failed { project, logstore, error: error.to_string() });
            }
        }
    }
    Ok(total)
}

/// Compacts one logstore's raw batches into its table, as of `now_ns` (the time its
/// commits carry; how far back consumed batches are looked for).
pub async fn compact_logstore(
    storage: &Storage,
    project: &str,
    logstore: &str,
    options: &CompactOptions,
    progress: &dyn Progress,
    now_ns: i64,
) -> Result<Summary, CompactError> {
    let store = storage.store.as_ref();
    let now_ms = now_ns.div_euclid(1_000_000);
    let mut summary = Summary { logstores: 1, ..Summary::default() };
    let pending = raw::list(store, project, logstore).await?;
    if pending.is_empty() {
        return Ok(Summary::default());
    }
    let mut table = match table::open(storage, project, logstore).await? {
        Some(table) => table,
        None => {
            let frequent = sample_frequent_keys(store, &pending).await?;
            table::open_or_create(storage, project, logstore, &frequent).await?
        }
    };
    // Each round plans what is left; a commit that conflicts with another compactor's
    // (the same batches) sends the run back here with the winner's commit in view.
    let mut rounds = 0;
    let mut pending = pending;
    'round: while !pending.is_empty() {
        rounds += 1;
        if rounds > 10 {
            return Err(CompactError::Contended { project: project.to_owned(), logstore: logstore.to_owned() });
        }
        let since = now_ms.saturating_sub(i64::try_from(options.lookback.as_millis()).unwrap_or(i64::MAX));
        let consumed = table::consumed_batches(&table, since).await?;
        let planned = plan(std::mem::take(&mut pending), &consumed, options.max_bytes_per_commit);
        progress.planned(
            planned.commits.iter().map(Vec::len).sum(),
            planned.commits.iter().flatten().map(|p| p.size).sum(),
        );
        delete(store, &planned.already_compacted, None).await?;
        summary.already_compacted += planned.already_compacted.len();
        let mut commits = planned.commits.into_iter();
        while let Some(group) = commits.next() {
            match compact_group(storage, &mut table, &group, options, &mut summary, now_ms).await {
                Ok(()) => progress.done(group.len(), group.iter().map(|p| p.size).sum()),
                Err(CompactError::Delta(DeltaTableError::Transaction { source })) => {
                    tracing::info!(project, logstore, %source, "commit conflicted with another compactor, planning again");
                    table.update_state().await?;
                    pending = group.into_iter().chain(commits.flatten()).collect();
                    continue 'round;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(summary)
}

/// Raw batch bytes sampled to choose a new table's frequent fields.
const SAMPLE_BYTES: u64 = 16 << 20;

/// A new table's frequent fields, from the batches received first (up to
/// [`SAMPLE_BYTES`]).
async fn sample_frequent_keys(store: &dyn ObjectStore, pending: &[Pending]) -> Result<Vec<String>, CompactError> {
    let mut oldest: Vec<&Pending> = pending.iter().collect();
    oldest.sort_by_key(|p| (p.received_ns, p.key.id));
    let mut sampled = 0;
    let mut batches = Vec::new();
    for p in oldest.into_iter().take_while(|p| {
        sampled += p.size;
        sampled - p.size < SAMPLE_BYTES
    }) {
        let Some(bytes) = raw::read(store, &p.key).await? else { continue };
        // An unreadable batch is quarantined by the run itself.
        if let Ok(batch) = ReceivedBatch::decode(&bytes, p.received_ns) {
            batches.push(batch);
        }
    }
    let bodies: Vec<BodyRef<'_>> = batches.iter().filter_map(|b| b.batch().ok().map(|b| b.body)).collect();
    Ok(choose_frequent_keys(&bodies))
}

async fn compact_group(
    storage: &Storage,
    table: &mut DeltaTable,
    group: &[Pending],
    options: &CompactOptions,
    summary: &mut Summary,
    now_ms: i64,
) -> Result<(), CompactError> {
    let store = storage.store.as_ref();
    let started = Instant::now();
    let mut read: Vec<(Pending, Bytes)> = futures::stream::iter(group.iter().cloned())
        .map(|p| async move {
            let bytes = raw::read(store, &p.key).await?.ok_or_else(|| object_store::Error::NotFound {
                path: p.key.to_string(),
                source: "listed for compaction, gone when read".into(),
            })?;
            Ok::<_, CompactError>((p, bytes))
        })
        .buffered(options.read_concurrency.max(1))
        .try_collect()
        .await?;
    fail(options, FailPoint::AfterRead)?;

    // Decoding, building columns, sorting and Parquet encoding are a run's CPU: the batches,
    // in the order the edge received them (close to time order), are cut into one chunk
    // per core, each built, sorted and written by its own writer on its own task.
    read.sort_by_key(|(p, _)| (p.received_ns, p.key.id));
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let schema = RecordBatchWriter::for_table(table)?.arrow_schema();
    let frequent = schema::frequent_keys(&schema);
    let mut tasks = Vec::new();
    for chunk in chunks(read, cores, options.min_bytes_per_writer) {
        // One file per partition per writer (commits are bounded), so that each file's
        // token index is built from exactly its rows.
        let writer = RecordBatchWriter::for_table(table)?.with_target_file_size(u64::MAX);
        let (schema, frequent, files, runtime) = (schema.clone(), frequent.clone(), options.files, Handle::current());
        tasks.push(tokio::task::spawn_blocking(move || {
            let built = build(chunk, schema)?;
            let distinct = built.rows.first_piece().map(mostly_distinct_keys).unwrap_or_default();
            let writer = writer.with_writer_properties(schema::writer_properties(files, &frequent, &distinct));
            let (adds, indexes) = runtime.block_on(write_sorted(writer, &built.rows, files.row_group_rows))?;
            Ok::<_, CompactError>((built.decoded, built.rows.len(), built.unreadable, adds, indexes))
        }));
    }
    let (mut consumed, mut records, mut adds, mut indexes) = (Vec::new(), 0, Vec::new(), Vec::new());
    for task in tasks {
        let (decoded, rows, unreadable, added, indexed) = task.await??;
        consumed.extend(decoded);
        records += rows;
        adds.extend(added);
        indexes.extend(indexed);
        for (p, reason) in unreadable {
            tracing::error!(key = %p.key, reason, "raw batch cannot be read, moving it to quarantine/");
            raw::quarantine(store, &p.key).await?;
            summary.quarantined += 1;
        }
    }
    if consumed.is_empty() {
        return Ok(());
    }
    if let Some(first) = group.first() {
        index::put_all(store, &table_prefix(&first.key.project, &first.key.logstore), indexes).await?;
    }
    fail(options, FailPoint::AfterWrite)?;

    let ids: Vec<BatchId> = consumed.iter().map(|p| p.key.id).collect();
    let bytes_out: u64 = adds.iter().map(|a| a.size as u64).sum();
    let snapshot = table.snapshot()?.clone();
    let operation =
        DeltaOperation::Write { mode: SaveMode::Append, partition_by: Some(vec![DATE.to_owned()]), predicate: None };
    let finalized = CommitBuilder::from(table::commit_properties(&ids, now_ms))
        .with_actions(adds.into_iter().map(Action::Add).collect())
        .build(Some(&snapshot), table.log_store(), operation)
        .await?;
    table.update_state().await?;
    tracing::info!(
        version = finalized.version,
        batches = ids.len(),
        records,
        seconds = started.elapsed().as_secs_f64(),
        "committed"
    );
    summary.batches += ids.len();
    summary.records += records;
    summary.bytes_in += consumed.iter().map(|p| p.size).sum::<u64>();
    summary.bytes_out += bytes_out;
    summary.commits += 1;
    fail(options, FailPoint::AfterCommit)?;
    delete(store, &consumed, options.fail_at).await
}

/// Cuts batches, in order, into at most `count` contiguous chunks of about equal bytes,
/// none smaller than `min_bytes` unless it is all there is.
fn chunks<T>(items: Vec<(Pending, T)>, count: usize, min_bytes: u64) -> Vec<Vec<(Pending, T)>> {
    let total: u64 = items.iter().map(|(p, _)| p.size).sum();
    let count = usize::try_from(total / min_bytes.max(1)).unwrap_or(usize::MAX).clamp(1, count.max(1));
    let per_chunk = total.div_ceil(count as u64);
    let mut out: Vec<Vec<(Pending, T)>> = vec![Vec::new()];
    let mut filled = 0;
    for item in items {
        if filled >= per_chunk && out.len() < count {
            out.push(Vec::new());
            filled = 0;
        }
        filled += item.0.size;
        out.last_mut().unwrap_or_else(|| unreachable!()).push(item);
    }
    out
}

/// One chunk's rows in time order, and which of its batches were read.
struct Built {
    rows: TimeOrder,
    decoded: Vec<Pending>,
    unreadable: Vec<(Pending, String)>,
}

/// Rows per piece a chunk is built in: small enough that building does not hold a
/// decoded batch and a huge half-grown column at once.
const PIECE_ROWS: usize = 64 * 1024;

/// Decodes a chunk's batches one at a time into pieces of rows, then orders all rows by
/// time.
fn build(chunk: Vec<(Pending, Bytes)>, schema: SchemaRef) -> Result<Built, CompactError> {
    let mut pieces = Vec::new();
    let frequent = schema::frequent_keys(&schema);
    let mut rows = Rows::with_capacity(PIECE_ROWS, &frequent, &Sizes::default());
    let (mut decoded, mut unreadable) = (Vec::new(), Vec::new());
    // One decompression buffer and one set of vectors to read bodies into, used again for
    // every batch: records are read in place, their strings borrowed from the buffer.
    let mut buffer = Vec::new();
    let mut body = BodyRef::default();
    for (p, bytes) in chunk {
        match batch::read_into(&bytes, raw::MAX_DECODED_BYTES, &mut buffer, body) {
            Ok(batch) => {
                rows.append(&batch, p.received_ns)?;
                body = batch.body.recycle();
                decoded.push(p);
            }
            Err(e) => {
                body = BodyRef::default();
                unreadable.push((p, e.to_string()));
            }
        }
        if rows.len() >= PIECE_ROWS {
            let full = std::mem::replace(&mut rows, Rows::with_capacity(0, &frequent, &Sizes::default()));
            let piece = full.finish(schema.clone())?;
            // The next piece's columns sized like this one's (pieces differ by at most a
            // batch's records, within the room `Sizes` adds).
            rows = Rows::with_capacity(PIECE_ROWS + PIECE_ROWS / 8, &frequent, &Sizes::of(&piece));
            pieces.push(piece);
        }
    }
    if !rows.is_empty() {
        pieces.push(rows.finish(schema)?);
    }
    Ok(Built { rows: TimeOrder::new(pieces)?, decoded, unreadable })
}

/// Rows copied into time order at a time: a quarter of a default row group, so that the
/// copies stay below the sizes an allocator hands back to the kernel at once.
const RUN_ROWS: usize = 32 * 1024;

/// Writes rows in time order, [`RUN_ROWS`] at a time, with one writer (which cuts row
/// groups of `row_group_rows`); the files' Add actions and their token indexes. Files
/// within a partition are sorted by time.
async fn write_sorted(
    mut writer: RecordBatchWriter,
    rows: &TimeOrder,
    row_group_rows: usize,
) -> Result<(Vec<Add>, Vec<(String, Vec<u8>)>), CompactError> {
    let mut indexes = PartitionIndexes::new(row_group_rows);
    for range in rows.runs(RUN_ROWS.min(row_group_rows)) {
        let (date, run) = rows.run(range)?;
        indexes.add(&date, &run)?;
        let partition = IndexMap::from([(DATE.to_owned(), Scalar::String(date))]);
        writer.write_partition(run, &partition, WriteMode::Default).await?;
    }
    let adds = writer.flush().await?;
    let indexes = indexes.finish(&adds, DATE)?;
    Ok((adds, indexes))
}

fn fail(options: &CompactOptions, point: FailPoint) -> Result<(), CompactError> {
    if options.fail_at == Some(point) { Err(CompactError::Injected(point)) } else { Ok(()) }
}

async fn delete(store: &dyn ObjectStore, batches: &[Pending], fail_at: Option<FailPoint>) -> Result<(), CompactError> {
    for (i, p) in batches.iter().enumerate() {
        if fail_at == Some(FailPoint::MidDelete) && i == batches.len() / 2 {
            return Err(CompactError::Injected(FailPoint::MidDelete));
        }
        raw::delete(store, &p.key).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_ingest::layout::RawBatchKey;

    fn pending(size: u64) -> (Pending, ()) {
        let key = RawBatchKey { project: "p".into(), logstore: "l".into(), id: BatchId(u128::from(size)) };
        (Pending { key, size, received_ns: 0 }, ())
    }

    fn shape(chunks: &[Vec<(Pending, ())>]) -> Vec<Vec<u64>> {
        chunks.iter().map(|c| c.iter().map(|(p, _)| p.size).collect()).collect()
    }

    #[test]
    fn chunks_are_contiguous_and_even() {
        let items = || [10, 20, 30, 40].map(pending).to_vec();
        assert_eq!(shape(&chunks(items(), 2, 10)), [vec![10, 20, 30], vec![40]]);
        assert_eq!(shape(&chunks(items(), 4, 10)), [vec![10, 20], vec![30], vec![40]]);
        // Small inputs stay in one chunk.
        assert_eq!(shape(&chunks(items(), 2, 1000)), [vec![10, 20, 30, 40]]);
        assert_eq!(shape(&chunks(Vec::<(Pending, ())>::new(), 2, 10)), [Vec::<u64>::new()]);
    }
}
