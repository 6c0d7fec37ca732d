//! One Delta Lake table per logstore, at `tables/{project}/{logstore}/`: its schema, how
//! its Parquet files are written, opening or creating it, and which raw batches recent
//! commits consumed.
//!
//! Every compaction commit carries one Delta application transaction per raw batch it
//! consumed (`txn` action, app id `sluice-batch-{id}`), so that a run after a crash, a
//! second compactor or a client's late retry never adds a batch twice, and two commits
//! that would consume the same batch conflict.

use deltalake::kernel::transaction::CommitProperties;
use deltalake::kernel::{Action, ArrayType, DataType, MapType, StructField, StructType, Transaction};
use deltalake::logstore::{
    LogStore, LogStoreFactory, StorageConfig, default_logstore, get_actions, logstore_factories,
};
use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake::parquet::file::metadata::SortingColumn;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use futures::StreamExt;
use sluice_ingest::batch::BatchId;
use sluice_ingest::layout::table_prefix;
use std::collections::HashSet;
use std::sync::{Arc, Once};
use url::Url;

use crate::storage::Storage;

/// The partition column: the event's UTC date, `YYYY-MM-DD`.
pub const PARTITION_COLUMN: &str = "date";
/// Prefix of the application transaction ids that mark consumed raw batches.
pub const TXN_PREFIX: &str = "sluice-batch-";

/// The struct column holding the table's frequent fields, one string column each.
pub const FREQUENT_COLUMN: &str = "frequent";

/// The table's columns, in order. Every log is one row; SLS contents, Proliferate
/// attributes and the like are fields: those the table keeps as columns of their own
/// (`frequent`, chosen when the table is created, see [`crate::records::frequent_keys`])
/// there, the others in `fields` (a map); `json_keys` names the fields whose value is
/// JSON text (a number, an object) rather than a string.
pub fn schema(frequent: &[String]) -> StructType {
    let text = |name: &str| StructField::nullable(name, DataType::STRING);
    let map = || MapType::new(DataType::STRING, DataType::STRING, true);
    StructType::try_new(
        [
            StructField::not_null(PARTITION_COLUMN, DataType::STRING),
            StructField::not_null("time_ns", DataType::LONG),
            StructField::not_null("received_ns", DataType::LONG),
            StructField::not_null("batch_id", DataType::STRING),
            StructField::not_null("position", DataType::INTEGER),
            StructField::not_null("product", DataType::STRING),
            text("topic"),
            text("source"),
            StructField::nullable("tags", map()),
            text("environment"),
            text("release"),
            text("level"),
            text("message"),
            text("template"),
            text("trace_id"),
            text("span_id"),
            text("user_id"),
            text("user_email"),
            text("account_id"),
            text("account_name"),
            text("logger_name"),
            text("file_path"),
            StructField::nullable("line_number", DataType::INTEGER),
            text("function_name"),
            StructField::nullable("fields", map()),
            StructField::nullable("json_keys", ArrayType::new(DataType::STRING, true)),
        ]
        .into_iter()
        .chain((!frequent.is_empty()).then(|| {
            let columns = frequent.iter().map(|key| StructField::nullable(key, DataType::STRING));
            StructField::nullable(FREQUENT_COLUMN, StructType::try_new(columns).expect("valid frequent fields"))
        })),
    )
    .expect("a valid schema")
}

/// The frequent fields of a table, from its Arrow schema.
pub fn frequent_keys(schema: &deltalake::arrow::datatypes::Schema) -> Vec<String> {
    match schema.field_with_name(FREQUENT_COLUMN).map(|f| f.data_type()) {
        Ok(deltalake::arrow::datatypes::DataType::Struct(fields)) => fields.iter().map(|f| f.name().clone()).collect(),
        _ => Vec::new(),
    }
}

/// The table's Arrow schema, as delta-rs maps it.
pub fn arrow_schema(frequent: &[String]) -> Result<deltalake::arrow::datatypes::Schema, DeltaTableError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
    (&schema(frequent))
        .try_into_arrow()
        .map_err(|e: deltalake::arrow::error::ArrowError| DeltaTableError::Generic(e.to_string()))
}

/// How Parquet files are written; see README ("Compacted storage") for the measurements
/// behind the numbers.
#[derive(Clone, Copy, Debug)]
pub struct FileSettings {
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self { row_group_rows: 128 * 1024, zstd_level: 3 }
    }
}

/// Text columns whose values are often unique (ids, messages, field values).
const VARIED_TEXT: [&str; 6] = ["message", "trace_id", "span_id", "user_email", "template", "fields.key_value.value"];

/// Parquet writer properties: ZSTD, page-level statistics (column and offset indexes),
/// files declared sorted by time, a bloom filter on trace id, delta-encoded times and
/// positions, no dictionary for span ids (one per log: a dictionary only adds indexes).
/// Text columns that outgrow their dictionary (ids, messages, most frequent fields) go on
/// with DELTA_LENGTH_BYTE_ARRAY: the lengths apart, the bytes back to back, which ZSTD
/// compresses better than PLAIN's length-value pairs (1.5 bytes per log less on the
/// compaction bench).
pub fn writer_properties(settings: FileSettings, frequent: &[String]) -> WriterProperties {
    // The file schema has no partition column: time_ns is its first column.
    let sorting = SortingColumn { column_idx: 0, descending: false, nulls_first: false };
    let varied = VARIED_TEXT
        .iter()
        .map(|c| ColumnPath::from(*c))
        .chain(frequent.iter().map(|k| ColumnPath::new(vec![FREQUENT_COLUMN.to_owned(), k.clone()])));
    let mut builder = WriterProperties::builder();
    for column in varied {
        builder = builder.set_column_encoding(column, Encoding::DELTA_LENGTH_BYTE_ARRAY);
    }
    builder
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(settings.zstd_level).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(settings.row_group_rows))
        .set_sorting_columns(Some(vec![sorting]))
        .set_column_bloom_filter_enabled(ColumnPath::from("trace_id"), true)
        .set_column_bloom_filter_fpp(ColumnPath::from("trace_id"), 0.01)
        .set_column_dictionary_enabled(ColumnPath::from("time_ns"), false)
        .set_column_encoding(ColumnPath::from("time_ns"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("received_ns"), false)
        .set_column_encoding(ColumnPath::from("received_ns"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("position"), false)
        .set_column_encoding(ColumnPath::from("position"), Encoding::DELTA_BINARY_PACKED)
        .set_column_dictionary_enabled(ColumnPath::from("span_id"), false)
        .build()
}

/// The table's URL: `{storage url}/tables/{project}/{logstore}/`.
fn table_url(storage: &Storage, project: &str, logstore: &str) -> Result<Url, DeltaTableError> {
    storage
        .url
        .join(&format!("{}/", table_prefix(project, logstore)))
        .map_err(|e| DeltaTableError::Generic(format!("table url: {e}")))
}

/// A logstore's table over our own store (not yet loaded).
pub fn unloaded(storage: &Storage, project: &str, logstore: &str) -> Result<DeltaTable, DeltaTableError> {
    register_log_stores();
    let url = table_url(storage, project, logstore)?;
    DeltaTableBuilder::from_url(url.clone())?.with_storage_backend(storage.root.clone(), url).build()
}

/// Opens a logstore's table, if it exists.
pub async fn open(storage: &Storage, project: &str, logstore: &str) -> Result<Option<DeltaTable>, DeltaTableError> {
    let mut table = unloaded(storage, project, logstore)?;
    // Whether the table exists, asked of our store: delta-rs reports a missing table
    // differently on each store.
    let log = object_store::path::Path::parse(format!("{}/_delta_log", table_prefix(project, logstore)))?;
    if storage.store.list(Some(&log)).next().await.transpose()?.is_none() {
        return Ok(None);
    }
    table.load().await?;
    Ok(Some(table))
}

/// Opens a logstore's table, creating it with these frequent fields if it does not exist
/// yet.
pub async fn open_or_create(
    storage: &Storage,
    project: &str,
    logstore: &str,
    frequent: &[String],
) -> Result<DeltaTable, DeltaTableError> {
    if let Some(table) = open(storage, project, logstore).await? {
        return Ok(table);
    }
    let created = unloaded(storage, project, logstore)?
        .create()
        .with_table_name(logstore)
        .with_columns(schema(frequent).fields().cloned())
        .with_partition_columns([PARTITION_COLUMN])
        .with_configuration_property(deltalake::TableProperty::SetTransactionRetentionDuration, Some("interval 2 days"))
        .with_configuration_property(
            deltalake::TableProperty::DataSkippingStatsColumns,
            Some("time_ns,received_ns,level,trace_id,topic,source,logger_name"),
        )
        .await;
    match created {
        Ok(table) => Ok(table),
        // Another compactor created it first.
        Err(_) => {
            let mut table = unloaded(storage, project, logstore)?;
            table.load().await?;
            Ok(table)
        }
    }
}

/// The application transaction that marks a raw batch consumed.
pub fn batch_transaction(id: BatchId, now_ms: i64) -> Transaction {
    Transaction::new_with_last_update(format!("{TXN_PREFIX}{id}"), 1, Some(now_ms))
}

/// Commit properties carrying the transactions of the batches a commit consumes.
pub fn commit_properties(batches: &[BatchId], now_ms: i64) -> CommitProperties {
    CommitProperties::default()
        .with_application_transactions(batches.iter().map(|id| batch_transaction(*id, now_ms)).collect())
}

/// Raw batches consumed by the commits of the last `window_ms` (walking back from the
/// latest commit, a few at a time, until commits are older than the window).
pub async fn consumed_batches(table: &DeltaTable, since_ms: i64) -> Result<HashSet<BatchId>, DeltaTableError> {
    let mut consumed = HashSet::new();
    let Some(latest) = table.version() else { return Ok(consumed) };
    let log_store = table.log_store();
    let mut next = Some(latest);
    while let Some(version) = next {
        let first = version.saturating_sub(15);
        let entries: Vec<_> = futures::stream::iter((first..=version).rev())
            .map(|v| {
                let log_store = log_store.clone();
                async move { log_store.read_commit_entry(v).await.map(|bytes| (v, bytes)) }
            })
            .buffered(16)
            .collect()
            .await;
        let mut older_than_window = false;
        for entry in entries {
            let (v, Some(bytes)) = entry? else {
                // Cleaned up by log retention: everything older is gone too.
                return Ok(consumed);
            };
            for action in get_actions(v, &bytes)? {
                match action {
                    Action::Txn(txn) => {
                        if let Some(id) = txn.app_id.strip_prefix(TXN_PREFIX).and_then(|id| id.parse().ok()) {
                            consumed.insert(id);
                        }
                    }
                    Action::CommitInfo(info) if info.timestamp.is_some_and(|t| t < since_ms) => {
                        older_than_window = true
                    }
                    _ => {}
                }
            }
        }
        if older_than_window {
            break;
        }
        next = first.checked_sub(1);
    }
    Ok(consumed)
}

/// delta-rs knows `file://` and `memory://`; `s3://` tables get the default log store over
/// our own S3 client, which commits with conditional puts (`If-None-Match`).
fn register_log_stores() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        #[derive(Debug)]
        struct DefaultLogStores;
        impl LogStoreFactory for DefaultLogStores {
            fn with_options(
                &self,
                prefixed_store: Arc<dyn ObjectStore>,
                root_store: Arc<dyn ObjectStore>,
                location: &Url,
                options: &StorageConfig,
            ) -> deltalake::DeltaResult<Arc<dyn LogStore>> {
                Ok(default_logstore(prefixed_store, root_store, location, options))
            }
        }
        if let Ok(scheme) = Url::parse("s3://") {
            logstore_factories().insert(scheme, Arc::new(DefaultLogStores));
        }
    });
}
