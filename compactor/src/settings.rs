//! The configuration file of `sluice serve` and `sluice compact`.
//!
//! ```toml
//! [server]
//! listen = "127.0.0.1:8080"
//!
//! [storage]
//! url = "file:///var/lib/sluice"
//!
//! # Everything else is the ingest core's configuration: projects, credentials, limits.
//! [[projects]]
//! name = "shop"
//! logstores = [{ name = "nginx", retention_days = 30 }]
//!
//! [[sls.access_keys]]
//! id = "LTAI..."
//! secret = { env = "SLUICE_SLS_SECRET" }
//! ```

use serde::Deserialize;
use sluice_ingest::Config;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use crate::lake::store::StorageSettings;

/// Where `sluice serve` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where data goes when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// The `[server]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: Option<SocketAddr>,
    /// Requests handled at once (ingest and queries, once their body has arrived); more
    /// are answered with the product's "busy" error.
    pub max_concurrent_requests: usize,
    /// How long a query request waits for its result before answering `Incomplete`
    /// (the query goes on, within its budget; the client's next identical call gets it).
    /// 0 answers at once with what is ready.
    pub query_deadline_secs: u64,
    /// Open connections at most; more wait to be accepted.
    pub max_connections: usize,
    /// A client must send its request headers within this time.
    pub header_timeout_secs: u64,
    /// A request body must arrive at `min_body_bytes_per_sec` or faster, measured over
    /// windows of this many seconds; a slower client gets `408` and is disconnected.
    pub body_timeout_secs: u64,
    pub min_body_bytes_per_sec: u64,
    /// Request body bytes held at once while bodies arrive; beyond it, requests are
    /// answered with the product's "busy" error.
    pub max_body_buffer_mb: u64,
    /// How long a log explorer session lasts after signing in.
    pub session_hours: u64,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: None,
            max_concurrent_requests: 256,
            query_deadline_secs: 20,
            max_connections: 4096,
            header_timeout_secs: 10,
            body_timeout_secs: 10,
            min_body_bytes_per_sec: 1024,
            max_body_buffer_mb: 1024,
            session_hours: 12,
        }
    }
}

/// The `[query]` table: what queries may use.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QuerySettings {
    /// A query running longer is cancelled (and its client told so).
    pub timeout_secs: u64,
    /// Memory one query's operators may hold (sorts, joins, aggregates, one function
    /// call's result at a quarter of it). Nothing spills to disk.
    pub memory_mb: u64,
    /// Queries running at once on this server, and for one credential.
    pub max_concurrent: usize,
    pub max_concurrent_per_credential: usize,
    /// Largest `LIMIT` of the SQL part (without one: 100 rows, as SLS).
    pub max_result_rows: u64,
    /// Largest answer, in MB of Arrow data.
    pub max_result_mb: u64,
    /// Most values one `generate_series`/`range` may produce.
    pub max_series: u64,
    /// Longest query text, in bytes.
    pub max_query_bytes: usize,
    /// How long a logstore's listing of raw batches (and the table version read with it)
    /// serves queries before it is taken again, in milliseconds. Batches this server
    /// stores itself are seen at once; those the edge stores, within this long.
    pub listing_ms: u64,
}

impl Default for QuerySettings {
    fn default() -> Self {
        let limits = crate::query::QueryLimits::default();
        Self {
            timeout_secs: limits.timeout.as_secs(),
            memory_mb: (limits.memory_bytes >> 20) as u64,
            max_concurrent: 8,
            max_concurrent_per_credential: 4,
            max_result_rows: limits.sql.max_rows,
            max_result_mb: (limits.max_result_bytes >> 20) as u64,
            max_series: limits.sql.max_series,
            max_query_bytes: limits.max_query_bytes,
            listing_ms: 1000,
        }
    }
}

impl QuerySettings {
    pub fn limits(&self) -> crate::query::QueryLimits {
        let defaults = crate::query::QueryLimits::default();
        crate::query::QueryLimits {
            timeout: std::time::Duration::from_secs(self.timeout_secs.max(1)),
            memory_bytes: usize::try_from(self.memory_mb.max(16) << 20).unwrap_or(usize::MAX),
            max_query_bytes: self.max_query_bytes.max(64),
            max_result_bytes: usize::try_from(self.max_result_mb.max(1) << 20).unwrap_or(usize::MAX),
            sql: crate::query::sql::SqlLimits {
                max_rows: self.max_result_rows.max(1),
                max_series: self.max_series,
                ..defaults.sql
            },
            ..defaults
        }
    }
}

/// The `[compaction]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CompactionSettings {
    /// How often `sluice serve` compacts, in seconds; 0 turns background compaction off.
    pub interval_secs: u64,
    /// Raw batch megabytes per commit.
    pub max_mb_per_commit: u64,
    /// How far back to look for batches already compacted (client retries arrive within
    /// minutes; raw batches are deleted right after their commit).
    pub lookback_hours: u64,
    /// A commit's batches are split across cores (one writer each) when each gets at
    /// least this many kilobytes of raw batches.
    pub min_kb_per_writer: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
    pub zstd_level: i32,
    /// How often `sluice serve` merges small files, applies retention and vacuums, in
    /// seconds (`sluice compact` does it on every run).
    pub maintenance_interval_secs: u64,
    /// Files smaller than this (MB) are merged once a partition has `min_small_files`.
    pub small_file_mb: u64,
    pub min_small_files: usize,
    /// Removed files are deleted this many hours later (readers of older versions).
    pub vacuum_retention_hours: u64,
}

impl Default for CompactionSettings {
    fn default() -> Self {
        let files = crate::lake::schema::FileSettings::default();
        Self {
            interval_secs: 30,
            max_mb_per_commit: 256,
            lookback_hours: 24,
            min_kb_per_writer: crate::compact::CompactOptions::default().min_bytes_per_writer / 1024,
            row_group_rows: files.row_group_rows,
            zstd_level: files.zstd_level,
            maintenance_interval_secs: 600,
            small_file_mb: 32,
            min_small_files: 8,
            vacuum_retention_hours: 7 * 24,
        }
    }
}

impl CompactionSettings {
    pub fn options(&self) -> crate::compact::CompactOptions {
        crate::compact::CompactOptions {
            max_bytes_per_commit: self.max_mb_per_commit.max(1) * 1024 * 1024,
            lookback: std::time::Duration::from_secs(self.lookback_hours * 3600),
            min_bytes_per_writer: self.min_kb_per_writer.max(1) * 1024,
            files: self.files(),
            ..crate::compact::CompactOptions::default()
        }
    }

    fn files(&self) -> crate::lake::schema::FileSettings {
        crate::lake::schema::FileSettings { row_group_rows: self.row_group_rows.max(1024), zstd_level: self.zstd_level }
    }

    pub fn maintenance(&self) -> crate::maintain::MaintenanceOptions {
        crate::maintain::MaintenanceOptions {
            small_file_bytes: self.small_file_mb.max(1) * 1024 * 1024,
            min_small_files: self.min_small_files.max(2),
            vacuum_retention_hours: self.vacuum_retention_hours,
            files: self.files(),
            ..crate::maintain::MaintenanceOptions::default()
        }
    }
}

/// Everything `sluice` reads from its configuration file.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub query: QuerySettings,
    pub storage: StorageSettings,
    pub compaction: CompactionSettings,
    pub ingest: Config,
    /// The file it came from, if any.
    pub source: Option<PathBuf>,
}

/// Why the configuration cannot be used. Each message says what to change.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SettingsError {
    #[error("cannot read the configuration file {path}: {source}\n  hint: check the path given to --config")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("the configuration file {path} is not valid: {message}")]
    Invalid { path: PathBuf, message: String },
}

impl Settings {
    /// The development setup: any project and logstore, the demo credentials, data in
    /// `./data`.
    pub fn development() -> Self {
        Self {
            server: ServerSettings::default(),
            query: QuerySettings::default(),
            storage: StorageSettings::default(),
            compaction: CompactionSettings::default(),
            ingest: Config::development(),
            source: None,
        }
    }

    /// Reads a configuration file; `{ env = "NAME" }` secrets come from the environment.
    pub fn load(path: &Path) -> Result<Self, SettingsError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| SettingsError::Read { path: path.to_owned(), source })?;
        Self::parse(&text, path, |name| std::env::var(name).ok())
    }

    /// Parses configuration text; `lookup` resolves secrets named by environment variable.
    pub fn parse(text: &str, path: &Path, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let invalid = |message: String| SettingsError::Invalid { path: path.to_owned(), message };
        let mut table: toml::Table = text.parse().map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        let mut take = |name: &str| table.remove(name).unwrap_or_else(|| toml::Value::Table(toml::Table::new()));
        let server: ServerSettings =
            take("server").try_into().map_err(|e: toml::de::Error| invalid(format!("in [server]: {}", e.message())))?;
        let storage: StorageSettings = take("storage")
            .try_into()
            .map_err(|e: toml::de::Error| invalid(format!("in [storage]: {}", e.message())))?;
        let storage = storage.resolve(&lookup).map_err(|e| invalid(format!("in [storage]: {e}")))?;
        let query: QuerySettings =
            take("query").try_into().map_err(|e: toml::de::Error| invalid(format!("in [query]: {}", e.message())))?;
        let compaction: CompactionSettings = take("compaction")
            .try_into()
            .map_err(|e: toml::de::Error| invalid(format!("in [compaction]: {}", e.message())))?;
        let ingest: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| invalid(e.message().to_owned()))?;
        let ingest = ingest.resolve(lookup).map_err(|e| invalid(e.to_string()))?;
        Ok(Self { server, query, storage, compaction, ingest, source: Some(path.to_owned()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_full_file() {
        let text = r#"
            [server]
            listen = "0.0.0.0:9000"
            [storage]
            url = "file:///tmp/sluice"
            [[projects]]
            name = "shop"
            logstores = [{ name = "nginx", retention_days = 30 }]
            [[sls.access_keys]]
            id = "ak"
            secret = { env = "SECRET" }
        "#;
        let settings = Settings::parse(text, Path::new("sluice.toml"), |_| Some("s".into())).unwrap();
        assert_eq!(settings.server.listen, Some("0.0.0.0:9000".parse().unwrap()));
        assert_eq!(settings.storage.url.as_deref(), Some("file:///tmp/sluice"));
        assert_eq!(settings.ingest.projects[0].logstores[0].retention_days, Some(30));
        assert!(!settings.ingest.open);
    }

    /// README's configuration example is a file `sluice serve --config` loads.
    #[test]
    fn the_readme_example_loads() {
        let readme = include_str!("../../README.md");
        let section = readme.split("\n## Configuration").nth(1).expect("README has a Configuration section");
        let example = section.split("```toml\n").nth(1).and_then(|s| s.split("\n```").next()).expect("a toml block");
        let settings = Settings::parse(example, Path::new("README.md"), |_| Some("from-the-environment".into()))
            .unwrap_or_else(|e| panic!("README's configuration example: {e}"));
        assert!(!settings.ingest.open);
        assert_eq!(settings.server.listen, Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(settings.ingest.projects[0].logstores[0].retention_days, Some(30));
        assert_eq!(settings.ingest.sls.region, "cn-hangzhou");
        assert_eq!(settings.query.timeout_secs, 60);
        assert_eq!(settings.compaction.min_small_files, 8);
    }

    #[test]
    fn errors_name_the_problem() {
        let err = Settings::parse("[server]\nlisten = 5\n", Path::new("a.toml"), |_| None).unwrap_err();
        assert!(err.to_string().contains("in [server]"), "{err}");
        let err = Settings::parse("[[projets]]\nname = 'x'\n", Path::new("a.toml"), |_| None).unwrap_err();
        assert!(err.to_string().contains("unknown field `projets`"), "{err}");
        let err =
            Settings::parse("[[sls.access_keys]]\nid = 'a'\nsecret = { env = 'NOPE' }\n", Path::new("a.toml"), |_| {
                None
            })
            .unwrap_err();
        assert!(err.to_string().contains("secret \"NOPE\" is not set"), "{err}");
        let err = Settings::parse("this is not toml", Path::new("a.toml"), |_| None).unwrap_err();
        assert!(err.to_string().contains("a.toml"), "{err}");
    }
}
