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

pub use crate::storage::StorageSettings;

/// Where `sluice serve` listens when nothing says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where data goes when nothing says otherwise.
pub const DEFAULT_DATA_DIR: &str = "./data";

/// The `[server]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: Option<SocketAddr>,
    /// Requests handled at once; more are answered with the product's "busy" error.
    pub max_concurrent_requests: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self { listen: None, max_concurrent_requests: 256 }
    }
}

/// Everything `sluice` reads from its configuration file.
#[derive(Clone, Debug)]
pub struct Settings {
    pub server: ServerSettings,
    pub storage: StorageSettings,
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
            storage: StorageSettings::default(),
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
        let ingest: Config =
            toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| invalid(e.message().to_owned()))?;
        let ingest = ingest.resolve(lookup).map_err(|e| invalid(e.to_string()))?;
        Ok(Self { server, storage, ingest, source: Some(path.to_owned()) })
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
