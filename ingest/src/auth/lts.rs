//! LTS: the `X-Auth-Token` header, the project ids a token may write to, and the
//! logstore a log stream maps to ([`crate::config::Config::lts_target`]).

use crate::Target;
use crate::config::Config;
use crate::error::IngestError;
use crate::request::Headers;

/// The log stream a request names: `/v2/{project_id}/lts/groups/{group}/streams/{stream}`.
#[derive(Clone, Copy, Debug)]
pub struct Stream<'a> {
    pub project_id: &'a str,
    pub group_id: &'a str,
    pub stream_id: &'a str,
}

/// Checks the token and returns the stream's logstore.
pub fn authorize(config: &Config, headers: &Headers, stream: Stream<'_>) -> Result<Target, IngestError> {
    let token =
        headers.get("x-auth-token").map(str::trim).filter(|t| !t.is_empty()).ok_or(IngestError::InvalidToken)?;
    let token = config.lts_token(token).ok_or(IngestError::InvalidToken)?;
    if !token.project_ids.is_empty() && !token.project_ids.iter().any(|p| p == stream.project_id) {
        return Err(IngestError::TokenDenied(stream.project_id.to_owned()));
    }
    config.lts_target(stream.project_id, stream.group_id, stream.stream_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_streams() {
        let config = Config::development();
        let stream = Stream { project_id: "p1", group_id: "g1", stream_id: "s1" };
        let headers: Headers = [("x-auth-token", crate::config::DEMO_LTS_TOKEN)].into_iter().collect();
        assert_eq!(authorize(&config, &headers, stream).unwrap().logstore, "g1.s1");
        let wrong: Headers = [("x-auth-token", "nope")].into_iter().collect();
        assert_eq!(authorize(&config, &wrong, stream).unwrap_err(), IngestError::InvalidToken);
        assert_eq!(authorize(&config, &Headers::new(), stream).unwrap_err(), IngestError::InvalidToken);
    }
}
