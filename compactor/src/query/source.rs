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
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::DataFrame;
use object_store::ObjectStoreExt;
use object_store::path::Path;
use sluice_ingest::batch::{self, BatchId};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::deadline::Deadline;
use super::filter::Functions;
use super::scan::Scanned;
use super::{QueryError, QueryLimits, session};
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

/// A logstore opened for one query: the table and the fresh raw batches, as one
/// DataFrame, in a session of the query's own (see [`session`]). No table is registered
/// by name: the only way to the data is [`Source::logs`].
pub struct Source {
    pub ctx: SessionContext,
    /// The query's runtime (memory pool, stores), shared by its SQL session.
    pub runtime: Arc<RuntimeEnv>,
    pub limits: QueryLimits,
    /// When the query must be done.
    pub deadline: Deadline,
    /// Every log of the logstore: the table's, then the fresh raw batches'.
    all: DataFrame,
    pub functions: Functions,
    /// Raw batches read because they are not compacted yet.
    pub raw_batches: usize,
    pub raw_rows: usize,
    /// The table version read, if the table exists.
    pub version: Option<u64>,
    /// What the query's scans read.
    pub scanned: Scanned,
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
    #[allow(clippy::too_many_arguments)]
    pub async fn open(
        storage: &Storage,
        project: &str,
        logstore: &str,
        from_ns: i64,
        to_ns: i64,
        lookback: Duration,
        cache: &Cache,
        limits: &QueryLimits,
    ) -> Result<Self, QueryError> {
        let pending = list_pending(storage.store.as_ref(), project, logstore).await?;
        let runtime = session::runtime(limits)?;
        let deadline = Deadline::after(limits.timeout);
        let ctx = session::scan(runtime.clone(), deadline);
        let mut functions = Functions::new(&ctx)?;
        let table = table::open(storage, project, logstore).await?;
        let (mut schema, mut version, mut consumed): (Option<SchemaRef>, Option<u64>, Arc<HashSet<BatchId>>) =
            (None, None, Arc::default());
        let mut compacted = None;
        if let Some(delta) = table {
            version = delta.version();
            delta.update_datafusion_session(&ctx.state())?;
            let provider = delta.table_provider().with_session(Arc::new(ctx.state())).await?;
            schema = Some(provider.schema());
            compacted = Some(ctx.read_table(provider)?);
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
        let fresh = if fresh.is_empty() {
            None
        } else {
            let rows = conform(
                &to_record_batch(fresh.iter().map(Arc::as_ref), Arc::new(table::arrow_schema(&frequent)?))?,
                &schema,
            )?;
            raw_rows = rows.num_rows();
            Some(ctx.read_table(Arc::new(MemTable::try_new(schema.clone(), vec![vec![rows]])?))?)
        };
        let all = match (compacted, fresh) {
            (Some(compacted), Some(fresh)) => compacted.union(fresh)?,
            (Some(only), None) | (None, Some(only)) => only,
            (None, None) => ctx.read_table(Arc::new(MemTable::try_new(schema, vec![vec![]])?))?,
        };
        functions.frequent = frequent;
        Ok(Self {
            ctx,
            runtime,
            limits: *limits,
            deadline,
            all,
            functions,
            raw_batches,
            raw_rows,
            version,
            scanned: Scanned::default(),
        })
    }

    /// Every log of the logstore, to filter.
    pub fn logs(&self) -> DataFrame {
        self.all.clone()
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
