//! Opens the object store a URL names:
//!
//! - a local directory: `file:///path` or a plain path, whose writes are synced to disk
//!   before they return ([`super::durable`]);
//! - any S3 API: `s3://bucket/prefix`, with endpoint, region, path-style addressing and
//!   credentials from the `[storage]` table or the standard AWS environment variables
//!   (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT_URL`...);
//!   works with AWS S3, R2, MinIO and Garage;
//! - `memory://` for tests.

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::memory::InMemory;
use object_store::prefix::PrefixStore;
use serde::Deserialize;
use sluice_ingest::config::Secret;
use sluice_ingest::layout::decode_segment;
use std::path::Path;
use std::sync::Arc;

/// The `[storage]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StorageSettings {
    /// `file:///path`, a plain path, `memory://`, or `s3://bucket/prefix`.
    pub url: Option<String>,
    /// S3 API endpoint, for anything but AWS itself (`http://127.0.0.1:3900`,
    /// `https://<account>.r2.cloudflarestorage.com`).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); the default when an endpoint is set.
    pub path_style: Option<bool>,
    pub access_key_id: Option<Secret>,
    pub secret_access_key: Option<Secret>,
}

impl StorageSettings {
    /// Replaces `{ env = "NAME" }` secrets.
    pub fn resolve(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        for secret in [&mut self.access_key_id, &mut self.secret_access_key].into_iter().flatten() {
            if let Secret::Env { env } = secret {
                let value = lookup(env).ok_or_else(|| format!("secret {env:?} is not set"))?;
                *secret = Secret::Value(value);
            }
        }
        Ok(self)
    }
}

/// Why a store cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("cannot use {path} as the data directory: {source}\n  hint: pass --data with a directory you can write to")]
    Directory { path: String, source: std::io::Error },
    #[error("storage url {0:?} is not supported: use file:///path, a plain path, s3://bucket/prefix or memory://")]
    Unsupported(String),
    #[error("storage url {url:?} is not valid: {message}")]
    InvalidUrl { url: String, message: String },
    #[error(
        "cannot open {url}: {source}\n  hint: check [storage] endpoint, region and credentials (or AWS_* variables)"
    )]
    S3 { url: String, source: object_store::Error },
}

/// Why a store that opened cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreCheckError {
    #[error(
        "cannot reach the store {location}: {message}\n  hint: is the S3 server running? check [storage] endpoint (or AWS_ENDPOINT_URL)"
    )]
    Unreachable { location: String, message: String },
    #[error(
        "the store {location} refused Sluice's credentials: {message}\n  hint: check [storage] access_key_id and secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY), and that the key may read and write the bucket"
    )]
    Credentials { location: String, message: String },
    #[error(
        "the bucket of {location} does not exist: {message}\n  hint: create it, or fix the bucket in --data / [storage] url"
    )]
    NoBucket { location: String, message: String },
    #[error("the store {location} does not work: {message}")]
    Other { location: String, message: String },
}

/// Checks that the store answers and accepts the credentials by listing one key, so
/// that a wrong endpoint, key or bucket is reported at startup, as help.
pub async fn check(storage: &Storage) -> Result<(), StoreCheckError> {
    use futures::StreamExt;
    let location = storage.description.clone();
    let listed = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        storage.store.list(None).next().await.transpose()
    })
    .await;
    let error = match listed {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e,
        Err(_) => {
            return Err(StoreCheckError::Unreachable { location, message: "no answer within 30 s".into() });
        }
    };
    let message = error_chain(&error);
    let lower = message.to_ascii_lowercase();
    Err(match &error {
        object_store::Error::Unauthenticated { .. } | object_store::Error::PermissionDenied { .. } => {
            StoreCheckError::Credentials { location, message }
        }
        _ if ["invalidaccesskeyid", "signaturedoesnotmatch", "accessdenied", "403 forbidden", "forbidden"]
            .iter()
            .any(|needle| lower.contains(needle)) =>
        {
            StoreCheckError::Credentials { location, message }
        }
        _ if lower.contains("nosuchbucket") => StoreCheckError::NoBucket { location, message },
        _ if ["connect", "dns", "timed out", "connection refused", "error sending request"]
            .iter()
            .any(|needle| lower.contains(needle)) =>
        {
            StoreCheckError::Unreachable { location, message }
        }
        _ => StoreCheckError::Other { location, message },
    })
}

/// An error and its sources, on one line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = e.source();
    }
    out
}

/// An opened store.
#[derive(Clone, Debug)]
pub struct Storage {
    /// Rooted at the data location: `raw/...` and `tables/...` are keys in it.
    pub store: Arc<dyn ObjectStore>,
    /// The same store without the location's prefix, and the location's URL (with a
    /// trailing slash): what Delta tables are opened with.
    pub root: Arc<dyn ObjectStore>,
    pub url: url::Url,
    /// For logs.
    pub description: String,
    /// The directory, for a local store.
    pub local: Option<std::path::PathBuf>,
}

/// Staging files this old are left over from a killed process, not being written.
const STALE_STAGING: std::time::Duration = std::time::Duration::from_secs(3600);

/// Deletes the staging files a killed process left in a local store (see
/// [`super::durable::remove_stale_staging`]) as of `now_ns`; nothing to do for other
/// stores.
pub fn remove_stale_staging(storage: &Storage, now_ns: i64) {
    if let Some(root) = storage.local.clone() {
        tokio::task::spawn_blocking(move || {
            let removed = super::durable::remove_stale_staging(&root, STALE_STAGING, now_ns);
            if removed > 0 {
                tracing::info!(removed, "removed staging files left by an interrupted write");
            }
        });
    }
}

/// The (project, logstore) pairs named by the folders `{root}/{project}/{logstore}/`,
/// sorted.
pub async fn logstores_under(
    store: &dyn ObjectStore,
    root: &str,
) -> Result<Vec<(String, String)>, object_store::Error> {
    let mut out = Vec::new();
    let root = object_store::path::Path::from(root.trim_end_matches('/'));
    for project in store.list_with_delimiter(Some(&root)).await?.common_prefixes {
        let Some(project_name) = project.filename().and_then(decode_segment) else { continue };
        for logstore in store.list_with_delimiter(Some(&project)).await?.common_prefixes {
            if let Some(logstore_name) = logstore.filename().and_then(decode_segment) {
                out.push((project_name.clone(), logstore_name));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Opens the store for `location`, with the `[storage]` table for S3 details.
pub fn open(location: &str, settings: &StorageSettings) -> Result<Storage, StorageError> {
    if location == "memory://" || location == "memory:///" {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let url = url::Url::parse("memory:///").map_err(|e| invalid_url(location, e))?;
        return Ok(Storage { store: store.clone(), root: store, url, description: "memory".into(), local: None });
    }
    if location.starts_with("s3://") {
        return open_s3(location, settings);
    }
    let path = if location.starts_with("file://") {
        let url = url::Url::parse(location)
            .map_err(|e| StorageError::InvalidUrl { url: location.to_owned(), message: e.to_string() })?;
        url.to_file_path().map_err(|()| StorageError::InvalidUrl {
            url: location.to_owned(),
            message: "not an absolute path".into(),
        })?
    } else if location.contains("://") {
        return Err(StorageError::Unsupported(location.to_owned()));
    } else {
        Path::new(location).to_owned()
    };
    let directory = |source| StorageError::Directory { path: path.display().to_string(), source };
    std::fs::create_dir_all(&path).map_err(directory)?;
    let path = path.canonicalize().map_err(directory)?;
    // Named for this process: two processes opening one directory at once must not
    // remove each other's probe.
    let probe = path.join(format!(".sluice-write-check-{}", std::process::id()));
    std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe)).map_err(directory)?;
    let store = super::durable::Durable::new(path.clone(), Arc::new(super::durable::fsync))
        .map_err(|e| directory(std::io::Error::other(e)))?;
    let root = super::durable::Durable::new(std::path::PathBuf::from("/"), Arc::new(super::durable::fsync))
        .map_err(|e| directory(std::io::Error::other(e)))?;
    let url = url::Url::from_directory_path(&path)
        .map_err(|()| StorageError::InvalidUrl { url: location.to_owned(), message: "not an absolute path".into() })?;
    Ok(Storage { store: Arc::new(store), root: Arc::new(root), description: url.to_string(), url, local: Some(path) })
}

fn invalid_url(url: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::InvalidUrl { url: url.to_owned(), message: e.to_string() }
}

fn open_s3(location: &str, settings: &StorageSettings) -> Result<Storage, StorageError> {
    let invalid = |message: &str| StorageError::InvalidUrl { url: location.to_owned(), message: message.to_owned() };
    let rest = location.strip_prefix("s3://").ok_or_else(|| invalid("expected s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(invalid("the bucket is missing"));
    }
    // Bounded retries: an ingest request whose store is down gets the product's retryable
    // error within seconds rather than hanging for the default three minutes.
    let retry = object_store::RetryConfig {
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(15),
        ..object_store::RetryConfig::default()
    };
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket).with_retry(retry);
    if let Some(endpoint) = &settings.endpoint {
        builder = builder
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(!settings.path_style.unwrap_or(true));
    } else if let Some(path_style) = settings.path_style {
        builder = builder.with_virtual_hosted_style_request(!path_style);
    }
    if let Some(region) = &settings.region {
        builder = builder.with_region(region);
    }
    if let Some(id) = settings.access_key_id.as_ref().and_then(Secret::value) {
        builder = builder.with_access_key_id(id);
    }
    if let Some(secret) = settings.secret_access_key.as_ref().and_then(Secret::value) {
        builder = builder.with_secret_access_key(secret);
    }
    let s3: Arc<dyn ObjectStore> =
        Arc::new(builder.build().map_err(|source| StorageError::S3 { url: location.to_owned(), source })?);
    let prefix = prefix.trim_matches('/');
    let store: Arc<dyn ObjectStore> =
        if prefix.is_empty() { s3.clone() } else { Arc::new(PrefixStore::new(s3.clone(), prefix)) };
    let url = if prefix.is_empty() { format!("s3://{bucket}/") } else { format!("s3://{bucket}/{prefix}/") };
    let url = url::Url::parse(&url).map_err(|e| invalid_url(location, e))?;
    Ok(Storage { store, root: s3, url, description: location.to_owned(), local: None })
}

/// Whether the store refuses to overwrite an object written with `PutMode::Create` (the
/// conditional write Delta commits rely on when several compactors share a table). AWS
/// S3, R2, MinIO and local directories do; Garage ignores `If-None-Match` and does not.
pub async fn honours_conditional_writes(store: &dyn ObjectStore, now_ns: i64) -> Result<bool, object_store::Error> {
    use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
    let nonce = format!("{now_ns}-{}", std::process::id());
    let probe = object_store::path::Path::from(format!("_sluice/conditional-write-probe-{nonce}"));
    let create = || PutOptions { mode: PutMode::Create, ..PutOptions::default() };
    store.put_opts(&probe, PutPayload::from_static(b"1"), create()).await?;
    let second = store.put_opts(&probe, PutPayload::from_static(b"2"), create()).await;
    let _ = store.delete(&probe).await;
    match second {
        Err(object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }) => Ok(true),
        Ok(_) => Ok(false),
        Err(e) => Err(e),
    }
}
