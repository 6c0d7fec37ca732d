//! Signing in with a credential itself rather than a signed request (the log explorer):
//! any credential the server knows, checked as its own API checks it, and exactly what
//! it may then read.
//!
//! - an SLS AccessKey pair (and its STS token when it has one): the projects the key may
//!   use ([`crate::config::AccessKey::projects`], empty for all);
//! - an LTS token: the logstores of the log streams of its project ids;
//! - a Proliferate API key: its one project and logstore.

use crate::Target;
use crate::config::Config;
use crate::error::IngestError;

/// A credential as a person types it in.
#[derive(Clone, Copy, Debug)]
pub enum Presented<'a> {
    Sls { id: &'a str, secret: &'a str, security_token: Option<&'a str> },
    Lts { token: &'a str },
    Proliferate { key: &'a str },
}

/// What a signed-in credential may read. It holds no secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Grant {
    Sls { key_id: String, projects: Vec<String> },
    Lts { project_ids: Vec<String>, token_index: usize },
    Proliferate { target: Target },
}

/// Checks a credential in constant time, and returns what it may read.
pub fn sign_in(config: &Config, presented: Presented<'_>) -> Result<Grant, IngestError> {
    match presented {
        Presented::Sls { id, secret, security_token } => {
            let key = config.sls_access_key(id).ok_or_else(|| IngestError::UnknownAccessKey(id.to_owned()))?;
            if !key.secret.matches(secret) {
                return Err(IngestError::SignatureNotMatch);
            }
            if let Some(expected) = &key.security_token
                && !security_token.is_some_and(|t| expected.matches(t))
            {
                return Err(IngestError::SecurityToken { key_id: key.id.clone(), presented: security_token.is_some() });
            }
            Ok(Grant::Sls { key_id: key.id.clone(), projects: key.projects.clone() })
        }
        Presented::Lts { token } => {
            let found =
                config.lts.tokens.iter().position(|t| t.token.matches(token)).ok_or(IngestError::InvalidToken)?;
            Ok(Grant::Lts { project_ids: config.lts.tokens[found].project_ids.clone(), token_index: found })
        }
        Presented::Proliferate { key } => {
            let key = config.proliferate_key(key).ok_or(IngestError::InvalidApiKey)?;
            Ok(Grant::Proliferate { target: config.target(&key.project, &key.logstore)? })
        }
    }
}

impl Grant {
    /// The logstore, when this grant may read it; otherwise the error its product's API
    /// answers for a logstore it may not use.
    pub fn read(&self, config: &Config, project: &str, logstore: &str) -> Result<Target, IngestError> {
        match self {
            Self::Sls { key_id, projects } => {
                if !projects.is_empty() && !projects.iter().any(|p| p == project) {
                    return Err(IngestError::AccessDenied { key_id: key_id.clone(), project: project.to_owned() });
                }
                config.target(project, logstore)
            }
            Self::Lts { project_ids, .. } => {
                let allowed = |id: &str| project_ids.is_empty() || project_ids.iter().any(|p| p == id);
                let mapped = config
                    .lts
                    .streams
                    .iter()
                    .any(|s| allowed(&s.project_id) && s.project == project && s.logstore == logstore);
                // Unmapped streams (open mode) go to project `{project_id}`, logstore
                // `{group}.{stream}` (Config::lts_target).
                let unmapped = config.open && allowed(project) && logstore.contains('.');
                if !mapped && !unmapped {
                    return Err(IngestError::TokenDenied(project.to_owned()));
                }
                config.target(project, logstore)
            }
            Self::Proliferate { target } => {
                if target.project != project {
                    return Err(IngestError::Forbidden(project.to_owned()));
                }
                if target.logstore != logstore {
                    return Err(IngestError::LogStoreNotExist(logstore.to_owned()));
                }
                Ok(target.clone())
            }
        }
    }

    /// Whether [`Grant::read`] would allow this logstore (for listings).
    pub fn sees(&self, config: &Config, project: &str, logstore: &str) -> bool {
        self.read(config, project, logstore).is_ok()
    }

    /// The credential its queries count against, as the product APIs name it.
    pub fn credential(&self) -> String {
        match self {
            Self::Sls { key_id, .. } => format!("sls:{key_id}"),
            Self::Lts { token_index, .. } => format!("lts:{token_index}"),
            Self::Proliferate { target } => format!("proliferate:{}/{}", target.project, target.logstore),
        }
    }

    /// How a person is told who they are signed in as (no secret).
    pub fn label(&self) -> String {
        match self {
            Self::Sls { key_id, .. } => format!("SLS AccessKey {key_id}"),
            Self::Lts { token_index, .. } => format!("LTS token #{}", token_index + 1),
            Self::Proliferate { target } => format!("Proliferate key of {}", target.project),
        }
    }

    /// The logstores the configuration names that this grant may read; in open mode,
    /// logstores with data are found by listing, and filtered with [`Grant::sees`].
    pub fn configured(&self, config: &Config) -> Vec<Target> {
        let mut out: Vec<Target> = config
            .projects
            .iter()
            .flat_map(|p| p.logstores.iter().map(|l| (p.name.as_str(), l.name.as_str())))
            .chain(config.lts.streams.iter().map(|s| (s.project.as_str(), s.logstore.as_str())))
            .chain(config.proliferate.keys.iter().map(|k| (k.project.as_str(), k.logstore.as_str())))
            .filter_map(|(p, l)| self.read(config, p, l).ok())
            .collect();
        out.sort_by(|a, b| (&a.project, &a.logstore).cmp(&(&b.project, &b.logstore)));
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{
        AccessKey, ApiKey, DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_PROLIFERATE_PROJECT, DEMO_SLS_ACCESS_KEY_ID,
        DEMO_SLS_ACCESS_KEY_SECRET, LogstoreConfig, LtsStream, LtsToken, ProjectConfig, Secret,
    };

    fn logstore(name: &str) -> LogstoreConfig {
        LogstoreConfig {
            name: name.into(),
            retention_days: None,
            write_quota_mb_per_sec: None,
            field_types: Default::default(),
        }
    }

    /// Two projects, a key for each, a token for one stream and an API key.
    fn closed() -> Config {
        let mut config = Config {
            projects: vec![
                ProjectConfig { name: "shop".into(), logstores: vec![logstore("web"), logstore("g.s")] },
                ProjectConfig { name: "bank".into(), logstores: vec![logstore("ledger")] },
            ],
            ..Config::default()
        };
        let key = |id: &str, project: &str| AccessKey {
            id: id.into(),
            secret: Secret::Value(format!("{id}-secret")),
            projects: vec![project.into()],
            security_token: None,
        };
        config.sls.access_keys = vec![key("shopkey", "shop"), key("bankkey", "bank")];
        config.sls.access_keys.push(AccessKey {
            id: "sts".into(),
            secret: Secret::Value("sts-secret".into()),
            projects: Vec::new(),
            security_token: Some(Secret::Value("sts-token".into())),
        });
        config.lts.tokens = vec![LtsToken { token: Secret::Value("tok".into()), project_ids: vec!["p1".into()] }];
        config.lts.streams = vec![LtsStream {
            project_id: "p1".into(),
            group_id: "g".into(),
            stream_id: "s".into(),
            project: "shop".into(),
            logstore: "g.s".into(),
        }];
        config.proliferate.keys =
            vec![ApiKey { key: Secret::Value("pk".into()), project: "bank".into(), logstore: "ledger".into() }];
        config
    }

    fn names(targets: &[Target]) -> Vec<String> {
        targets.iter().map(|t| format!("{}/{}", t.project, t.logstore)).collect()
    }

    #[test]
    fn each_credential_sees_what_its_api_lets_it_read() {
        let config = closed();
        let sls = |id, secret| sign_in(&config, Presented::Sls { id, secret, security_token: None });
        let shop = sls("shopkey", "shopkey-secret").unwrap();
        assert_eq!(names(&shop.configured(&config)), ["shop/g.s", "shop/web"]);
        assert!(shop.read(&config, "shop", "web").is_ok());
        assert!(matches!(shop.read(&config, "bank", "ledger"), Err(IngestError::AccessDenied { .. })));
        assert!(matches!(shop.read(&config, "shop", "nope"), Err(IngestError::LogStoreNotExist(_))));
        assert_eq!(shop.credential(), "sls:shopkey");

        let lts = sign_in(&config, Presented::Lts { token: "tok" }).unwrap();
        assert_eq!(names(&lts.configured(&config)), ["shop/g.s"]);
        assert!(lts.read(&config, "shop", "web").is_err());

        let key = sign_in(&config, Presented::Proliferate { key: "pk" }).unwrap();
        assert_eq!(names(&key.configured(&config)), ["bank/ledger"]);
        assert!(key.read(&config, "shop", "web").is_err());
        assert!(!format!("{key:?}{}", key.label()).contains("pk\""), "a grant holds no secret");
    }

    #[test]
    fn wrong_credentials_get_their_products_errors() {
        let config = closed();
        let sls = |id, secret, security_token| sign_in(&config, Presented::Sls { id, secret, security_token });
        assert_eq!(sls("nobody", "x", None).unwrap_err(), IngestError::UnknownAccessKey("nobody".into()));
        assert_eq!(sls("shopkey", "bankkey-secret", None).unwrap_err(), IngestError::SignatureNotMatch);
        assert!(matches!(sls("sts", "sts-secret", None), Err(IngestError::SecurityToken { presented: false, .. })));
        assert!(matches!(sls("sts", "sts-secret", Some("x")), Err(IngestError::SecurityToken { presented: true, .. })));
        assert!(sls("sts", "sts-secret", Some("sts-token")).is_ok());
        assert_eq!(sign_in(&config, Presented::Lts { token: "" }).unwrap_err(), IngestError::InvalidToken);
        assert_eq!(sign_in(&config, Presented::Proliferate { key: "x" }).unwrap_err(), IngestError::InvalidApiKey);
    }

    #[test]
    fn the_demo_credentials_see_any_logstore_in_development() {
        let config = Config::development();
        let sls =
            Presented::Sls { id: DEMO_SLS_ACCESS_KEY_ID, secret: DEMO_SLS_ACCESS_KEY_SECRET, security_token: None };
        assert!(sign_in(&config, sls).unwrap().sees(&config, "any", "thing"));
        let lts = sign_in(&config, Presented::Lts { token: DEMO_LTS_TOKEN }).unwrap();
        assert!(lts.sees(&config, "p1", "g1.s1") && !lts.sees(&config, "p1", "plain"));
        let key = sign_in(&config, Presented::Proliferate { key: DEMO_PROLIFERATE_KEY }).unwrap();
        assert!(key.sees(&config, DEMO_PROLIFERATE_PROJECT, "logs") && !key.sees(&config, "other", "logs"));
    }
}
