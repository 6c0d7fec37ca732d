//! What a query reads: a logstore's Delta table, unioned with its raw batches that are
//! not compacted yet, so that logs are searchable as soon as they are accepted.
//!
//! Raw batches are listed first and the table opened second: a batch compacted in
//! between is then in the table and recognized as consumed (its transaction), never
//! counted twice nor missed. Decoded raw batches are cached until they disappear.

use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::prelude::SessionConfig;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sluice_ingest::batch::{self, BatchId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::QueryError;
use super::filter::Functions;
use super::scan::Scanned;
use super::udf;
use crate::compact::list_pending;
use crate::records::{ReceivedBatch, to_record_batch};
use crate::storage::Storage;
use crate::table;

type Consumed = Arc<HashSet<BatchId>>;

/// Decoded raw batches and consumed-batch sets, shared by queries.
#[derive(Debug, Default)]
pub struct Cache {
    batches: Mutex<HashMap<String, Arc<ReceivedBatch>>>,
    /// Consumed batches by table URL and version.
    consumed: Mutex<HashMap<(String, u64), Consumed>>,
}

/// A session with `logs` registered: the table and the fresh raw batches.
pub struct Source {
    pub ctx: SessionContext,
    pub functions: Functions,
    /// Raw batches read because they are not compacted yet.
    pub raw_batches: usize,
    pub raw_rows: usize,
    /// The table version read, if the table exists.
    pub version: Option<u64>,
    /// What the query's scans read.
    pub scanned: Scanned,
}

/// A session configured for log queries: pushdown, page indexes and bloom filters on,
/// identifiers kept as written (SLS field names are case-sensitive).
pub fn session() -> SessionContext {
    let mut config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .with_information_schema(false);
    let options = config.options_mut();
    options.execution.parquet.pushdown_filters = true;
    options.execution.parquet.reorder_filters = true;
    options.execution.parquet.enable_page_index = true;
    options.execution.parquet.bloom_filter_on_read = true;
    options.execution.parquet.schema_force_view_types = false;
    options.sql_parser.enable_ident_normalization = false;
    let ctx = SessionContext::new_with_config(config);
    udf::register(&ctx);
    ctx
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("version", &self.version)
            .field("raw_batches", &self.raw_batches)
            .field("raw_rows", &self.raw_rows)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens a logstore for a query over `[from_ns, to_ns)`.
    pub async fn open(
        storage: &Storage,
        project: &str,
        logstore: &str,
        from_ns: i64,
        to_ns: i64,
        lookback: Duration,
        cache: &Cache,
    ) -> Result<Self, QueryError> {
        let pending = list_pending(storage.store.as_ref(), project, logstore).await?;
        let ctx = session();
        let mut functions = Functions::new(&ctx)?;
        let table = table::open(storage, project, logstore).await?;
        let table_exists = table.is_some();
        let (mut schema, mut version, mut consumed): (Option<SchemaRef>, Option<u64>, Arc<HashSet<BatchId>>) =
            (None, None, Arc::default());
        if let Some(delta) = table {
            version = delta.version();
            delta.update_datafusion_session(&ctx.state())?;
            let provider = delta.table_provider().with_session(Arc::new(ctx.state())).await?;
            schema = Some(provider.schema());
            ctx.register_table("compacted", provider)?;
            consumed = consumed_batches(cache, &delta, version.unwrap_or(0), lookback).await?;
        }

        // Fresh raw batches: not consumed, overlapping the range.
        let live: HashSet<String> = pending.iter().map(|p| p.key.to_string()).collect();
        cache.batches.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
        let mut fresh = Vec::new();
        for p in pending.into_iter().filter(|p| !consumed.contains(&p.key.id)) {
            let key = p.key.to_string();
            let cached = cache.batches.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            let received = match cached {
                Some(r) => r,
                None => {
                    let bytes = match storage.store.get(&Path::parse(&key).map_err(object_store::Error::from)?).await {
                        Ok(got) => got.bytes().await?,
                        // Compacted and deleted since the listing: it is in the table now.
                        Err(object_store::Error::NotFound { .. }) => return Err(QueryError::Retry),
                        Err(e) => return Err(e.into()),
                    };
                    let Ok(decoded) = batch::decode(&bytes, 1 << 30) else {
                        tracing::warn!(key, "skipping an unreadable raw batch");
                        continue;
                    };
                    let r = Arc::new(ReceivedBatch { batch: decoded, received_ns: p.received_ns });
                    cache.batches.lock().unwrap_or_else(|e| e.into_inner()).insert(key, r.clone());
                    r
                }
            };
            let header = &received.batch.header;
            if header.max_time_ns >= from_ns && header.min_time_ns < to_ns {
                fresh.push(received);
            }
        }
        let schema = match schema {
            Some(s) => s,
            None => Arc::new(crate::table::arrow_schema(&[])?),
        };
        let frequent = table::frequent_keys(&schema);
        let mut raw_rows = 0;
        let raw_batches = fresh.len();
        if !fresh.is_empty() {
            let rows = conform(
                &to_record_batch(fresh.iter().map(Arc::as_ref), Arc::new(table::arrow_schema(&frequent)?))?,
                &schema,
            )?;
            raw_rows = rows.num_rows();
            ctx.register_table("fresh", Arc::new(MemTable::try_new(schema.clone(), vec![vec![rows]])?))?;
        }
        let view = match (table_exists, raw_batches > 0) {
            (true, true) => Some("SELECT * FROM compacted UNION ALL SELECT * FROM fresh"),
            (true, false) => Some("SELECT * FROM compacted"),
            (false, true) => Some("SELECT * FROM fresh"),
            (false, false) => None,
        };
        match view {
            Some(sql) => {
                let df = ctx.sql(sql).await?;
                ctx.register_table("logs", df.into_view())?;
            }
            None => {
                ctx.register_table("logs", Arc::new(MemTable::try_new(schema, vec![vec![]])?))?;
            }
        }
        functions.frequent = frequent;
        Ok(Self { ctx, functions, raw_batches, raw_rows, version, scanned: Scanned::default() })
    }
}

/// Rows built with the table's schema, as the table provider shows them: its column
/// order, and its types (the `date` partition column is dictionary-encoded).
fn conform(rows: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, QueryError> {
    let columns = schema
        .fields()
        .iter()
        .map(|field| match rows.column_by_name(field.name()) {
            Some(column) => Ok(cast(column, field.data_type())?),
            None => Ok(new_null_array(field.data_type(), rows.num_rows())),
        })
        .collect::<Result<Vec<_>, QueryError>>()?;
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

async fn consumed_batches(
    cache: &Cache,
    table: &deltalake::DeltaTable,
    version: u64,
    lookback: Duration,
) -> Result<Arc<HashSet<BatchId>>, QueryError> {
    let key = (table.table_url().to_string(), version);
    if let Some(set) = cache.consumed.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(set.clone());
    }
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    let since = now_ms - i64::try_from(lookback.as_millis()).unwrap_or(i64::MAX);
    let set = Arc::new(table::consumed_batches(table, since).await?);
    let mut consumed = cache.consumed.lock().unwrap_or_else(|e| e.into_inner());
    consumed.retain(|(url, _), _| url != &key.0);
    consumed.insert(key, set.clone());
    Ok(set)
}
