//! Queries: the SLS query language ([`syntax`], [`filter`], [`sql`]) and Proliferate's
//! search, run by DataFusion over a logstore's Delta table unioned with its raw batches
//! that are not compacted yet ([`source`]).
//!
//! Time ranges become bounds on the `date` partition column and on `time_ns`, so that
//! partitions, files (Delta statistics) and row groups (Parquet statistics, page indexes)
//! are pruned before reading; trace id lookups are equalities that bloom filters prune.

pub mod filter;
pub mod proliferate;
pub mod scan;
pub mod sls;
pub mod source;
pub mod sql;
pub mod syntax;
pub mod text;
pub mod udf;

use datafusion::error::DataFusionError;
use deltalake::DeltaTableError;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query is not valid: the product's "invalid query" answer.
    #[error("{0}")]
    InvalidQuery(String),
    #[error("query: {0}")]
    DataFusion(#[from] DataFusionError),
    #[error("delta table: {0}")]
    Delta(#[from] DeltaTableError),
    #[error("{0}")]
    Compact(#[from] crate::compact::CompactError),
    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),
    #[error("arrow: {0}")]
    Arrow(#[from] datafusion::arrow::error::ArrowError),
    /// A raw batch was compacted while the query was being set up: run it again.
    #[error("the data changed while the query was set up")]
    Retry,
}

impl From<syntax::SyntaxError> for QueryError {
    fn from(e: syntax::SyntaxError) -> Self {
        Self::InvalidQuery(e.to_string())
    }
}
