//! SLS GetHistograms and GetLogs over a [`Source`].

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::execution::context::SQLOptions;
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, Operator, SortExpr, binary_expr};
use datafusion::prelude::{DataFrame, col, lit};
use sluice_ingest::layout::{partition_date, partition_floor};
use std::collections::HashMap;

use super::page;
use super::rollup::Buckets;
use super::source::Source;
use super::syntax::Query;
use super::{QueryError, session, sql};
use crate::lake::rows::{int_at, text_at};
use crate::lake::schema::{BATCH_ID, DATE, POSITION, RECEIVED_NS, SOURCE, TIME_NS, TOPIC};

/// The widths subintervals can have, in seconds: the smallest that gives at most 60 is
/// used, so the division depends only on the range.
const WIDTHS: [i64; 22] = [
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 172_800, 604_800,
    1_209_600, 2_592_000,
];
pub const MAX_SUBINTERVALS: i64 = 60;

/// The subintervals of `[from, to)`: 1 to 60 of equal width, the last one cut at `to`.
pub fn subintervals(from: i64, to: i64) -> Vec<(i64, i64)> {
    let range = (to - from).max(1);
    let width = WIDTHS
        .iter()
        .copied()
        .find(|w| (range + w - 1) / w <= MAX_SUBINTERVALS)
        .unwrap_or_else(|| (range + MAX_SUBINTERVALS - 1) / MAX_SUBINTERVALS);
    let mut out = Vec::new();
    let mut start = from;
    while start < to {
        out.push((start, (start + width).min(to)));
        start += width;
    }
    out
}

/// A time range in nanoseconds, `[from, to)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    pub from_ns: i64,
    pub to_ns: i64,
}

impl Range {
    /// `[from + from_ns_part, to + to_ns_part)` in nanoseconds, or `None` when it does not
    /// fit (nanoseconds since the epoch in an i64 reach the year 2262).
    pub fn new(from: i64, from_ns_part: i64, to: i64, to_ns_part: i64) -> Option<Self> {
        let ns = |secs: i64, part: i64| secs.checked_mul(1_000_000_000)?.checked_add(part);
        Some(Self { from_ns: ns(from, from_ns_part)?, to_ns: ns(to, to_ns_part)? })
    }

    /// Time and partition bounds, so that partitions, files and row groups are pruned.
    pub fn filter(&self) -> Expr {
        col(TIME_NS)
            .gt_eq(lit(self.from_ns))
            .and(col(TIME_NS).lt(lit(self.to_ns)))
            .and(col(DATE).gt_eq(lit(partition_floor(self.from_ns))))
            .and(col(DATE).lt_eq(lit(partition_date(self.to_ns.saturating_sub(1)))))
    }
}

/// The rows a search selects in a range, with an optional topic.
pub async fn selected(
    source: &Source,
    range: Range,
    topic: Option<&str>,
    query: &Query,
) -> Result<DataFrame, QueryError> {
    select(source, source.logs_for(&query.search).await?, range, topic, query)
}

/// The rows of `logs` a search selects in a range, with an optional topic.
fn select(
    source: &Source,
    logs: DataFrame,
    range: Range,
    topic: Option<&str>,
    query: &Query,
) -> Result<DataFrame, QueryError> {
    let mut filter = range.filter().and(source.functions.filter(&query.search));
    if let Some(topic) = topic.filter(|t| !t.is_empty()) {
        filter = filter.and(col(TOPIC).eq(lit(topic)));
    }
    Ok(logs.filter(filter)?)
}

/// Counts per subinterval of `[from, to)` (seconds): `(from, to, count)`. Without a
/// topic, the row groups whose time rollups answer are counted without being read.
pub async fn histogram(
    source: &Source,
    range: Range,
    from: i64,
    to: i64,
    topic: Option<&str>,
    query: &Query,
) -> Result<Vec<(i64, i64, u64)>, QueryError> {
    let intervals = subintervals(from, to);
    let width_ns = intervals.first().map_or(1, |(a, b)| (b - a).max(1)) * 1_000_000_000;
    let buckets = Buckets { from_ns: range.from_ns, to_ns: range.to_ns, width_ns, count: intervals.len() };
    let rollups = topic.is_none_or(str::is_empty).then_some(&buckets);
    let (logs, mut by_bucket) = source.logs_counting(&query.search, rollups).await?;
    by_bucket.resize(intervals.len(), 0);
    let bucket = ((col(TIME_NS) - lit(range.from_ns)) / lit(width_ns)).alias("bucket");
    let counts = select(source, logs, range, topic, query)?
        .select(vec![bucket])?
        .aggregate(vec![col("bucket")], vec![count(lit(1)).alias("n")])?;
    let counts = source.scanned.collect(counts, source.limits.max_result_bytes).await?;
    for batch in counts {
        let buckets = cast(batch.column(0), &DataType::Int64)?;
        let ns = cast(batch.column(1), &DataType::Int64)?;
        let (buckets, ns) = (
            buckets.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
            ns.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
        );
        for i in 0..batch.num_rows() {
            if let Some(slot) = usize::try_from(buckets.value(i)).ok().and_then(|b| by_bucket.get_mut(b)) {
                *slot += ns.value(i) as u64;
            }
        }
    }
    Ok(intervals.iter().zip(by_bucket).map(|((a, b), n)| (*a, *b, n)).collect())
}

/// What GetLogs asks for besides the range and the query.
#[derive(Clone, Debug, Default)]
pub struct Page {
    pub line: usize,
    pub offset: usize,
    pub reverse: bool,
}

/// GetLogs' answer, as Arrow rows: the matching logs (rows of the table), or the SQL
/// part's result.
#[derive(Clone, Debug, Default)]
pub struct Logs {
    pub batches: Vec<RecordBatch>,
    pub has_sql: bool,
    /// Column names, in order, for SQL answers.
    pub keys: Vec<String>,
}

impl Logs {
    /// Rows in the answer.
    pub fn rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// GetLogs: a page of matching logs, or the SQL part's result.
pub async fn logs(
    source: &Source,
    range: Range,
    topic: Option<&str>,
    query: &Query,
    page: &Page,
    field_types: &HashMap<String, String>,
) -> Result<Logs, QueryError> {
    let selected = selected(source, range, topic, query).await?;
    let Some(sql) = &query.sql else {
        let batches =
            page::first_in_time(source, selected, Some(&query.search), range, page.reverse, page.offset, page.line)
                .await?;
        return Ok(Logs { batches, has_sql: false, keys: Vec::new() });
    };
    let analytic = sql::prepare(sql, &source.limits.sql).map_err(QueryError::InvalidQuery)?;
    let schema = selected.schema().clone();
    let mentioned = |name: &str| analytic.identifiers.iter().any(|i| i == name);
    let mut projection: Vec<Expr> = schema
        .fields()
        .iter()
        .map(|f| {
            let name = f.name().as_str();
            match mentioned(name).then(|| source.shared_column(name)).flatten() {
                Some(value) => value.alias(name),
                None => col(name),
            }
        })
        .collect();
    projection.push((col(TIME_NS) / lit(1_000_000_000i64)).alias("__time__"));
    projection.push((col(TIME_NS) % lit(1_000_000_000i64)).alias("__time_ns_part__"));
    projection.push(col(TOPIC).alias("__topic__"));
    projection.push(col(SOURCE).alias("__source__"));
    for name in &analytic.identifiers {
        if schema.field_with_unqualified_name(name).is_ok()
            || name.starts_with("__time")
            || name == "__topic__"
            || name == "__source__"
        {
            continue;
        }
        let value = match name.strip_prefix("__tag__:") {
            Some(tag) => source.functions.tag(tag),
            None => source.functions.field(name),
        };
        let value = match field_types.get(name).map(String::as_str) {
            Some("long") => Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(value), DataType::Int64)),
            Some("double") => Expr::TryCast(datafusion::logical_expr::TryCast::new(Box::new(value), DataType::Float64)),
            _ => value,
        };
        projection.push(value.alias(name));
    }
    let ctx = session::analytic(source.runtime.clone(), selected.select(projection)?, &source.limits, source.deadline)?;
    let plan = ctx
        .state()
        .statement_to_plan(datafusion::sql::parser::Statement::Statement(Box::new(analytic.statement)))
        .await
        .map_err(|e| QueryError::InvalidQuery(format!("invalid SQL: {}", e.strip_backtrace())))?;
    // A second line behind `sql::prepare`: a plan that defines, changes or sets anything
    // does not run.
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false).verify_plan(&plan)?;
    let df = ctx.execute_logical_plan(plan).await?;
    let keys: Vec<String> = df.schema().fields().iter().map(|f| f.name().clone()).collect();
    let batches = source.scanned.collect(df, source.limits.max_result_bytes).await?;
    Ok(Logs { batches, has_sql: true, keys })
}

/// A log's place in its logstore: its raw batch and its position there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogId {
    pub batch_id: String,
    pub position: i32,
}

/// GetContextLogs' answer: the logs before a log (nearest first), the log, the logs after
/// it (nearest first).
#[derive(Clone, Debug, Default)]
pub struct Context {
    pub before: Vec<RecordBatch>,
    pub anchor: Vec<RecordBatch>,
    pub after: Vec<RecordBatch>,
}

/// The logs around one, in the order they were received: those of its source and topic
/// (the same stream of logs), ordered by arrival, raw batch and position in it, within
/// `range`. `None` when the log is not found there.
pub async fn context(
    source: &Source,
    range: Range,
    id: &LogId,
    back: usize,
    forward: usize,
) -> Result<Option<Context>, QueryError> {
    let max_bytes = source.limits.max_result_bytes;
    let batch_id = lit(id.batch_id.as_str());
    let position = lit(id.position);
    let found = source
        .logs()
        .filter(range.filter().and(col(BATCH_ID).eq(batch_id.clone())).and(col(POSITION).eq(position.clone())))?
        .limit(0, Some(1))?;
    let anchor = source.scanned.collect(found, max_bytes).await?;
    let Some(first) = anchor.iter().find(|b| b.num_rows() > 0) else { return Ok(None) };
    let received = int_at(first, RECEIVED_NS, 0).unwrap_or_default();
    let text = |name: &str| first.column_by_name(name).and_then(|c| text_at(c.as_ref(), 0));
    let same =
        |name: &'static str| binary_expr(col(name), Operator::IsNotDistinctFrom, lit(ScalarValue::Utf8(text(name))));
    let stream = range.filter().and(same(SOURCE)).and(same(TOPIC));
    // (received_ns, batch_id, position) compared as a tuple.
    let beyond =
        |op: Operator| {
            let received = lit(received);
            binary_expr(col(RECEIVED_NS), op, received.clone()).or(col(RECEIVED_NS).eq(received).and(
                binary_expr(col(BATCH_ID), op, batch_id.clone())
                    .or(col(BATCH_ID).eq(batch_id.clone()).and(binary_expr(col(POSITION), op, position.clone()))),
            ))
        };
    let order =
        |ascending: bool| [RECEIVED_NS, BATCH_ID, POSITION].map(|c| SortExpr::new(col(c), ascending, false)).to_vec();
    let before =
        source.logs().filter(stream.clone().and(beyond(Operator::Lt)))?.sort(order(false))?.limit(0, Some(back))?;
    let after = source.logs().filter(stream.and(beyond(Operator::Gt)))?.sort(order(true))?.limit(0, Some(forward))?;
    Ok(Some(Context {
        before: source.scanned.collect(before, max_bytes).await?,
        anchor,
        after: source.scanned.collect(after, max_bytes).await?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn subintervals_are_nice_and_at_most_sixty() {
        assert_eq!(subintervals(0, 60), (0..60).map(|i| (i, i + 1)).collect::<Vec<_>>());
        assert_eq!(subintervals(1_409_529_600, 1_409_608_800).len(), 44, "22 hours in 30-minute steps");
        assert_eq!(subintervals(100, 101), vec![(100, 101)]);
        assert_eq!(subintervals(0, 90), (0..45).map(|i| (2 * i, 2 * i + 2)).collect::<Vec<_>>());
    }

    proptest! {
        #[test]
        fn subintervals_cover_the_range_exactly(from in 0i64..2_000_000_000, len in 1i64..100_000_000) {
            let parts = subintervals(from, from + len);
            prop_assert!(!parts.is_empty() && parts.len() <= 60);
            prop_assert_eq!(parts[0].0, from);
            prop_assert_eq!(parts[parts.len() - 1].1, from + len);
            prop_assert!(parts.windows(2).all(|w| w[0].1 == w[1].0));
            let width = parts[0].1 - parts[0].0;
            prop_assert!(parts[..parts.len() - 1].iter().all(|(a, b)| b - a == width));
            prop_assert_eq!(subintervals(from, from + len), parts, "deterministic");
        }
    }
}
