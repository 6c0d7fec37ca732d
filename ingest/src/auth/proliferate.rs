//! Proliferate: an API key, compared in constant time, maps to its project (and
//! logstore). Ingest carries it in the batch body; the query APIs in
//! `Authorization: Bearer`, `X-API-Key` or `?api_key=`.

use crate::Target;
use crate::config::{ApiKey, Config};
use crate::error::IngestError;
use crate::request::Headers;

/// The key a query request presents, if any.
pub fn presented<'a>(headers: &'a Headers, query: &'a [(String, String)]) -> Option<&'a str> {
    headers
        .get("authorization")
        .map(str::trim)
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .or_else(|| headers.get("x-api-key"))
        .or_else(|| query.iter().find(|(k, _)| k == "api_key").map(|(_, v)| v.as_str()))
        .map(str::trim)
}

/// Checks a presented key and returns its logstore and the key. A request that names a
/// `project` (the query APIs' path) must name the key's own.
pub fn authorize<'c>(
    config: &'c Config,
    presented: Option<&str>,
    project: Option<&str>,
) -> Result<(Target, &'c ApiKey), IngestError> {
    let key = config.proliferate_key(presented.ok_or(IngestError::InvalidApiKey)?).ok_or(IngestError::InvalidApiKey)?;
    if let Some(project) = project
        && project != key.project
    {
        return Err(IngestError::Forbidden(project.to_owned()));
    }
    Ok((config.target(&key.project, &key.logstore)?, key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEMO_PROLIFERATE_KEY;

    #[test]
    fn keys_see_their_own_project() {
        let config = Config::development();
        let bearer: Headers = [("authorization", format!("Bearer {DEMO_PROLIFERATE_KEY}"))].into_iter().collect();
        assert_eq!(presented(&bearer, &[]), Some(DEMO_PROLIFERATE_KEY));
        let in_url = [("api_key".to_owned(), "k".to_owned())];
        assert_eq!(presented(&Headers::new(), &in_url), Some("k"));
        let (target, _) = authorize(&config, Some(DEMO_PROLIFERATE_KEY), Some("demo")).unwrap();
        assert_eq!((target.project.as_str(), target.logstore.as_str()), ("demo", "logs"));
        assert_eq!(
            authorize(&config, Some(DEMO_PROLIFERATE_KEY), Some("other")).unwrap_err(),
            IngestError::Forbidden("other".into())
        );
        assert_eq!(authorize(&config, Some("pk_wrong"), None).unwrap_err(), IngestError::InvalidApiKey);
        assert_eq!(authorize(&config, None, None).unwrap_err(), IngestError::InvalidApiKey);
    }
}
