//! The HTTP server: ingest APIs (the same as the edge worker's) and health.

mod ingest;

use axum::Router;
use axum::routing::get;
use object_store::ObjectStore;
use sluice_ingest::Config;
use sluice_ingest::quota::TokenBuckets;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub store: Arc<dyn ObjectStore>,
    quotas: Mutex<TokenBuckets>,
    inflight: Semaphore,
    request_ids: RequestIds,
}

impl AppState {
    pub fn new(config: Arc<Config>, store: Arc<dyn ObjectStore>, max_concurrent_requests: usize) -> Self {
        Self {
            config,
            store,
            quotas: Mutex::new(TokenBuckets::default()),
            inflight: Semaphore::new(max_concurrent_requests.max(1)),
            request_ids: RequestIds::new(),
        }
    }
}

/// The routes of `sluice serve`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new().route("/health", get(health)).fallback(ingest::ingest).with_state(state)
}

async fn health() -> &'static str {
    "ok"
}

/// Nanoseconds since the epoch, from the system clock.
pub fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Request ids as SLS writes them: 24 uppercase hex digits, unique per process.
#[derive(Debug)]
struct RequestIds {
    prefix: u32,
    counter: AtomicU64,
}

impl RequestIds {
    fn new() -> Self {
        let seed = now_ns() as u64 ^ u64::from(std::process::id()).rotate_left(32);
        Self { prefix: (seed ^ (seed >> 32)) as u32, counter: AtomicU64::new(seed.rotate_left(17)) }
    }

    fn next(&self) -> String {
        format!("{:08X}{:016X}", self.prefix, self.counter.fetch_add(1, Ordering::Relaxed))
    }
}
