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
use sluice_ingest::batch::BatchId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::deadline::Deadline;
use super::filter::Functions;
use super::scan::Scanned;
use super::{QueryError, QueryLimits, session};
use crate::lake::raw::{self, ReceivedBatch};
use crate::lake::rows::to_record_batch;
use crate::lake::{Storage, schema, table};

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

/// What every query shares: the lake, decoded raw batches, how far back commits are
/// checked for consumed batches, and the limits.
#[derive(Debug)]
pub struct Shared {
    pub storage: Storage,
    pub cache: Cache,
    pub lookback: Duration,
    pub limits: QueryLimits,
}

/// What one query reads: a logstore over `[from_ns, to_ns)`, as of `now_ns`.
#[derive(Clone, Copy, Debug)]
pub struct Reading<'a> {
    pub project: &'a str,
    pub logstore: &'a str,
    pub from_ns: i64,
    pub to_ns: i64,
    pub now_ns: i64,
}

impl<'a> Reading<'a> {
    /// A logstore's `[from_ns, to_ns)` as of `now_ns`.
    pub fn of(target: &'a sluice_ingest::Target, from_ns: i64, to_ns: i64, now_ns: i64) -> Self {
        Self { project: &target.project, logstore: &target.logstore, from_ns, to_ns, now_ns }
    }
}

impl Source {
    /// Opens a logstore for one query.
    pub async fn open(shared: &Shared, reading: Reading<'_>) -> Result<Self, QueryError> {
        let Reading { project, logstore, from_ns, to_ns, now_ns } = reading;
        let (storage, cache, limits) = (&shared.storage, &shared.cache, &shared.limits);
        let pending = raw::list(storage.store.as_ref(), project, logstore).await?;
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
            let since_ms = now_ns
                .div_euclid(1_000_000)
                .saturating_sub(i64::try_from(shared.lookback.as_millis()).unwrap_or(i64::MAX));
            consumed = consumed_batches(cache, &delta, version.unwrap_or(0), since_ms).await?;
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
                    // Gone since the listing: compacted, it is in the table now.
                    let bytes = raw::read(storage.store.as_ref(), &p.key).await?.ok_or(QueryError::Retry)?;
                    let Ok(decoded) = raw::decode(&bytes) else {
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
            None => Arc::new(schema::arrow_schema(&[])?),
        };
        let frequent = schema::frequent_keys(&schema);
        let mut raw_rows = 0;
        let raw_batches = fresh.len();
        let fresh = if fresh.is_empty() {
            None
        } else {
            let rows = conform(
                &to_record_batch(fresh.iter().map(Arc::as_ref), Arc::new(schema::arrow_schema(&frequent)?))?,
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
    since_ms: i64,
) -> Result<Arc<HashSet<BatchId>>, QueryError> {
    let key = (table.table_url().to_string(), version);
    if let Some(set) = cache.consumed.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(set.clone());
    }
    let set = Arc::new(table::consumed_batches(table, since_ms).await?);
    let mut consumed = cache.consumed.lock().unwrap_or_else(|e| e.into_inner());
    consumed.retain(|(url, _), _| url != &key.0);
    consumed.insert(key, set.clone());
    Ok(set)
}
