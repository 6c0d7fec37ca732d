//! Protobuf types shared by the edge worker (wasm) and the native compactor.
//!
//! - [`sls`]: the Alibaba Cloud SLS `LogGroup` family, field numbers as in the SLS
//!   PutLogs wire format (proto2). Values are bytes because some SDKs send them so.
//! - [`batch`]: the body of a Sluice raw batch, the normalized records of one accepted
//!   request. The framing around it (magic, version, checksum, lz4) lives in
//!   `sluice-ingest`'s `batch` module.
//! - [`wire`]: a small borrowing protobuf reader for the ingest hot path, where decoding
//!   into owned prost structs would allocate once per key and value.
//!
//! Everything here compiles for `wasm32-unknown-unknown` and native targets.

pub mod batch;
pub mod sls;
pub mod wire;
