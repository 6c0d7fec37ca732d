//! Where the worker puts raw batches: an R2 bucket binding, or any S3 API (AWS S3, R2's
//! S3 endpoint, MinIO, Garage) through a presigned SigV4 URL and `fetch`.
//!
//! Each put is retried with backoff on errors, 5xx answers and timeouts, within a
//! bounded budget. Keys are content-derived and writes are whole-object, so a retry
//! can only write the same bytes again.

use futures_util::future::{Either, select};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::fmt;
use std::time::Duration;
use worker::{AbortController, Delay, Env, Fetch, Method, RequestInit};

/// How hard to try.
#[derive(Clone, Copy, Debug)]
pub struct Retry {
    pub attempts: u32,
    /// Per attempt.
    pub timeout_ms: u32,
}

impl Retry {
    /// Backoff before attempt `n` (1-based, after the first): 100 ms, 400 ms, 1.6 s...
    fn backoff(n: u32) -> Duration {
        Duration::from_millis(100 * 4u64.pow(n.saturating_sub(1).min(4)))
    }
}

/// An S3 API endpoint, bucket and credentials.
#[derive(Clone)]
pub struct S3Target {
    bucket: Bucket,
    credentials: Credentials,
    prefix: String,
}

impl fmt::Debug for S3Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Target").field("bucket", &self.bucket).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// Why an S3 target cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum S3TargetError {
    #[error("SLUICE_S3_ENDPOINT {endpoint:?} is not a url: {source}")]
    Endpoint { endpoint: String, source: url::ParseError },
    #[error("SLUICE_S3_BUCKET {bucket:?}: {source}")]
    Bucket { bucket: String, source: rusty_s3::BucketError },
}

impl S3Target {
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        prefix: String,
        path_style: bool,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<Self, S3TargetError> {
        let url =
            endpoint.parse().map_err(|source| S3TargetError::Endpoint { endpoint: endpoint.to_owned(), source })?;
        let style = if path_style { UrlStyle::Path } else { UrlStyle::VirtualHost };
        let bucket = Bucket::new(url, style, bucket.to_owned(), region.to_owned())
            .map_err(|source| S3TargetError::Bucket { bucket: bucket.to_owned(), source })?;
        let prefix = prefix.trim_matches('/').to_owned();
        Ok(Self { bucket, credentials: Credentials::new(access_key_id, secret_access_key), prefix })
    }

    fn object(&self, key: &str) -> String {
        if self.prefix.is_empty() { key.to_owned() } else { format!("{}/{key}", self.prefix) }
    }
}

/// The worker's storage.
#[derive(Debug)]
pub enum Storage {
    R2 { binding: &'static str, retry: Retry },
    S3 { target: Box<S3Target>, retry: Retry },
}

/// Why a put failed, after every attempt: the last attempt's error.
#[derive(Debug, thiserror::Error)]
#[error("{last} after {attempts} attempt(s)")]
pub struct PutError {
    pub attempts: u32,
    pub last: AttemptError,
}

impl PutError {
    /// The store was shedding load (S3 `503 SlowDown`, `429`) rather than failing.
    pub fn throttled(&self) -> bool {
        matches!(self.last, AttemptError::Status { status: 503 | 429, .. })
    }
}

/// One failed attempt.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AttemptError {
    #[error("timed out after {0} ms")]
    Timeout(u32),
    #[error("the store answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the Workers runtime: {0}")]
    Runtime(#[from] worker::Error),
    #[error("the clock: {0}")]
    Clock(#[from] jiff::Error),
    #[error("no attempt was made")]
    NotTried,
}

impl Storage {
    /// Writes one object, retrying within the budget.
    pub async fn put(&self, env: &Env, key: &str, bytes: &[u8]) -> Result<(), PutError> {
        let retry = match self {
            Self::R2 { retry, .. } | Self::S3 { retry, .. } => *retry,
        };
        let mut last = AttemptError::NotTried;
        for attempt in 1..=retry.attempts {
            if attempt > 1 {
                Delay::from(Retry::backoff(attempt - 1)).await;
            }
            let result = match self {
                Self::R2 { binding, .. } => put_r2(env, binding, key, bytes, retry.timeout_ms).await,
                Self::S3 { target, .. } => put_s3(target, key, bytes, retry.timeout_ms).await,
            };
            match result {
                Ok(()) => return Ok(()),
                Err(e) => {
                    worker::console_warn!("sluice: put {key}, attempt {attempt}: {e}");
                    last = e;
                }
            }
        }
        Err(PutError { attempts: retry.attempts, last })
    }
}

async fn with_timeout<T>(
    timeout_ms: u32,
    controller: Option<AbortController>,
    work: impl std::future::Future<Output = Result<T, AttemptError>>,
) -> Result<T, AttemptError> {
    let work = std::pin::pin!(work);
    let timer = Delay::from(Duration::from_millis(u64::from(timeout_ms)));
    match select(work, timer).await {
        Either::Left((result, _)) => result,
        Either::Right(((), _)) => {
            if let Some(controller) = controller {
                controller.abort();
            }
            Err(AttemptError::Timeout(timeout_ms))
        }
    }
}

async fn put_r2(env: &Env, binding: &str, key: &str, bytes: &[u8], timeout_ms: u32) -> Result<(), AttemptError> {
    let bucket = env.bucket(binding)?;
    with_timeout(timeout_ms, None, async { Ok(bucket.put(key, bytes.to_vec()).execute().await.map(|_| ())?) }).await
}

async fn put_s3(target: &S3Target, key: &str, bytes: &[u8], timeout_ms: u32) -> Result<(), AttemptError> {
    let object = target.object(key);
    let mut action = target.bucket.put_object(Some(&target.credentials), &object);
    action.headers_mut().insert("x-amz-content-sha256", "UNSIGNED-PAYLOAD");
    let now = jiff::Timestamp::from_millisecond(worker::Date::now().as_millis() as i64)?;
    let url = action.sign_with_time(Duration::from_secs(900), &now);

    let headers = worker::Headers::new();
    headers.set("x-amz-content-sha256", "UNSIGNED-PAYLOAD")?;
    headers.set("content-type", "application/octet-stream")?;
    let mut init = RequestInit::new();
    init.with_method(Method::Put).with_headers(headers).with_body(Some(worker::js_sys::Uint8Array::from(bytes).into()));
    let request = worker::Request::new_with_init(url.as_str(), &init)?;
    let controller = AbortController::default();
    let signal = controller.signal();
    with_timeout(timeout_ms, Some(controller), async {
        let mut response = Fetch::Request(request).send_with_signal(&signal).await?;
        let status = response.status_code();
        if (200..300).contains(&status) {
            Ok(())
        } else {
            let body = response.text().await.unwrap_or_default();
            Err(AttemptError::Status { status, body: body.chars().take(300).collect() })
        }
    })
    .await
}
