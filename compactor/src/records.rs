//! Raw batch records as Arrow rows of the table schema, sorted by time and split by
//! date partition.

use deltalake::arrow::array::builder::{
    Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
};
use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StringArray};
use deltalake::arrow::compute::{SortColumn, lexsort_to_indices, take_record_batch};
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::error::ArrowError;
use sluice_ingest::batch::DecodedBatch;
use sluice_ingest::layout::partition_date;
use sluice_proto::batch::{Field, Product};
use std::sync::Arc;

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

/// All records of `batches` as one Arrow batch of the table schema (partition column
/// included), in batch order.
pub fn to_record_batch(batches: &[ReceivedBatch], schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
    let rows: usize = batches.iter().map(|b| b.batch.body.records.len()).sum();
    let strings = || StringBuilder::with_capacity(rows, rows * 8);
    let mut c = Columns {
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
    for ReceivedBatch { batch, received_ns } in batches {
        let batch_id = batch.id.to_string();
        let product = product_name(batch.header.product);
        for (position, r) in batch.body.records.iter().enumerate() {
            let group = batch.body.groups.get(r.group as usize).cloned().unwrap_or_default();
            c.date.append_value(partition_date(r.time_ns));
            c.time_ns.append_value(r.time_ns);
            c.received_ns.append_value(*received_ns);
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
    }
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

/// Sorts rows by (date, time) and splits them into one batch per date.
pub fn split_by_date(batch: &RecordBatch) -> Result<Vec<(String, RecordBatch)>, ArrowError> {
    if batch.num_rows() == 0 {
        return Ok(Vec::new());
    }
    let date = batch.column(0).clone();
    let time = batch.column(1).clone();
    let indices = lexsort_to_indices(
        &[SortColumn { values: date, options: None }, SortColumn { values: time, options: None }],
        None,
    )?;
    let sorted = take_record_batch(batch, &indices)?;
    let dates = sorted
        .column(0)
        .as_any()
        .downcast_ref::<StringArray>()
        .ok_or_else(|| ArrowError::SchemaError("the date column is not a string".into()))?;
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=dates.len() {
        if i == dates.len() || dates.value(i) != dates.value(start) {
            out.push((dates.value(start).to_owned(), sorted.slice(start, i - start)));
            start = i;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(key: &str, value: &str) -> Field {
        Field { key: key.into(), value: value.as_bytes().to_vec(), ..Field::default() }
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let fields = [field("user", "a"), field("path", "/"), field("user", "b")];
        let kept: Vec<(&str, &[u8])> = kept(&fields).map(|f| (f.key.as_str(), f.value.as_slice())).collect();
        assert_eq!(kept, [("path", &b"/"[..]), ("user", &b"b"[..])]);
    }
}
