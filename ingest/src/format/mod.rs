//! One decoder per ingest format. Each checks its product's rules, normalizes the logs
//! into records and returns the encoded batch body.

pub mod lts;
pub mod proliferate;
pub mod sls;
pub mod sls_json;

mod json;

use crate::batch::BatchId;
use crate::config::Target;
use crate::record::EncodedBody;
use crate::response::Response;

/// A request that passed its format's checks.
#[derive(Debug)]
pub struct Decoded {
    pub target: Target,
    pub id: BatchId,
    pub body: EncodedBody,
    /// Uncompressed request size, what write quotas count.
    pub raw_len: usize,
    /// What to answer once the batch is stored.
    pub response: Response,
}
