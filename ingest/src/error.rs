//! What can go wrong with a request, and the small code that decides how each product
//! answers it.
//!
//! [`IngestError`] carries the context for the message; [`ErrorCode`] is the `Copy`
//! classification that [`crate::response`] maps to each product's status and error code.

use crate::compression::DecompressError;

/// The classification of an [`IngestError`], independent of the product that answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    MissingContentLength,
    InvalidContentType,
    MissingBodyRawSize,
    InvalidBodyRawSize,
    InvalidCompressType,
    MissingDate,
    InvalidDateFormat,
    MissingApiVersion,
    InvalidApiVersion,
    InvalidSignatureMethod,
    PostBodyInvalid,
    PostBodyTooLarge,
    PostBodyUncompressError,
    InvalidTimestamp,
    InvalidEncoding,
    InvalidKey,
    RequestTimeExpired,
    Unauthorized,
    SignatureNotMatch,
    MissAccessKeyId,
    WriteQuotaExceed,
    ProjectNotExist,
    LogStoreNotExist,
    InternalServerError,
    ServerBusy,
    /// Too many entries in one batch (Proliferate's 100-log limit).
    TooManyLogs,
    /// A query's time range is empty or reversed.
    InvalidTimeRange,
    /// A query does not parse.
    InvalidQueryString,
    /// A query parameter is missing or malformed.
    InvalidParameter,
    /// A credential may not read this project (Proliferate).
    Forbidden,
    /// The thing asked for does not exist (a Proliferate event).
    NotFound,
    /// The client sent its request too slowly.
    RequestTimeout,
    /// Too many queries at once, for the server or for one credential.
    ExceedQuota,
    /// A query failed on the server's side (storage, a bug): not retryable as is.
    QueryFailed,
    /// The edge is not configured: retryable once an operator fixes it.
    Misconfigured,
    /// An API of the product this endpoint does not serve.
    NotImplemented,
    /// A path of an API, asked with a method it does not take.
    InvalidMethod,
}

/// Why a request was refused. Messages are lowercase and say what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    #[error("content-length header is required")]
    MissingContentLength,
    #[error("content type {found:?} is not supported, send {expected}")]
    InvalidContentType { found: String, expected: &'static str },
    #[error("x-log-bodyrawsize header is required")]
    MissingBodyRawSize,
    #[error("x-log-bodyrawsize {0:?} is not a valid size")]
    InvalidBodyRawSize(String),
    #[error("body is {actual} bytes but x-log-bodyrawsize says {declared}")]
    BodyRawSizeMismatch { declared: usize, actual: usize },
    #[error("compress type {0:?} is not supported, use lz4, deflate or zstd")]
    InvalidCompressType(String),
    #[error("content encoding {0:?} is not supported, use gzip or snappy")]
    InvalidContentEncoding(String),
    #[error("date header is required")]
    MissingDate,
    #[error("date {0:?} is not a valid date")]
    InvalidDateFormat(String),
    #[error("x-log-apiversion header is required")]
    MissingApiVersion,
    #[error("api version {0:?} is not supported, use 0.6.0")]
    InvalidApiVersion(String),
    #[error("signature method {0:?} is not supported: use hmac-sha1 or hmac-sha256")]
    InvalidSignatureMethod(String),
    #[error("request time {request} is more than {window_secs} seconds from the server time {server}")]
    RequestTimeExpired { request: i64, server: i64, window_secs: i64 },
    #[error("authorization header is required")]
    MissingAuthorization,
    #[error("authorization header is malformed: {0}")]
    MalformedAuthorization(&'static str),
    #[error("access key id is missing from the authorization header")]
    MissAccessKeyId,
    #[error("access key id {0:?} is not known")]
    UnknownAccessKey(String),
    #[error("access key {key_id:?} may not write to project {project:?}")]
    AccessDenied { key_id: String, project: String },
    #[error("the request signature does not match the signature computed with the access key")]
    SignatureNotMatch,
    #[error(
        "access key {key_id:?} is an STS credential: {}",
        if *presented { "x-acs-security-token does not match its token" } else { "requests must carry its x-acs-security-token" }
    )]
    SecurityToken { key_id: String, presented: bool },
    #[error(
        "the signature's credential scope names region {region:?}, but this endpoint is region {expected:?} ([sls] region)"
    )]
    WrongRegion { region: String, expected: String },
    #[error("content-md5 {declared:?} does not match the body's md5 {actual}")]
    ContentMd5Mismatch { declared: String, actual: String },
    #[error("x-log-content-sha256 does not match the body")]
    ContentSha256Mismatch,
    #[error("the api key is not valid")]
    InvalidApiKey,
    #[error("the auth token is missing or not valid")]
    InvalidToken,
    #[error("the auth token may not write to project {0:?}")]
    TokenDenied(String),
    #[error("project {0:?} does not exist")]
    ProjectNotExist(String),
    #[error("logstore {0:?} does not exist")]
    LogStoreNotExist(String),
    #[error("body is {actual} bytes, larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize, actual: usize },
    #[error("body could not be decompressed: {0}")]
    Uncompress(#[from] DecompressError),
    #[error("body is not a valid log group: {0}")]
    InvalidLogGroup(String),
    #[error("body is not valid: {0}")]
    InvalidBody(String),
    #[error("log {index}: {reason}")]
    InvalidLog { index: usize, reason: String },
    #[error("log {index}: value of key {key:?} is {actual} bytes, larger than the limit of {limit} bytes")]
    ValueTooLarge { index: usize, key: String, actual: usize, limit: usize },
    #[error("log {index}: time {time} is not valid")]
    InvalidTimestamp { index: usize, time: String },
    #[error("log {index}: time {time_ns} ns is more than {window_secs} seconds from now")]
    TimeOutOfWindow { index: usize, time_ns: i64, window_secs: i64 },
    #[error("{0} is not valid utf-8")]
    InvalidEncoding(String),
    #[error("log {index}: key {key:?} is not allowed: {reason}")]
    InvalidKey { index: usize, key: String, reason: &'static str },
    #[error("batch holds {actual} logs, at most {limit} are allowed")]
    TooManyLogs { limit: usize, actual: usize },
    #[error("write quota of logstore {logstore:?} is exceeded, retry later")]
    WriteQuotaExceed { logstore: String },
    #[error("the server is busy, retry later")]
    ServerBusy,
    #[error("log storage is temporarily unavailable, retry later")]
    StorageUnavailable,
    #[error("request time range is invalid: from {from} must be before to {to}")]
    InvalidTimeRange { from: i64, to: i64 },
    #[error("query string is invalid: {0}")]
    InvalidQueryString(String),
    #[error("parameter {name} is invalid: {reason}")]
    InvalidParameter { name: &'static str, reason: String },
    #[error("the api key does not grant access to project {0:?}")]
    Forbidden(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("the query failed: {0}")]
    QueryFailed(String),
    #[error(
        "the request body arrived slower than {min_bytes_per_sec} bytes per second, the least this server waits for"
    )]
    BodyTooSlow { min_bytes_per_sec: u64 },
    #[error("{0}")]
    QueryBusy(String),
    #[error("the edge is not configured: {0}")]
    Misconfigured(String),
    #[error("{api} is not implemented by this endpoint")]
    NotImplemented { api: &'static str },
    #[error("method {method} is not allowed on {path}")]
    InvalidMethod { method: String, path: String },
}

impl IngestError {
    /// The classification that decides status and product error code.
    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::MissingContentLength => C::MissingContentLength,
            Self::InvalidContentType { .. } => C::InvalidContentType,
            Self::MissingBodyRawSize => C::MissingBodyRawSize,
            Self::InvalidBodyRawSize(_) | Self::BodyRawSizeMismatch { .. } => C::InvalidBodyRawSize,
            Self::InvalidCompressType(_) | Self::InvalidContentEncoding(_) => C::InvalidCompressType,
            Self::MissingDate => C::MissingDate,
            Self::InvalidDateFormat(_) => C::InvalidDateFormat,
            Self::MissingApiVersion => C::MissingApiVersion,
            Self::InvalidApiVersion(_) => C::InvalidApiVersion,
            Self::InvalidSignatureMethod(_) => C::InvalidSignatureMethod,
            Self::RequestTimeExpired { .. } => C::RequestTimeExpired,
            Self::MissingAuthorization
            | Self::MalformedAuthorization(_)
            | Self::UnknownAccessKey(_)
            | Self::AccessDenied { .. }
            | Self::InvalidApiKey
            | Self::InvalidToken
            | Self::TokenDenied(_)
            | Self::SecurityToken { .. } => C::Unauthorized,
            Self::MissAccessKeyId => C::MissAccessKeyId,
            Self::SignatureNotMatch | Self::WrongRegion { .. } => C::SignatureNotMatch,
            Self::ContentMd5Mismatch { .. } | Self::ContentSha256Mismatch => C::PostBodyInvalid,
            Self::ProjectNotExist(_) => C::ProjectNotExist,
            Self::LogStoreNotExist(_) => C::LogStoreNotExist,
            Self::BodyTooLarge { .. } => C::PostBodyTooLarge,
            Self::Uncompress(DecompressError::TooLarge { .. }) => C::PostBodyTooLarge,
            Self::Uncompress(DecompressError::SizeMismatch { .. }) => C::InvalidBodyRawSize,
            Self::Uncompress(_) => C::PostBodyUncompressError,
            Self::InvalidLogGroup(_) | Self::InvalidBody(_) | Self::InvalidLog { .. } | Self::ValueTooLarge { .. } => {
                C::PostBodyInvalid
            }
            Self::InvalidTimestamp { .. } | Self::TimeOutOfWindow { .. } => C::InvalidTimestamp,
            Self::InvalidEncoding(_) => C::InvalidEncoding,
            Self::InvalidKey { .. } => C::InvalidKey,
            Self::TooManyLogs { .. } => C::TooManyLogs,
            Self::WriteQuotaExceed { .. } => C::WriteQuotaExceed,
            Self::ServerBusy => C::ServerBusy,
            Self::StorageUnavailable => C::InternalServerError,
            Self::QueryFailed(_) => C::QueryFailed,
            Self::Misconfigured(_) => C::Misconfigured,
            Self::InvalidTimeRange { .. } => C::InvalidTimeRange,
            Self::InvalidQueryString(_) => C::InvalidQueryString,
            Self::InvalidParameter { .. } => C::InvalidParameter,
            Self::Forbidden(_) => C::Forbidden,
            Self::NotFound(_) => C::NotFound,
            Self::BodyTooSlow { .. } => C::RequestTimeout,
            Self::QueryBusy(_) => C::ExceedQuota,
            Self::NotImplemented { .. } => C::NotImplemented,
            Self::InvalidMethod { .. } => C::InvalidMethod,
        }
    }
}
