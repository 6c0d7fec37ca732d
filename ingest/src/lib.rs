//! The sans-IO ingest core of Sluice, compiled for the edge worker (wasm) and the native
//! server alike.
//!
//! A request comes in as a [`Request`]: which API it is for ([`Endpoint`]),
//! authentication ([`auth`], [`config`]), capped decompression ([`compression`]), one
//! decoder per format ([`format`]), normalization into records ([`record`]), the raw
//! batch ([`batch`]) and its object key ([`layout`]). [`handle`] ties them together and
//! returns either an [`Accepted`] request with the bytes to store and the answer to give
//! once they are stored, or the product's error [`Response`].
//!
//! No async, no clock, no I/O: the edges pass the time in and move the bytes.

pub mod auth;
pub mod batch;
pub mod compression;
pub mod config;
pub mod endpoint;
pub mod error;
pub mod format;
pub mod layout;
pub mod quota;
pub mod record;
pub mod request;
pub mod response;
pub mod time;

pub use config::{Config, Target};
pub use endpoint::Endpoint;
pub use error::{ErrorCode, IngestError};
pub use request::{Context, Headers, Request};
pub use response::Response;
pub use sluice_proto::batch::Product;

use layout::RawBatchKey;
use quota::Admission;

/// A raw batch to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawBatch {
    pub key: RawBatchKey,
    pub bytes: Vec<u8>,
}

/// A request that passed every check.
#[derive(Debug)]
pub struct Accepted {
    pub product: Product,
    pub target: Target,
    /// What to store before answering; `None` when nothing is left to store (an empty
    /// log group, or a Proliferate batch whose entries were all dropped).
    pub batch: Option<RawBatch>,
    pub records: u32,
    /// The answer to send once the batch is stored.
    pub response: Response,
}

impl Accepted {
    /// The answer when the batch could not be stored: the product's retryable error.
    pub fn storage_failed(&self, request_id: &str) -> Response {
        response::error(self.product, &IngestError::StorageUnavailable, request_id)
    }
}

/// Runs one ingest request through the core.
pub fn handle(
    config: &Config,
    endpoint: Endpoint<'_>,
    req: &Request<'_>,
    ctx: &Context<'_>,
    admission: &dyn Admission,
) -> Result<Accepted, Response> {
    let product = endpoint.product();
    let fail = |e: IngestError| response::error(product, &e, ctx.request_id);
    let decoded = match endpoint {
        Endpoint::SlsPutLogs { logstore } => format::sls::decode(config, logstore, req, ctx),
        Endpoint::LtsContents { project_id, group_id, stream_id, high_accuracy } => format::lts::decode(
            config,
            format::lts::Stream { project_id, group_id, stream_id, high_accuracy },
            req,
            ctx,
        ),
        Endpoint::ProliferateBatch => format::proliferate::decode(config, req, ctx),
    }
    .map_err(fail)?;

    let records = decoded.body.record_count;
    let batch = if records == 0 {
        None
    } else {
        if let Some(quota) = config.write_quota(&decoded.target)
            && !admission.admit(&decoded.target, decoded.raw_len, quota, ctx.now_ns)
        {
            return Err(fail(IngestError::WriteQuotaExceed { logstore: decoded.target.logstore.clone() }));
        }
        let target = &decoded.target;
        Some(RawBatch {
            key: RawBatchKey { project: target.project.clone(), logstore: target.logstore.clone(), id: decoded.id },
            bytes: batch::encode(decoded.id, product, &target.project, &target.logstore, &decoded.body),
        })
    };
    Ok(Accepted { product, target: decoded.target, batch, records, response: decoded.response })
}

/// The error answer for a request the edge refuses before the core sees it (a body
/// over the size limit, too many requests at once).
pub fn refuse(product: Product, error: &IngestError, request_id: &str) -> Response {
    response::error(product, error, request_id)
}

/// The answer to a request no handler of this edge serves, in the error body of the
/// product its path belongs to (never plain text: clients parse it): an API this edge
/// does not implement, by name; a method the path does not take; or a `404`.
pub fn unrouted(method: &str, path: &str, query: &str, request_id: &str) -> Response {
    let error = match endpoint::unserved(method, path, query) {
        endpoint::Unserved::Api(api) => IngestError::NotImplemented { api },
        endpoint::Unserved::WrongMethod => {
            IngestError::InvalidMethod { method: method.to_owned(), path: path.to_owned() }
        }
        endpoint::Unserved::Unknown => IngestError::NotFound(format!("{method} {path}")),
    };
    response::error(endpoint::product_of_path(path), &error, request_id)
}
