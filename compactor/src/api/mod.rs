//! The HTTP APIs of `sluice serve`, one room per product API, each doing parameters →
//! authorize (`sluice_ingest::auth`) → query ([`crate::query`]) → render → headers:
//!
//! - [`ingest`]: SLS PutLogs, LTS reporting and Proliferate batches, through the same
//!   core as the edge worker;
//! - [`sls`]: GetHistograms and GetLogs;
//! - [`proliferate`]: log search and trace correlation;
//! - [`jobs`]: queries that outlive a request, within bounds;
//! - [`explorer`]: the log explorer page at `/`, its sessions ([`session`]) and the
//!   calls it makes.
//!
//! [`router`] routes them; a path no API knows gets the product's own error. This is the
//! only place that renders product JSON from query answers.
//!
//! Connections are served by [`serve`], which bounds what a client can hold: how many
//! connections are open, how long request headers may take, how large they may be; a
//! request body must keep arriving at a minimum rate ([`read_body`]) and all bodies being
//! read share a byte budget. A request takes one of `max_concurrent_requests` slots only
//! once its body has arrived, so slow clients never starve the others.

mod explorer;
mod ingest;
mod jobs;
mod proliferate;
mod session;
mod sls;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use futures::StreamExt;
use sluice_ingest::quota::TokenBuckets;
use sluice_ingest::{Config, IngestError};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::runtime::Handle;
use tokio::sync::Semaphore;

use crate::lake::Storage;
use crate::query::QueryError;
use crate::query::proliferate::Page;
use crate::query::scan::ScanStats;
use crate::query::sls::Logs;
use crate::query::source::{Cache, Reading, Shared, Source};
use crate::settings::Settings;
use axum::http::{HeaderMap, Method, Uri};
use datafusion::arrow::array::RecordBatch;
use sluice_ingest::{Headers, Target};

/// Log explorer sessions held at once; more push out the oldest.
const MAX_SESSIONS: usize = 10_000;

/// What a query read (files, row groups, bytes, rows), on every query answer.
pub const SCANNED_HEADER: &str = "x-sluice-scanned";

pub use jobs::Limiter;

/// A histogram bucket: `[from, to)` in seconds and its count.
type Bucket = (i64, i64, u64);
type Answer<T> = Result<(T, ScanStats), QueryError>;

/// How request bodies must arrive.
#[derive(Debug)]
struct BodyRules {
    window: Duration,
    min_bytes_per_sec: u64,
    /// Kilobytes of bodies being read, across requests.
    buffer: Arc<Semaphore>,
}

/// What every handler shares.
#[derive(Debug)]
pub struct AppState {
    pub config: Arc<Config>,
    pub storage: Storage,
    quotas: Mutex<TokenBuckets>,
    /// Requests being handled once their body arrived.
    inflight: Semaphore,
    body: BodyRules,
    request_ids: RequestIds,
    /// The lake, the cache and the limits every query shares.
    queries: Shared,
    histograms: jobs::Jobs<Answer<Vec<Bucket>>>,
    logs: jobs::Jobs<Answer<Logs>>,
    searches: jobs::Jobs<Answer<Page>>,
    events: jobs::Jobs<Answer<Option<Vec<RecordBatch>>>>,
    contexts: jobs::Jobs<Answer<Option<crate::query::sls::Context>>>,
    /// How long a query request waits before answering `Incomplete`.
    query_deadline: Duration,
    /// How long a query may run before it is cancelled.
    query_budget: Duration,
    /// Who is signed in to the log explorer.
    sessions: session::Sessions,
}

impl AppState {
    /// The state of a server with these settings; queries run on `queries` (a runtime
    /// of their own, see [`query_runtime`]).
    pub fn new(settings: &Settings, storage: Storage, queries: Handle) -> Self {
        let server = &settings.server;
        let limits = settings.query.limits();
        // The job's own bound, a second behind the one the query enforces itself
        // ([`crate::query::deadline`]), for what happens outside its plans.
        let budget = limits.timeout + Duration::from_secs(1);
        let limiter = Limiter::new(settings.query.max_concurrent, settings.query.max_concurrent_per_credential);
        let keep = Duration::from_secs(300);
        let buffer_kb = usize::try_from(server.max_body_buffer_mb.max(1) * 1024).unwrap_or(usize::MAX >> 4);
        Self {
            config: Arc::new(settings.ingest.clone()),
            storage: storage.clone(),
            quotas: Mutex::new(TokenBuckets::default()),
            inflight: Semaphore::new(server.max_concurrent_requests.max(1)),
            body: BodyRules {
                window: Duration::from_secs(server.body_timeout_secs.max(1)),
                min_bytes_per_sec: server.min_body_bytes_per_sec,
                buffer: Arc::new(Semaphore::new(buffer_kb.min(Semaphore::MAX_PERMITS))),
            },
            request_ids: RequestIds::new(),
            queries: Shared {
                storage: storage.clone(),
                cache: Cache::default(),
                lookback: Duration::from_secs(settings.compaction.lookback_hours * 3600),
                listing_for: Duration::from_millis(settings.query.listing_ms),
                limits,
            },
            histograms: jobs::Jobs::new(keep, limiter.clone(), queries.clone(), budget),
            logs: jobs::Jobs::new(keep, limiter.clone(), queries.clone(), budget),
            searches: jobs::Jobs::new(keep, limiter.clone(), queries.clone(), budget),
            events: jobs::Jobs::new(keep, limiter.clone(), queries.clone(), budget),
            contexts: jobs::Jobs::new(keep, limiter, queries.clone(), budget),
            query_deadline: Duration::from_secs(server.query_deadline_secs),
            query_budget: budget,
            sessions: session::Sessions::new(Duration::from_secs(server.session_hours.max(1) * 3600), MAX_SESSIONS),
        }
    }
}

/// The runtime queries run on: one thread per core, each at a lower scheduling priority
/// (nice 10) than the threads that take ingest, with room for deep query plans on its
/// stack. A burst of expensive queries then slows other queries, not PutLogs.
pub fn query_runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
        .thread_name("sluice-query")
        .thread_stack_size(32 << 20)
        .on_thread_start(|| {
            if let Err(error) = rustix::process::setpriority_process(Some(rustix::thread::gettid()), 10) {
                tracing::debug!(%error, "cannot lower the priority of a query thread");
            }
        })
        .enable_all()
        .build()
}

/// The routes of `sluice serve`. Ingest paths are recognized by the ingest core itself
/// (the fallback), so that both edges agree on them; so is every other request, answered
/// in its product's error body ([`unrouted`]), a path with a method it does not take
/// included.
pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/", get(explorer::page))
        .route("/ui/{asset}", get(explorer::asset))
        .route("/ui/session", get(explorer::current).post(explorer::sign_in).delete(explorer::sign_out))
        .route("/ui/api/{project}/{logstore}", get(explorer::read))
        .route("/ui/api/{project}/{logstore}/facets", get(explorer::facets))
        .route("/health", get(health))
        .route("/logstores", get(sls::list_logstores))
        .route("/logstores/{logstore}", get(sls::get).post(ingest::ingest))
        .route("/logstores/{logstore}/index", get(sls::get))
        .route("/logstores/{logstore}/shards", get(sls::get))
        .route("/logstores/{logstore}/logs", post(sls::logs_v2))
        .route("/api/v1/projects/{project_id}/logs", get(proliferate::search))
        .route("/api/v1/events/{event_id}/logs", get(proliferate::event))
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(ingest::ingest)
        .with_state(state)
}

async fn method_not_allowed(
    axum::extract::State(state): axum::extract::State<Arc<AppState>>,
    method: Method,
    uri: Uri,
) -> Response {
    unrouted(&state, &method, &uri)
}

/// A request no route serves: the product's error, naming the API when it is one
/// (`sluice_ingest::unrouted`).
fn unrouted(state: &AppState, method: &Method, uri: &Uri) -> Response {
    let query = uri.query().unwrap_or("");
    to_http(sluice_ingest::unrouted(method.as_str(), uri.path(), query, &state.request_ids.next()))
}

/// Request headers as the ingest core reads them.
fn headers_of(map: &HeaderMap) -> Headers {
    map.iter().map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.as_bytes()).into_owned())).collect()
}

/// Opens a logstore for a query; a raw batch compacted while the query was being set up
/// sends it back to the listing (a few times).
async fn open(state: &AppState, reading: Reading<'_>) -> Result<Source, QueryError> {
    let mut attempt = 0;
    loop {
        match Source::open(&state.queries, reading).await {
            Err(QueryError::Retry) if attempt < 3 => attempt += 1,
            other => return other,
        }
    }
}

/// Logs what a query read, and returns it.
fn scanned(source: &Source, target: &Target, kind: &str) -> ScanStats {
    let stats = source.scanned.get();
    tracing::info!(
        project = %target.project, logstore = %target.logstore, kind, files = stats.files,
        row_groups = stats.row_groups, row_groups_read = stats.row_groups_read,
        bloom_pruned = stats.row_groups_pruned_by_bloom, bytes = stats.bytes, rows = stats.rows,
        raw_batches = source.raw_batches, raw_rows = source.raw_rows, "query scanned"
    );
    stats
}

/// A failed query as the product error it answers.
fn to_ingest(e: &QueryError) -> IngestError {
    match e {
        QueryError::InvalidQuery(m) | QueryError::TooExpensive(m) => IngestError::InvalidQueryString(m.clone()),
        other => {
            tracing::warn!(error = %other, "query failed");
            IngestError::QueryFailed(other.to_string())
        }
    }
}

/// A query that did not finish, or could not start, as the product error it answers
/// (`None` while it is still running, or done).
fn unfinished<T>(outcome: &jobs::Outcome<T>) -> Option<IngestError> {
    match outcome {
        jobs::Outcome::Busy(why) => Some(IngestError::QueryBusy(why.clone())),
        jobs::Outcome::Cancelled(budget) => Some(IngestError::InvalidQueryString(format!(
            "the query was cancelled after {} s, its budget ([query] timeout_secs): narrow the time range or simplify the query",
            budget.as_secs().saturating_sub(1)
        ))),
        jobs::Outcome::Done(_) | jobs::Outcome::Running => None,
    }
}

fn respond(status: u16, headers: Vec<(&'static str, String)>, body: Vec<u8>) -> Response {
    to_http(sluice_ingest::Response { status, headers, body })
}

/// Serves `router` on `listener` until `shutdown` completes, then lets open requests
/// finish. See the module documentation for the bounds.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    settings: &crate::settings::ServerSettings,
    shutdown: impl std::future::Future<Output = ()>,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let connections = Arc::new(Semaphore::new(settings.max_connections.clamp(1, Semaphore::MAX_PERMITS)));
    let header_timeout = Duration::from_secs(settings.header_timeout_secs.max(1));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let Ok(permit) = connections.clone().acquire_owned().await else { break };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    // Answers go out as soon as they are written (no Nagle delay).
                    let _ = stream.set_nodelay(true);
                    stream
                }
                Err(error) => {
                    // Out of file descriptors and the like: wait, do not give up serving.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = {
            let router = router.clone();
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                tower::ServiceExt::oneshot(router.clone(), request.map(Body::new))
            })
        };
        let mut stopped = stopped.clone();
        let stop = async move {
            let _ = stopped.wait_for(|stop| *stop).await;
        };
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(header_timeout)
                .max_buf_size(64 * 1024)
                .serve_connection(TokioIo::new(stream), service);
            let mut connection = std::pin::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = stop => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.as_mut().await;
                }
            }
            drop(permit);
        });
    }
    let _ = stop.send(true);
    // Open connections finish their requests.
    let _ = connections.acquire_many(u32::try_from(settings.max_connections.max(1)).unwrap_or(u32::MAX)).await;
}

/// Reads a request body of at most `limit` bytes. It must keep arriving: at least
/// `min_bytes_per_sec` over every window of `body_timeout_secs`, or the request is
/// refused with [`IngestError::BodyTooSlow`]. Bodies being read share the server's
/// buffer budget; over it, [`IngestError::ServerBusy`].
async fn read_body(state: &AppState, body: Body, limit: usize) -> Result<Bytes, IngestError> {
    let rules = &state.body;
    let mut stream = body.into_data_stream();
    let mut out = Vec::new();
    let mut held = Vec::new();
    let mut window_end = tokio::time::Instant::now() + rules.window;
    let mut window_bytes = 0u64;
    let window_floor = rules.min_bytes_per_sec * rules.window.as_secs();
    loop {
        let chunk = match tokio::time::timeout_at(window_end, stream.next()).await {
            Ok(Some(Ok(chunk))) => chunk,
            Ok(None) => break,
            Ok(Some(Err(_))) => return Err(IngestError::InvalidBody("the request body could not be read".into())),
            Err(_) => {
                if window_bytes < window_floor {
                    return Err(IngestError::BodyTooSlow { min_bytes_per_sec: rules.min_bytes_per_sec });
                }
                window_end += rules.window;
                window_bytes = 0;
                continue;
            }
        };
        if out.len() + chunk.len() > limit {
            return Err(IngestError::BodyTooLarge { limit, actual: out.len() + chunk.len() });
        }
        let kb = u32::try_from(chunk.len().div_ceil(1024)).unwrap_or(u32::MAX);
        match rules.buffer.clone().try_acquire_many_owned(kb) {
            Ok(permit) => held.push(permit),
            Err(_) => return Err(IngestError::ServerBusy),
        }
        window_bytes += chunk.len() as u64;
        out.extend_from_slice(&chunk);
        if tokio::time::Instant::now() >= window_end {
            if window_bytes < window_floor {
                return Err(IngestError::BodyTooSlow { min_bytes_per_sec: rules.min_bytes_per_sec });
            }
            window_end = tokio::time::Instant::now() + rules.window;
            window_bytes = 0;
        }
    }
    Ok(Bytes::from(out))
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

async fn health() -> Response {
    respond(200, vec![("content-type", "application/json".into())], br#"{"status":"ok"}"#.to_vec())
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
