//! The SLS `LogGroup` family (proto2), as sent by PutLogs.
//!
//! ```text
//! message Log       { required uint32 Time = 1; repeated Content Contents = 2; repeated string Values = 3;
//!                     optional fixed32 Time_ns = 4;
//!                     message Content { required string Key = 1; required string Value = 2; } }
//! message LogTag    { required string Key = 1; required string Value = 2; }
//! message LogGroup  { repeated Log Logs = 1; optional string Category = 2; optional string Topic = 3;
//!                     optional string Source = 4; optional string MachineUUID = 5; repeated LogTag LogTags = 6; }
//! message LogGroupList { repeated LogGroup logGroupList = 1; }
//! ```
//!
//! `Category` (2) and `MachineUUID` (5) are legacy: kept here so that tests can send them,
//! ignored by ingest.

/// One log: a time in seconds, an optional nanosecond part and key/value contents.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Log {
    #[prost(uint32, required, tag = "1")]
    pub time: u32,
    #[prost(message, repeated, tag = "2")]
    pub contents: Vec<Content>,
    /// LoongCollector's `Values` (field 3): values without keys.
    #[prost(string, repeated, tag = "3")]
    pub values: Vec<String>,
    #[prost(fixed32, optional, tag = "4")]
    pub time_ns: Option<u32>,
}

/// One key/value pair of a [`Log`]. The value is bytes on the wire for some SDKs.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct Content {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(bytes = "vec", required, tag = "2")]
    pub value: Vec<u8>,
}

/// A tag that applies to every log of a [`LogGroup`].
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogTag {
    #[prost(string, required, tag = "1")]
    pub key: String,
    #[prost(string, required, tag = "2")]
    pub value: String,
}

/// The body of a PutLogs request.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogGroup {
    #[prost(message, repeated, tag = "1")]
    pub logs: Vec<Log>,
    #[prost(string, optional, tag = "2")]
    pub category: Option<String>,
    #[prost(string, optional, tag = "3")]
    pub topic: Option<String>,
    #[prost(string, optional, tag = "4")]
    pub source: Option<String>,
    #[prost(string, optional, tag = "5")]
    pub machine_uuid: Option<String>,
    #[prost(message, repeated, tag = "6")]
    pub log_tags: Vec<LogTag>,
}

/// Several log groups, as PullLogs returns them.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct LogGroupList {
    #[prost(message, repeated, tag = "1")]
    pub log_group_list: Vec<LogGroup>,
}

/// One LogGroup, serialized and compressed on its own, as LoongCollector sends a batch of
/// them with `x-log-mode: batch_group`.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SlsLogPackage {
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
    #[prost(int32, optional, tag = "2")]
    pub uncompress_size: Option<i32>,
    /// `SlsCompressType`: 0 none, 1 deflate, 2 lz4 (the default), 3 zstd.
    #[prost(int32, optional, tag = "3")]
    pub compress_type: Option<i32>,
}

/// LoongCollector's `x-log-mode: batch_group` body.
#[derive(Clone, PartialEq, Eq, prost::Message)]
pub struct SlsLogPackageList {
    #[prost(message, repeated, tag = "1")]
    pub packages: Vec<SlsLogPackage>,
}

/// Field numbers, for readers that walk the wire format themselves.
pub mod tag {
    pub const LOG_GROUP_LOGS: u32 = 1;
    pub const LOG_GROUP_CATEGORY: u32 = 2;
    pub const LOG_GROUP_TOPIC: u32 = 3;
    pub const LOG_GROUP_SOURCE: u32 = 4;
    pub const LOG_GROUP_MACHINE_UUID: u32 = 5;
    pub const LOG_GROUP_TAGS: u32 = 6;
    pub const LOG_TIME: u32 = 1;
    pub const LOG_CONTENTS: u32 = 2;
    pub const LOG_TIME_NS: u32 = 4;
    /// LoongCollector's `Log.values` (repeated string).
    pub const LOG_VALUES: u32 = 3;
    /// `SlsLogPackageList.packages`, `SlsLogPackage.data`, `.uncompress_size`,
    /// `.compress_type` (LoongCollector's `x-log-mode: batch_group` bodies).
    pub const PACKAGE_LIST_PACKAGES: u32 = 1;
    pub const PACKAGE_DATA: u32 = 1;
    pub const PACKAGE_UNCOMPRESS_SIZE: u32 = 2;
    pub const PACKAGE_COMPRESS_TYPE: u32 = 3;
    pub const PAIR_KEY: u32 = 1;
    pub const PAIR_VALUE: u32 = 2;
}
