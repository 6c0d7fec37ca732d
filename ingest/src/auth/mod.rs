//! Who may write or read where, once for each product, called by the ingest decoders
//! ([`crate::format`]) and by the query APIs alike: each `authorize` checks a request's
//! credential and returns the [`crate::Target`] (project and logstore) it may use.
//!
//! - [`sls`]: request signatures (V1 and V4) and the project from `Host`;
//! - [`lts`]: `X-Auth-Token` and the log stream's logstore;
//! - [`proliferate`]: API keys, each mapped to its project;
//! - [`grant`]: signing in with any of those credentials (the log explorer), and what
//!   it may then read.

pub mod grant;
pub mod lts;
pub mod proliferate;
pub mod sls;
