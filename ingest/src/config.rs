//! Who may write where, and the limits: the part of Sluice's configuration that the
//! ingest core reads. The native server reads it from a TOML file, the worker from
//! `wrangler.toml` vars and secrets; both hand the core the same [`Config`] value.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::error::IngestError;

/// The demo SLS access key id of the development setup.
pub const DEMO_SLS_ACCESS_KEY_ID: &str = "sluice-demo";
/// The demo SLS access key secret of the development setup.
pub const DEMO_SLS_ACCESS_KEY_SECRET: &str = "sluice-demo-secret";
/// The demo LTS token of the development setup.
pub const DEMO_LTS_TOKEN: &str = "sluice-demo-token";
/// The demo Proliferate API key of the development setup.
pub const DEMO_PROLIFERATE_KEY: &str = "pk_sluice_demo";
/// The project the demo Proliferate API key writes to.
pub const DEMO_PROLIFERATE_PROJECT: &str = "demo";
/// The logstore Proliferate logs go to when a key does not name one.
pub const DEFAULT_PROLIFERATE_LOGSTORE: &str = "logs";

/// Projects, credentials and limits.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Accept any project and logstore name (development). Credentials still apply.
    #[serde(default)]
    pub open: bool,
    #[serde(default)]
    pub projects: Vec<ProjectConfig>,
    #[serde(default)]
    pub sls: SlsConfig,
    #[serde(default)]
    pub lts: LtsConfig,
    #[serde(default)]
    pub proliferate: ProliferateConfig,
    #[serde(default)]
    pub limits: Limits,
}

/// A project and its logstores.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    pub name: String,
    #[serde(default)]
    pub logstores: Vec<LogstoreConfig>,
}

/// A logstore: one table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogstoreConfig {
    pub name: String,
    /// Delete data older than this many days.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Refuse writes beyond this many MB of raw input per second (a token bucket per edge
    /// process).
    #[serde(default)]
    pub write_quota_mb_per_sec: Option<f64>,
    /// Field types for the SQL part of SLS queries, as an SLS index declares them:
    /// `long`, `double` or `text` (the default).
    #[serde(default)]
    pub field_types: std::collections::BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlsConfig {
    #[serde(default)]
    pub access_keys: Vec<AccessKey>,
    /// The region this endpoint answers for: a V4 signature's credential scope must
    /// name it (an SDK configured with `region="cn-hangzhou"` signs for `cn-hangzhou`).
    #[serde(default = "default_sls_region")]
    pub region: String,
}

/// The region V4 signatures must name when the configuration does not say.
pub const DEFAULT_SLS_REGION: &str = "cn-hangzhou";

fn default_sls_region() -> String {
    DEFAULT_SLS_REGION.to_owned()
}

impl Default for SlsConfig {
    fn default() -> Self {
        Self { access_keys: Vec::new(), region: default_sls_region() }
    }
}

/// An SLS access key pair.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessKey {
    pub id: String,
    pub secret: Secret,
    /// Projects this key may write to; empty means all.
    #[serde(default)]
    pub projects: Vec<String>,
    /// For STS credentials: the security token requests must carry in
    /// `x-acs-security-token`.
    #[serde(default)]
    pub security_token: Option<Secret>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtsConfig {
    #[serde(default)]
    pub tokens: Vec<LtsToken>,
    /// Where each LTS log stream's logs go. Streams not listed go to project
    /// `{project_id}`, logstore `{log_group_id}.{log_stream_id}` when `open` is set.
    #[serde(default)]
    pub streams: Vec<LtsStream>,
}

/// An LTS `X-Auth-Token` and the project ids it may write to (empty means all).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtsToken {
    pub token: Secret,
    #[serde(default)]
    pub project_ids: Vec<String>,
}

/// An LTS log stream mapped to a Sluice project and logstore.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LtsStream {
    pub project_id: String,
    pub group_id: String,
    pub stream_id: String,
    pub project: String,
    pub logstore: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProliferateConfig {
    #[serde(default)]
    pub keys: Vec<ApiKey>,
}

/// A Proliferate API key and the project it writes to.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    pub key: Secret,
    pub project: String,
    #[serde(default = "default_proliferate_logstore")]
    pub logstore: String,
}

fn default_proliferate_logstore() -> String {
    DEFAULT_PROLIFERATE_LOGSTORE.to_owned()
}

/// A secret, written inline or named by environment variable (`{ env = "NAME" }`); the
/// worker resolves names against its secrets.
#[derive(Clone, Deserialize)]
#[serde(untagged)]
pub enum Secret {
    Value(String),
    Env { env: String },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Value(_) => f.write_str("Secret(..)"),
            Self::Env { env } => write!(f, "Secret(env {env})"),
        }
    }
}

impl Secret {
    /// The value, once resolved.
    pub fn value(&self) -> Option<&str> {
        match self {
            Self::Value(v) => Some(v),
            Self::Env { .. } => None,
        }
    }

    /// Compares in constant time with what a client sent.
    pub fn matches(&self, presented: &str) -> bool {
        self.value().is_some_and(|v| bool::from(v.as_bytes().ct_eq(presented.as_bytes())))
    }
}

/// Size, count and time limits.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Largest uncompressed body (SLS: 10 MB raw per PutLogs).
    pub max_raw_bytes: usize,
    /// Largest single value (SLS: 1 MB).
    pub max_value_bytes: usize,
    /// Most logs in one Proliferate batch.
    pub max_batch_logs: usize,
    /// How far an SLS request's `Date` may be from the server clock.
    pub request_time_window_secs: i64,
    /// How far an LTS log time may be from the server clock (LTS: two days).
    pub lts_time_window_secs: i64,
    /// Write quota for logstores that set none, MB of raw input per second.
    pub default_write_quota_mb_per_sec: Option<f64>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_raw_bytes: 10 * 1024 * 1024,
            max_value_bytes: 1024 * 1024,
            max_batch_logs: 100,
            request_time_window_secs: 15 * 60,
            lts_time_window_secs: 2 * 86_400,
            default_write_quota_mb_per_sec: None,
        }
    }
}

impl Limits {
    /// Largest body as sent: the raw limit plus LZ4's worst-case expansion.
    pub fn max_body_bytes(&self) -> usize {
        self.max_raw_bytes + self.max_raw_bytes / 255 + 16
    }
}

/// Where one request's logs belong.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    pub project: String,
    pub logstore: String,
}

/// Why a configuration cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("secret {0:?} is not set")]
    MissingSecret(String),
    #[error("{what} {name:?} is not a valid name: use 1-128 letters, digits, '-', '_' or '.'")]
    InvalidName { what: &'static str, name: String },
    #[error("{what} {name:?} is configured twice")]
    Duplicate { what: &'static str, name: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// The development setup: any project and logstore, the demo credentials.
    pub fn development() -> Self {
        Self {
            open: true,
            projects: Vec::new(),
            sls: SlsConfig {
                access_keys: vec![AccessKey {
                    id: DEMO_SLS_ACCESS_KEY_ID.to_owned(),
                    secret: Secret::Value(DEMO_SLS_ACCESS_KEY_SECRET.to_owned()),
                    projects: Vec::new(),
                    security_token: None,
                }],
                region: default_sls_region(),
            },
            lts: LtsConfig {
                tokens: vec![LtsToken { token: Secret::Value(DEMO_LTS_TOKEN.to_owned()), project_ids: Vec::new() }],
                streams: Vec::new(),
            },
            proliferate: ProliferateConfig {
                keys: vec![ApiKey {
                    key: Secret::Value(DEMO_PROLIFERATE_KEY.to_owned()),
                    project: DEMO_PROLIFERATE_PROJECT.to_owned(),
                    logstore: DEFAULT_PROLIFERATE_LOGSTORE.to_owned(),
                }],
            },
            limits: Limits::default(),
        }
    }

    /// Replaces every `{ env = "NAME" }` secret with `lookup(NAME)`, then checks names.
    pub fn resolve(mut self, lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let secrets = self
            .sls
            .access_keys
            .iter_mut()
            .flat_map(|k| std::iter::once(&mut k.secret).chain(k.security_token.as_mut()))
            .chain(self.lts.tokens.iter_mut().map(|t| &mut t.token))
            .chain(self.proliferate.keys.iter_mut().map(|k| &mut k.key));
        for secret in secrets {
            if let Secret::Env { env } = secret {
                let value = lookup(env).ok_or_else(|| ConfigError::MissingSecret(env.clone()))?;
                *secret = Secret::Value(value);
            }
        }
        self.validate()?;
        Ok(self)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let mut seen = std::collections::HashSet::new();
        for project in &self.projects {
            check_name("project", &project.name)?;
            if !seen.insert(project.name.as_str()) {
                return Err(ConfigError::Duplicate { what: "project", name: project.name.clone() });
            }
            let mut logstores = std::collections::HashSet::new();
            for logstore in &project.logstores {
                check_name("logstore", &logstore.name)?;
                if !logstores.insert(logstore.name.as_str()) {
                    return Err(ConfigError::Duplicate { what: "logstore", name: logstore.name.clone() });
                }
                if logstore.write_quota_mb_per_sec.is_some_and(|q| q.is_nan() || q <= 0.0) {
                    return Err(ConfigError::Invalid(format!(
                        "write_quota_mb_per_sec of logstore {:?} must be positive",
                        logstore.name
                    )));
                }
            }
        }
        let mut ids = std::collections::HashSet::new();
        for key in &self.sls.access_keys {
            if key.id.is_empty() || !ids.insert(key.id.as_str()) {
                return Err(ConfigError::Duplicate { what: "sls access key", name: key.id.clone() });
            }
        }
        for key in &self.proliferate.keys {
            check_name("project", &key.project)?;
            check_name("logstore", &key.logstore)?;
        }
        for stream in &self.lts.streams {
            check_name("project", &stream.project)?;
            check_name("logstore", &stream.logstore)?;
        }
        Ok(())
    }

    /// Whether this configuration holds any of the public demo credentials.
    pub fn has_demo_credentials(&self) -> bool {
        self.sls
            .access_keys
            .iter()
            .any(|k| k.id == DEMO_SLS_ACCESS_KEY_ID || k.secret.matches(DEMO_SLS_ACCESS_KEY_SECRET))
            || self.lts.tokens.iter().any(|t| t.token.matches(DEMO_LTS_TOKEN))
            || self.proliferate.keys.iter().any(|k| k.key.matches(DEMO_PROLIFERATE_KEY))
    }

    /// The SLS access key with this id.
    pub fn sls_access_key(&self, id: &str) -> Option<&AccessKey> {
        self.sls.access_keys.iter().find(|k| k.id == id)
    }

    /// The Proliferate API key that matches, compared in constant time.
    pub fn proliferate_key(&self, presented: &str) -> Option<&ApiKey> {
        self.proliferate.keys.iter().fold(None, |found, k| if k.key.matches(presented) { Some(k) } else { found })
    }

    /// The LTS token that matches, compared in constant time.
    pub fn lts_token(&self, presented: &str) -> Option<&LtsToken> {
        self.lts.tokens.iter().fold(None, |found, t| if t.token.matches(presented) { Some(t) } else { found })
    }

    /// The project a request names, configured (`None` in open mode), or
    /// [`IngestError::ProjectNotExist`].
    pub fn project(&self, project: &str) -> Result<Option<&ProjectConfig>, IngestError> {
        if check_name("project", project).is_err() {
            return Err(IngestError::ProjectNotExist(project.to_owned()));
        }
        match self.projects.iter().find(|p| p.name == project) {
            None if !self.open => Err(IngestError::ProjectNotExist(project.to_owned())),
            found => Ok(found),
        }
    }

    /// The logstore a request names, or the product-neutral "does not exist" errors.
    pub fn target(&self, project: &str, logstore: &str) -> Result<Target, IngestError> {
        let configured = self.project(project)?;
        if check_name("logstore", logstore).is_err() {
            return Err(IngestError::LogStoreNotExist(logstore.to_owned()));
        }
        if !self.open && !configured.is_some_and(|p| p.logstores.iter().any(|l| l.name == logstore)) {
            return Err(IngestError::LogStoreNotExist(logstore.to_owned()));
        }
        Ok(Target { project: project.to_owned(), logstore: logstore.to_owned() })
    }

    /// The settings of a logstore, when it is configured.
    pub fn logstore(&self, project: &str, logstore: &str) -> Option<&LogstoreConfig> {
        self.projects.iter().find(|p| p.name == project)?.logstores.iter().find(|l| l.name == logstore)
    }

    /// The write quota of a logstore in bytes per second, if any.
    pub fn write_quota(&self, target: &Target) -> Option<f64> {
        self.logstore(&target.project, &target.logstore)
            .and_then(|l| l.write_quota_mb_per_sec)
            .or(self.limits.default_write_quota_mb_per_sec)
            .map(|mb| mb * 1024.0 * 1024.0)
    }

    /// Where an LTS stream's logs go. Unmapped streams (open mode) go to logstore
    /// `{group}.{stream}`; a group id with a `.` is refused there, so that no two streams
    /// share a logstore (`a.b` + `c` and `a` + `b.c` would both be `a.b.c`).
    pub fn lts_target(&self, project_id: &str, group_id: &str, stream_id: &str) -> Result<Target, IngestError> {
        if let Some(s) = self
            .lts
            .streams
            .iter()
            .find(|s| s.project_id == project_id && s.group_id == group_id && s.stream_id == stream_id)
        {
            return self.target(&s.project, &s.logstore);
        }
        if !self.open || group_id.contains('.') {
            return Err(IngestError::LogStoreNotExist(format!("{group_id}/{stream_id}")));
        }
        self.target(project_id, &format!("{group_id}.{stream_id}"))
    }
}

/// Project and logstore names: 1-128 of `[A-Za-z0-9_.-]`, not `.` or `..`.
pub fn check_name(what: &'static str, name: &str) -> Result<(), ConfigError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok { Ok(()) } else { Err(ConfigError::InvalidName { what, name: name.to_owned() }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_secrets_from_the_environment() {
        let toml_like: Config = serde_json::from_value(serde_json::json!({
            "projects": [{"name": "shop", "logstores": [{"name": "nginx", "retention_days": 7}]}],
            "sls": {"access_keys": [{"id": "ak", "secret": {"env": "SLS_SECRET"}}]},
            "proliferate": {"keys": [{"key": "pk_1", "project": "shop"}]},
        }))
        .unwrap();
        let err = toml_like.clone().resolve(|_| None).unwrap_err();
        assert_eq!(err, ConfigError::MissingSecret("SLS_SECRET".into()));
        let config = toml_like.resolve(|name| (name == "SLS_SECRET").then(|| "s3cret".to_owned())).unwrap();
        assert!(config.sls_access_key("ak").unwrap().secret.matches("s3cret"));
        assert_eq!(config.proliferate_key("pk_1").unwrap().logstore, "logs");
        assert!(config.proliferate_key("pk_2").is_none());
        assert!(!config.has_demo_credentials());
        assert!(Config::development().has_demo_credentials());
    }

    #[test]
    fn closed_configs_know_their_logstores() {
        let config: Config = serde_json::from_value(serde_json::json!({
            "projects": [{"name": "shop", "logstores": [{"name": "nginx"}]}],
        }))
        .unwrap();
        assert!(config.target("shop", "nginx").is_ok());
        assert_eq!(config.target("shop", "app"), Err(IngestError::LogStoreNotExist("app".into())));
        assert_eq!(config.target("other", "nginx"), Err(IngestError::ProjectNotExist("other".into())));
        let open = Config::development();
        assert!(open.target("anything", "goes").is_ok());
        assert!(open.target("..", "goes").is_err());
        assert!(open.target("a/b", "goes").is_err());
        assert_eq!(open.lts_target("p", "g", "s").unwrap().logstore, "g.s");
        // Regression: `a.b` + `c` and `a` + `b.c` both mapped to `a.b.c`.
        assert_eq!(open.lts_target("p", "a", "b.c").unwrap().logstore, "a.b.c");
        assert!(open.lts_target("p", "a.b", "c").is_err());
    }

    #[test]
    fn rejects_unknown_fields_and_bad_names() {
        let err = serde_json::from_value::<Config>(serde_json::json!({"projcts": []})).unwrap_err();
        assert!(err.to_string().contains("unknown field `projcts`"), "{err}");
        let bad: Config = serde_json::from_value(serde_json::json!({"projects": [{"name": "a b"}]})).unwrap();
        assert!(matches!(bad.resolve(|_| None), Err(ConfigError::InvalidName { .. })));
    }
}
