//! Raw batch records as Arrow rows of the table schema, sorted by time and split by
//! date partition.

use deltalake::arrow::array::builder::{
    Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
};
use deltalake::arrow::array::{Array, ArrayBuilder, ArrayRef, Int64Array, RecordBatch};
use deltalake::arrow::compute::interleave;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use sluice_ingest::batch::DecodedBatch;
use sluice_ingest::layout::partition_date;
use sluice_proto::batch::{Field, Product, RecordGroup};
use std::sync::Arc;

const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

/// A raw batch read back, with the time its object was written (when the edge received
/// the request).
#[derive(Debug)]
pub struct ReceivedBatch {
    pub batch: DecodedBatch,
    pub received_ns: i64,
}

/// The product's name as stored in the `product` column.
pub fn product_name(product: i32) -> &'static str {
    match Product::try_from(product) {
        Ok(Product::Sls) => "sls",
        Ok(Product::Lts) => "lts",
        Ok(Product::Proliferate) => "proliferate",
        _ => "unknown",
    }
}

fn map_builder() -> MapBuilder<StringBuilder, StringBuilder> {
    let names = MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() };
    MapBuilder::new(Some(names), StringBuilder::new(), StringBuilder::new())
}

fn text(value: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(value)
}

struct Columns {
    date: StringBuilder,
    time_ns: Int64Builder,
    received_ns: Int64Builder,
    batch_id: StringBuilder,
    position: Int32Builder,
    product: StringBuilder,
    topic: StringBuilder,
    source: StringBuilder,
    tags: MapBuilder<StringBuilder, StringBuilder>,
    environment: StringBuilder,
    release: StringBuilder,
    level: StringBuilder,
    message: StringBuilder,
    template: StringBuilder,
    trace_id: StringBuilder,
    span_id: StringBuilder,
    user_id: StringBuilder,
    user_email: StringBuilder,
    account_id: StringBuilder,
    account_name: StringBuilder,
    logger_name: StringBuilder,
    file_path: StringBuilder,
    line_number: Int32Builder,
    function_name: StringBuilder,
    fields: MapBuilder<StringBuilder, StringBuilder>,
    json_keys: ListBuilder<StringBuilder>,
}

/// Appends a string, or null when it is empty.
fn opt(builder: &mut StringBuilder, value: &str) {
    if value.is_empty() { builder.append_null() } else { builder.append_value(value) }
}

/// The fields a log keeps: a key given twice (SLS allows it) keeps its last value, as the
/// JSON object GetLogs answers with would, so that the map's keys are unique (DuckDB and
/// Spark refuse maps that repeat a key).
fn kept(fields: &[Field]) -> impl Iterator<Item = &Field> {
    fields.iter().enumerate().filter(|(i, f)| !fields[i + 1..].iter().any(|later| later.key == f.key)).map(|(_, f)| f)
}

fn append_map(builder: &mut MapBuilder<StringBuilder, StringBuilder>, fields: &[Field]) -> Result<(), ArrowError> {
    if fields.is_empty() {
        builder.append(false)
    } else {
        for f in kept(fields) {
            builder.keys().append_value(&f.key);
            builder.values().append_value(text(&f.value));
        }
        builder.append(true)
    }
}

/// Rows of the table schema, built one raw batch at a time (a decoded batch can be
/// dropped as soon as it is appended).
pub struct Rows {
    c: Columns,
    /// The last partition date written, by its day number.
    day: Option<(i64, String)>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("rows", &self.len()).finish_non_exhaustive()
    }
}

impl Rows {
    /// Room for about `rows` rows.
    pub fn with_capacity(rows: usize) -> Self {
        let strings = || StringBuilder::with_capacity(rows, rows * 8);
        let c = Columns {
            date: strings(),
            time_ns: Int64Builder::with_capacity(rows),
            received_ns: Int64Builder::with_capacity(rows),
            batch_id: strings(),
            position: Int32Builder::with_capacity(rows),
            product: strings(),
            topic: strings(),
            source: strings(),
            tags: map_builder(),
            environment: strings(),
            release: strings(),
            level: strings(),
            message: strings(),
            template: strings(),
            trace_id: strings(),
            span_id: strings(),
            user_id: strings(),
            user_email: strings(),
            account_id: strings(),
            account_name: strings(),
            logger_name: strings(),
            file_path: strings(),
            line_number: Int32Builder::with_capacity(rows),
            function_name: strings(),
            fields: map_builder(),
            json_keys: ListBuilder::new(StringBuilder::new()),
        };
        Self { c, day: None }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.c.time_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every record of a raw batch.
    pub fn append(&mut self, batch: &DecodedBatch, received_ns: i64) -> Result<(), ArrowError> {
        let batch_id = batch.id.to_string();
        let product = product_name(batch.header.product);
        let no_group = RecordGroup::default();
        for (position, r) in batch.body.records.iter().enumerate() {
            let group = batch.body.groups.get(r.group as usize).unwrap_or(&no_group);
            let c = &mut self.c;
            // The partition date, formatted once per day seen in a row.
            let day = r.time_ns.div_euclid(NANOS_PER_DAY);
            match &self.day {
                Some((d, date)) if *d == day => c.date.append_value(date),
                _ => {
                    let date = partition_date(r.time_ns);
                    c.date.append_value(&date);
                    self.day = Some((day, date));
                }
            }
            c.time_ns.append_value(r.time_ns);
            c.received_ns.append_value(received_ns);
            c.batch_id.append_value(&batch_id);
            c.position.append_value(i32::try_from(position).unwrap_or(i32::MAX));
            c.product.append_value(product);
            opt(&mut c.topic, &group.topic);
            opt(&mut c.source, &group.source);
            append_map(&mut c.tags, &group.tags)?;
            opt(&mut c.environment, &group.environment);
            opt(&mut c.release, &group.release);
            opt(&mut c.level, &r.level);
            opt(&mut c.message, &r.message);
            opt(&mut c.template, &r.template);
            opt(&mut c.trace_id, &r.trace_id);
            opt(&mut c.span_id, &r.span_id);
            opt(&mut c.user_id, &r.user_id);
            opt(&mut c.user_email, &r.user_email);
            opt(&mut c.account_id, &r.account_id);
            opt(&mut c.account_name, &r.account_name);
            opt(&mut c.logger_name, &r.logger_name);
            opt(&mut c.file_path, &r.file_path);
            c.line_number.append_option(r.line_number.and_then(|n| i32::try_from(n).ok()));
            opt(&mut c.function_name, &r.function_name);
            append_map(&mut c.fields, &r.fields)?;
            let mut json = false;
            for f in kept(&r.fields).filter(|f| f.json) {
                c.json_keys.values().append_value(&f.key);
                json = true;
            }
            c.json_keys.append(json);
        }
        Ok(())
    }

    /// The rows as one Arrow batch of the table schema (partition column included), in
    /// the order they were appended.
    pub fn finish(self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        let mut c = self.c;
        let columns: Vec<ArrayRef> = vec![
            Arc::new(c.date.finish()),
            Arc::new(c.time_ns.finish()),
            Arc::new(c.received_ns.finish()),
            Arc::new(c.batch_id.finish()),
            Arc::new(c.position.finish()),
            Arc::new(c.product.finish()),
            Arc::new(c.topic.finish()),
            Arc::new(c.source.finish()),
            Arc::new(c.tags.finish()),
            Arc::new(c.environment.finish()),
            Arc::new(c.release.finish()),
            Arc::new(c.level.finish()),
            Arc::new(c.message.finish()),
            Arc::new(c.template.finish()),
            Arc::new(c.trace_id.finish()),
            Arc::new(c.span_id.finish()),
            Arc::new(c.user_id.finish()),
            Arc::new(c.user_email.finish()),
            Arc::new(c.account_id.finish()),
            Arc::new(c.account_name.finish()),
            Arc::new(c.logger_name.finish()),
            Arc::new(c.file_path.finish()),
            Arc::new(c.line_number.finish()),
            Arc::new(c.function_name.finish()),
            Arc::new(c.fields.finish()),
            Arc::new(c.json_keys.finish()),
        ];
        // The builders' nested field names follow Delta's Arrow mapping; cast to the table's
        // exact schema (nullability of nested fields) without copying data.
        let columns = columns
            .into_iter()
            .zip(schema.fields())
            .map(|(array, field)| {
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    let data = array.to_data().into_builder().data_type(field.data_type().clone()).build()?;
                    Ok(deltalake::arrow::array::make_array(data))
                }
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        RecordBatch::try_new(schema, columns)
    }
}

/// All records of `batches` as one Arrow batch of the table schema (partition column
/// included), in batch order.
pub fn to_record_batch<'a>(
    batches: impl IntoIterator<Item = &'a ReceivedBatch>,
    schema: SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let batches: Vec<&ReceivedBatch> = batches.into_iter().collect();
    let mut rows = Rows::with_capacity(batches.iter().map(|b| b.batch.body.records.len()).sum());
    for b in batches {
        rows.append(&b.batch, b.received_ns)?;
    }
    rows.finish(schema)
}

/// The rows of several batches in time order, handed out in runs of consecutive rows
/// that share a date partition (the partition date follows time, so time order is date
/// order). Only the run being handed out is copied.
#[derive(Debug)]
pub struct TimeOrder {
    pieces: Vec<RecordBatch>,
    /// (time, piece, row), sorted.
    order: Vec<(i64, u32, u32)>,
}

impl TimeOrder {
    pub fn new(pieces: Vec<RecordBatch>) -> Result<Self, ArrowError> {
        let mut order = Vec::with_capacity(pieces.iter().map(RecordBatch::num_rows).sum());
        for (p, piece) in pieces.iter().enumerate() {
            let times = piece
                .column_by_name("time_ns")
                .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                .ok_or_else(|| ArrowError::SchemaError("no Int64 time_ns column".into()))?;
            let p = u32::try_from(p).map_err(|_| ArrowError::ComputeError("too many pieces".into()))?;
            order.extend(times.values().iter().enumerate().map(|(row, t)| (*t, p, row as u32)));
        }
        order.sort_unstable();
        Ok(Self { pieces, order })
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Where the runs start and end: at most `max_rows` rows each, never across a date.
    pub fn runs(&self, max_rows: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=self.order.len() {
            let day = |i: usize| self.order[i].0.div_euclid(NANOS_PER_DAY);
            if i == self.order.len() || i - start == max_rows.max(1) || day(i) != day(start) {
                out.push(start..i);
                start = i;
            }
        }
        out
    }

    /// One run's rows (from [`TimeOrder::runs`]) as a batch, with its partition date.
    pub fn run(&self, range: std::ops::Range<usize>) -> Result<(String, RecordBatch), ArrowError> {
        let schema =
            self.pieces.first().map(RecordBatch::schema).ok_or_else(|| ArrowError::ComputeError("no rows".into()))?;
        let indices: Vec<(usize, usize)> =
            self.order[range.clone()].iter().map(|(_, p, row)| (*p as usize, *row as usize)).collect();
        let columns = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = self.pieces.iter().map(|p| p.column(c).as_ref()).collect();
                interleave(&arrays, &indices)
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let date = partition_date(self.order[range.start].0);
        Ok((date, RecordBatch::try_new(schema, columns)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::StringArray;

    fn field(key: &str, value: &str) -> Field {
        Field { key: key.into(), value: value.as_bytes().to_vec(), ..Field::default() }
    }

    fn piece(times: &[i64]) -> RecordBatch {
        use deltalake::arrow::datatypes::{DataType, Field as ArrowField, Schema};
        let schema = Arc::new(Schema::new(vec![
            ArrowField::new("time_ns", DataType::Int64, false),
            ArrowField::new("message", DataType::Utf8, false),
        ]));
        let messages = StringArray::from_iter_values(times.iter().map(|t| format!("m{t}")));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(times.to_vec())), Arc::new(messages)]).unwrap()
    }

    #[test]
    fn rows_come_out_in_time_order_in_runs_within_a_date() {
        let day = NANOS_PER_DAY;
        let order = TimeOrder::new(vec![piece(&[5, day + 1, 3]), piece(&[4, 1, day + 2, 2])]).unwrap();
        assert_eq!(order.len(), 7);
        let runs = order.runs(3);
        assert_eq!(runs, [0..3, 3..5, 5..7], "at most 3 rows, and a new run at the day boundary");
        let all: Vec<(String, Vec<String>)> = runs
            .into_iter()
            .map(|r| {
                let (date, batch) = order.run(r).unwrap();
                let messages = batch.column(1).as_any().downcast_ref::<StringArray>().unwrap();
                (date, messages.iter().map(|m| m.unwrap().to_owned()).collect())
            })
            .collect();
        let day_two = format!("m{}", day + 1);
        assert_eq!(
            all,
            [
                ("1970-01-01".to_owned(), vec!["m1".to_owned(), "m2".into(), "m3".into()]),
                ("1970-01-01".to_owned(), vec!["m4".to_owned(), "m5".into()]),
                ("1970-01-02".to_owned(), vec![day_two, format!("m{}", day + 2)]),
            ]
        );
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let fields = [field("user", "a"), field("path", "/"), field("user", "b")];
        let kept: Vec<(&str, &[u8])> = kept(&fields).map(|f| (f.key.as_str(), f.value.as_slice())).collect();
        assert_eq!(kept, [("path", &b"/"[..]), ("user", &b"b"[..])]);
    }
}
