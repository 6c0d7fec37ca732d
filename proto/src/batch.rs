//! The body of a Sluice raw batch: the normalized records of one accepted request.
//!
//! Records that share context (an SLS log group's topic, source and tags; an LTS
//! request's labels; a Proliferate batch's environment and release) point at one
//! [`RecordGroup`] by index instead of repeating it. A record's stable id is the batch id
//! plus its position in [`BatchBody::records`].
//!
//! `sluice-ingest` writes this message field by field from borrowed input (see its
//! `record` module) and reads it back with these derived types; a property test keeps the
//! two byte-identical.

/// Which product's API a batch came in through.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum Product {
    Unspecified = 0,
    Sls = 1,
    Lts = 2,
    Proliferate = 3,
}

/// Uncompressed metadata at the front of a raw batch, readable without the records.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct BatchHeader {
    #[prost(enumeration = "Product", tag = "1")]
    pub product: i32,
    #[prost(string, tag = "2")]
    pub project: String,
    #[prost(string, tag = "3")]
    pub logstore: String,
    #[prost(uint32, tag = "4")]
    pub record_count: u32,
    /// Smallest record time, nanoseconds since the epoch.
    #[prost(sfixed64, tag = "5")]
    pub min_time_ns: i64,
    /// Largest record time, nanoseconds since the epoch.
    #[prost(sfixed64, tag = "6")]
    pub max_time_ns: i64,
}

/// Context shared by several records.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct RecordGroup {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(string, tag = "2")]
    pub source: String,
    /// SLS log tags, LTS labels.
    #[prost(message, repeated, tag = "3")]
    pub tags: Vec<Field>,
    #[prost(string, tag = "4")]
    pub environment: String,
    #[prost(string, tag = "5")]
    pub release: String,
}

/// A key and a value. `json` marks a value that is the JSON text of a non-string value
/// (a Proliferate attribute such as `3` or `{"a": 1}`); otherwise the value is the text
/// itself (SLS values may be arbitrary bytes).
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Field {
    #[prost(string, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", tag = "2")]
    pub value: Vec<u8>,
    #[prost(bool, tag = "3")]
    pub json: bool,
}

/// One log line, normalized.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Record {
    /// Event time, nanoseconds since the epoch.
    #[prost(sfixed64, tag = "1")]
    pub time_ns: i64,
    /// Index into [`BatchBody::groups`].
    #[prost(uint32, tag = "2")]
    pub group: u32,
    #[prost(string, tag = "3")]
    pub level: String,
    #[prost(string, tag = "4")]
    pub message: String,
    #[prost(string, tag = "5")]
    pub template: String,
    #[prost(string, tag = "6")]
    pub trace_id: String,
    #[prost(string, tag = "7")]
    pub span_id: String,
    #[prost(string, tag = "8")]
    pub user_id: String,
    #[prost(string, tag = "9")]
    pub user_email: String,
    #[prost(string, tag = "10")]
    pub account_id: String,
    #[prost(string, tag = "11")]
    pub account_name: String,
    #[prost(string, tag = "12")]
    pub logger_name: String,
    #[prost(string, tag = "13")]
    pub file_path: String,
    #[prost(uint32, optional, tag = "14")]
    pub line_number: Option<u32>,
    #[prost(string, tag = "15")]
    pub function_name: String,
    /// SLS contents, Proliferate attributes and anything else a format carries.
    #[prost(message, repeated, tag = "16")]
    pub fields: Vec<Field>,
}

/// All records of one accepted request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct BatchBody {
    #[prost(message, repeated, tag = "1")]
    pub groups: Vec<RecordGroup>,
    #[prost(message, repeated, tag = "2")]
    pub records: Vec<Record>,
}

/// Field numbers of [`Record`], [`RecordGroup`], [`Field`] and [`BatchBody`], for the
/// streaming encoder in `sluice-ingest`.
pub mod tag {
    pub const BODY_GROUPS: u32 = 1;
    pub const BODY_RECORDS: u32 = 2;

    pub const GROUP_TOPIC: u32 = 1;
    pub const GROUP_SOURCE: u32 = 2;
    pub const GROUP_TAGS: u32 = 3;
    pub const GROUP_ENVIRONMENT: u32 = 4;
    pub const GROUP_RELEASE: u32 = 5;

    pub const FIELD_KEY: u32 = 1;
    pub const FIELD_VALUE: u32 = 2;
    pub const FIELD_JSON: u32 = 3;

    pub const RECORD_TIME_NS: u32 = 1;
    pub const RECORD_GROUP: u32 = 2;
    pub const RECORD_LEVEL: u32 = 3;
    pub const RECORD_MESSAGE: u32 = 4;
    pub const RECORD_TEMPLATE: u32 = 5;
    pub const RECORD_TRACE_ID: u32 = 6;
    pub const RECORD_SPAN_ID: u32 = 7;
    pub const RECORD_USER_ID: u32 = 8;
    pub const RECORD_USER_EMAIL: u32 = 9;
    pub const RECORD_ACCOUNT_ID: u32 = 10;
    pub const RECORD_ACCOUNT_NAME: u32 = 11;
    pub const RECORD_LOGGER_NAME: u32 = 12;
    pub const RECORD_FILE_PATH: u32 = 13;
    pub const RECORD_LINE_NUMBER: u32 = 14;
    pub const RECORD_FUNCTION_NAME: u32 = 15;
    pub const RECORD_FIELDS: u32 = 16;
}
