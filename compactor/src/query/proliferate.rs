//! Proliferate log search and trace correlation over a [`Source`], answered as Arrow rows.

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::prelude::{col, lit};
use sluice_ingest::batch::EventId;
use sluice_ingest::layout::{Partition, partition_date, partition_floor};

use crate::lake::rows::text_at;
use crate::lake::schema::{BATCH_ID, DATE, LEVEL, MESSAGE, POSITION, TIME_NS, TRACE_ID};

use super::QueryError;
use super::page;
use super::sls::Range;
use super::source::Source;
use super::syntax::{Key, Search, Term};

/// How far from an event its trace's logs are looked for.
pub const CORRELATION_WINDOW_NS: i64 = 5 * 60 * 1_000_000_000;

/// `GET /api/v1/projects/{project_id}/logs` parameters.
#[derive(Clone, Debug, Default)]
pub struct SearchParams {
    pub levels: Vec<String>,
    pub search: Option<String>,
    pub trace_id: Option<String>,
    pub start_ns: Option<i64>,
    pub end_ns: Option<i64>,
    pub limit: usize,
    pub offset: usize,
}

/// A page of logs, as Arrow rows of the table.
#[derive(Clone, Debug)]
pub struct Page {
    pub batches: Vec<RecordBatch>,
    pub total: u64,
    pub has_more: bool,
}

fn time_filter(start_ns: Option<i64>, end_ns: Option<i64>) -> Expr {
    let mut filter = lit(true);
    if let Some(start) = start_ns {
        filter = filter.and(col(TIME_NS).gt_eq(lit(start))).and(col(DATE).gt_eq(lit(partition_floor(start))));
    }
    if let Some(end) = end_ns {
        filter = filter.and(col(TIME_NS).lt_eq(lit(end))).and(col(DATE).lt_eq(lit(partition_date(end))));
    }
    filter
}

/// Logs matching the filters, newest first.
pub async fn search(source: &Source, params: &SearchParams) -> Result<Page, QueryError> {
    let mut filter = time_filter(params.start_ns, params.end_ns);
    // The same filters as a search, for the token index.
    let mut needs = Vec::new();
    let field = |key: &str, term: Term| Search::Field(Key::Field(key.to_owned()), term);
    if !params.levels.is_empty() {
        filter = filter.and(col(LEVEL).in_list(params.levels.iter().map(|l| lit(l.as_str())).collect(), false));
        let mut levels = params.levels.iter().map(|l| field(LEVEL, Term::Word(l.clone())));
        let first = levels.next().unwrap_or(Search::All);
        needs.push(levels.fold(first, |all, level| Search::Or(Box::new(all), Box::new(level))));
    }
    if let Some(search) = params.search.as_deref().filter(|s| !s.trim().is_empty()) {
        let term = Term::Phrase(search.trim().to_owned());
        filter = filter.and(source.functions.text_filter(col(MESSAGE), &term));
        needs.push(field(MESSAGE, term));
    }
    if let Some(trace) = params.trace_id.as_deref().filter(|t| !t.is_empty()) {
        filter = filter.and(col(TRACE_ID).eq(lit(trace)));
        needs.push(field(TRACE_ID, Term::Word(trace.to_owned())));
    }
    let search = needs.into_iter().reduce(|a, b| Search::And(Box::new(a), Box::new(b))).unwrap_or(Search::All);
    let selected = source.logs_for(&search).await?.filter(filter)?;
    let total = count_rows(source, selected.clone()).await?;
    let range = Range {
        from_ns: params.start_ns.unwrap_or(i64::MIN),
        to_ns: params.end_ns.map_or(i64::MAX, |end| end.saturating_add(1)),
    };
    let batches = page::first_in_time(source, selected, None, range, true, params.offset, params.limit).await?;
    let shown = (params.offset + batches.iter().map(RecordBatch::num_rows).sum::<usize>()) as u64;
    let has_more = shown > 0 && shown < total;
    Ok(Page { batches, total, has_more })
}

async fn count_rows(source: &Source, df: datafusion::prelude::DataFrame) -> Result<u64, QueryError> {
    let batches = source
        .scanned
        .collect(df.aggregate(vec![], vec![count(lit(1)).alias("n")])?, source.limits.max_result_bytes)
        .await?;
    let mut total = 0;
    for batch in batches {
        let n = cast(batch.column(0), &DataType::Int64)?;
        total += n.as_primitive::<Int64Type>().iter().flatten().sum::<i64>() as u64;
    }
    Ok(total)
}

/// The logs of an event's trace within five minutes of it, oldest first, as Arrow rows.
/// `None` when the event is not in this logstore.
pub async fn event_logs(source: &Source, event: &EventId) -> Result<Option<Vec<RecordBatch>>, QueryError> {
    // Its day's, month's or year's partition, by how late it arrived.
    let partitions = Partition::candidates(event.time_ns).iter().map(|p| lit(p.to_string())).collect();
    let find = col(DATE)
        .in_list(partitions, false)
        .and(col(TIME_NS).eq(lit(event.time_ns)))
        .and(col(BATCH_ID).eq(lit(event.batch.to_string())))
        .and(col(POSITION).eq(lit(i32::try_from(event.position).unwrap_or(i32::MAX))));
    let found = source.scanned.collect(source.logs().filter(find)?, source.limits.max_result_bytes).await?;
    let Some((batch, row)) = found.iter().find_map(|b| (b.num_rows() > 0).then_some((b, 0))) else {
        return Ok(None);
    };
    let trace = batch.column_by_name(TRACE_ID).and_then(|c| text_at(c.as_ref(), row));
    let Some(trace) = trace else {
        // No trace: the event alone.
        return Ok(Some(vec![batch.slice(row, 1)]));
    };
    let window = time_filter(
        Some(event.time_ns.saturating_sub(CORRELATION_WINDOW_NS)),
        Some(event.time_ns.saturating_add(CORRELATION_WINDOW_NS)),
    )
    .and(col(TRACE_ID).eq(lit(trace)));
    let oldest_first = |c: &str| SortExpr::new(col(c), true, false);
    let related = source.logs().filter(window)?.sort(vec![
        oldest_first(TIME_NS),
        oldest_first(BATCH_ID),
        oldest_first(POSITION),
    ])?;
    Ok(Some(source.scanned.collect(related, source.limits.max_result_bytes).await?))
}
