//! The HTTP server: ingest APIs (the same as the edge worker's), query APIs and health.

mod ingest;
mod jobs;
mod query;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use sluice_ingest::Config;
use sluice_ingest::quota::TokenBuckets;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Semaphore;

use crate::query::QueryError;
use crate::query::scan::ScanStats;
use crate::query::sls::Logs;
use crate::query::source::Cache;
use crate::storage::Storage;

/// A histogram bucket: `[from, to)` in seconds and its count.
type Bucket = (i64, i64, u64);

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub storage: Storage,
    quotas: Mutex<TokenBuckets>,
    inflight: Semaphore,
    request_ids: RequestIds,
    query_cache: Cache,
    histograms: jobs::Jobs<Result<(Vec<Bucket>, ScanStats), QueryError>>,
    logs: jobs::Jobs<Result<(Logs, ScanStats), QueryError>>,
    /// How long a query request waits before answering `Incomplete`.
    query_deadline: Duration,
    /// How far back commits are checked for consumed raw batches.
    lookback: Duration,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        storage: Storage,
        max_concurrent_requests: usize,
        query_deadline: Duration,
        lookback: Duration,
    ) -> Self {
        Self {
            config,
            storage,
            quotas: Mutex::new(TokenBuckets::default()),
            inflight: Semaphore::new(max_concurrent_requests.max(1)),
            request_ids: RequestIds::new(),
            query_cache: Cache::default(),
            histograms: jobs::Jobs::new(Duration::from_secs(300)),
            logs: jobs::Jobs::new(Duration::from_secs(300)),
            query_deadline,
            lookback,
        }
    }
}

/// The routes of `sluice serve`.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/logstores/{logstore}", get(query::sls_get).post(ingest::ingest))
        .route("/logstores/{logstore}/logs", post(query::sls_logs_v2))
        .route("/api/v1/projects/{project_id}/logs", get(query::proliferate_search))
        .route("/api/v1/events/{event_id}/logs", get(query::proliferate_event))
        .fallback(ingest::ingest)
        .with_state(state)
}

/// A core response as an HTTP response.
fn to_http(response: sluice_ingest::Response) -> Response {
    let mut out = Response::new(Body::from(response.body));
    *out.status_mut() = StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    for (name, value) in response.headers {
        if let Ok(value) = HeaderValue::from_str(&value) {
            out.headers_mut().insert(HeaderName::from_static(name), value);
        }
    }
    out
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
