//! One Delta Lake table per logstore, at `tables/{project}/{logstore}/`: opening or
//! creating it (with the schema of [`super::schema`]), the logstores that have one, and
//! which raw batches recent commits consumed.
//!
//! Every compaction commit carries one Delta application transaction per raw batch it
//! consumed (`txn` action, app id `sluice-batch-{id}`), so that a run after a crash, a
//! second compactor or a client's late retry never adds a batch twice, and two commits
//! that would consume the same batch conflict.

use deltalake::kernel::Action;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::CommitProperties;
use deltalake::logstore::{
    LogStore, LogStoreFactory, StorageConfig, default_logstore, get_actions, logstore_factories,
};
use deltalake::{DeltaTable, DeltaTableBuilder, DeltaTableError, ObjectStore};
use futures::StreamExt;
use sluice_ingest::batch::BatchId;
use sluice_ingest::layout::{TABLES_ROOT, table_prefix};
use std::collections::HashSet;
use std::sync::{Arc, Once};
use url::Url;

use super::LakeError;
use super::schema::{self, DATE};
use super::store::{Storage, logstores_under};

/// Every logstore that has a table, as (project, logstore), sorted.
pub async fn logstores_with_tables(storage: &Storage) -> Result<Vec<(String, String)>, LakeError> {
    Ok(logstores_under(storage.store.as_ref(), TABLES_ROOT).await?)
}

/// Prefix of the application transaction ids that mark consumed raw batches.
pub const TXN_PREFIX: &str = "sluice-batch-";

/// The table's URL: `{storage url}/tables/{project}/{logstore}/`.
fn table_url(storage: &Storage, project: &str, logstore: &str) -> Result<Url, LakeError> {
    let path = format!("{}/", table_prefix(project, logstore));
    storage.url.join(&path).map_err(|source| LakeError::TableUrl { path, source })
}

/// A logstore's table over our own store (not yet loaded).
pub fn unloaded(storage: &Storage, project: &str, logstore: &str) -> Result<DeltaTable, LakeError> {
    register_log_stores();
    let url = table_url(storage, project, logstore)?;
    Ok(DeltaTableBuilder::from_url(url.clone())?.with_storage_backend(storage.root.clone(), url).build()?)
}

/// Opens a logstore's table, if it exists.
pub async fn open(storage: &Storage, project: &str, logstore: &str) -> Result<Option<DeltaTable>, LakeError> {
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
) -> Result<DeltaTable, LakeError> {
    if let Some(table) = open(storage, project, logstore).await? {
        return Ok(table);
    }
    let columns = schema::delta_schema(frequent).map_err(|e| schema::SchemaError::Delta(e.to_string()))?;
    let created = unloaded(storage, project, logstore)?
        .create()
        .with_table_name(logstore)
        .with_columns(columns.fields().cloned())
        .with_partition_columns([DATE])
        .with_configuration_property(deltalake::TableProperty::SetTransactionRetentionDuration, Some("interval 2 days"))
        .with_configuration_property(deltalake::TableProperty::DataSkippingStatsColumns, Some(schema::stats_columns()))
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
