//! Queries: the SLS query language ([`syntax`], [`filter`], [`sql`]) and Proliferate's
//! search, run by DataFusion over a logstore's Delta table unioned with its raw batches
//! that are not compacted yet ([`source`]). Answers are Arrow rows; the API renders them.
//! It stands on [`crate::lake`] only.
//!
//! Time ranges become bounds on the `date` partition column and on `time_ns`, so that
//! partitions, files (Delta statistics) and row groups (Parquet statistics, page indexes)
//! are pruned before reading; trace id lookups are equalities that bloom filters prune.
//!
//! Every query runs in sessions of its own ([`session`]) with the bounds of
//! [`QueryLimits`]: time ([`deadline`]), memory, what one function call may produce
//! ([`bounded`]), result size, query text, nesting and the `| SQL` rules of [`sql`].

pub mod bounded;
pub mod count;
pub mod deadline;
pub mod files;
pub mod filter;
pub mod page;
pub mod proliferate;
pub mod prune;
pub mod rollup;
pub mod scan;
pub mod session;
pub mod sls;
pub mod source;
pub mod sql;
pub mod syntax;
pub mod text;
pub mod udf;

use datafusion::error::DataFusionError;
use deltalake::DeltaTableError;

/// What one query may use.
#[derive(Clone, Copy, Debug)]
pub struct QueryLimits {
    /// How long a query may run; past it, it stops ([`deadline`]).
    pub timeout: std::time::Duration,
    /// Memory the query's operators may hold (sorts, joins, aggregates).
    pub memory_bytes: usize,
    /// Longest query text (search and SQL).
    pub max_query_bytes: usize,
    /// Largest answer, in bytes of Arrow data.
    pub max_result_bytes: usize,
    /// Most terms in the search part.
    pub max_search_terms: usize,
    /// The `| SQL` rules (nesting, rows, series, regular expressions).
    pub sql: sql::SqlLimits,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            timeout: std::time::Duration::from_secs(60),
            memory_bytes: 1 << 30,
            max_query_bytes: 16 * 1024,
            max_result_bytes: 64 << 20,
            max_search_terms: 1024,
            sql: sql::SqlLimits::default(),
        }
    }
}

impl QueryLimits {
    /// What one scalar function call may produce: a quarter of the query's memory.
    pub fn max_function_bytes(&self) -> usize {
        self.memory_bytes / 4
    }
}

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The query is not valid: the product's "invalid query" answer.
    #[error("{0}")]
    InvalidQuery(String),
    /// The query asks for more than its limits allow (memory, result size, a function's
    /// output): the product's "invalid query" answer, saying which limit.
    #[error("{0}")]
    TooExpensive(String),
    #[error("query: {0}")]
    DataFusion(DataFusionError),
    #[error("delta table: {0}")]
    Delta(#[from] DeltaTableError),
    #[error(transparent)]
    Lake(#[from] crate::lake::LakeError),
    #[error(transparent)]
    Schema(#[from] crate::lake::schema::SchemaError),
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

impl From<DataFusionError> for QueryError {
    /// Storage, I/O and internal failures are the server's; a limit reached is the
    /// query's cost; anything else an expression or a plan refuses (a cast that fails,
    /// a division by zero, an unknown column, a regular expression over its size) is the
    /// query's own mistake.
    fn from(e: DataFusionError) -> Self {
        fn root(e: &DataFusionError) -> &DataFusionError {
            match e {
                DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => root(inner),
                DataFusionError::Shared(inner) => root(inner),
                DataFusionError::Collection(all) => all.first().map_or(e, root),
                other => other,
            }
        }
        match root(&e) {
            DataFusionError::ResourcesExhausted(message) => Self::TooExpensive(limit_message(message)),
            DataFusionError::ObjectStore(_)
            | DataFusionError::IoError(_)
            | DataFusionError::ParquetError(_)
            | DataFusionError::External(_)
            | DataFusionError::ExecutionJoin(_)
            | DataFusionError::Internal(_) => Self::DataFusion(e),
            _ => Self::InvalidQuery(e.strip_backtrace().to_string()),
        }
    }
}

/// A memory or size limit, said as what to do about it.
fn limit_message(message: &str) -> String {
    if message.contains("Failed to allocate") || message.contains("memory") && !message.contains("MB, more than") {
        format!("the query needs more memory than its limit ([query] memory_mb): {message}")
    } else {
        message.to_owned()
    }
}
