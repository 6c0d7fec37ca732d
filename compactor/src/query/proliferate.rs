//! Proliferate log search and trace correlation over a [`Source`].

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::functions_aggregate::expr_fn::count;
use datafusion::logical_expr::{Expr, SortExpr};
use datafusion::prelude::{col, lit};
use serde_json::{Map, Value};
use sluice_ingest::batch::EventId;
use sluice_ingest::layout::{Partition, partition_date, partition_floor};
use sluice_ingest::time::format_rfc3339_millis;

use super::QueryError;
use super::source::Source;
use super::syntax::Term;

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

/// A page of logs.
#[derive(Clone, Debug, PartialEq)]
pub struct Page {
    pub logs: Vec<Value>,
    pub total: u64,
    pub has_more: bool,
}

fn time_filter(start_ns: Option<i64>, end_ns: Option<i64>) -> Expr {
    let mut filter = lit(true);
    if let Some(start) = start_ns {
        filter = filter.and(col("time_ns").gt_eq(lit(start))).and(col("date").gt_eq(lit(partition_floor(start))));
    }
    if let Some(end) = end_ns {
        filter = filter.and(col("time_ns").lt_eq(lit(end))).and(col("date").lt_eq(lit(partition_date(end))));
    }
    filter
}

/// Logs matching the filters, newest first.
pub async fn search(source: &Source, params: &SearchParams) -> Result<Page, QueryError> {
    let mut filter = time_filter(params.start_ns, params.end_ns);
    if !params.levels.is_empty() {
        filter = filter.and(col("level").in_list(params.levels.iter().map(|l| lit(l.as_str())).collect(), false));
    }
    if let Some(search) = params.search.as_deref().filter(|s| !s.trim().is_empty()) {
        filter = filter.and(source.functions.text_filter(col("message"), &Term::Phrase(search.trim().to_owned())));
    }
    if let Some(trace) = params.trace_id.as_deref().filter(|t| !t.is_empty()) {
        filter = filter.and(col("trace_id").eq(lit(trace)));
    }
    let selected = source.logs().filter(filter)?;
    let total = count_rows(source, selected.clone()).await?;
    let newest_first = |c: &str| SortExpr::new(col(c), false, false);
    let page = selected
        .sort(vec![newest_first("time_ns"), newest_first("batch_id"), newest_first("position")])?
        .limit(params.offset, Some(params.limit))?;
    let batches = source.scanned.collect(page, source.limits.max_result_bytes).await?;
    let logs = render_all(&batches);
    let has_more = (params.offset + logs.len()) as u64 > 0 && ((params.offset + logs.len()) as u64) < total;
    Ok(Page { logs, total, has_more })
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

/// The logs of an event's trace within five minutes of it, oldest first. `None` when
/// the event is not in this logstore.
pub async fn event_logs(source: &Source, event: &EventId) -> Result<Option<Vec<Value>>, QueryError> {
    // Its day's, month's or year's partition, by how late it arrived.
    let partitions = Partition::candidates(event.time_ns).iter().map(|p| lit(p.to_string())).collect();
    let find = col("date")
        .in_list(partitions, false)
        .and(col("time_ns").eq(lit(event.time_ns)))
        .and(col("batch_id").eq(lit(event.batch.to_string())))
        .and(col("position").eq(lit(i32::try_from(event.position).unwrap_or(i32::MAX))));
    let found = source.scanned.collect(source.logs().filter(find)?, source.limits.max_result_bytes).await?;
    let Some((batch, row)) = found.iter().find_map(|b| (b.num_rows() > 0).then_some((b, 0))) else {
        return Ok(None);
    };
    let trace = batch.column_by_name("trace_id").and_then(|c| text(c.as_ref(), row));
    let Some(trace) = trace else {
        // No trace: the event alone.
        return Ok(Some(vec![render(batch, row)]));
    };
    let window = time_filter(Some(event.time_ns - CORRELATION_WINDOW_NS), Some(event.time_ns + CORRELATION_WINDOW_NS))
        .and(col("trace_id").eq(lit(trace)));
    let oldest_first = |c: &str| SortExpr::new(col(c), true, false);
    let related = source.logs().filter(window)?.sort(vec![
        oldest_first("time_ns"),
        oldest_first("batch_id"),
        oldest_first("position"),
    ])?;
    let batches = source.scanned.collect(related, source.limits.max_result_bytes).await?;
    Ok(Some(render_all(&batches)))
}

fn render_all(batches: &[RecordBatch]) -> Vec<Value> {
    batches.iter().flat_map(|b| (0..b.num_rows()).map(move |row| render(b, row))).collect()
}

fn text(array: &dyn Array, row: usize) -> Option<String> {
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_owned()),
        DataType::Utf8View => Some(array.as_string_view().value(row).to_owned()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).to_owned()),
        _ => None,
    }
}

fn int(batch: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    let array = cast(batch.column_by_name(name)?, &DataType::Int64).ok()?;
    let values = array.as_primitive::<Int64Type>();
    values.is_valid(row).then(|| values.value(row))
}

/// One row as Proliferate shows a log; `attributes` gets back its JSON values.
pub fn render(batch: &RecordBatch, row: usize) -> Value {
    let string =
        |name: &str| batch.column_by_name(name).and_then(|c| text(c.as_ref(), row)).map_or(Value::Null, Value::String);
    let time_ns = int(batch, "time_ns", row).unwrap_or_default();
    let json_keys: Vec<String> = batch
        .column_by_name("json_keys")
        .and_then(|c| c.as_list_opt::<i32>().cloned())
        .filter(|l| l.is_valid(row))
        .map(|l| {
            let values = l.value(row);
            (0..values.len()).filter_map(|i| text(values.as_ref(), i)).collect()
        })
        .unwrap_or_default();
    let mut attributes = Map::new();
    for (key, value) in super::sls::field_entries(batch, row) {
        let value = if json_keys.contains(&key) {
            serde_json::from_str(&value).unwrap_or(Value::String(value))
        } else {
            Value::String(value)
        };
        attributes.insert(key, value);
    }
    let batch_id = string("batch_id");
    let id = match (&batch_id, int(batch, "position", row)) {
        (Value::String(b), Some(p)) => Value::String(format!("{b}-{p}-{time_ns}")),
        _ => Value::Null,
    };
    serde_json::json!({
        "id": id,
        "timestamp": format_rfc3339_millis(time_ns),
        "level": string("level"),
        "message": string("message"),
        "template": string("template"),
        "attributes": attributes,
        "trace_id": string("trace_id"),
        "span_id": string("span_id"),
        "user_id": string("user_id"),
        "account_id": string("account_id"),
        "logger_name": string("logger_name"),
        "file_path": string("file_path"),
        "line_number": int(batch, "line_number", row),
        "function_name": string("function_name"),
        "environment": string("environment"),
        "release": string("release"),
    })
}
