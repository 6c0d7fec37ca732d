//! What is in the bucket, and nothing else: the floor that compaction, maintenance and
//! queries stand on side by side.
//!
//! - [`store`]: opening the object store a URL names, checking it at startup, probing
//!   for conditional writes; [`durable`] makes a local directory's writes durable.
//! - [`raw`]: raw batches waiting to be compacted: list, read, delete, quarantine.
//! - [`schema`]: the one column catalogue of a logstore's table.
//! - [`rows`]: raw batch records as Arrow rows of that schema, and rows read back.
//! - [`index`]: the token index of each data file, and the SLS tokenizer.
//! - [`table`]: a logstore's Delta table: open, create, which batches it consumed.

pub mod durable;
pub mod index;
pub mod raw;
pub mod rows;
pub mod schema;
pub mod store;
pub mod table;

pub use store::Storage;

/// Why something in the lake could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LakeError {
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("an object path: {0}")]
    Path(#[from] object_store::path::Error),
    #[error("delta table: {0}")]
    Delta(#[from] deltalake::DeltaTableError),
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
    #[error("the table location {path}: {source}")]
    TableUrl { path: String, source: url::ParseError },
    #[error("token index: {0}")]
    Index(#[from] index::IndexError),
    #[error("arrow: {0}")]
    Arrow(#[from] deltalake::arrow::error::ArrowError),
}
