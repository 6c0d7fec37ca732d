//! Keeping a logstore's table healthy after compaction:
//!
//! - **small files** (each compaction run adds one file per partition it touches) are
//!   merged, sorted by time, into one, committed as an Optimize that removes them;
//! - **retention**: partitions older than the logstore's `retention_days` are deleted;
//! - **vacuum** (lite: only files named by remove actions) deletes files removed longer
//!   ago than the vacuum retention, so that readers of an older version still work meanwhile.

use delta_kernel::expressions::Scalar;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use deltalake::kernel::Action;
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::operations::vacuum::VacuumMode;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use sluice_ingest::layout::{Partition, TABLES_ROOT};
use std::collections::{BTreeMap, BTreeSet};

use crate::compact::CompactError;
use crate::storage::Storage;
use crate::table::{self, FileSettings, PARTITION_COLUMN};

/// When to merge and what to keep.
#[derive(Clone, Debug)]
pub struct MaintenanceOptions {
    /// Files smaller than this are merge candidates.
    pub small_file_bytes: u64,
    /// Merge a partition once it has this many small files.
    pub min_small_files: usize,
    /// At most this many bytes of small files per merge.
    pub max_merge_bytes: u64,
    /// Removed files stay this long before vacuum deletes them.
    pub vacuum_retention_hours: u64,
    pub files: FileSettings,
}

impl Default for MaintenanceOptions {
    fn default() -> Self {
        Self {
            small_file_bytes: 32 * 1024 * 1024,
            min_small_files: 8,
            max_merge_bytes: 512 * 1024 * 1024,
            vacuum_retention_hours: 7 * 24,
            files: FileSettings::default(),
        }
    }
}

/// What maintenance did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MaintenanceSummary {
    pub merged_files: usize,
    pub merges: usize,
    pub expired_files: usize,
    pub vacuumed_files: usize,
}

/// Every logstore that has a table, as (project, logstore).
pub async fn logstores_with_tables(storage: &Storage) -> Result<Vec<(String, String)>, CompactError> {
    crate::compact::logstores_under(storage.store.as_ref(), TABLES_ROOT).await
}

/// Merges small files, applies retention and vacuums one logstore's table.
pub async fn maintain(
    storage: &Storage,
    project: &str,
    logstore: &str,
    retention_days: Option<u32>,
    options: &MaintenanceOptions,
    now_ns: i64,
) -> Result<MaintenanceSummary, CompactError> {
    let mut summary = MaintenanceSummary::default();
    let Some(mut table) = table::open(storage, project, logstore).await? else { return Ok(summary) };

    if let Some(days) = retention_days {
        // Partitions whose every log is older than the retention: a day, or a month or
        // year of late arrivals once all of it has expired.
        let cutoff = now_ns.saturating_sub(i64::from(days).saturating_mul(86_400 * 1_000_000_000));
        let expired: Vec<String> = partitions(&table)
            .await?
            .into_iter()
            .filter(|name| name.parse::<Partition>().is_ok_and(|p| p.ends_before(cutoff)))
            .collect();
        if !expired.is_empty() {
            let before = table.snapshot()?.log_data().num_files();
            let listed = expired.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
            let (deleted, _metrics) =
                table.clone().delete().with_predicate(format!("{PARTITION_COLUMN} IN ({listed})")).await?;
            table = deleted;
            summary.expired_files = before.saturating_sub(table.snapshot()?.log_data().num_files());
        }
    }

    for date in partitions_to_merge(&table, options).await? {
        summary.merged_files += merge_partition(&mut table, &date, options).await?;
        summary.merges += 1;
    }

    let retention = chrono::Duration::hours(i64::try_from(options.vacuum_retention_hours).unwrap_or(i64::MAX));
    let (_table, metrics) = table
        .vacuum()
        .with_mode(VacuumMode::Lite)
        .with_retention_period(retention)
        .with_enforce_retention_duration(false)
        .await?;
    summary.vacuumed_files = metrics.files_deleted.len();
    Ok(summary)
}

/// The names of the partitions that hold files.
async fn partitions(table: &DeltaTable) -> Result<BTreeSet<String>, DeltaTableError> {
    let mut out = BTreeSet::new();
    let snapshot = table.snapshot()?;
    let mut files = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
    while let Some(file) = files.next().await {
        if let Some(Some(name)) = file?.partition_values_map().get(PARTITION_COLUMN) {
            out.insert(name.clone());
        }
    }
    Ok(out)
}

/// Partitions with enough small files to merge.
async fn partitions_to_merge(table: &DeltaTable, options: &MaintenanceOptions) -> Result<Vec<String>, DeltaTableError> {
    let mut small: BTreeMap<String, usize> = BTreeMap::new();
    let snapshot = table.snapshot()?;
    let mut files = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
    while let Some(file) = files.next().await {
        let file = file?;
        if (file.size() as u64) < options.small_file_bytes
            && let Some(Some(date)) = file.partition_values_map().get(PARTITION_COLUMN)
        {
            *small.entry(date.clone()).or_default() += 1;
        }
    }
    Ok(small.into_iter().filter(|(_, n)| *n >= options.min_small_files).map(|(d, _)| d).collect())
}

/// Rewrites a partition's small files as one sorted file. Returns how many it merged.
async fn merge_partition(
    table: &mut DeltaTable,
    date: &str,
    options: &MaintenanceOptions,
) -> Result<usize, CompactError> {
    let snapshot = table.snapshot()?.clone();
    let store = table.log_store().object_store(None);
    let mut chosen = Vec::new();
    let mut bytes = 0u64;
    let mut files = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
    while let Some(file) = files.next().await {
        let file = file?;
        let size = file.size() as u64;
        let in_partition =
            file.partition_values_map().get(PARTITION_COLUMN).cloned().flatten().as_deref() == Some(date);
        if in_partition && size < options.small_file_bytes && bytes + size <= options.max_merge_bytes {
            bytes += size;
            chosen.push(file);
        }
    }
    if chosen.len() < 2 {
        return Ok(0);
    }
    let mut batches: Vec<RecordBatch> = Vec::new();
    for file in &chosen {
        // Small files, by choice: read each whole.
        let bytes = store.get(&file.object_store_path()).await?.bytes().await?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            batches.push(batch?);
        }
    }
    let Some(first) = batches.first() else { return Ok(0) };
    let all = concat_batches(&first.schema(), &batches)?;
    let time = all.column_by_name("time_ns").ok_or_else(|| DeltaTableError::Generic("no time_ns column".into()))?;
    let sorted = take_record_batch(&all, &sort_to_indices(time, None, None)?)?;

    let writer = RecordBatchWriter::for_table(table)?;
    let properties = table::writer_properties(options.files, &table::frequent_keys(&writer.arrow_schema()));
    let mut writer = writer.with_writer_properties(properties);
    let partition = IndexMap::from([(PARTITION_COLUMN.to_owned(), Scalar::String(date.to_owned()))]);
    writer.write_partition(sorted, &partition, WriteMode::Default).await?;
    let mut actions: Vec<Action> = chosen.iter().map(|f| Action::Remove(f.remove_action(false))).collect();
    actions.extend(writer.flush().await?.into_iter().map(|mut add| {
        add.data_change = false;
        Action::Add(add)
    }));
    let operation = DeltaOperation::Optimize {
        predicate: Some(format!("{PARTITION_COLUMN} = '{date}'")),
        target_size: i64::try_from(options.small_file_bytes).unwrap_or(i64::MAX),
    };
    CommitBuilder::default().with_actions(actions).build(Some(&snapshot), table.log_store(), operation).await?;
    table.update_state().await?;
    tracing::info!(date, files = chosen.len(), bytes, "merged small files");
    Ok(chosen.len())
}
