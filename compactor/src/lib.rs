//! The native side of Sluice (`sluice`, tokio): it serves the same ingest APIs as the
//! edge worker through the same `sluice-ingest` core and stores raw batches with
//! `object_store`, so one local process can run the whole pipeline.
//!
//! - [`settings`]: the TOML configuration file (server, storage, and the ingest core's
//!   projects, credentials and limits).
//! - [`storage`]: opening the object store a URL names.
//! - [`server`]: the HTTP server (axum).
//! - [`compact`]: raw batches into each logstore's Delta table, exactly once
//!   ([`table`] holds the table's schema and files, [`records`] the conversion to Arrow);
//!   [`maintenance`] merges small files, applies retention and vacuums.
//! - [`query`]: SLS GetHistograms/GetLogs with the SLS query language and Proliferate's
//!   search, over the Delta table and the raw batches not compacted yet.

pub mod compact;
pub mod durable;
pub mod maintenance;
pub mod query;
pub mod records;
pub mod server;
pub mod settings;
pub mod storage;
pub mod table;
