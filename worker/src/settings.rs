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

use crate::storage::{Retry, S3Target, Storage};

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

fn required(env: &Env, name: &str) -> Result<String, String> {
    text(env, name).filter(|v| !v.is_empty()).ok_or_else(|| format!("{name} is not set"))
}

impl Edge {
    pub fn from_env(env: &Env) -> Result<Self, String> {
        let raw: serde_json::Value = env.object_var("SLUICE_CONFIG").map_err(|e| {
            format!("SLUICE_CONFIG is missing or not a table ({e}); see README, 'Deploying the worker'")
        })?;
        let config: Config = serde_json::from_value(raw).map_err(|e| format!("SLUICE_CONFIG is not valid: {e}"))?;
        let config = config.resolve(|name| text(env, name)).map_err(|e| format!("SLUICE_CONFIG: {e}"))?;
        if config.has_demo_credentials() && text(env, "SLUICE_ALLOW_DEMO_CREDENTIALS").as_deref() != Some("true") {
            return Err("SLUICE_CONFIG holds the public demo credentials; replace them with secrets, \
                        or set SLUICE_ALLOW_DEMO_CREDENTIALS = \"true\" for local development"
                .into());
        }
        let number = |name: &str, default: u32| -> Result<u32, String> {
            match text(env, name) {
                None => Ok(default),
                Some(v) => v.parse().map_err(|_| format!("{name} must be a number, not {v:?}")),
            }
        };
        let retry = Retry {
            attempts: number("SLUICE_STORAGE_ATTEMPTS", 3)?.max(1),
            timeout_ms: number("SLUICE_STORAGE_TIMEOUT_MS", 5000)?,
        };
        let storage = match text(env, "SLUICE_STORAGE").as_deref().unwrap_or("r2") {
            "r2" => {
                env.bucket("RAW").map_err(|_| "SLUICE_STORAGE is r2 but there is no RAW bucket binding".to_owned())?;
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
            other => return Err(format!("SLUICE_STORAGE must be r2 or s3, not {other:?}")),
        };
        Ok(Self { config, storage, quotas: Mutex::new(TokenBuckets::default()) })
    }
}
