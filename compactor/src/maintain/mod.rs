//! Keeping a logstore's table healthy after compaction. [`policy::plan`] decides from the
//! table's file list (read once), this module does it:
//!
//! - **retention**: partitions all of whose logs are older than the logstore's
//!   `retention_days` are deleted;
//! - **small files** (each compaction run adds one file per partition it touches) are
//!   merged, sorted by time, into one, committed as an Optimize that removes them;
//! - **vacuum** (lite: only files named by remove actions) deletes files removed longer
//!   ago than the vacuum retention, so that readers of an older version still work meanwhile.
//!
//! It stands on [`crate::lake`] only.

pub mod policy;

use delta_kernel::expressions::Scalar;
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use deltalake::kernel::transaction::CommitBuilder;
use deltalake::kernel::{Action, Remove};
use deltalake::operations::vacuum::VacuumMode;
use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use deltalake::protocol::DeltaOperation;
use deltalake::writer::{DeltaWriter, RecordBatchWriter, WriteMode};
use deltalake::{DeltaTable, DeltaTableError};
use futures::StreamExt;
use indexmap::IndexMap;
use object_store::ObjectStoreExt;
use std::collections::HashMap;

use crate::lake::index::{self, PartitionIndexes};
use crate::lake::schema::{self, DATE, FileSettings, TIME_NS};
use crate::lake::{LakeError, Storage, rows, table};
use policy::{DataFile, Merge, Policy};
use sluice_ingest::layout::table_prefix;

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

impl MaintenanceOptions {
    fn policy(&self) -> Policy {
        Policy {
            small_file_bytes: self.small_file_bytes,
            min_small_files: self.min_small_files,
            max_merge_bytes: self.max_merge_bytes,
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
    /// Token indexes deleted with their files.
    pub vacuumed_indexes: usize,
}

/// Why maintenance failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MaintainError {
    #[error(transparent)]
    Lake(#[from] LakeError),
    #[error("delta table: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("an object path: {0}")]
    Path(#[from] object_store::path::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] deltalake::parquet::errors::ParquetError),
    #[error("a data file to merge has no {0} column")]
    MissingColumn(&'static str),
}

/// Merges small files, applies retention and vacuums one logstore's table, as of `now_ns`.
pub async fn maintain(
    storage: &Storage,
    project: &str,
    logstore: &str,
    retention_days: Option<u32>,
    options: &MaintenanceOptions,
    now_ns: i64,
) -> Result<MaintenanceSummary, MaintainError> {
    let mut summary = MaintenanceSummary::default();
    let Some(mut table) = table::open(storage, project, logstore).await? else { return Ok(summary) };

    // The file list, once: what the policy plans from, and what a merge removes.
    let mut files = Vec::new();
    let mut removes: HashMap<String, Remove> = HashMap::new();
    {
        let snapshot = table.snapshot()?;
        let mut views = snapshot.snapshot().file_views(table.log_store().as_ref(), None);
        while let Some(view) = views.next().await {
            let view = view?;
            let Some(Some(partition)) = view.partition_values_map().get(DATE).cloned() else { continue };
            let path = view.object_store_path().to_string();
            files.push(DataFile { path: path.clone(), partition, size: view.size() as u64 });
            removes.insert(path, view.remove_action(false));
        }
    }
    let cutoff = retention_days.map(|days| now_ns.saturating_sub(i64::from(days).saturating_mul(86_400_000_000_000)));
    let planned = policy::plan(&files, &options.policy(), cutoff);

    if !planned.expired.is_empty() {
        let before = table.snapshot()?.log_data().num_files();
        // Partition names are digits and dashes: nothing to quote.
        let listed = planned.expired.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", ");
        let (deleted, _metrics) = table.clone().delete().with_predicate(format!("{DATE} IN ({listed})")).await?;
        table = deleted;
        summary.expired_files = before.saturating_sub(table.snapshot()?.log_data().num_files());
    }

    for merge in &planned.merges {
        let chosen: Vec<Remove> = merge.files.iter().filter_map(|f| removes.get(&f.path).cloned()).collect();
        summary.merged_files +=
            merge_files(storage, &table_prefix(project, logstore), &mut table, merge, chosen, options).await?;
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
    // The token indexes of the files vacuumed (or of files never committed) go with them.
    summary.vacuumed_indexes = index::delete_orphans(storage.store.as_ref(), &table_prefix(project, logstore)).await?;
    Ok(summary)
}

/// Rewrites one merge's small files as one sorted file. Returns how many it merged.
async fn merge_files(
    storage: &Storage,
    prefix: &str,
    table: &mut DeltaTable,
    merge: &Merge,
    removes: Vec<Remove>,
    options: &MaintenanceOptions,
) -> Result<usize, MaintainError> {
    let snapshot = table.snapshot()?.clone();
    let store = table.log_store().object_store(None);
    let mut batches: Vec<RecordBatch> = Vec::new();
    for file in &merge.files {
        // Small files, by choice: read each whole.
        let bytes = store.get(&object_store::path::Path::parse(&file.path)?).await?.bytes().await?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()? {
            batches.push(batch?);
        }
    }
    let Some(first) = batches.first() else { return Ok(0) };
    let all = concat_batches(&first.schema(), &batches)?;
    let time = all.column_by_name(TIME_NS).ok_or(MaintainError::MissingColumn(TIME_NS))?;
    let sorted = take_record_batch(&all, &sort_to_indices(time, None, None)?)?;

    let writer = RecordBatchWriter::for_table(table)?;
    let properties = schema::writer_properties(
        options.files,
        &schema::frequent_keys(&writer.arrow_schema()),
        &rows::mostly_distinct_keys(&sorted),
    );
    let mut writer = writer.with_writer_properties(properties).with_target_file_size(u64::MAX);
    let mut indexes = PartitionIndexes::new(options.files.row_group_rows);
    indexes.add(&merge.partition, &sorted).map_err(LakeError::from)?;
    let partition = IndexMap::from([(DATE.to_owned(), Scalar::String(merge.partition.clone()))]);
    writer.write_partition(sorted, &partition, WriteMode::Default).await?;
    let adds = writer.flush().await?;
    let indexes = indexes.finish(&adds, DATE).map_err(LakeError::from)?;
    index::put_all(storage.store.as_ref(), prefix, indexes).await?;
    let mut actions: Vec<Action> = removes.into_iter().map(Action::Remove).collect();
    actions.extend(adds.into_iter().map(|mut add| {
        add.data_change = false;
        Action::Add(add)
    }));
    let operation = DeltaOperation::Optimize {
        predicate: Some(format!("{DATE} = '{}'", merge.partition)),
        target_size: i64::try_from(options.small_file_bytes).unwrap_or(i64::MAX),
    };
    CommitBuilder::default().with_actions(actions).build(Some(&snapshot), table.log_store(), operation).await?;
    table.update_state().await?;
    tracing::info!(partition = merge.partition, files = merge.files.len(), "merged small files");
    Ok(merge.files.len())
}
