//! The worker's configuration, from `wrangler.toml` vars and secrets.
//!
//! | var / secret | meaning |
//! |---|---|
//! | `SLUICE_CONFIG` (var, a table) | projects, credentials and limits: the same description as the TOML `sluice serve` reads |
//! | `SLUICE_STORAGE` (var) | `r2` (the `RAW` bucket binding) or `s3` |
//! | `SLUICE_S3_ENDPOINT`, `SLUICE_S3_BUCKET`, `SLUICE_S3_REGION`, `SLUICE_S3_PREFIX`, `SLUICE_S3_URL_STYLE` (vars) | the S3 API to write to |
//! | `SLUICE_S3_ACCESS_KEY_ID`, `SLUICE_S3_SECRET_ACCESS_KEY` (secrets) | its credentials |
//! | `SLUICE_STORAGE_ATTEMPTS`, `SLUICE_STORAGE_TIMEOUT_MS` (vars) | the retry budget |
//! | `SLUICE_ALLOW_DEMO_CREDENTIALS` (var) | `true` to allow the public demo credentials (local development only) |
//!
//! Secrets inside `SLUICE_CONFIG` are written `{ env = "NAME" }` and read from the
//! worker's secrets (`wrangler secret put NAME`).

use sluice_ingest::Config;
use sluice_ingest::quota::TokenBuckets;
use std::sync::Mutex;
use worker::Env;

use crate::storage::{Retry, S3Target, S3TargetError, Storage};

/// Why the worker's configuration cannot be used; each says what to set.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("SLUICE_CONFIG is missing or not a table ({0}); see README, 'Deploying the worker'")]
    MissingConfig(String),
    #[error("SLUICE_CONFIG is not valid: {0}")]
    InvalidConfig(#[from] serde_json::Error),
    #[error("SLUICE_CONFIG: {0}")]
    Config(#[from] sluice_ingest::config::ConfigError),
    #[error(
        "SLUICE_CONFIG holds the public demo credentials; replace them with secrets, or set SLUICE_ALLOW_DEMO_CREDENTIALS = \"true\" for local development"
    )]
    DemoCredentials,
    #[error("{name} must be a number, not {value:?}")]
    NotANumber { name: &'static str, value: String },
    #[error("{0} is not set")]
    Missing(&'static str),
    #[error("SLUICE_STORAGE is r2 but there is no RAW bucket binding")]
    NoR2Binding,
    #[error("SLUICE_STORAGE must be r2 or s3, not {0:?}")]
    UnknownStorage(String),
    #[error(transparent)]
    S3(#[from] S3TargetError),
}

/// Everything a request needs, parsed once per isolate.
#[derive(Debug)]
pub struct Edge {
    pub config: Config,
    pub storage: Storage,
    /// Write quotas, per isolate.
    pub quotas: Mutex<TokenBuckets>,
}

fn text(env: &Env, name: &str) -> Option<String> {
    env.secret(name).ok().map(|s| s.to_string()).or_else(|| env.var(name).ok().map(|v| v.to_string()))
}

fn required(env: &Env, name: &'static str) -> Result<String, SettingsError> {
    text(env, name).filter(|v| !v.is_empty()).ok_or(SettingsError::Missing(name))
}

impl Edge {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let raw: serde_json::Value =
            env.object_var("SLUICE_CONFIG").map_err(|e| SettingsError::MissingConfig(e.to_string()))?;
        let config: Config = serde_json::from_value(raw)?;
        let config = config.resolve(|name| text(env, name))?;
        if config.has_demo_credentials() && text(env, "SLUICE_ALLOW_DEMO_CREDENTIALS").as_deref() != Some("true") {
            return Err(SettingsError::DemoCredentials);
        }
        let number = |name: &'static str, default: u32| -> Result<u32, SettingsError> {
            match text(env, name) {
                None => Ok(default),
                Some(value) => value.parse().map_err(|_| SettingsError::NotANumber { name, value }),
            }
        };
        let retry = Retry {
            attempts: number("SLUICE_STORAGE_ATTEMPTS", 3)?.max(1),
            timeout_ms: number("SLUICE_STORAGE_TIMEOUT_MS", 5000)?,
        };
        let storage = match text(env, "SLUICE_STORAGE").as_deref().unwrap_or("r2") {
            "r2" => {
                env.bucket("RAW").map_err(|_| SettingsError::NoR2Binding)?;
                Storage::R2 { binding: "RAW", retry }
            }
            "s3" => Storage::S3 {
                target: Box::new(S3Target::new(
                    &required(env, "SLUICE_S3_ENDPOINT")?,
                    &required(env, "SLUICE_S3_BUCKET")?,
                    &text(env, "SLUICE_S3_REGION").unwrap_or_else(|| "us-east-1".into()),
                    text(env, "SLUICE_S3_PREFIX").unwrap_or_default(),
                    text(env, "SLUICE_S3_URL_STYLE").as_deref() != Some("virtual"),
                    &required(env, "SLUICE_S3_ACCESS_KEY_ID")?,
                    &required(env, "SLUICE_S3_SECRET_ACCESS_KEY")?,
                )?),
                retry,
            },
            other => return Err(SettingsError::UnknownStorage(other.to_owned())),
        };
        Ok(Self { config, storage, quotas: Mutex::new(TokenBuckets::default()) })
    }
}
