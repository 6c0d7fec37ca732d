//! A table version's data files as one DataFusion table: a Parquet scan of exactly the
//! files the Delta log lists (read once per version, see [`super::source`]), each with
//! its `date` partition from the log.
//!
//! It does per query only what the query needs:
//!
//! - Bounds on `time_ns` and on `date` (compared with literals) are taken whole
//!   ([`TableProviderFilterPushDown::Exact`]): files outside them are not opened (Delta
//!   statistics, partition values), files wholly inside them are read without
//!   evaluating the bounds per row, and only the files they cut (or that have no
//!   statistics) filter by time, with Parquet statistics and page indexes first.
//! - The row groups a [`Pruning`] skips (token index, rollups) are not read, and of the
//!   row groups it reads in part, only the slices it keeps: a row selection, whose rows
//!   the page index turns into the pages to fetch and decode.
//! - Parquet footers and page indexes come from a cache shared by every query: data files
//!   never change (each has a unique name), so an entry never goes stale.
//!
//! Files whose schema is older than the table's (fewer frequent fields) are read with
//! DataFusion's schema adaptation: what a file lacks is null.
//!
//! Columns of few values (the catalogue's `few`: level, topic, source) are read as Parquet
//! keeps them, dictionaries, and cast to the table's string views for what the scan
//! returns; a text match on one in a search ([`MatchDictionaries`]) gets the dictionary
//! itself, and matches each of its values once (`level: error` over 100M logs then
//! decodes keys and looks each up, rather than building a view per row and matching it).

use bytes::Bytes;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Fields, Schema, SchemaRef};
use datafusion::catalog::Session;
use datafusion::common::config::{ConfigOptions, TableParquetOptions};
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{DFSchema, DataFusionError, Result, ScalarValue};
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::datasource::physical_plan::parquet::{
    CachedParquetFileReaderFactory, ParquetAccessPlan, ParquetFileReaderFactory,
};
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, FileSource, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::table_schema::TableSchema;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::{BinaryExpr, Expr, Operator, ScalarUDF, TableProviderFilterPushDown, col, lit};
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::{PageIndexPolicy, ParquetMetaData};
use datafusion::physical_expr::expressions::{CastExpr, Column, Literal};
use datafusion::physical_expr::projection::{ProjectionExpr, ProjectionExprs};
use datafusion::physical_expr::utils::collect_columns;
use datafusion::physical_expr::{PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExecBuilder;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::union::UnionExec;
use futures::future::BoxFuture;
use object_store::ObjectMeta;
use object_store::path::Path;
use std::sync::Arc;

use super::prune::{Pruning, Read};
use super::udf;
use crate::lake::schema::{DATE, FREQUENT, Kind, Layout, Search, TIME_NS, column_named};

/// Readers whose footers come with the page index, so that the cache keeps both.
/// DataFusion's opener asks for the footer alone and loads the page index afterwards,
/// when its pruning wants it, without caching it: every query that read a file would
/// fetch and parse the file's page index again (4% of a trace id lookup).
#[derive(Debug)]
struct WithPageIndex(CachedParquetFileReaderFactory);

impl ParquetFileReaderFactory for WithPageIndex {
    fn create_reader(
        &self,
        partition_index: usize,
        file: PartitionedFile,
        metadata_size_hint: Option<usize>,
        metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        Ok(Box::new(PageIndexed(self.0.create_reader(partition_index, file, metadata_size_hint, metrics)?)))
    }
}

struct PageIndexed(Box<dyn AsyncFileReader + Send>);

impl AsyncFileReader for PageIndexed {
    fn get_bytes(&mut self, range: std::ops::Range<u64>) -> BoxFuture<'_, ParquetResult<Bytes>> {
        self.0.get_bytes(range)
    }

    fn get_byte_ranges(&mut self, ranges: Vec<std::ops::Range<u64>>) -> BoxFuture<'_, ParquetResult<Vec<Bytes>>> {
        self.0.get_byte_ranges(ranges)
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, ParquetResult<Arc<ParquetMetaData>>> {
        let options = options.cloned().unwrap_or_default().with_page_index_policy(PageIndexPolicy::Optional);
        Box::pin(async move { self.0.get_metadata(Some(&options)).await })
    }
}

/// A data file of the table version a query reads.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// As the Delta log names it, relative to the table.
    pub path: String,
    pub size: u64,
    pub date: String,
    /// Its rows' first and last time, and how many, from the Delta statistics.
    pub time: Option<(i64, i64)>,
    pub rows: Option<u64>,
}

/// The partition column's type, as DataFusion gives partition values.
pub fn date_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8))
}

/// The partition column, as queries see it.
fn date_field() -> FieldRef {
    Arc::new(Field::new(DATE, date_type(), false))
}

/// The table as queries see it: the Delta schema, `date` dictionary-encoded, and the
/// text columns written dictionary-encoded (level, topic, ...), the ids compared for
/// equality (trace and span ids) and the frequent fields (`frequent.*`, grouped by and
/// compared) as string views: read so, a row's value points into its page (or its page's
/// dictionary) instead of being copied, and the query functions evaluate each distinct
/// value once (see [`super::udf`]). Messages stay contiguous strings, which full-text
/// search scans a whole buffer at a time.
pub fn table_schema(delta: &Schema) -> SchemaRef {
    let fields: Vec<FieldRef> = delta
        .fields()
        .iter()
        .map(|f| {
            let column = column_named(f.name());
            if f.name() == DATE {
                date_field()
            } else if let (FREQUENT, DataType::Struct(children)) = (f.name().as_str(), f.data_type()) {
                let views: Fields = children
                    .iter()
                    .map(|c| match c.data_type() {
                        DataType::Utf8 => Arc::new(c.as_ref().clone().with_data_type(DataType::Utf8View)),
                        _ => c.clone(),
                    })
                    .collect();
                Arc::new(f.as_ref().clone().with_data_type(DataType::Struct(views)))
            } else if f.data_type() == &DataType::Utf8
                && column.is_some_and(|c| {
                    c.kind == Kind::Text && (c.layout == Layout::Dictionary || c.search == Search::Exact)
                })
            {
                Arc::new(f.as_ref().clone().with_data_type(DataType::Utf8View))
            } else {
                f.clone()
            }
        })
        .collect();
    Arc::new(Schema::new(fields))
}

/// A file's field as the table reads it: strings as views where the table's field of that
/// name is (at any depth of a struct).
fn as_read(field: &FieldRef, table: &DataType) -> FieldRef {
    let data_type = match (field.data_type(), table) {
        (DataType::Utf8, DataType::Utf8View) => DataType::Utf8View,
        (DataType::Struct(children), DataType::Struct(table_children)) => DataType::Struct(
            children
                .iter()
                .map(|c| match table_children.find(c.name()) {
                    Some((_, t)) => as_read(c, t.data_type()),
                    None => c.clone(),
                })
                .collect(),
        ),
        _ => return field.clone(),
    };
    Arc::new(field.as_ref().clone().with_data_type(data_type))
}

/// How a data file's column of few values is read: as the file keeps it.
fn few_type() -> DataType {
    DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
}

/// DataFusion's adaptation of a scan's expressions to each file (casts to the table's
/// types, nulls for what the file lacks), except for the columns a file is read as
/// dictionaries of: a text match gets the dictionary itself, and elsewhere the views cast
/// from it share its bytes ([`udf::views`]).
#[derive(Debug)]
struct MatchDictionaries;

impl PhysicalExprAdapterFactory for MatchDictionaries {
    fn create(&self, logical: SchemaRef, physical: SchemaRef) -> Result<Arc<dyn PhysicalExprAdapter>> {
        let adapter = DefaultPhysicalExprAdapterFactory.create(logical, physical.clone())?;
        Ok(Arc::new(DictionaryAdapter { adapter, physical, views: udf::views(), options: Arc::default() }))
    }
}

#[derive(Debug)]
struct DictionaryAdapter {
    adapter: Arc<dyn PhysicalExprAdapter>,
    physical: SchemaRef,
    views: Arc<ScalarUDF>,
    options: Arc<ConfigOptions>,
}

impl DictionaryAdapter {
    /// The dictionary column a cast to views reads, and the cast, if it is one.
    fn uncast<'a>(&self, expr: &'a Arc<dyn PhysicalExpr>) -> Option<(&'a Arc<dyn PhysicalExpr>, &'a CastExpr)> {
        let cast = expr.downcast_ref::<CastExpr>().filter(|c| c.cast_type() == &DataType::Utf8View)?;
        let column = cast.expr().downcast_ref::<Column>()?;
        let read = self.physical.fields().get(column.index())?;
        let dictionary = read.name() == column.name() && matches!(read.data_type(), DataType::Dictionary(..));
        dictionary.then_some((cast.expr(), cast))
    }
}

impl PhysicalExprAdapter for DictionaryAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        self.adapter
            .rewrite(expr)?
            .transform_down(|e| {
                if let Some((column, cast)) = self.uncast(&e) {
                    let views = ScalarFunctionExpr::new(
                        self.views.name(),
                        self.views.clone(),
                        vec![column.clone()],
                        cast.target_field().clone(),
                        self.options.clone(),
                    );
                    return Ok(Transformed::yes(Arc::new(views) as Arc<dyn PhysicalExpr>));
                }
                let Some(text) = e.downcast_ref::<ScalarFunctionExpr>().filter(|f| f.name() == udf::TEXT) else {
                    return Ok(Transformed::no(e));
                };
                let Some((column, _)) = text.args().first().and_then(|a| self.uncast(a)) else {
                    return Ok(Transformed::no(e));
                };
                let mut args = text.args().to_vec();
                args[0] = column.clone();
                Ok(Transformed::yes(e.clone().with_new_children(args)?))
            })
            .map(|t| t.data)
    }
}

/// A Parquet scan read for a count by one value ([`super::count`]), and that value and
/// the scan's filter over its rows.
#[derive(Debug)]
pub struct ForCount {
    pub scan: Arc<dyn ExecutionPlan>,
    pub value: Arc<dyn PhysicalExpr>,
    pub filter: Option<Arc<dyn PhysicalExpr>>,
}

/// Rows per batch of a scan read for a count: its rows are keys (4 bytes each), and
/// batches four times the default's took top users of errors over 100M logs from 396 to
/// 373 ms (back to back), less spent per batch.
const COUNT_BATCH_ROWS: usize = 32 * 1024;

/// The value a count reads as a dictionary: a column of few values, or a frequent field.
enum Counted {
    Column(usize),
    Frequent(usize, String),
}

impl Counted {
    fn of(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        if let Some(column) = expr.downcast_ref::<Column>() {
            return column_named(column.name()).filter(|c| c.few).map(|_| Self::Column(column.index()));
        }
        let get = expr.downcast_ref::<ScalarFunctionExpr>().filter(|f| f.name() == "get_field")?;
        let [parent, key] = get.args() else { return None };
        let parent = parent.downcast_ref::<Column>().filter(|c| c.name() == FREQUENT)?;
        let key = key.downcast_ref::<Literal>()?.value().try_as_str().flatten()?;
        Some(Self::Frequent(parent.index(), key.to_owned()))
    }

    /// `field` (of a file or of the table), with the counted value read as a dictionary.
    fn keyed(&self, index: usize, field: &FieldRef) -> FieldRef {
        let data_type = match (self, field.data_type()) {
            (Self::Column(i), _) if *i == index => few_type(),
            (Self::Frequent(i, key), DataType::Struct(children)) if *i == index => DataType::Struct(
                children
                    .iter()
                    .map(|c| {
                        if c.name() == key {
                            Arc::new(c.as_ref().clone().with_data_type(few_type()))
                        } else {
                            c.clone()
                        }
                    })
                    .collect(),
            ),
            _ => return field.clone(),
        };
        Arc::new(field.as_ref().clone().with_data_type(data_type))
    }
}

/// The columns a predicate reads only as the text match's subject: a column of few
/// values read so can be a dictionary ([`udf::match_dictionary`]).
fn matched_only(predicate: &Arc<dyn PhysicalExpr>) -> Vec<usize> {
    let (mut all, mut matched) = (Vec::new(), Vec::new());
    let _ = predicate.apply(|e| {
        if let Some(c) = e.downcast_ref::<Column>() {
            all.push(c.index());
        }
        if let Some(text) = e.downcast_ref::<ScalarFunctionExpr>().filter(|f| f.name() == udf::TEXT)
            && let Some(c) = text.args().first().and_then(|a| a.downcast_ref::<Column>())
        {
            matched.push(c.index());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let times = |list: &[usize], i: usize| list.iter().filter(|a| **a == i).count();
    matched.iter().copied().filter(|&i| times(&all, i) == times(&matched, i)).collect()
}

/// The scan a count by one value (`select v, count(*) ... group by v`) reads instead of
/// `scan`, when `scan` reads this table's Parquet files and `value` (of its rows) is a
/// column of few values or a frequent field: the value read as Parquet keeps it, a
/// dictionary (every row's key, no string built), with the columns of the scan's filter,
/// of few values as dictionaries too where the filter only text-matches them, and the
/// filter left to the count. Pushed into the scan, the filter's answer would select the
/// rows to decode, and for a filter that keeps rows scattered through every page (`level:
/// error`: one in twenty) choosing them costs more than decoding every key.
pub fn for_count(scan: &Arc<dyn ExecutionPlan>, value: &Arc<dyn PhysicalExpr>) -> Result<Option<ForCount>> {
    let Some((config, parquet)) =
        scan.downcast_ref::<DataSourceExec>().and_then(|s| s.downcast_to_file_source::<ParquetSource>())
    else {
        return Ok(None);
    };
    let Some(projected) = value
        .downcast_ref::<Column>()
        .and_then(|c| parquet.projection().and_then(|p| p.iter().nth(c.index())))
        .cloned()
    else {
        return Ok(None);
    };
    let Some(counted) = Counted::of(&projected.expr) else { return Ok(None) };
    let table = parquet.table_schema();
    let predicate = parquet.filter();
    let mut read: Vec<Column> =
        predicate.as_ref().map(|p| collect_columns(p).into_iter().collect()).unwrap_or_default();
    read.sort_by_key(Column::index);
    // A filter on the counted value itself reads it as the table's type.
    let counted_index = match &counted {
        Counted::Column(i) | Counted::Frequent(i, _) => *i,
    };
    if read.iter().any(|c| c.index() == counted_index) {
        return Ok(None);
    }
    let matched = predicate.as_ref().map(matched_only).unwrap_or_default();
    let file_fields = table.file_schema().fields();
    let few = |i: usize| file_fields.get(i).is_some_and(|f| column_named(f.name()).is_some_and(|c| c.few));
    let keyed: Vec<FieldRef> = file_fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if matched.contains(&i) && few(i) {
                Arc::new(f.as_ref().clone().with_data_type(few_type()))
            } else {
                counted.keyed(i, f)
            }
        })
        .collect();
    let keyed_table = TableSchema::builder(Arc::new(Schema::new(keyed)))
        .with_table_partition_cols(table.table_partition_cols().clone())
        .build();
    let full = keyed_table.table_schema().clone();

    // What the scan returns: the value, then each column the filter reads.
    let value = match &counted {
        Counted::Column(_) => projected.expr.clone(),
        Counted::Frequent(..) => {
            let get = projected
                .expr
                .downcast_ref::<ScalarFunctionExpr>()
                .ok_or_else(|| DataFusionError::Internal("a frequent field is read with get_field".into()))?;
            Arc::new(ScalarFunctionExpr::try_new(
                Arc::new(get.fun().clone()),
                get.args().to_vec(),
                &full,
                Arc::new(get.config_options().clone()),
            )?) as Arc<dyn PhysicalExpr>
        }
    };
    let mut outputs = vec![ProjectionExpr::new(value, projected.alias.clone())];
    let mut filter = None;
    if let Some(predicate) = &predicate {
        let on_output = predicate.clone().transform(|e| {
            let Some(c) = e.downcast_ref::<Column>() else { return Ok(Transformed::no(e)) };
            let at = read.iter().position(|r| r == c).ok_or_else(|| {
                DataFusionError::Internal(format!("the count's filter reads {c}, which the scan does not return"))
            })? + 1;
            Ok(Transformed::yes(Arc::new(Column::new(c.name(), at)) as Arc<dyn PhysicalExpr>))
        })?;
        filter = Some(on_output.data);
        outputs.extend(
            read.iter().map(|c| ProjectionExpr::new(Arc::new(c.clone()), format!("{}_{}", c.name(), c.index()))),
        );
    }

    let mut options = parquet.table_parquet_options().clone();
    options.global.pushdown_filters = false;
    let mut source = ParquetSource::new(keyed_table).with_table_parquet_options(options);
    if let Some(factory) = parquet.parquet_file_reader_factory() {
        source = source.with_parquet_file_reader_factory(factory.clone());
    }
    if let Some(predicate) = &predicate {
        // For row groups and pages to skip (time bounds), not for rows.
        source = source.with_predicate(predicate.clone());
    }
    let Some(source) = source.try_pushdown_projection(&ProjectionExprs::new(outputs))? else { return Ok(None) };
    let files = config.file_groups.iter().map(|group| {
        let files = group.iter().map(|file| {
            let mut file = file.clone();
            file.arrow_schema = file.arrow_schema.as_ref().map(|schema| {
                let fields: Vec<FieldRef> = schema
                    .fields()
                    .iter()
                    .map(|f| match table.file_schema().index_of(f.name()) {
                        Ok(i) => counted.keyed(i, f),
                        Err(_) => f.clone(),
                    })
                    .collect();
                Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
            });
            file
        });
        FileGroup::new(files.collect())
    });
    let config = FileScanConfigBuilder::from(config.clone())
        .with_source(source)
        .with_file_groups(files.collect())
        .with_batch_size(Some(COUNT_BATCH_ROWS))
        .build();
    let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
    Ok(Some(ForCount { scan, value: Arc::new(Column::new(&projected.alias, 0)), filter }))
}

/// A table version's data files, read as one table.
#[derive(Clone, Debug)]
pub struct TableFiles {
    /// What queries see ([`table_schema`]).
    pub schema: SchemaRef,
    /// Where the files are: the query's store, and the table's prefix in it.
    pub store_url: ObjectStoreUrl,
    pub prefix: String,
    pub files: Arc<Vec<DataFile>>,
    /// Row groups not to read, if any.
    pub pruning: Option<Arc<Pruning>>,
    pub metadata: Arc<FileMetadataCache>,
}

/// Bounds a scan's filters put on the files: `time_ns` within `[from, to]` (inclusive)
/// and `date` comparisons.
#[derive(Clone, Debug, Default)]
struct Bounds {
    from: Option<i128>,
    to: Option<i128>,
    dates: Vec<(Operator, String)>,
}

impl Bounds {
    fn of(filters: &[Expr]) -> Self {
        let mut bounds = Self::default();
        for filter in filters {
            let Some((name, op, value)) = comparison(filter) else { continue };
            match (name, value) {
                (TIME_NS, Bound::Time(ns)) => {
                    let ns = i128::from(ns);
                    let (from, to) = match op {
                        Operator::Eq => (Some(ns), Some(ns)),
                        Operator::Gt => (Some(ns + 1), None),
                        Operator::GtEq => (Some(ns), None),
                        Operator::Lt => (None, Some(ns - 1)),
                        Operator::LtEq => (None, Some(ns)),
                        _ => (None, None),
                    };
                    bounds.from = bounds.from.max(from);
                    bounds.to = match (bounds.to, to) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => a.or(b),
                    };
                }
                (DATE, Bound::Date(date)) => bounds.dates.push((op, date)),
                _ => {}
            }
        }
        bounds
    }

    fn date_admits(&self, date: &str) -> bool {
        self.dates.iter().all(|(op, bound)| match op {
            Operator::Eq => date == bound,
            Operator::Gt => date > bound.as_str(),
            Operator::GtEq => date >= bound.as_str(),
            Operator::Lt => date < bound.as_str(),
            Operator::LtEq => date <= bound.as_str(),
            _ => true,
        })
    }

    /// Whether a file's rows may lie within the time bounds, and whether all of them do.
    fn time_admits(&self, time: Option<(i64, i64)>) -> (bool, bool) {
        let from = self.from.unwrap_or(i128::MIN).max(i64::MIN.into());
        let to = self.to.unwrap_or(i128::MAX).min(i64::MAX.into());
        match time.map(|(min, max)| (i128::from(min), i128::from(max))) {
            Some((min, max)) => (max >= from && min <= to, min >= from && max <= to),
            None => (from <= to, false),
        }
    }

    /// The time bounds as a predicate, if there are any (bounds beyond an `i64` admit no
    /// file, so there is nothing to filter then).
    fn time_filter(&self) -> Option<Expr> {
        let at = |ns: i128| i64::try_from(ns).ok().map(lit);
        let from = self.from.and_then(at).map(|ns| col(TIME_NS).gt_eq(ns));
        let to = self.to.and_then(at).map(|ns| col(TIME_NS).lt_eq(ns));
        match (from, to) {
            (Some(a), Some(b)) => Some(a.and(b)),
            (a, b) => a.or(b),
        }
    }
}

/// A literal a bound compares with.
enum Bound {
    Time(i64),
    Date(String),
}

/// `column op literal` (or `literal op column`, turned around) on `time_ns` or `date`.
fn comparison(expr: &Expr) -> Option<(&'static str, Operator, Bound)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = expr else { return None };
    let (column, op, value) = match (column_of(left), column_of(right)) {
        (Some(c), None) => (c, *op, right.as_ref()),
        (None, Some(c)) => (c, op.swap()?, left.as_ref()),
        _ => return None,
    };
    if !matches!(op, Operator::Eq | Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq) {
        return None;
    }
    let Expr::Literal(value, _) = value else { return None };
    let value = match value {
        ScalarValue::Dictionary(_, inner) => inner.as_ref(),
        other => other,
    };
    match (column, value) {
        (TIME_NS, ScalarValue::Int64(Some(ns))) => Some((TIME_NS, op, Bound::Time(*ns))),
        (DATE, ScalarValue::Utf8(Some(d)) | ScalarValue::LargeUtf8(Some(d)) | ScalarValue::Utf8View(Some(d))) => {
            Some((DATE, op, Bound::Date(d.clone())))
        }
        _ => None,
    }
}

/// The bounded column an expression is, if it is one.
fn column_of(expr: &Expr) -> Option<&'static str> {
    match expr {
        Expr::Column(c) if c.name == TIME_NS => Some(TIME_NS),
        Expr::Column(c) if c.name == DATE => Some(DATE),
        _ => None,
    }
}

impl TableFiles {
    /// The files' schema: the table's without `date`, which the log gives.
    fn file_schema(&self) -> SchemaRef {
        let fields: Vec<FieldRef> = self.schema.fields().iter().filter(|f| f.name() != DATE).cloned().collect();
        Arc::new(Schema::new(fields))
    }

    /// A scan's column indexes (of [`Self::schema`]) as the Parquet source numbers them:
    /// the file's columns, then `date`.
    fn source_indexes(&self, projection: &[usize]) -> Vec<usize> {
        let date = self.schema.index_of(DATE).ok();
        let files = self.schema.fields().len() - usize::from(date.is_some());
        projection
            .iter()
            .map(|&i| match date {
                Some(d) if i == d => files,
                Some(d) if i > d => i - 1,
                _ => i,
            })
            .collect()
    }

    /// One scan of `files` reading `projection` (indexes of [`Self::schema`]); with a
    /// time filter, the rows outside it are dropped.
    fn scan_files(
        &self,
        state: &dyn Session,
        files: Vec<PartitionedFile>,
        projection: &[usize],
        time_filter: Option<&Expr>,
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let store = state.runtime_env().object_store(&self.store_url)?;
        let table_schema =
            TableSchema::builder(self.file_schema()).with_table_partition_cols(vec![date_field()]).build();
        let full_schema = table_schema.table_schema().clone();
        let mut source = ParquetSource::new(table_schema)
            .with_table_parquet_options(TableParquetOptions {
                global: state.config_options().execution.parquet.clone(),
                ..Default::default()
            })
            .with_parquet_file_reader_factory(Arc::new(WithPageIndex(CachedParquetFileReaderFactory::new(
                store,
                self.metadata.clone(),
            ))));
        let mut read: Vec<usize> = projection.to_vec();
        let time = self.schema.index_of(TIME_NS)?;
        if let Some(filter) = time_filter {
            let on_table = DFSchema::try_from(full_schema.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(filter.clone(), &on_table)?);
            if !read.contains(&time) {
                read.push(time);
            }
        }
        let config = FileScanConfigBuilder::new(self.store_url.clone(), Arc::new(source))
            .with_expr_adapter(Some(Arc::new(MatchDictionaries)))
            .with_file_group(FileGroup::new(files))
            .with_projection_indices(Some(self.source_indexes(&read)))?
            .with_limit(if time_filter.is_some() { None } else { limit })
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let Some(filter) = time_filter else { return Ok(scan) };
        let read_schema = DFSchema::try_from(scan.schema().as_ref().clone())?;
        // Drop the time column again only if it was added for the filter: a projection
        // would stay behind as its own plan node once the filter is pushed into the scan.
        let kept = (read.len() > projection.len()).then(|| (0..projection.len()).collect());
        let filter = FilterExecBuilder::new(state.create_physical_expr(filter.clone(), &read_schema)?, scan)
            .apply_projection(kept)?
            .build()?;
        Ok(Arc::new(filter))
    }

    /// Where a data file is in the store.
    fn location(&self, file: &DataFile) -> Result<Path, object_store::path::Error> {
        Path::from_url_path(format!("{}/{}", self.prefix, file.path))
    }

    /// A data file's footer, if a query has read (and cached) it.
    fn footer(&self, location: &Path) -> Option<Arc<ParquetMetaData>> {
        let entry = self.metadata.get(location)?;
        Some(entry.file_metadata.as_any().downcast_ref::<CachedParquetMetaData>()?.parquet_metadata().clone())
    }

    /// How a data file's columns are read: the file's own schema (from its footer), with
    /// the columns of few values as dictionaries ([`few_type`]) and other strings as
    /// views wherever the table reads views ([`table_schema`]), inside `frequent` too:
    /// DataFusion's coercion does top-level columns only, and would read the struct's
    /// strings into new buffers, then cast them. `None` when no query has read the footer
    /// yet (the file is then read that way).
    fn read_schema(&self, location: &Path) -> Option<SchemaRef> {
        let parquet = self.footer(location)?;
        let file = parquet.file_metadata();
        let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata()).ok()?;
        let fields: Vec<FieldRef> = schema
            .fields()
            .iter()
            .map(|f| match self.schema.field_with_name(f.name()) {
                Ok(_) if f.data_type() == &DataType::Utf8 && column_named(f.name()).is_some_and(|c| c.few) => {
                    Arc::new(f.as_ref().clone().with_data_type(few_type()))
                }
                Ok(table) => as_read(f, table.data_type()),
                Err(_) => f.clone(),
            })
            .collect();
        Some(Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone())))
    }

    /// Whether a top-level column may hold a value in some file of the `date` partitions
    /// from `first` to `last`: `false` only when every such file's footer is known (a
    /// query read it) and says the column is null in every row group, or that the file has
    /// no such column.
    pub fn may_hold(&self, column: &str, first: &str, last: &str) -> bool {
        let in_range = |f: &&DataFile| f.date.as_str() >= first && f.date.as_str() <= last;
        self.files.iter().filter(in_range).any(|file| {
            let Some(parquet) = self.location(file).ok().and_then(|location| self.footer(&location)) else {
                return true;
            };
            let columns = parquet.file_metadata().schema_descr();
            let Some(i) = columns.columns().iter().position(|c| c.path().parts() == [column]) else { return false };
            parquet.row_groups().iter().any(|group| {
                let nulls = group.column(i).statistics().and_then(|s| s.null_count_opt());
                nulls != u64::try_from(group.num_rows()).ok()
            })
        })
    }

    /// A data file as the Parquet source reads it, with the row groups to read; `None`
    /// when none is. A path the store cannot name fails the query rather than dropping the
    /// file's rows.
    fn partitioned(&self, file: &DataFile) -> Result<Option<PartitionedFile>> {
        let location =
            self.location(file).map_err(|e| DataFusionError::Execution(format!("data file {}: {e}", file.path)))?;
        let meta = ObjectMeta {
            location,
            size: file.size,
            last_modified: chrono::DateTime::UNIX_EPOCH,
            e_tag: None,
            version: None,
        };
        let read = self.pruning.as_ref().and_then(|p| p.kept(&file.path));
        if read.is_some_and(|read| read.iter().all(|r| *r == Read::Nothing)) {
            return Ok(None);
        }
        // Only for files that are read: a search may skip most of the table.
        let read_schema = self.read_schema(&meta.location);
        let mut partitioned = PartitionedFile::from(meta);
        if let Some(schema) = read_schema {
            partitioned = partitioned.with_arrow_schema(schema);
        }
        partitioned.partition_values =
            vec![ScalarValue::Dictionary(Box::new(DataType::UInt16), Box::new(ScalarValue::from(file.date.as_str())))];
        let Some(read) = read.filter(|read| read.iter().any(|r| *r != Read::All)) else { return Ok(Some(partitioned)) };
        let mut plan = ParquetAccessPlan::new_all(read.len());
        for (i, r) in read.iter().enumerate() {
            match r {
                Read::All => {}
                Read::Nothing => plan.skip(i),
                Read::Slices(slices) => {
                    let selectors = slices.iter().map(|&(rows, read)| {
                        if read { RowSelector::select(rows as usize) } else { RowSelector::skip(rows as usize) }
                    });
                    plan.scan_selection(i, RowSelection::from_iter(selectors));
                }
            }
        }
        Ok(Some(partitioned.with_extension(plan)))
    }
}

#[async_trait::async_trait]
impl TableProvider for TableFiles {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(&self, filters: &[&Expr]) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(filters
            .iter()
            .map(|f| match comparison(f) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let projection: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        let bounds = Bounds::of(filters);
        let (mut inside, mut cut) = (Vec::new(), Vec::new());
        for file in self.files.iter().filter(|f| bounds.date_admits(&f.date)) {
            let (admitted, wholly) = bounds.time_admits(file.time);
            if !admitted {
                continue;
            }
            let Some(partitioned) = self.partitioned(file)? else { continue };
            if wholly { inside.push(partitioned) } else { cut.push(partitioned) }
        }
        let time_filter = bounds.time_filter();
        let mut scans = Vec::new();
        if !inside.is_empty() {
            scans.push(self.scan_files(state, inside, &projection, None, limit)?);
        }
        if !cut.is_empty() {
            scans.push(self.scan_files(state, cut, &projection, time_filter.as_ref(), limit)?);
        }
        if scans.is_empty() {
            return Ok(Arc::new(EmptyExec::new(Arc::new(self.schema.project(&projection)?))));
        }
        UnionExec::try_new(scans)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_take_time_and_date_comparisons_either_way_round() {
        let filters = vec![
            col(TIME_NS).gt_eq(lit(10i64)),
            lit(20i64).gt(col(TIME_NS)),
            col(DATE).gt_eq(lit("2025-01-01")),
            col("level").eq(lit("x")),
        ];
        let bounds = Bounds::of(&filters);
        assert_eq!((bounds.from, bounds.to), (Some(10), Some(19)));
        assert!(bounds.date_admits("2025-01-02") && !bounds.date_admits("2024-12-31"));
        assert_eq!(bounds.time_admits(Some((0, 9))), (false, false));
        assert_eq!(bounds.time_admits(Some((5, 12))), (true, false));
        assert_eq!(bounds.time_admits(Some((10, 19))), (true, true));
        assert_eq!(bounds.time_admits(None), (true, false));
        assert!(comparison(&filters[3]).is_none());
    }

    /// A file's column of few values, read as a dictionary: a text match on it gets the
    /// dictionary, the scan's output gets the views cast from it, and both answer as the
    /// table's string views would.
    #[test]
    fn a_text_match_reads_a_dictionary_and_the_output_its_views() {
        use datafusion::arrow::array::{Array, AsArray, DictionaryArray, Int32Array, RecordBatch, StringArray};
        use datafusion::execution::FunctionRegistry;
        use datafusion::physical_expr::expressions::Literal;
        let logical = Arc::new(Schema::new(vec![Field::new("level", DataType::Utf8View, true)]));
        let physical = Arc::new(Schema::new(vec![Field::new("level", few_type(), true)]));
        let ctx = datafusion::prelude::SessionContext::new();
        udf::register(&ctx);
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new("level", 0));
        let literal = |s: &str| Arc::new(Literal::new(ScalarValue::from(s))) as Arc<dyn PhysicalExpr>;
        let text = ScalarFunctionExpr::try_new(
            ctx.udf(udf::TEXT).unwrap(),
            vec![column.clone(), literal("error"), literal("equal")],
            &logical,
            Arc::default(),
        )
        .unwrap();
        let adapter = MatchDictionaries.create(logical, physical.clone()).unwrap();
        let matched = adapter.rewrite(Arc::new(text)).unwrap();
        let text = matched.downcast_ref::<ScalarFunctionExpr>().unwrap();
        assert!(text.args()[0].downcast_ref::<Column>().is_some(), "the match reads the dictionary: {matched}");
        let read = adapter.rewrite(column).unwrap();
        assert_eq!(read.downcast_ref::<ScalarFunctionExpr>().map(|f| f.name()), Some("sls_views"), "{read}");

        let keys = Int32Array::from(vec![Some(0), Some(1), None, Some(2), Some(1)]);
        let values = StringArray::from(vec![Some("info"), Some("ERROR"), None]);
        let dictionary = DictionaryArray::new(keys, Arc::new(values));
        let batch = RecordBatch::try_new(physical, vec![Arc::new(dictionary)]).unwrap();
        let matched = matched.evaluate(&batch).unwrap().into_array(5).unwrap();
        let matched: Vec<Option<bool>> = matched.as_boolean().iter().collect();
        assert_eq!(matched, [Some(false), Some(true), Some(false), Some(false), Some(true)]);
        let views = read.evaluate(&batch).unwrap().into_array(5).unwrap();
        assert_eq!(views.data_type(), &DataType::Utf8View);
        let views: Vec<Option<&str>> = views.as_string_view().iter().collect();
        assert_eq!(views, [Some("info"), Some("ERROR"), None, None, Some("ERROR")]);
    }

    #[test]
    fn contradictory_bounds_admit_nothing() {
        let bounds = Bounds::of(&[col(TIME_NS).gt(lit(i64::MAX)), col(TIME_NS).lt(lit(0i64))]);
        assert_eq!(bounds.time_admits(None), (false, false));
        assert_eq!(bounds.time_admits(Some((i64::MIN, i64::MAX))), (false, false));
    }
}
