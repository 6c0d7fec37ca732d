//! The one column catalogue of a logstore's table: every column's name, type and roles,
//! once. The Delta schema, the Arrow schema, the Parquet writer properties, the data
//! skipping statistics, the row builder ([`super::rows`]) and the query side's lists
//! (which columns a search key names, how it compares them, which an SLS log shows) are
//! all derived from [`COLUMNS`]; code names a column by its constant, never by position.
//!
//! Every log is one row. SLS contents, Proliferate attributes and the like are fields:
//! those the table keeps as columns of their own are under [`FREQUENT`] (chosen when the
//! table is created, see [`super::rows::frequent_keys`]), the others in [`FIELDS`] (a
//! map); [`JSON_KEYS`] names the fields whose value is JSON text (a number, an object)
//! rather than a string.

use deltalake::arrow::datatypes::{DataType as ArrowType, Schema};
use deltalake::kernel::{ArrayType, DataType, MapType, StructField, StructType};
use deltalake::parquet::basic::{Compression, Encoding, ZstdLevel};
use deltalake::parquet::file::metadata::SortingColumn;
use deltalake::parquet::file::properties::{EnabledStatistics, WriterProperties};
use deltalake::parquet::schema::types::ColumnPath;

/// The partition column: the event's UTC date, month or year (see
/// `sluice_ingest::layout::Partition`).
pub const DATE: &str = "date";
/// Event time, nanoseconds since the epoch.
pub const TIME_NS: &str = "time_ns";
/// When the edge received the request.
pub const RECEIVED_NS: &str = "received_ns";
/// A log's stable id: its raw batch and position in it.
pub const BATCH_ID: &str = "batch_id";
pub const POSITION: &str = "position";
/// `sls`, `lts` or `proliferate`.
pub const PRODUCT: &str = "product";
pub const TOPIC: &str = "topic";
pub const SOURCE: &str = "source";
/// SLS tags, LTS labels (a map).
pub const TAGS: &str = "tags";
pub const ENVIRONMENT: &str = "environment";
pub const RELEASE: &str = "release";
pub const LEVEL: &str = "level";
pub const MESSAGE: &str = "message";
pub const TEMPLATE: &str = "template";
pub const TRACE_ID: &str = "trace_id";
pub const SPAN_ID: &str = "span_id";
pub const USER_ID: &str = "user_id";
pub const USER_EMAIL: &str = "user_email";
pub const ACCOUNT_ID: &str = "account_id";
pub const ACCOUNT_NAME: &str = "account_name";
pub const LOGGER_NAME: &str = "logger_name";
pub const FILE_PATH: &str = "file_path";
pub const LINE_NUMBER: &str = "line_number";
pub const FUNCTION_NAME: &str = "function_name";
/// Fields without a column of their own (a map).
pub const FIELDS: &str = "fields";
/// Which fields hold JSON text (a list).
pub const JSON_KEYS: &str = "json_keys";
/// The table's frequent fields, one string column each (a struct).
pub const FREQUENT: &str = "frequent";

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Long,
    Int,
    /// Text keys to text values.
    Map,
    /// A list of text.
    List,
}

/// How Parquet writes a column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Parquet's default: a dictionary, PLAIN once it outgrows it.
    Dictionary,
    /// Text that is often unique (ids, messages): a dictionary, then
    /// DELTA_LENGTH_BYTE_ARRAY (the bytes back to back, which ZSTD compresses better than
    /// PLAIN's length-value pairs).
    VariedText,
    /// Text unique per log (span ids): no dictionary, DELTA_LENGTH_BYTE_ARRAY.
    UniqueText,
    /// Rising integers (times, positions): DELTA_BINARY_PACKED, no dictionary.
    Delta,
}

/// How `key: value` compares a column of that name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Search {
    /// Not named by search keys.
    No,
    /// For equality (ids): Parquet bloom filters and statistics prune.
    Exact,
    /// By SLS tokens.
    Text,
}

/// One column of the table.
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    pub kind: Kind,
    pub nullable: bool,
    /// Kept in the Delta log's per-file statistics, so files are skipped by it.
    pub stats: bool,
    pub layout: Layout,
    /// A bloom filter per row group (trace id lookups).
    pub bloom: bool,
    pub search: Search,
    /// SLS contents of this name are stored here, not among the fields (ingest's
    /// `PROMOTED_KEYS`): a search key of this name reads the column only.
    pub promoted: bool,
    /// Logs of other products may carry a field of this name (Proliferate's columns, in
    /// SLS contents): a search key or SQL name reads the column, else the field.
    pub shared: bool,
    /// Shown under its own name in an SLS log (besides fields and tags).
    pub shown: bool,
    /// Has few distinct values (levels, topics, sources): queries read it as Parquet keeps
    /// it, a dictionary, and match each of its values once.
    pub few: bool,
}

const fn column(name: &'static str, kind: Kind) -> Column {
    Column {
        name,
        kind,
        nullable: true,
        stats: false,
        layout: Layout::Dictionary,
        bloom: false,
        search: Search::No,
        promoted: false,
        shared: false,
        shown: false,
        few: false,
    }
}

/// A text column logs of every product may carry as a field too.
const fn shared_text(name: &'static str, search: Search) -> Column {
    Column { search, shared: true, shown: true, ..column(name, Kind::Text) }
}

/// A column SLS contents of its name are stored in.
const fn promoted_text(name: &'static str, search: Search) -> Column {
    Column { search, promoted: true, shown: true, ..column(name, Kind::Text) }
}

/// The table's columns, in order, without [`FREQUENT`] (which a table has when it has
/// frequent fields).
pub const COLUMNS: [Column; 26] = [
    Column { nullable: false, ..column(DATE, Kind::Text) },
    Column { nullable: false, stats: true, layout: Layout::Delta, ..column(TIME_NS, Kind::Long) },
    Column { nullable: false, stats: true, layout: Layout::Delta, ..column(RECEIVED_NS, Kind::Long) },
    Column { nullable: false, search: Search::Exact, shared: true, ..column(BATCH_ID, Kind::Text) },
    Column { nullable: false, layout: Layout::Delta, ..column(POSITION, Kind::Int) },
    Column { nullable: false, search: Search::Text, shared: true, ..column(PRODUCT, Kind::Text) },
    Column { stats: true, few: true, ..column(TOPIC, Kind::Text) },
    Column { stats: true, few: true, ..column(SOURCE, Kind::Text) },
    column(TAGS, Kind::Map),
    shared_text(ENVIRONMENT, Search::Text),
    shared_text(RELEASE, Search::Text),
    Column { stats: true, few: true, ..promoted_text(LEVEL, Search::Text) },
    Column { layout: Layout::VariedText, ..promoted_text(MESSAGE, Search::Text) },
    Column { layout: Layout::VariedText, ..shared_text(TEMPLATE, Search::Text) },
    Column { stats: true, bloom: true, layout: Layout::VariedText, ..promoted_text(TRACE_ID, Search::Exact) },
    Column { layout: Layout::UniqueText, ..promoted_text(SPAN_ID, Search::Exact) },
    shared_text(USER_ID, Search::Exact),
    Column { layout: Layout::VariedText, ..shared_text(USER_EMAIL, Search::Text) },
    shared_text(ACCOUNT_ID, Search::Exact),
    shared_text(ACCOUNT_NAME, Search::Text),
    Column { stats: true, ..shared_text(LOGGER_NAME, Search::Text) },
    shared_text(FILE_PATH, Search::Text),
    Column { shown: true, ..column(LINE_NUMBER, Kind::Int) },
    shared_text(FUNCTION_NAME, Search::Text),
    column(FIELDS, Kind::Map),
    column(JSON_KEYS, Kind::List),
];

/// Whether the token index holds a column's tokens: all but the span id, which is unique
/// per log (it would double the index) and found by equality, not by full-text search.
pub fn tokens_indexed(name: &str) -> bool {
    name != SPAN_ID
}

/// The catalogue entry of a column.
pub fn column_named(name: &str) -> Option<&'static Column> {
    COLUMNS.iter().find(|c| c.name == name)
}

/// The columns SLS contents of their names are stored in.
pub fn promoted() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().filter(|c| c.promoted).map(|c| c.name)
}

/// Columns an SLS log shows under their own names.
pub fn shown() -> impl Iterator<Item = &'static str> {
    COLUMNS.iter().filter(|c| c.shown).map(|c| c.name)
}

/// Where a map's values are, under the map's column (Delta's Arrow mapping).
const MAP_VALUES: [&str; 2] = ["key_value", "value"];
/// Where a map's keys are.
const MAP_KEYS: [&str; 2] = ["key_value", "key"];

/// The table's Delta schema, with a [`FREQUENT`] struct when it has frequent fields.
pub fn delta_schema(frequent: &[String]) -> Result<StructType, delta_kernel::Error> {
    let map = || MapType::new(DataType::STRING, DataType::STRING, true);
    let fields = COLUMNS.iter().map(|c| {
        let kind: DataType = match c.kind {
            Kind::Text => DataType::STRING,
            Kind::Long => DataType::LONG,
            Kind::Int => DataType::INTEGER,
            Kind::Map => map().into(),
            Kind::List => ArrayType::new(DataType::STRING, true).into(),
        };
        if c.nullable { StructField::nullable(c.name, kind) } else { StructField::not_null(c.name, kind) }
    });
    let frequent = if frequent.is_empty() {
        None
    } else {
        let columns = frequent.iter().map(|key| StructField::nullable(key, DataType::STRING));
        Some(StructField::nullable(FREQUENT, StructType::try_new(columns)?))
    };
    StructType::try_new(fields.chain(frequent))
}

/// The table's Arrow schema, as delta-rs maps the Delta one.
pub fn arrow_schema(frequent: &[String]) -> Result<Schema, SchemaError> {
    use deltalake::kernel::engine::arrow_conversion::TryIntoArrow as _;
    let delta = delta_schema(frequent).map_err(|e| SchemaError::Delta(e.to_string()))?;
    (&delta).try_into_arrow().map_err(SchemaError::Arrow)
}

/// The frequent fields of a table, from its Arrow schema.
pub fn frequent_keys(schema: &Schema) -> Vec<String> {
    match schema.field_with_name(FREQUENT).map(|f| f.data_type()) {
        Ok(ArrowType::Struct(fields)) => fields.iter().map(|f| f.name().clone()).collect(),
        _ => Vec::new(),
    }
}

/// The columns the Delta log keeps statistics of, as the table property lists them.
pub fn stats_columns() -> String {
    COLUMNS.iter().filter(|c| c.stats).map(|c| c.name).collect::<Vec<_>>().join(",")
}

/// Why a schema cannot be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SchemaError {
    #[error("the table schema: {0}")]
    Delta(String),
    #[error("the table schema in Arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}

/// How Parquet files are written; see README ("Compacted storage") for the measurements
/// behind the numbers.
#[derive(Clone, Copy, Debug)]
pub struct FileSettings {
    pub row_group_rows: usize,
    pub zstd_level: i32,
}

impl Default for FileSettings {
    fn default() -> Self {
        Self { row_group_rows: 128 * 1024, zstd_level: 3 }
    }
}

/// The largest dictionary page a column chunk gets. Reading any row of a chunk decodes
/// its whole dictionary, so a search that reads one slice of a row group paid for
/// Parquet's default (1 MB) in every text column whose values are mostly distinct
/// (messages, trace ids, field values), which only gave the dictionary up once it was
/// full. Low-cardinality text (levels, loggers, users, hosts) fits easily and stays
/// dictionary-encoded; the rest falls back to its layout's encoding early. Measured on
/// the query bench (10M logs): the table 0.8% smaller, a trace id lookup 22 → 19 ms,
/// a minute's first page 26 → 16 ms.
pub const DICTIONARY_PAGE_BYTES: usize = 64 * 1024;

/// The largest data page of a column of varied or unique text (messages, ids, field
/// values); other columns' pages end at the token index's slices. A search that keeps a
/// few rows of a slice decompresses and decodes the pages holding them in every column
/// it returns, so these pages are what a trace id lookup or a minute's first page pays
/// for. Measured on the query bench (10M logs): against 1 MB pages, the table 0.7%
/// larger, a trace id lookup 8.7 → 7.0 ms, a minute's first page 8.2 → 6.7 ms, full
/// scans unchanged; 128 KB pages made the table 6% larger and nothing faster.
pub const WIDE_PAGE_BYTES: usize = 256 * 1024;

/// The Parquet leaf columns of a column: itself, a map's keys and values, a list's elements.
fn leaves(c: &Column) -> Vec<ColumnPath> {
    let under = |inner: &[&str]| {
        ColumnPath::new(std::iter::once(c.name).chain(inner.iter().copied()).map(String::from).collect())
    };
    match c.kind {
        Kind::Text | Kind::Long | Kind::Int => vec![ColumnPath::from(c.name)],
        Kind::Map => vec![under(&MAP_KEYS), under(&MAP_VALUES)],
        Kind::List => vec![under(&["list", "element"])],
    }
}

/// How a column's pages are compressed. ZSTD where it earns its cost: text, and the
/// fields' keys (a sixth smaller than with LZ4). LZ4 for the columns of few values and
/// the delta-coded integers, where ZSTD saves a few kilobytes per row group but costs
/// every query that opens the column chunk a compressor and a decompressor: the `parquet`
/// crate makes both per chunk, and zstd asks the CPU for its features (`cpuid`) each
/// time, which a virtual machine traps. Measured on the query bench (10M logs): the
/// table 0.6% larger, an empty range 2.9 → 2.2 ms, a trace id lookup 9.7 → 8.5 ms.
fn compression(c: &Column, settings: FileSettings) -> Compression {
    match c.layout {
        Layout::Dictionary | Layout::Delta if c.name != FIELDS => Compression::LZ4_RAW,
        _ => Compression::ZSTD(ZstdLevel::try_new(settings.zstd_level).unwrap_or_default()),
    }
}

/// Parquet writer properties, from the catalogue: each column's [`compression`],
/// page-level statistics (column and offset indexes), files declared sorted by time, each
/// column's [`Layout`] and bloom filter; frequent fields and the map's values are varied
/// text, and the frequent fields in `distinct` (values mostly distinct, as a request id's)
/// unique text: a dictionary would cost the writer a lookup per value and be given up at
/// its size limit.
pub fn writer_properties(settings: FileSettings, frequent: &[String], distinct: &[String]) -> WriterProperties {
    // The file schema has no partition column: time_ns is its first column.
    let time_column = COLUMNS.iter().filter(|c| c.name != DATE).position(|c| c.name == TIME_NS).unwrap_or(0);
    let sorting = SortingColumn { column_idx: time_column as i32, descending: false, nulls_first: false };
    let mut builder = WriterProperties::builder()
        // Frequent fields are text: ZSTD, as every column's default.
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(settings.zstd_level).unwrap_or_default()))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(settings.row_group_rows))
        // Pages end where the token index's slices do (or sooner, at 1 MB): the rows a
        // search keeps of a row group are then whole pages of every column.
        .set_data_page_row_count_limit(super::index::slice_rows(settings.row_group_rows))
        .set_dictionary_page_size_limit(DICTIONARY_PAGE_BYTES)
        .set_sorting_columns(Some(vec![sorting]));
    let varied = frequent
        .iter()
        .map(|k| ColumnPath::new(vec![FREQUENT.to_owned(), k.clone()]))
        .chain(std::iter::once(ColumnPath::new(std::iter::once(FIELDS).chain(MAP_VALUES).map(String::from).collect())));
    for path in varied {
        builder = builder
            .set_column_encoding(path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
            .set_column_data_page_size_limit(path, WIDE_PAGE_BYTES);
    }
    for key in distinct {
        builder = builder.set_column_dictionary_enabled(ColumnPath::new(vec![FREQUENT.to_owned(), key.clone()]), false);
    }
    for c in &COLUMNS {
        for leaf in leaves(c) {
            builder = builder.set_column_compression(leaf, compression(c, settings));
        }
        let path = ColumnPath::from(c.name);
        builder = match c.layout {
            Layout::Dictionary => builder,
            Layout::VariedText => builder
                .set_column_encoding(path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
                .set_column_data_page_size_limit(path.clone(), WIDE_PAGE_BYTES),
            Layout::UniqueText => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::DELTA_LENGTH_BYTE_ARRAY)
                .set_column_data_page_size_limit(path.clone(), WIDE_PAGE_BYTES),
            Layout::Delta => builder
                .set_column_dictionary_enabled(path.clone(), false)
                .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED),
        };
        if c.bloom {
            builder =
                builder.set_column_bloom_filter_enabled(path.clone(), true).set_column_bloom_filter_fpp(path, 0.01);
        }
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalogue_agrees_with_ingest_and_with_itself() {
        let promoted: Vec<&str> = promoted().collect();
        assert_eq!(promoted, sluice_ingest::format::sls::PROMOTED_KEYS, "SLS contents stored in their own columns");
        let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COLUMNS.len(), "every column once");
        let schema = arrow_schema(&["status".into()]).unwrap();
        let arrow: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        let expected: Vec<&str> = COLUMNS.iter().map(|c| c.name).chain([FREQUENT]).collect();
        assert_eq!(arrow, expected);
        assert_eq!(frequent_keys(&schema), ["status"]);
        assert_eq!(stats_columns(), "time_ns,received_ns,topic,source,level,trace_id,logger_name");
    }

    #[test]
    fn writer_properties_follow_the_layouts() {
        let props = writer_properties(FileSettings::default(), &["status".into(), "id".into()], &["id".into()]);
        let encoding = |path: &[&str]| props.encoding(&ColumnPath::new(path.iter().map(|s| s.to_string()).collect()));
        assert_eq!(encoding(&[MESSAGE]), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert_eq!(encoding(&[FREQUENT, "status"]), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert!(props.dictionary_enabled(&ColumnPath::new(vec![FREQUENT.into(), "status".into()])));
        assert!(!props.dictionary_enabled(&ColumnPath::new(vec![FREQUENT.into(), "id".into()])));
        assert_eq!(encoding(&[FREQUENT, "id"]), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert_eq!(encoding(&[FIELDS, "key_value", "value"]), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert_eq!(encoding(&[TIME_NS]), Some(Encoding::DELTA_BINARY_PACKED));
        assert!(!props.dictionary_enabled(&ColumnPath::from(SPAN_ID)));
        assert_eq!(encoding(&[SPAN_ID]), Some(Encoding::DELTA_LENGTH_BYTE_ARRAY));
        assert!(props.bloom_filter_properties(&ColumnPath::from(TRACE_ID)).is_some());
        assert_eq!(props.sorting_columns().map(|s| s[0].column_idx), Some(0), "time_ns leads the file schema");
        assert_eq!(props.data_page_row_count_limit(), FileSettings::default().row_group_rows / 4, "a page per slice");
        let path = |p: &[&str]| ColumnPath::new(p.iter().map(|s| s.to_string()).collect());
        let zstd = Compression::ZSTD(ZstdLevel::try_new(FileSettings::default().zstd_level).unwrap());
        for text in [&[MESSAGE][..], &[TRACE_ID], &[FREQUENT, "status"], &[FIELDS, "key_value", "key"]] {
            assert_eq!(props.compression(&path(text)), zstd, "{text:?}");
        }
        for small in
            [&[TIME_NS][..], &[LEVEL], &[BATCH_ID], &[TAGS, "key_value", "key"], &[JSON_KEYS, "list", "element"]]
        {
            assert_eq!(props.compression(&path(small)), Compression::LZ4_RAW, "{small:?}");
        }
        for wide in [&[MESSAGE][..], &[SPAN_ID], &[FREQUENT, "id"], &[FIELDS, "key_value", "value"]] {
            assert_eq!(props.column_data_page_size_limit(&path(wide)), WIDE_PAGE_BYTES, "{wide:?}");
        }
        assert_eq!(props.column_data_page_size_limit(&path(&[LEVEL])), props.data_page_size_limit());
    }

    #[test]
    fn mostly_distinct_text_gives_its_dictionary_up_early() {
        use deltalake::arrow::array::{ArrayRef, RecordBatch, StringArray};
        use deltalake::parquet::arrow::ArrowWriter;
        use deltalake::parquet::column::page::Page;
        use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};
        use std::sync::Arc;

        let rows = 60_000;
        let messages: Vec<String> = (0..rows).map(|i| format!("request {i:08} answered after a retry")).collect();
        let levels: Vec<&str> = (0..rows).map(|i| ["info", "warn", "error"][i % 3]).collect();
        let columns: Vec<(&str, ArrayRef)> =
            vec![(MESSAGE, Arc::new(StringArray::from(messages))), (LEVEL, Arc::new(StringArray::from(levels)))];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let file = tempfile::tempfile().unwrap();
        let props = writer_properties(FileSettings::default(), &[], &[]);
        let mut writer = ArrowWriter::try_new(file.try_clone().unwrap(), batch.schema(), Some(props)).unwrap();
        writer.write(&batch).unwrap();
        writer.close().unwrap();

        let reader = SerializedFileReader::new(file).unwrap();
        let group = reader.get_row_group(0).unwrap();
        let dictionary = |column: usize| match group.get_column_page_reader(column).unwrap().get_next_page().unwrap() {
            Some(Page::DictionaryPage { buf, num_values, .. }) => (buf.len(), num_values),
            other => panic!("column {column} starts with {other:?}"),
        };
        let encodings = |column: usize| {
            let pages = group.get_column_page_reader(column).unwrap();
            pages
                .map(|p| p.unwrap())
                .filter(|p| !matches!(p, Page::DictionaryPage { .. }))
                .map(|p| p.encoding())
                .collect::<Vec<_>>()
        };
        // 2.2 MB of distinct messages: the dictionary stops near its limit (checked per
        // mini-batch of 1024 values) and the rest is DELTA_LENGTH_BYTE_ARRAY.
        let (bytes, values) = dictionary(0);
        assert!(bytes <= DICTIONARY_PAGE_BYTES + 1024 * 40, "{bytes} bytes of dictionary");
        assert!((values as usize) < rows / 10, "{values} values in the dictionary");
        assert!(encodings(0).contains(&Encoding::DELTA_LENGTH_BYTE_ARRAY));
        // Three levels: a dictionary to the end.
        assert_eq!(dictionary(1).1, 3);
        assert!(encodings(1).iter().all(|e| *e == Encoding::RLE_DICTIONARY));
    }
}
