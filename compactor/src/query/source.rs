//! What a query reads: a logstore's Delta table, unioned with its raw batches that are
//! not compacted yet, so that logs are searchable as soon as they are accepted.
//!
//! Raw batches are listed first and the table opened second: a batch compacted in
//! between is then in the table and recognized as consumed (its transaction), never
//! counted twice nor missed. The two together (a [`View`]) serve the queries of the next
//! `listing_for` (with the batches this server stores added as it stores them), so a
//! query does not list the logstore nor read the Delta log each time; a batch listed
//! but gone since (compacted into a newer version) makes the query start over with a
//! new view. Decoded raw batches are cached until they disappear.

use datafusion::arrow::array::{RecordBatch, new_null_array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::datasource::MemTable;
use datafusion::execution::context::SessionContext;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::prelude::{DataFrame, Expr};
use sluice_ingest::batch::BatchId;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::deadline::Deadline;
use super::files::{self, DataFile, TableFiles};
use super::filter::Functions;
use super::page::Chunk;
use super::prune::{Need, Pruning};
use super::rollup::{self, Buckets};
use super::scan::Scanned;
use super::syntax::Search;
use super::{QueryError, QueryLimits, session};
use crate::lake::index::{self, FileIndex};
use crate::lake::raw::{self, Pending, ReceivedBatch};
use crate::lake::rows::to_record_batch;
use crate::lake::{LakeError, Storage, schema, table};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use sluice_ingest::layout::{partition_date, partition_floor, table_prefix};

type Consumed = Arc<HashSet<BatchId>>;

/// Decoded raw batches, consumed-batch sets and token indexes, shared by queries.
#[derive(Debug, Default)]
pub struct Cache {
    batches: Mutex<HashMap<String, Arc<ReceivedBatch>>>,
    /// Consumed batches by table URL and version.
    consumed: Mutex<HashMap<(String, u64), Consumed>>,
    /// Token indexes by object key (`None`: the file has none). Data files never change.
    indexes: Arc<Indexes>,
    /// Each logstore as last looked at; its table is brought up to date by reading only
    /// the newer commits.
    views: Mutex<HashMap<String, View>>,
    /// Each table version's data files.
    files: Mutex<HashMap<String, VersionFiles>>,
    /// Data files' Parquet footers and page indexes, by path.
    footers: Footers,
}

/// Parquet metadata read by queries, up to [`FOOTER_CACHE_BYTES`] (least recently used
/// first out). Data files never change, so an entry is never stale.
struct Footers(Arc<FileMetadataCache>);

/// Bytes of Parquet metadata kept in memory (about 1 MB per 100 MB data file).
const FOOTER_CACHE_BYTES: usize = 256 << 20;

impl Default for Footers {
    fn default() -> Self {
        Self(Arc::new(DefaultCache::new(FOOTER_CACHE_BYTES).with_name("parquet footers")))
    }
}

impl std::fmt::Debug for Footers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Footers").field("files", &self.0.len()).finish()
    }
}

/// A logstore's raw batches as listed at `taken`, and its table as read right after.
#[derive(Clone, Debug)]
struct View {
    taken: Instant,
    pending: Arc<Vec<Pending>>,
    table: Option<deltalake::DeltaTable>,
}

impl Cache {
    /// Notes a raw batch this server just stored, so queries see it before the next
    /// listing.
    pub fn note_stored(&self, stored: Pending) {
        let key = table_prefix(&stored.key.project, &stored.key.logstore);
        if let Some(view) = self.views.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&key) {
            Arc::make_mut(&mut view.pending).push(stored);
        }
    }

    fn forget(&self, project: &str, logstore: &str) {
        self.views.lock().unwrap_or_else(|e| e.into_inner()).remove(&table_prefix(project, logstore));
    }
}

const SECOND: i64 = 1_000_000_000;

/// Row groups at each end of a range cut finer for level searches (see [`Source::chunks`]).
const EDGE_GROUPS: usize = 2;
/// Rows (of all levels) a fine chunk spans at least: about a Parquet page's worth; two in
/// unit tests, whose small row groups are then cut too.
const FINE_ROWS: u64 = if cfg!(test) { 2 } else { 8192 };

/// A row group's rollup as chunks of consecutive seconds spanning at least [`FINE_ROWS`]
/// rows each, each with the rows that match `search` (about the level alone).
fn fine_chunks(search: &Search, index: &FileIndex, group: usize) -> Vec<Chunk> {
    let levels = index.levels.as_deref().unwrap_or_default();
    let matching = |level: Option<&str>| rollup::on_level(search, level) == Some(Some(true));
    let matches: Vec<bool> = levels.iter().map(|l| matching(l.as_deref())).collect();
    let unnamed = matching(None);
    let unit = i64::from(index.unit_seconds);
    let mut counts: Vec<&index::Count> = index.row_groups[group].rollup.iter().collect();
    counts.sort_unstable_by_key(|c| c.second);
    let mut out = Vec::new();
    // The chunk being gathered: its first and last second, all its rows, those matching.
    let (mut first, mut last, mut all, mut matched) = (None, 0, 0, 0);
    for count in counts {
        if let Some(start) = first.filter(|_| all >= FINE_ROWS && last != count.second) {
            out.push(fine_chunk(start, last, unit, matched));
            (first, all, matched) = (None, 0, 0);
        }
        first.get_or_insert(count.second);
        last = count.second;
        all += u64::from(count.rows);
        if matches.get(count.level as usize).copied().unwrap_or(unnamed) {
            matched += u64::from(count.rows);
        }
    }
    if let Some(start) = first {
        out.push(fine_chunk(start, last, unit, matched));
    }
    out
}

fn fine_chunk(first: i64, last: i64, unit: i64, rows: u64) -> Chunk {
    let end = last.saturating_add(unit).saturating_mul(SECOND);
    Chunk { min_ns: first.saturating_mul(SECOND), max_ns: end.saturating_sub(1), rows }
}

/// The URL a query's runtime knows the lake's store by (see [`session::runtime`]).
const LAKE_URL: &str = "sluice://lake/";

/// A table version and its data files.
type VersionFiles = (u64, Arc<Vec<DataFile>>);

/// Token indexes read, by object key, up to [`INDEX_CACHE_BYTES`].
#[derive(Debug, Default)]
struct Indexes {
    by_key: Mutex<(HashMap<String, Known>, usize)>,
}

/// A file's index as far as queries know: `None` when it has none.
type Known = Option<Arc<FileIndex>>;

/// Bytes of token indexes kept in memory; past it, the cache starts over.
const INDEX_CACHE_BYTES: usize = 512 << 20;

impl Indexes {
    fn get(&self, key: &str) -> Option<Option<Arc<FileIndex>>> {
        self.by_key.lock().unwrap_or_else(|e| e.into_inner()).0.get(key).cloned()
    }

    fn insert(&self, key: String, index: Option<Arc<FileIndex>>) {
        let size = index.as_ref().map_or(0, |i| i.row_groups.iter().map(|g| g.size()).sum::<usize>());
        let mut guard = self.by_key.lock().unwrap_or_else(|e| e.into_inner());
        if guard.1 + size > INDEX_CACHE_BYTES {
            *guard = (HashMap::new(), 0);
        }
        guard.1 += size;
        guard.0.insert(key, index);
    }
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
    /// The table, its data files, and the fresh raw batches, to read with an index.
    compacted: Option<Arc<TableFiles>>,
    files: Arc<Vec<DataFile>>,
    fresh: Option<DataFrame>,
    /// The fresh raw batches' times and rows.
    fresh_chunks: Vec<Chunk>,
    /// The catalogue's shared columns that some fresh raw batch's log has a value of.
    fresh_held: Vec<&'static str>,
    /// The row groups the last [`Self::logs_for`] reads, when it skips any.
    pruning: Mutex<Option<Arc<Pruning>>>,
    table_prefix: String,
    store: Arc<dyn ObjectStore>,
    indexes: Arc<Indexes>,
    range: (i64, i64),
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
/// checked for consumed batches, how long a view serves, and the limits.
#[derive(Debug)]
pub struct Shared {
    pub storage: Storage,
    pub cache: Cache,
    pub lookback: Duration,
    pub listing_for: Duration,
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
        let View { pending, table, .. } = view(shared, project, logstore).await?;
        let runtime = session::runtime(limits)?;
        let deadline = Deadline::after(limits.timeout);
        let ctx = session::scan(runtime.clone(), deadline);
        let mut functions = Functions::new(&ctx)?;
        let (mut schema, mut version, mut consumed): (Option<SchemaRef>, Option<u64>, Arc<HashSet<BatchId>>) =
            (None, None, Arc::default());
        let (mut compacted, mut provider, mut files) = (None, None, Arc::default());
        if let Some(delta) = table {
            use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
            version = delta.version();
            let delta_schema: datafusion::arrow::datatypes::Schema =
                delta.snapshot()?.snapshot().schema().as_ref().try_into_arrow()?;
            files = data_files(cache, &delta).await?;
            let store_url = ObjectStoreUrl::parse(LAKE_URL)?;
            runtime.register_object_store(store_url.as_ref(), storage.store.clone());
            let table_files = Arc::new(TableFiles {
                schema: files::table_schema(&delta_schema),
                store_url,
                prefix: table_prefix(project, logstore),
                files: files.clone(),
                pruning: None,
                metadata: cache.footers.0.clone(),
            });
            schema = Some(table_files.schema.clone());
            compacted = Some(ctx.read_table(table_files.clone())?);
            provider = Some(table_files);
            let since_ms = now_ns
                .div_euclid(1_000_000)
                .saturating_sub(i64::try_from(shared.lookback.as_millis()).unwrap_or(i64::MAX));
            consumed = consumed_batches(cache, &delta, version.unwrap_or(0), since_ms).await?;
        }

        // Fresh raw batches: not consumed, overlapping the range.
        let live: HashSet<String> = pending.iter().map(|p| p.key.to_string()).collect();
        cache.batches.lock().unwrap_or_else(|e| e.into_inner()).retain(|k, _| live.contains(k));
        let mut fresh = Vec::new();
        for p in pending.iter().filter(|p| !consumed.contains(&p.key.id)) {
            let key = p.key.to_string();
            let cached = cache.batches.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
            let received = match cached {
                Some(r) => r,
                None => {
                    // Gone since the listing: compacted, it is in a newer version.
                    let Some(bytes) = raw::read(storage.store.as_ref(), &p.key).await? else {
                        cache.forget(project, logstore);
                        return Err(QueryError::Retry);
                    };
                    let Ok(decoded) = ReceivedBatch::decode(&bytes, p.received_ns) else {
                        tracing::warn!(key, "skipping an unreadable raw batch");
                        continue;
                    };
                    let r = Arc::new(decoded);
                    cache.batches.lock().unwrap_or_else(|e| e.into_inner()).insert(key, r.clone());
                    r
                }
            };
            let header = &received.header;
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
        let fresh_chunks = fresh
            .iter()
            .map(|r| Chunk {
                min_ns: r.header.min_time_ns,
                max_ns: r.header.max_time_ns,
                rows: u64::from(r.header.record_count),
            })
            .collect();
        let mut fresh_held = Vec::new();
        let fresh = if fresh.is_empty() {
            None
        } else {
            let rows = conform(
                &to_record_batch(fresh.iter().map(Arc::as_ref), Arc::new(schema::arrow_schema(&frequent)?))?,
                &schema,
            )?;
            raw_rows = rows.num_rows();
            fresh_held = schema::COLUMNS
                .iter()
                .filter(|c| c.shared && rows.column_by_name(c.name).is_some_and(|v| v.null_count() < v.len()))
                .map(|c| c.name)
                .collect();
            Some(ctx.read_table(Arc::new(MemTable::try_new(schema.clone(), vec![vec![rows]])?))?)
        };
        let all = match (compacted, fresh.clone()) {
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
            compacted: provider,
            files,
            fresh,
            fresh_chunks,
            fresh_held,
            pruning: Mutex::default(),
            table_prefix: table_prefix(project, logstore),
            store: storage.store.clone(),
            indexes: cache.indexes.clone(),
            range: (from_ns, to_ns),
            functions,
            raw_batches,
            raw_rows,
            version,
            scanned: Scanned::default(),
        })
    }

    /// What a name the catalogue shares with fields (`user_id`, ...) reads in SQL: the
    /// column, or else the field ([`Functions::shared_column`]); only the field when no
    /// log of the table or of the fresh raw batches has a value in the column (SLS logs
    /// keep such names among their fields), so that the column is not read at all.
    pub fn shared_column(&self, name: &str) -> Option<Expr> {
        let both = self.functions.shared_column(name)?;
        let (first, last) = self.dates();
        let held = self.fresh_held.contains(&name)
            || self.compacted.as_ref().is_some_and(|table| table.may_hold(name, &first, &last));
        Some(if held { both } else { self.functions.field(name) })
    }

    /// The first and last `date` partitions of the range.
    fn dates(&self) -> (String, String) {
        (partition_floor(self.range.0), partition_date(self.range.1.saturating_sub(1)))
    }

    /// Every log of the logstore, to filter.
    pub fn logs(&self) -> DataFrame {
        self.all.clone()
    }

    /// The logs that may match `search`, to filter with it: [`Self::logs`], with the
    /// table's scans reading only the row groups whose token index may hold the
    /// search's tokens (see [`prune`]).
    pub async fn logs_for(&self, search: &Search) -> Result<DataFrame, QueryError> {
        Ok(self.logs_counting(search, None).await?.0)
    }

    /// [`Self::logs_for`] for a histogram over `buckets`: the rows of the row groups that
    /// time rollups answer (see [`rollup`]) are counted, per subinterval, and not read.
    pub async fn logs_counting(
        &self,
        search: &Search,
        buckets: Option<&Buckets>,
    ) -> Result<(DataFrame, Vec<u64>), QueryError> {
        *self.pruning.lock().unwrap_or_else(|e| e.into_inner()) = None;
        let need = Need::of(search);
        let mut counts = vec![0; buckets.map_or(0, |b| b.count)];
        let rolls = buckets.is_some() && rollup::on_level(search, None).is_some();
        let Some(provider) = self.compacted.clone().filter(|_| rolls || !need.is_anything()) else {
            return Ok((self.logs(), counts));
        };
        let indexes = self.read_indexes().await?;
        let files =
            || self.files.iter().zip(&indexes).filter_map(|(f, i)| Some((f.path.as_str(), f.size, i.as_deref()?)));
        let mut pruning = Pruning::new(&need, files());
        if let Some(buckets) = buckets {
            rollup::count(search, buckets, files(), &mut pruning, &mut counts);
        }
        if pruning.is_empty() {
            return Ok((self.logs(), counts));
        }
        self.scanned.add_skipped(pruning.skipped, pruning.slices_skipped, pruning.rolled_up);
        let pruning = Arc::new(pruning);
        *self.pruning.lock().unwrap_or_else(|e| e.into_inner()) = Some(pruning.clone());
        let compacted = self.ctx.read_table(Arc::new(TableFiles { pruning: Some(pruning), ..(*provider).clone() }))?;
        let logs = match &self.fresh {
            Some(fresh) => compacted.union(fresh.clone())?,
            None => compacted,
        };
        Ok((logs, counts))
    }

    /// Whether the last [`Self::logs_for`] skipped row groups or slices by the token index.
    pub fn narrowed(&self) -> bool {
        self.pruning
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_some_and(|p| p.skipped + p.slices_skipped > 0)
    }

    /// What is known of where the rows the scans read are: each row group the last
    /// [`Self::logs_for`] kept (all, before it), with its times from its time rollup; the
    /// Delta statistics of a file without (a file without statistics as if spread over
    /// the whole range); each fresh raw batch. For a search about the level alone (or
    /// `*`), the newest and the oldest [`EDGE_GROUPS`] row groups, where windows start,
    /// are cut finer, with the rows that match counted exactly from their rollups: a
    /// window then reads a few seconds of them, the pages the `time_ns` page index keeps,
    /// rather than whole row groups.
    pub async fn chunks(&self, search: Option<&Search>) -> Result<Vec<Chunk>, QueryError> {
        let indexes = self.read_indexes().await?;
        let pruning = self.pruning.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let (from, to) = self.dates();
        let mut chunks = self.fresh_chunks.clone();
        let mut rolled: Vec<(Chunk, &FileIndex, usize)> = Vec::new();
        for (file, index) in self.files.iter().zip(&indexes) {
            if file.date.as_str() < from.as_str() || file.date.as_str() > to.as_str() {
                continue;
            }
            let groups = index.as_deref().filter(|i| i.data_size == file.size && i.levels.is_some());
            if let Some(index) = groups {
                for (g, group) in index.row_groups.iter().enumerate() {
                    let read = pruning.as_ref().is_none_or(|p| p.reads(&file.path, g));
                    if let (true, Some(first), Some(last)) = (read, group.rollup.first(), group.rollup.last()) {
                        let end = last.second.saturating_add(i64::from(index.unit_seconds));
                        let (min_ns, max_ns) = (first.second.saturating_mul(SECOND), end.saturating_mul(SECOND));
                        let chunk = Chunk { min_ns, max_ns: max_ns.saturating_sub(1), rows: u64::from(group.rows) };
                        rolled.push((chunk, index, g));
                    }
                }
                continue;
            }
            chunks.push(match (file.time, file.rows) {
                (Some((min_ns, max_ns)), Some(rows)) => Chunk { min_ns, max_ns, rows },
                _ => Chunk {
                    min_ns: self.range.0,
                    max_ns: self.range.1.saturating_sub(1),
                    rows: file.rows.unwrap_or(1 << 20),
                },
            });
        }
        // Only the row groups in the range have edges that matter (the others hold no rows
        // of it).
        let (from_ns, to_ns) = self.range;
        rolled.retain(|(c, _, _)| c.max_ns >= from_ns && c.min_ns < to_ns);
        let Some(search) = search.filter(|s| rollup::on_level(s, None).is_some()) else {
            chunks.extend(rolled.into_iter().map(|(c, _, _)| c));
            return Ok(chunks);
        };
        // The edges in time: the newest by their end, then the oldest of the others by
        // their start.
        rolled.sort_unstable_by_key(|(c, _, _)| c.max_ns);
        let newest = rolled.split_off(rolled.len().saturating_sub(EDGE_GROUPS));
        rolled.sort_unstable_by_key(|(c, _, _)| c.min_ns);
        let rest = rolled.split_off(EDGE_GROUPS.min(rolled.len()));
        for (_, index, g) in newest.into_iter().chain(rolled) {
            chunks.extend(fine_chunks(search, index, g));
        }
        chunks.extend(rest.into_iter().map(|(c, _, _)| c));
        Ok(chunks)
    }

    /// The token index of each data file in the range (read once, then cached).
    async fn read_indexes(&self) -> Result<Vec<Option<Arc<FileIndex>>>, QueryError> {
        let (from, to) = self.dates();
        let mut reads = Vec::new();
        for file in self.files.iter() {
            let in_range = file.date.as_str() >= from.as_str() && file.date.as_str() <= to.as_str();
            let key = format!("{}/{}", self.table_prefix, index::index_path(&file.path));
            let (store, indexes) = (self.store.clone(), self.indexes.clone());
            reads.push(async move {
                if !in_range {
                    return Ok(None);
                }
                if let Some(cached) = indexes.get(&key) {
                    return Ok(cached);
                }
                let index = match store.get(&Path::parse(&key).map_err(LakeError::from)?).await {
                    Ok(got) => FileIndex::decode(&got.bytes().await?).ok().map(Arc::new),
                    Err(object_store::Error::NotFound { .. }) => None,
                    Err(e) => return Err(QueryError::from(e)),
                };
                indexes.insert(key, index.clone());
                Ok::<_, QueryError>(index)
            });
        }
        futures::stream::iter(reads).buffered(16).try_collect().await
    }
}

/// A logstore's raw batches and table: the view taken less than `listing_for` ago, or a
/// new one (its table updated with the commits since, or opened).
async fn view(shared: &Shared, project: &str, logstore: &str) -> Result<View, QueryError> {
    let key = table_prefix(project, logstore);
    let cached = shared.cache.views.lock().unwrap_or_else(|e| e.into_inner()).get(&key).cloned();
    if let Some(view) = cached.as_ref().filter(|v| v.taken.elapsed() < shared.listing_for) {
        return Ok(view.clone());
    }
    let taken = Instant::now();
    let pending = Arc::new(raw::list(shared.storage.store.as_ref(), project, logstore).await?);
    let table = match cached.and_then(|v| v.table) {
        Some(mut table) => {
            table.update_state().await?;
            Some(table)
        }
        None => table::open(&shared.storage, project, logstore).await?,
    };
    let view = View { taken, pending, table };
    shared.cache.views.lock().unwrap_or_else(|e| e.into_inner()).insert(key, view.clone());
    Ok(view)
}

/// The data files of a table version, with their partition (listed once per version).
async fn data_files(cache: &Cache, delta: &deltalake::DeltaTable) -> Result<Arc<Vec<DataFile>>, QueryError> {
    let (key, version) = (delta.table_url().to_string(), delta.version().unwrap_or(0));
    if let Some((v, files)) = cache.files.lock().unwrap_or_else(|e| e.into_inner()).get(&key)
        && *v == version
    {
        return Ok(files.clone());
    }
    let mut files = Vec::new();
    let mut views = delta.snapshot()?.snapshot().file_views(delta.log_store().as_ref(), None);
    while let Some(view) = views.next().await {
        let view = view?;
        let Some(Some(date)) = view.partition_values_map().get(schema::DATE).cloned() else { continue };
        let time = time_stat(view.min_values()).zip(time_stat(view.max_values()));
        let rows = view.num_records().map(|n| n as u64);
        files.push(DataFile { path: view.path().to_string(), size: view.size() as u64, date, time, rows });
    }
    let files = Arc::new(files);
    cache.files.lock().unwrap_or_else(|e| e.into_inner()).insert(key, (version, files.clone()));
    Ok(files)
}

/// The `time_ns` of a file's minimum or maximum values.
fn time_stat(values: Option<delta_kernel::expressions::Scalar>) -> Option<i64> {
    let Some(delta_kernel::expressions::Scalar::Struct(values)) = values else { return None };
    let (_, value) = values.fields().iter().zip(values.values()).find(|(f, _)| f.name() == schema::TIME_NS)?;
    match value {
        delta_kernel::expressions::Scalar::Long(ns) => Some(*ns),
        _ => None,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::{self, CompactOptions, Quiet};
    use crate::conformance::{shared, store};
    use crate::lake::rows::{int_at, text_at};
    use crate::lake::schema::USER_ID;
    use crate::query::sls::{self, Page, Range};
    use crate::query::syntax;
    use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
    use sluice_proto::sls::{Content, Log, LogGroup};

    const SECOND: i64 = 1_000_000_000;

    /// `(user_id, count)` of an SQL answer.
    fn counts(logs: &sls::Logs) -> Vec<(String, i64)> {
        logs.batches
            .iter()
            .flat_map(|b| {
                (0..b.num_rows()).map(move |r| {
                    (text_at(b.column_by_name(USER_ID).unwrap().as_ref(), r).unwrap(), int_at(b, "c", r).unwrap())
                })
            })
            .collect()
    }

    /// 60 logs a second apart from the start of yesterday (UTC) in logstore `ids`, one in
    /// four an error, and the range that holds them.
    async fn store_logs(storage: &Storage) -> (i64, Range) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        let start_s = (i64::try_from(now.as_secs()).unwrap() / 86_400 - 1) * 86_400;
        let logs = (0..60)
            .map(|i| {
                let content = |key: &str, value: String| Content { key: key.into(), value: value.into_bytes() };
                let level = if i % 4 == 0 { "ERROR" } else { "info" };
                Log {
                    time: u32::try_from(start_s + i).unwrap(),
                    contents: vec![
                        content("message", format!("m {i}")),
                        content("level", level.into()),
                        content(USER_ID, format!("u{}", i % 3)),
                    ],
                    time_ns: None,
                    values: vec![],
                }
            })
            .collect();
        store(storage, "ids", &LogGroup { logs, topic: Some("t".into()), ..LogGroup::default() }).await.unwrap();
        (start_s, Range { from_ns: start_s * SECOND, to_ns: (start_s + 3600) * SECOND })
    }

    /// The footers a search caches hold the files' page indexes: DataFusion asks for the
    /// footer alone and loads the page index apart, which would be fetched and parsed
    /// again by every query.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cached_footers_keep_their_page_indexes() {
        let storage = crate::lake::store::open("memory://", &Default::default()).unwrap();
        let (start_s, range) = store_logs(&storage).await;
        let options = CompactOptions { min_bytes_per_writer: 1, ..CompactOptions::default() };
        compact::compact_all(&storage, &options, &Quiet, (start_s + 3600) * SECOND).await.unwrap();
        let shared = shared(&storage);
        let query = syntax::parse("level: error").unwrap();
        for _ in 0..2 {
            let reading = Reading {
                project: "suite",
                logstore: "ids",
                from_ns: range.from_ns,
                to_ns: range.to_ns,
                now_ns: range.to_ns,
            };
            let source = Source::open(&shared, reading).await.unwrap();
            let page = Page { line: 5, ..Page::default() };
            let logs = sls::logs(&source, range, None, &query, &page, &HashMap::new()).await.unwrap();
            assert_eq!(logs.batches.iter().map(RecordBatch::num_rows).sum::<usize>(), 5);
        }
        let footers = shared.cache.footers.0.list_entries();
        assert!(!footers.is_empty(), "the search read a data file");
        for (path, entry) in footers {
            let cached = entry.value.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>().unwrap();
            let parquet = cached.parquet_metadata();
            assert!(parquet.column_index().is_some() && parquet.offset_index().is_some(), "{path}");
        }
    }

    /// SLS logs keep `user_id` among their fields, and `level` in its column. Once a
    /// query has read the files' footers, SQL reads `user_id` from the field alone (the
    /// column holds nothing), and `level: error` matches the level's dictionary, each of
    /// its values once: the answers are the same as before, fresh or compacted.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_name_no_column_holds_is_read_from_the_field_alone() {
        let storage = crate::lake::store::open("memory://", &Default::default()).unwrap();
        let (start_s, range) = store_logs(&storage).await;
        let shared = shared(&storage);
        let query =
            syntax::parse("level: error | select user_id, count(*) as c group by user_id order by user_id").unwrap();
        let expected: Vec<(String, i64)> = vec![("u0".into(), 5), ("u1".into(), 5), ("u2".into(), 5)];
        /// Whether SQL reads `user_id` from the field alone, and the answer.
        async fn answer(shared: &Shared, query: &syntax::Query, range: Range) -> (bool, Vec<(String, i64)>) {
            let (from_ns, to_ns) = (range.from_ns, range.to_ns);
            let reading = Reading { project: "suite", logstore: "ids", from_ns, to_ns, now_ns: to_ns };
            let source = Source::open(shared, reading).await.unwrap();
            let field_alone = source.shared_column(USER_ID).unwrap() == source.functions.field(USER_ID);
            let logs = sls::logs(&source, range, None, query, &Page::default(), &HashMap::new()).await.unwrap();
            (field_alone, counts(&logs))
        }
        assert_eq!(
            answer(&shared, &query, range).await,
            (true, expected.clone()),
            "fresh: no table, no log with the column"
        );

        let options = CompactOptions { min_bytes_per_writer: 1, ..CompactOptions::default() };
        compact::compact_all(&storage, &options, &Quiet, (start_s + 3600) * SECOND).await.unwrap();
        assert_eq!(
            answer(&shared, &query, range).await,
            (false, expected.clone()),
            "no footer read yet: the column, else the field"
        );
        assert_eq!(
            answer(&shared, &query, range).await,
            (true, expected),
            "the footers say the column is null throughout"
        );
    }
}
