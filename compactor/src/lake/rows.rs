//! Raw batch records as Arrow rows of the table schema ([`Rows`], columns paired with
//! the schema by name), ordered by partition and time ([`TimeOrder`]), and read back
//! ([`field_entries`], [`text_at`]).

use deltalake::arrow::array::builder::{
    Int32Builder, Int64Builder, ListBuilder, MapBuilder, MapFieldNames, StringBuilder,
};
use deltalake::arrow::array::{Array, ArrayBuilder, ArrayRef, AsArray, Int64Array, RecordBatch, StructArray};
use deltalake::arrow::compute::interleave;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::arrow::datatypes::{DataType, Field as ArrowField};
use deltalake::arrow::error::ArrowError;
use sluice_ingest::batch::BatchRef;
use sluice_ingest::layout::Partition;
use sluice_ingest::record::{BodyRef, FieldRef, GroupRead};
use sluice_proto::batch::Product;
use std::sync::Arc;

use super::raw::ReceivedBatch;
use super::schema::{self, FREQUENT};

/// The product's name as stored in the `product` column.
pub fn product_name(product: i32) -> &'static str {
    match Product::try_from(product) {
        Ok(Product::Sls) => "sls",
        Ok(Product::Lts) => "lts",
        Ok(Product::Proliferate) => "proliferate",
        _ => "unknown",
    }
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
fn kept<'f, 'a>(fields: &'f [FieldRef<'a>]) -> impl Iterator<Item = &'f FieldRef<'a>> {
    fields.iter().enumerate().filter(|(i, f)| !fields[i + 1..].iter().any(|later| later.key == f.key)).map(|(_, f)| f)
}

fn append_map(
    builder: &mut MapBuilder<StringBuilder, StringBuilder>,
    fields: &[FieldRef<'_>],
) -> Result<(), ArrowError> {
    if fields.is_empty() {
        builder.append(false)
    } else {
        for f in kept(fields) {
            builder.keys().append_value(f.key);
            builder.values().append_value(text(f.value));
        }
        builder.append(true)
    }
}

/// Text bytes (and map entries) per column of a built piece of rows, by column path.
#[derive(Clone, Debug, Default)]
pub struct Sizes(std::collections::HashMap<String, usize>);

impl Sizes {
    pub fn of(batch: &RecordBatch) -> Self {
        let mut sizes = std::collections::HashMap::new();
        let text = |array: &ArrayRef| array.as_string_opt::<i32>().map(|s| s.value_data().len());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            if let Some(bytes) = text(column) {
                sizes.insert(name.clone(), bytes);
            } else if let Some(map) = column.as_map_opt() {
                sizes.insert(format!("{name}.entries"), map.entries().len());
                sizes.insert(format!("{name}.key"), text(map.keys()).unwrap_or(0));
                sizes.insert(format!("{name}.value"), text(map.values()).unwrap_or(0));
            } else if let Some(columns) = column.as_struct_opt() {
                for (child, array) in columns.fields().iter().zip(columns.columns()) {
                    sizes.insert(format!("{name}.{}", child.name()), text(array).unwrap_or(0));
                }
            }
        }
        Self(sizes)
    }

    /// Bytes for a text column of `rows` rows: as much as it had, and an eighth more; or
    /// 8 per row when it is not known.
    fn bytes(&self, name: &str, rows: usize) -> usize {
        self.0.get(name).map_or(rows * 8, |b| b + b / 8)
    }

    fn entries(&self, name: &str, rows: usize) -> usize {
        self.0.get(&format!("{name}.entries")).map_or(rows * 4, |n| n + n / 8)
    }
}

/// Rows of the table schema, built one raw batch at a time (a decoded batch can be
/// dropped as soon as it is appended).
pub struct Rows {
    c: Columns,
    /// The table's frequent fields, and a column for each.
    frequent: Vec<(String, StringBuilder)>,
    /// Which frequent fields the current row has set.
    set: Vec<bool>,
    /// The last partition written, and its name.
    partition: Option<(Partition, String)>,
}

impl std::fmt::Debug for Rows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rows").field("rows", &self.len()).finish_non_exhaustive()
    }
}

impl Rows {
    /// Room for about `rows` rows of a table with these frequent fields, text columns
    /// sized like `like` (a piece built before; growing a column by doubling would touch
    /// its memory twice).
    pub fn with_capacity(rows: usize, frequent: &[String], like: &Sizes) -> Self {
        let strings = |name: &str| StringBuilder::with_capacity(rows, like.bytes(name, rows));
        let map = |name: &str| {
            let names = MapFieldNames { entry: "key_value".into(), key: "key".into(), value: "value".into() };
            let entries = like.entries(name, rows);
            let keys = StringBuilder::with_capacity(entries, like.bytes(&format!("{name}.key"), entries));
            let values = StringBuilder::with_capacity(entries, like.bytes(&format!("{name}.value"), entries));
            MapBuilder::with_capacity(Some(names), keys, values, rows)
        };
        let c = Columns {
            date: strings(schema::DATE),
            time_ns: Int64Builder::with_capacity(rows),
            received_ns: Int64Builder::with_capacity(rows),
            batch_id: strings(schema::BATCH_ID),
            position: Int32Builder::with_capacity(rows),
            product: strings(schema::PRODUCT),
            topic: strings(schema::TOPIC),
            source: strings(schema::SOURCE),
            tags: map(schema::TAGS),
            environment: strings(schema::ENVIRONMENT),
            release: strings(schema::RELEASE),
            level: strings(schema::LEVEL),
            message: strings(schema::MESSAGE),
            template: strings(schema::TEMPLATE),
            trace_id: strings(schema::TRACE_ID),
            span_id: strings(schema::SPAN_ID),
            user_id: strings(schema::USER_ID),
            user_email: strings(schema::USER_EMAIL),
            account_id: strings(schema::ACCOUNT_ID),
            account_name: strings(schema::ACCOUNT_NAME),
            logger_name: strings(schema::LOGGER_NAME),
            file_path: strings(schema::FILE_PATH),
            line_number: Int32Builder::with_capacity(rows),
            function_name: strings(schema::FUNCTION_NAME),
            fields: map(schema::FIELDS),
            json_keys: ListBuilder::new(StringBuilder::new()),
        };
        let frequent: Vec<(String, StringBuilder)> =
            frequent.iter().map(|k| (k.clone(), strings(&format!("{FREQUENT}.{k}")))).collect();
        Self { c, set: vec![false; frequent.len()], frequent, partition: None }
    }

    /// Rows so far.
    pub fn len(&self) -> usize {
        self.c.time_ns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends every record of a raw batch.
    pub fn append(&mut self, batch: &BatchRef<'_>, received_ns: i64) -> Result<(), ArrowError> {
        let batch_id = batch.id.to_string();
        let product = product_name(batch.header.product);
        let body = &batch.body;
        let no_group = GroupRead::default();
        for (position, r) in body.records.iter().enumerate() {
            let group = body.groups.get(r.group as usize).unwrap_or(&no_group);
            let fields = body.fields(r);
            let c = &mut self.c;
            // The partition, named once per partition seen in a row.
            let partition = Partition::of(r.time_ns, received_ns);
            match &self.partition {
                Some((p, name)) if *p == partition => c.date.append_value(name),
                _ => {
                    let name = partition.to_string();
                    c.date.append_value(&name);
                    self.partition = Some((partition, name));
                }
            }
            c.time_ns.append_value(r.time_ns);
            c.received_ns.append_value(received_ns);
            c.batch_id.append_value(&batch_id);
            c.position.append_value(i32::try_from(position).unwrap_or(i32::MAX));
            c.product.append_value(product);
            opt(&mut c.topic, group.topic);
            opt(&mut c.source, group.source);
            append_map(&mut c.tags, body.tags(group))?;
            opt(&mut c.environment, group.environment);
            opt(&mut c.release, group.release);
            opt(&mut c.level, r.level);
            opt(&mut c.message, r.message);
            opt(&mut c.template, r.template);
            opt(&mut c.trace_id, r.trace_id);
            opt(&mut c.span_id, r.span_id);
            opt(&mut c.user_id, r.user_id);
            opt(&mut c.user_email, r.user_email);
            opt(&mut c.account_id, r.account_id);
            opt(&mut c.account_name, r.account_name);
            opt(&mut c.logger_name, r.logger_name);
            opt(&mut c.file_path, r.file_path);
            c.line_number.append_option(r.line_number.and_then(|n| i32::try_from(n).ok()));
            opt(&mut c.function_name, r.function_name);
            // Frequent fields into their columns, the others into the map.
            self.set.iter_mut().for_each(|s| *s = false);
            let mut in_map = false;
            for f in kept(fields) {
                match self.frequent.iter().position(|(key, _)| key == f.key) {
                    Some(i) => {
                        self.frequent[i].1.append_value(text(f.value));
                        self.set[i] = true;
                    }
                    None => {
                        c.fields.keys().append_value(f.key);
                        c.fields.values().append_value(text(f.value));
                        in_map = true;
                    }
                }
            }
            c.fields.append(in_map)?;
            for (set, (_, column)) in self.set.iter().zip(&mut self.frequent) {
                if !set {
                    column.append_null();
                }
            }
            let mut json = false;
            for f in kept(fields).filter(|f| f.json) {
                c.json_keys.values().append_value(f.key);
                json = true;
            }
            c.json_keys.append(json);
        }
        Ok(())
    }

    /// The rows as one Arrow batch of the table schema (partition column included), in
    /// the order they were appended. Columns are matched with the schema by name.
    pub fn finish(self, schema: SchemaRef) -> Result<RecordBatch, ArrowError> {
        use schema::*;
        let mut c = self.c;
        let mut built: Vec<(&str, ArrayRef)> = vec![
            (DATE, Arc::new(c.date.finish())),
            (TIME_NS, Arc::new(c.time_ns.finish())),
            (RECEIVED_NS, Arc::new(c.received_ns.finish())),
            (BATCH_ID, Arc::new(c.batch_id.finish())),
            (POSITION, Arc::new(c.position.finish())),
            (PRODUCT, Arc::new(c.product.finish())),
            (TOPIC, Arc::new(c.topic.finish())),
            (SOURCE, Arc::new(c.source.finish())),
            (TAGS, Arc::new(c.tags.finish())),
            (ENVIRONMENT, Arc::new(c.environment.finish())),
            (RELEASE, Arc::new(c.release.finish())),
            (LEVEL, Arc::new(c.level.finish())),
            (MESSAGE, Arc::new(c.message.finish())),
            (TEMPLATE, Arc::new(c.template.finish())),
            (TRACE_ID, Arc::new(c.trace_id.finish())),
            (SPAN_ID, Arc::new(c.span_id.finish())),
            (USER_ID, Arc::new(c.user_id.finish())),
            (USER_EMAIL, Arc::new(c.user_email.finish())),
            (ACCOUNT_ID, Arc::new(c.account_id.finish())),
            (ACCOUNT_NAME, Arc::new(c.account_name.finish())),
            (LOGGER_NAME, Arc::new(c.logger_name.finish())),
            (FILE_PATH, Arc::new(c.file_path.finish())),
            (LINE_NUMBER, Arc::new(c.line_number.finish())),
            (FUNCTION_NAME, Arc::new(c.function_name.finish())),
            (FIELDS, Arc::new(c.fields.finish())),
            (JSON_KEYS, Arc::new(c.json_keys.finish())),
        ];
        if !self.frequent.is_empty() {
            let (fields, arrays): (Vec<ArrowField>, Vec<ArrayRef>) = self
                .frequent
                .into_iter()
                .map(|(key, mut column)| {
                    (ArrowField::new(key, DataType::Utf8, true), Arc::new(column.finish()) as ArrayRef)
                })
                .unzip();
            built.push((FREQUENT, Arc::new(StructArray::try_new(fields.into(), arrays, None)?)));
        }
        // Each schema field takes the column of its name. The builders' nested field names
        // follow Delta's Arrow mapping; cast to the table's exact schema (nullability of
        // nested fields) without copying data.
        let columns = schema
            .fields()
            .iter()
            .map(|field| {
                let at = built.iter().position(|(name, _)| name == field.name()).ok_or_else(|| {
                    ArrowError::SchemaError(format!("no column {} is built for the table", field.name()))
                })?;
                let (_, array) = built.swap_remove(at);
                if array.data_type() == field.data_type() {
                    Ok(array)
                } else {
                    let data = array.to_data().into_builder().data_type(field.data_type().clone()).build()?;
                    Ok(deltalake::arrow::array::make_array(data))
                }
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        if let Some((name, _)) = built.first() {
            return Err(ArrowError::SchemaError(format!("column {name} is not in the table's schema")));
        }
        RecordBatch::try_new(schema, columns)
    }
}

/// At most this many fields get columns of their own.
const MAX_FREQUENT: usize = 32;

/// The fields a new table keeps as columns of their own: those at least half of the
/// sampled records carry, most common first, at most [`MAX_FREQUENT`], whose keys are
/// plain names (`[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters, unique whatever their
/// case, as Delta column names must be).
pub fn choose_frequent_keys<'a>(sample: impl IntoIterator<Item = &'a BodyRef<'a>>) -> Vec<String> {
    let mut counts: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut records = 0;
    for body in sample {
        for r in &body.records {
            records += 1;
            for f in kept(body.fields(r)) {
                *counts.entry(f.key).or_default() += 1;
            }
        }
    }
    let plain = |k: &str| {
        k.len() <= 64
            && k.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let mut keys: Vec<(&str, usize)> =
        counts.into_iter().filter(|(k, n)| plain(k) && *n * 2 >= records && records > 0).collect();
    keys.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let mut chosen: Vec<String> = Vec::new();
    for (key, _) in keys {
        if chosen.len() < MAX_FREQUENT && !chosen.iter().any(|c| c.eq_ignore_ascii_case(key)) {
            chosen.push(key.to_owned());
        }
    }
    chosen
}

/// All records of `batches` as one Arrow batch of the table schema (partition column
/// included), in batch order.
pub fn to_record_batch<'a>(
    batches: impl IntoIterator<Item = &'a ReceivedBatch>,
    schema: SchemaRef,
) -> Result<RecordBatch, ArrowError> {
    let batches: Vec<&ReceivedBatch> = batches.into_iter().collect();
    let frequent = schema::frequent_keys(&schema);
    let count = batches.iter().map(|b| b.header.record_count as usize).sum();
    let mut rows = Rows::with_capacity(count, &frequent, &Sizes::default());
    for b in batches {
        let batch = b.batch().map_err(|e| ArrowError::ExternalError(Box::new(e)))?;
        rows.append(&batch, b.received_ns)?;
    }
    rows.finish(schema)
}

/// The rows of several batches by partition, then in time order, handed out in runs of
/// consecutive rows of one partition. Only the run being handed out is copied.
#[derive(Debug)]
pub struct TimeOrder {
    pieces: Vec<RecordBatch>,
    /// (partition key, time, piece, row), sorted.
    order: Vec<(i64, i64, u32, u32)>,
}

impl TimeOrder {
    pub fn new(pieces: Vec<RecordBatch>) -> Result<Self, ArrowError> {
        let mut order = Vec::with_capacity(pieces.iter().map(RecordBatch::num_rows).sum());
        let int64 = |piece: &RecordBatch, name: &str| {
            piece.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<Int64Array>()).cloned()
        };
        for (p, piece) in pieces.iter().enumerate() {
            let times = int64(piece, schema::TIME_NS)
                .ok_or_else(|| ArrowError::SchemaError("no Int64 time_ns column".into()))?;
            // Without a receive time, a log is as recent as its time: its day.
            let received = int64(piece, schema::RECEIVED_NS).unwrap_or_else(|| times.clone());
            let p = u32::try_from(p).map_err(|_| ArrowError::ComputeError("too many pieces".into()))?;
            order.extend(
                times
                    .values()
                    .iter()
                    .zip(received.values())
                    .enumerate()
                    .map(|(row, (t, r))| (Partition::of(*t, *r).key(), *t, p, row as u32)),
            );
        }
        order.sort_unstable();
        Ok(Self { pieces, order })
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// The rows built first, as a sample of all.
    pub fn first_piece(&self) -> Option<&RecordBatch> {
        self.pieces.first()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// Where the runs start and end: at most `max_rows` rows each, never across a
    /// partition.
    pub fn runs(&self, max_rows: usize) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut start = 0;
        for i in 1..=self.order.len() {
            let partition = |i: usize| self.order[i].0;
            if i == self.order.len() || i - start == max_rows.max(1) || partition(i) != partition(start) {
                out.push(start..i);
                start = i;
            }
        }
        out
    }

    /// One run's rows (from [`TimeOrder::runs`]) as a batch, with its partition's name.
    pub fn run(&self, range: std::ops::Range<usize>) -> Result<(String, RecordBatch), ArrowError> {
        let schema =
            self.pieces.first().map(RecordBatch::schema).ok_or_else(|| ArrowError::ComputeError("no rows".into()))?;
        let indices: Vec<(usize, usize)> =
            self.order[range.clone()].iter().map(|(_, _, p, row)| (*p as usize, *row as usize)).collect();
        let columns = (0..schema.fields().len())
            .map(|c| {
                let arrays: Vec<&dyn Array> = self.pieces.iter().map(|p| p.column(c).as_ref()).collect();
                interleave(&arrays, &indices)
            })
            .collect::<Result<Vec<_>, ArrowError>>()?;
        let partition = Partition::from_key(self.order[range.start].0).to_string();
        Ok((partition, RecordBatch::try_new(schema, columns)?))
    }
}

/// Values of each frequent field looked at by [`mostly_distinct_keys`].
const DISTINCT_SAMPLE: usize = 4096;

/// The frequent fields of `rows` whose values are mostly distinct: more than half of the
/// first [`DISTINCT_SAMPLE`] values (a request id, a byte count), as opposed to a status
/// or a method.
pub fn mostly_distinct_keys(rows: &RecordBatch) -> Vec<String> {
    let Some(frequent) = rows.column_by_name(FREQUENT).and_then(|c| c.as_struct_opt()) else {
        return Vec::new();
    };
    let distinct = |column: &ArrayRef| {
        let Some(strings) = column.as_string_opt::<i32>() else { return false };
        let values: Vec<&str> = strings.iter().flatten().take(DISTINCT_SAMPLE).collect();
        let set: std::collections::HashSet<&str> = values.iter().copied().collect();
        set.len() * 2 > values.len()
    };
    frequent
        .fields()
        .iter()
        .zip(frequent.columns())
        .filter(|(_, c)| distinct(c))
        .map(|(f, _)| f.name().clone())
        .collect()
}

/// The text of a row of a string column (any string type; other types as displayed),
/// `None` when null.
pub fn text_at(array: &dyn Array, row: usize) -> Option<String> {
    use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    if array.is_null(row) {
        return None;
    }
    match array.data_type() {
        DataType::Utf8 => Some(array.as_string::<i32>().value(row).to_owned()),
        DataType::Utf8View => Some(array.as_string_view().value(row).to_owned()),
        DataType::LargeUtf8 => Some(array.as_string::<i64>().value(row).to_owned()),
        _ => ArrayFormatter::try_new(array, &FormatOptions::default()).ok().map(|f| f.value(row).to_string()),
    }
}

/// A row's value of an integer column, `None` when null or absent.
pub fn int_at(batch: &RecordBatch, name: &str, row: usize) -> Option<i64> {
    let array = deltalake::arrow::compute::cast(batch.column_by_name(name)?, &DataType::Int64).ok()?;
    let values = array.as_primitive::<deltalake::arrow::datatypes::Int64Type>();
    values.is_valid(row).then(|| values.value(row))
}

/// A row's entries of a map column (tags, fields).
pub fn map_entries(array: &dyn Array, row: usize) -> Vec<(String, String)> {
    let Some(map) = array.as_map_opt() else { return Vec::new() };
    if map.is_null(row) {
        return Vec::new();
    }
    let entries = map.value(row);
    let (keys, values) = (entries.column(0), entries.column(1));
    (0..entries.len())
        .filter_map(|i| Some((text_at(keys.as_ref(), i)?, text_at(values.as_ref(), i).unwrap_or_default())))
        .collect()
}

/// A row's fields: those in the table's own columns ([`FREQUENT`]), then the map's.
pub fn field_entries(batch: &RecordBatch, row: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let frequent = batch.column_by_name(FREQUENT).and_then(|c| c.as_struct_opt());
    if let Some(columns) = frequent.filter(|c| c.is_valid(row)) {
        for (field, column) in columns.fields().iter().zip(columns.columns()) {
            if let Some(value) = text_at(column.as_ref(), row) {
                out.push((field.name().clone(), value));
            }
        }
    }
    if let Some(fields) = batch.column_by_name(schema::FIELDS) {
        out.extend(map_entries(fields.as_ref(), row));
    }
    out
}

/// The fields of a row whose values are JSON text ([`schema::JSON_KEYS`]).
pub fn json_keys(batch: &RecordBatch, row: usize) -> Vec<String> {
    batch
        .column_by_name(schema::JSON_KEYS)
        .and_then(|c| c.as_list_opt::<i32>().cloned())
        .filter(|l| l.is_valid(row))
        .map(|l| {
            let values = l.value(row);
            (0..values.len()).filter_map(|i| text_at(values.as_ref(), i)).collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::array::StringArray;

    const NANOS_PER_DAY: i64 = 86_400 * 1_000_000_000;

    fn field<'a>(key: &'a str, value: &'a str) -> FieldRef<'a> {
        FieldRef { key, value: value.as_bytes(), json: false }
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

    /// A raw batch of records with these fields, read back as the compactor reads it.
    fn batch(records: Vec<Vec<(&str, &str)>>) -> ReceivedBatch {
        use sluice_ingest::record::{BodyWriter, GroupRef, RecordRef};
        let mut writer = BodyWriter::with_capacity(0);
        writer.push_group(&GroupRef::default());
        for (i, fields) in records.into_iter().enumerate() {
            let fields: Vec<FieldRef<'_>> = fields.into_iter().map(|(k, v)| field(k, v)).collect();
            writer.push_record(&RecordRef { time_ns: i as i64, fields: &fields, ..RecordRef::default() });
        }
        let id = sluice_ingest::batch::BatchId(1);
        let bytes = sluice_ingest::batch::encode(id, Product::Sls, "p", "l", &writer.finish());
        ReceivedBatch::decode(&bytes, 0).unwrap()
    }

    #[test]
    fn frequent_fields_are_those_half_the_records_carry_with_plain_names() {
        let sample = batch(vec![
            vec![("status", "200"), ("path", "/"), ("bad key", "x"), ("Status", "1")],
            vec![("status", "404"), ("bad key", "y"), ("Status", "2")],
            vec![("status", "500"), ("rare", "z")],
        ]);
        assert_eq!(
            choose_frequent_keys([&sample.batch().unwrap().body]),
            ["status"],
            "no spaces, no second `status` in another case"
        );
        let even = batch(vec![vec![("a", "1")], vec![("b", "2")]]);
        assert_eq!(choose_frequent_keys([&even.batch().unwrap().body]), ["a", "b"], "half is enough");
        assert!(choose_frequent_keys(std::iter::empty()).is_empty());
    }

    #[test]
    fn frequent_fields_get_columns_and_the_others_stay_in_the_map() {
        use deltalake::arrow::array::{AsArray, MapArray};
        let frequent = vec!["status".to_owned()];
        let schema = Arc::new(crate::lake::schema::arrow_schema(&frequent).unwrap());
        let rows = batch(vec![
            vec![("status", "200"), ("path", "/a")],
            vec![("path", "/b")],
            vec![("status", "1"), ("status", "2")],
        ]);
        let out = to_record_batch([&rows], schema).unwrap();
        let status = out.column_by_name("frequent").unwrap().as_struct().column(0).as_string::<i32>().clone();
        assert_eq!(status.iter().collect::<Vec<_>>(), [Some("200"), None, Some("2")]);
        let fields = out.column_by_name("fields").unwrap().as_any().downcast_ref::<MapArray>().unwrap().clone();
        assert_eq!(fields.value(0).column(1).as_string::<i32>().value(0), "/a");
        assert_eq!(fields.value(1).column(1).as_string::<i32>().value(0), "/b");
        assert!(fields.is_null(2), "a log whose fields all have columns has no map");
    }

    #[test]
    fn ids_are_mostly_distinct_and_statuses_are_not() {
        let frequent = vec!["status".to_owned(), "id".to_owned()];
        let schema = Arc::new(crate::lake::schema::arrow_schema(&frequent).unwrap());
        let ids: Vec<String> = (0..100).map(|i| format!("req-{i}")).collect();
        let records = ids
            .iter()
            .enumerate()
            .map(|(i, id)| vec![("status", if i % 7 == 0 { "500" } else { "200" }), ("id", id.as_str())])
            .collect();
        let rows = to_record_batch([&batch(records)], schema).unwrap();
        assert_eq!(mostly_distinct_keys(&rows), ["id"]);
    }

    #[test]
    fn a_repeated_key_keeps_its_last_value() {
        let fields = [field("user", "a"), field("path", "/"), field("user", "b")];
        let kept: Vec<(&str, &[u8])> = kept(&fields).map(|f| (f.key, f.value)).collect();
        assert_eq!(kept, [("path", &b"/"[..]), ("user", &b"b"[..])]);
    }
}
