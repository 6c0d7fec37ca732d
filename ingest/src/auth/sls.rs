//! SLS request signatures.
//!
//! - V1: `Authorization: LOG {AccessKeyId}:{base64(HMAC-SHA1(secret, StringToSign))}`
//!   (newer SDKs write `SLS` instead of `LOG`), with the `Date` header and Content-MD5.
//! - V4: `Authorization: SLS4-HMAC-SHA256 Credential={id}/{yyyymmdd}/{region}/sls/aliyun_v4_request,Signature={hex}`
//!   with `x-log-date` and `x-log-content-sha256`.
//!
//! Both the verifier and a signer live here: the signer is what tests, benchmarks and
//! the command line use to talk to Sluice like an SDK does.

use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use crate::Target;
use crate::config::{AccessKey, Config};
use crate::endpoint::sls_project_from_host;
use crate::error::IngestError;
use crate::request::{Headers, Request};
use crate::time;

const V4_ALGORITHM: &str = "SLS4-HMAC-SHA256";
const V4_TERMINATOR: &str = "aliyun_v4_request";
const API_VERSION: &str = "0.6.0";

/// The parts of an `Authorization` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Authorization<'a> {
    V1 { key_id: &'a str, signature: &'a str },
    V4 { key_id: &'a str, date: &'a str, region: &'a str, signature: &'a str },
}

impl<'a> Authorization<'a> {
    pub fn parse(value: &'a str) -> Result<Self, IngestError> {
        let value = value.trim();
        if let Some(rest) = value.strip_prefix(V4_ALGORITHM) {
            let rest = rest.trim_start();
            let mut credential = None;
            let mut signature = None;
            for part in rest.split(',') {
                let part = part.trim();
                if let Some(v) = part.strip_prefix("Credential=") {
                    credential = Some(v);
                } else if let Some(v) = part.strip_prefix("Signature=") {
                    signature = Some(v);
                }
            }
            let credential = credential.ok_or(IngestError::MalformedAuthorization("no Credential"))?;
            let signature = signature.ok_or(IngestError::MalformedAuthorization("no Signature"))?;
            let mut scope = credential.split('/');
            let (Some(key_id), Some(date), Some(region), Some("sls"), Some(V4_TERMINATOR), None) =
                (scope.next(), scope.next(), scope.next(), scope.next(), scope.next(), scope.next())
            else {
                return Err(IngestError::MalformedAuthorization(
                    "credential scope is not id/date/region/sls/aliyun_v4_request",
                ));
            };
            if key_id.is_empty() {
                return Err(IngestError::MissAccessKeyId);
            }
            return Ok(Self::V4 { key_id, date, region, signature });
        }
        let rest = value
            .strip_prefix("LOG ")
            .or_else(|| value.strip_prefix("SLS "))
            .ok_or(IngestError::MalformedAuthorization("expected LOG, SLS or SLS4-HMAC-SHA256"))?;
        let (key_id, signature) = rest
            .trim()
            .rsplit_once(':')
            .ok_or(IngestError::MalformedAuthorization("expected {AccessKeyId}:{Signature}"))?;
        if key_id.is_empty() {
            return Err(IngestError::MissAccessKeyId);
        }
        Ok(Self::V1 { key_id, signature })
    }
}

/// The project a request addresses: the first label of `Host`
/// (`myproject.cn-hangzhou.log.aliyuncs.com`), else, when `Host` is an address without a
/// project label, the `x-log-project` header (what Logtail sends then; signed, as every
/// `x-log-` header is).
pub fn project_of(headers: &Headers) -> Result<&str, IngestError> {
    let host = headers.get("host").unwrap_or("");
    if let Some(project) = sls_project_from_host(host) {
        return Ok(project);
    }
    headers
        .get("x-log-project")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .ok_or_else(|| IngestError::ProjectNotExist(host.to_owned()))
}

/// Checks a request's signature, then where it goes: the project ([`project_of`]),
/// whether the key may use it, and the logstore. Returns the logstore and the access key.
pub fn authorize<'c>(
    config: &'c Config,
    req: &Request<'_>,
    logstore: &str,
    now_ns: i64,
) -> Result<(Target, &'c AccessKey), IngestError> {
    let (project, key) = authorize_project(config, req, now_ns)?;
    Ok((config.target(project, logstore)?, key))
}

/// [`authorize`] for the APIs of a whole project (ListLogStores): the signature, the
/// project, and whether the key may use it. Returns the project and the access key.
pub fn authorize_project<'c, 'r>(
    config: &'c Config,
    req: &Request<'r>,
    now_ns: i64,
) -> Result<(&'r str, &'c AccessKey), IngestError> {
    let key = verify(config, req, now_ns)?;
    let project = project_of(req.headers)?;
    if !key.projects.is_empty() && !key.projects.iter().any(|p| p == project) {
        return Err(IngestError::AccessDenied { key_id: key.id.clone(), project: project.to_owned() });
    }
    config.project(project)?;
    Ok((project, key))
}

/// Checks a request's `x-log-apiversion`, signature, date and body hash, and returns the
/// access key that signed it.
pub fn verify<'c>(config: &'c Config, req: &Request<'_>, now_ns: i64) -> Result<&'c AccessKey, IngestError> {
    let headers = req.headers;
    match headers.get("x-log-apiversion").map(str::trim) {
        None => return Err(IngestError::MissingApiVersion),
        Some(API_VERSION) => {}
        Some(other) => return Err(IngestError::InvalidApiVersion(other.to_owned())),
    }
    let auth = Authorization::parse(headers.get("authorization").ok_or(IngestError::MissingAuthorization)?)?;
    let now = now_ns.div_euclid(time::NANOS_PER_SEC);
    let window = config.limits.request_time_window_secs;
    match auth {
        Authorization::V1 { key_id, signature } => {
            // The classic SDKs sign with HMAC-SHA1, the OpenAPI (Tea) SDKs with HMAC-SHA256,
            // over the same string.
            let sha256 = match headers.get("x-log-signaturemethod").map(str::trim) {
                Some("hmac-sha1") => false,
                Some("hmac-sha256") => true,
                other => return Err(IngestError::InvalidSignatureMethod(other.unwrap_or("").to_owned())),
            };
            let date = headers.get("date").or_else(|| headers.get("x-log-date")).ok_or(IngestError::MissingDate)?;
            let secs = time::parse_rfc1123(date).ok_or_else(|| IngestError::InvalidDateFormat(date.to_owned()))?;
            check_window(secs, now, window)?;
            let key = lookup(config, key_id)?;
            let content_md5 = check_md5(headers, req.body)?;
            let secret = key.secret.value().unwrap_or_default();
            let pairs = req.query_pairs();
            let matches = |skip_log_date: bool| {
                let text = string_to_sign_v1(req.method, req.path, &pairs, headers, content_md5, date, skip_log_date);
                let mac = if sha256 {
                    hmac_sha256(secret.as_bytes(), text.as_bytes())
                } else {
                    hmac_sha1(secret.as_bytes(), text.as_bytes())
                };
                let expected = base64::engine::general_purpose::STANDARD.encode(mac);
                bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()))
            };
            // The Python SDK adds `x-log-date` after signing; other SDKs sign it.
            if matches(false) || (headers.contains("x-log-date") && matches(true)) {
                check_security_token(key, headers)
            } else {
                Err(IngestError::SignatureNotMatch)
            }
        }
        Authorization::V4 { key_id, date, region, signature } => {
            if let Some(method) = headers.get("x-log-signaturemethod").map(str::trim)
                && method != "hmac-sha256"
            {
                return Err(IngestError::InvalidSignatureMethod(method.to_owned()));
            }
            let log_date = headers.get("x-log-date").ok_or(IngestError::MissingDate)?;
            let secs = time::parse_iso8601_basic(log_date)
                .ok_or_else(|| IngestError::InvalidDateFormat(log_date.to_owned()))?;
            check_window(secs, now, window)?;
            if log_date.get(..8) != Some(date) {
                return Err(IngestError::SignatureNotMatch);
            }
            // A signature for another region (another SLS endpoint sharing the key) is
            // not valid here.
            if region != config.sls.region {
                return Err(IngestError::WrongRegion {
                    region: region.to_owned(),
                    expected: config.sls.region.clone(),
                });
            }
            let key = lookup(config, key_id)?;
            let content_sha256 = check_sha256(headers, req.body)?;
            let secret = key.secret.value().unwrap_or_default();
            let pairs = req.query_pairs();
            let matches = |with_host: bool| {
                let expected = signature_v4(
                    secret,
                    region,
                    log_date,
                    &canonical_request_v4(req.method, req.path, &pairs, headers, content_sha256, with_host),
                );
                bool::from(subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), signature.as_bytes()))
            };
            // Some SDKs sign `Host`, others leave it to the HTTP stack.
            if matches(true) || matches(false) {
                check_security_token(key, headers)
            } else {
                Err(IngestError::SignatureNotMatch)
            }
        }
    }
}

/// A key with a security token (STS credentials) is valid only with that token in
/// `x-acs-security-token`, which the signature covers (an `x-acs-` header).
fn check_security_token<'c>(key: &'c AccessKey, headers: &Headers) -> Result<&'c AccessKey, IngestError> {
    match (&key.security_token, headers.get("x-acs-security-token").map(str::trim)) {
        (None, _) => Ok(key),
        (Some(token), Some(presented)) if token.matches(presented) => Ok(key),
        (Some(_), presented) => {
            Err(IngestError::SecurityToken { key_id: key.id.clone(), presented: presented.is_some() })
        }
    }
}

fn lookup<'c>(config: &'c Config, key_id: &str) -> Result<&'c AccessKey, IngestError> {
    config.sls_access_key(key_id).ok_or_else(|| IngestError::UnknownAccessKey(key_id.to_owned()))
}

fn check_window(request: i64, server: i64, window_secs: i64) -> Result<(), IngestError> {
    if (request - server).abs() > window_secs {
        Err(IngestError::RequestTimeExpired { request, server, window_secs })
    } else {
        Ok(())
    }
}

fn check_md5<'h>(headers: &'h Headers, body: &[u8]) -> Result<&'h str, IngestError> {
    let declared = headers.get("content-md5").map(str::trim).unwrap_or("");
    if body.is_empty() && declared.is_empty() {
        return Ok(declared);
    }
    let actual = hex_upper(&Md5::digest(body));
    if declared.eq_ignore_ascii_case(&actual) {
        Ok(declared)
    } else {
        Err(IngestError::ContentMd5Mismatch { declared: declared.to_owned(), actual })
    }
}

fn check_sha256<'h>(headers: &'h Headers, body: &[u8]) -> Result<&'h str, IngestError> {
    let declared = headers.get("x-log-content-sha256").map(str::trim).ok_or(IngestError::ContentSha256Mismatch)?;
    if declared.eq_ignore_ascii_case(&hex_lower(&Sha256::digest(body))) {
        Ok(declared)
    } else {
        Err(IngestError::ContentSha256Mismatch)
    }
}

fn is_signed_header(name: &str) -> bool {
    name.starts_with("x-acs-") || (name.starts_with("x-log-") && !name.starts_with("x-log-meta-"))
}

/// The V1 StringToSign.
pub fn string_to_sign_v1(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &Headers,
    content_md5: &str,
    date: &str,
    skip_log_date: bool,
) -> String {
    let mut signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| is_signed_header(name) && !(skip_log_date && *name == "x-log-date"))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(b.0));
    let mut out = String::with_capacity(256);
    out.push_str(method);
    out.push('\n');
    out.push_str(content_md5);
    out.push('\n');
    out.push_str(headers.get("content-type").unwrap_or(""));
    out.push('\n');
    out.push_str(date);
    out.push('\n');
    for (name, value) in signed {
        out.push_str(name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push_str(path);
    if !query.is_empty() {
        let mut sorted: Vec<&(String, String)> = query.iter().collect();
        sorted.sort();
        out.push('?');
        for (i, (k, v)) in sorted.into_iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
    }
    out
}

/// RFC 3986 unreserved characters stay, everything else is percent-encoded.
const V4_ENCODE: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// The V4 canonical request.
pub fn canonical_request_v4(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &Headers,
    content_sha256: &str,
    with_host: bool,
) -> String {
    let mut out = String::with_capacity(512);
    out.push_str(method);
    out.push('\n');
    out.push_str(path);
    out.push('\n');
    let mut sorted: Vec<&(String, String)> = query.iter().collect();
    sorted.sort();
    for (i, (k, v)) in sorted.into_iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        out.push_str(k);
        if !v.is_empty() {
            out.push('=');
            out.extend(percent_encoding::utf8_percent_encode(v, V4_ENCODE));
        }
    }
    out.push('\n');
    let mut signed: Vec<(&str, &str)> = headers
        .iter()
        .filter(|(name, _)| *name == "content-type" || (with_host && *name == "host") || is_signed_header(name))
        .collect();
    signed.sort_by(|a, b| a.0.cmp(b.0));
    for (name, value) in &signed {
        out.push_str(name);
        out.push(':');
        out.push_str(value.trim());
        out.push('\n');
    }
    out.push('\n');
    for (i, (name, _)) in signed.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        out.push_str(name);
    }
    out.push('\n');
    out.push_str(content_sha256);
    out
}

/// The V4 signature (lowercase hex) of a canonical request.
pub fn signature_v4(secret: &str, region: &str, log_date: &str, canonical_request: &str) -> String {
    let date = log_date.get(..8).unwrap_or(log_date);
    let scope = format!("{date}/{region}/sls/{V4_TERMINATOR}");
    let string_to_sign =
        format!("{V4_ALGORITHM}\n{log_date}\n{scope}\n{}", hex_lower(&Sha256::digest(canonical_request.as_bytes())));
    let mut key = hmac_sha256(format!("aliyun_v4{secret}").as_bytes(), date.as_bytes());
    for part in [region, "sls", V4_TERMINATOR] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    hex_lower(&hmac_sha256(&key, string_to_sign.as_bytes()))
}

fn hmac_sha1(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key).expect("hmac accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).expect("hmac accepts keys of any length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Signs a request the way the official SDKs do, for tests, benchmarks and tools.
#[derive(Clone, Debug)]
pub struct Signer<'a> {
    pub key_id: &'a str,
    pub secret: &'a str,
}

impl Signer<'_> {
    /// Adds `Content-MD5`, `Date`, `x-log-date`, `x-log-apiversion`,
    /// `x-log-signaturemethod` and a V1 `Authorization` (HMAC-SHA1, as the classic SDKs
    /// sign) to `headers`.
    pub fn sign_v1(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &mut Headers,
        body: &[u8],
        now_secs: i64,
    ) {
        self.sign_v1_with(false, method, path, query, headers, body, now_secs);
    }

    /// [`Signer::sign_v1`] with HMAC-SHA256 when `sha256` (as the OpenAPI SDKs sign V1).
    #[allow(clippy::too_many_arguments)]
    pub fn sign_v1_with(
        &self,
        sha256: bool,
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &mut Headers,
        body: &[u8],
        now_secs: i64,
    ) {
        let date = time::format_rfc1123(now_secs);
        let md5 = if body.is_empty() { String::new() } else { hex_upper(&Md5::digest(body)) };
        if !md5.is_empty() {
            headers.insert("content-md5", md5.clone());
        }
        headers.insert("date", date.clone());
        headers.insert("x-log-apiversion", API_VERSION);
        headers.insert("x-log-signaturemethod", if sha256 { "hmac-sha256" } else { "hmac-sha1" });
        let text = string_to_sign_v1(method, path, query, headers, &md5, &date, false);
        let mac = if sha256 {
            hmac_sha256(self.secret.as_bytes(), text.as_bytes())
        } else {
            hmac_sha1(self.secret.as_bytes(), text.as_bytes())
        };
        let signature = base64::engine::general_purpose::STANDARD.encode(mac);
        headers.insert("authorization", format!("LOG {}:{signature}", self.key_id));
    }

    /// Adds `x-log-date`, `x-log-content-sha256`, `x-log-apiversion` and a V4
    /// `Authorization` to `headers`.
    #[allow(clippy::too_many_arguments)]
    pub fn sign_v4(
        &self,
        method: &str,
        path: &str,
        query: &[(String, String)],
        headers: &mut Headers,
        body: &[u8],
        region: &str,
        now_secs: i64,
    ) {
        let log_date = time::format_iso8601_basic(now_secs);
        let sha = hex_lower(&Sha256::digest(body));
        headers.insert("x-log-apiversion", API_VERSION);
        headers.insert("x-log-content-sha256", sha.clone());
        headers.insert("x-log-date", log_date.clone());
        let canonical = canonical_request_v4(method, path, query, headers, &sha, true);
        let signature = signature_v4(self.secret, region, &log_date, &canonical);
        headers.insert(
            "authorization",
            format!(
                "{V4_ALGORITHM} Credential={}/{}/{region}/sls/{V4_TERMINATOR},Signature={signature}",
                self.key_id,
                &log_date[..8]
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AccessKey, Secret};

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        pairs.iter().map(|(k, v)| (*k, v.to_string())).collect()
    }

    /// The vector from wire.md (the official Go SDK's `TestSignatureGet`).
    #[test]
    fn v1_matches_the_go_sdk_vector() {
        let h = headers(&[
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("x-log-bodyrawsize", "0"),
            ("Date", "Mon, 3 Jan 2010 08:33:47 GMT"),
        ]);
        let text = string_to_sign_v1("GET", "/logstores", &[], &h, "", "Mon, 3 Jan 2010 08:33:47 GMT", false);
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha1(b"mockAccessKeySecret", text.as_bytes()));
        assert_eq!(sig, "Rwm6cTKzoti4HWoe+GKcb6Kv07E=");
    }

    /// The Go SDK's `TestSignV1Case2`: a protobuf body with Content-MD5 and Content-Type.
    #[test]
    fn v1_matches_the_go_sdk_vector_with_a_body() {
        let body: &[u8] = &[
            10, 50, 10, 30, 8, 248, 178, 147, 158, 5, 18, 22, 10, 7, 84, 101, 115, 116, 75, 101, 121, 18, 11, 84, 101,
            115, 116, 67, 111, 110, 116, 101, 110, 116, 26, 0, 34, 14, 49, 48, 46, 50, 51, 48, 46, 50, 48, 49, 46, 49,
            49, 55,
        ];
        let md5 = hex_upper(&Md5::digest(body));
        let h = headers(&[
            ("x-log-apiversion", "0.6.0"),
            ("x-log-signaturemethod", "hmac-sha1"),
            ("x-log-bodyrawsize", "50"),
            ("Content-MD5", &md5),
            ("Content-Type", "application/x-protobuf"),
            ("Content-Length", "50"),
            ("Date", "Mon, 3 Jan 2010 08:33:47 GMT"),
        ]);
        let text = string_to_sign_v1("GET", "/logstores/app_log", &[], &h, &md5, "Mon, 3 Jan 2010 08:33:47 GMT", false);
        let sig = base64::engine::general_purpose::STANDARD.encode(hmac_sha1(b"mockAccessKeySecret", text.as_bytes()));
        assert_eq!(sig, "87xQWqFaOSewqRIma8kPjGYlXHc=");
    }

    /// The Go SDK's `TestSignV4Case2`: no query, only `x-log-date` and the body hash.
    #[test]
    fn v4_matches_the_go_sdk_vector() {
        let body = b"adasd= -asd zcas";
        let sha = hex_lower(&Sha256::digest(body));
        let h = headers(&[("x-log-date", "20220808T032330Z"), ("x-log-content-sha256", &sha)]);
        let canonical = canonical_request_v4("POST", "/logstores", &[], &h, &sha, true);
        assert_eq!(
            signature_v4("zxasdasdasw2", "cn-shanghai", "20220808T032330Z", &canonical),
            "8a10a5e723cb2e75964816de660b2c16a58af8bc0261f7f0722d832468c76ce8"
        );
    }

    fn config() -> Config {
        let mut config = Config::development();
        config.sls.access_keys.push(AccessKey {
            id: "ak".into(),
            secret: Secret::Value("secret".into()),
            projects: vec![],
            security_token: None,
        });
        config
    }

    const NOW: i64 = 1_700_000_000;

    fn request<'a>(headers: &'a Headers, body: &'a [u8], query: &'a str) -> Request<'a> {
        Request { method: "POST", path: "/logstores/app/shards/lb", query, headers, body }
    }

    #[test]
    fn verifies_what_the_signer_signs() {
        let signer = Signer { key_id: "ak", secret: "secret" };
        let body = b"some body";
        let query = [("key".to_owned(), "abc".to_owned())];
        let mut h =
            headers(&[("content-type", "application/x-protobuf"), ("x-log-bodyrawsize", "9"), ("host", "p.localhost")]);
        signer.sign_v1("POST", "/logstores/app/shards/lb", &query, &mut h, body, NOW);
        let cfg = config();
        let ok = verify(&cfg, &request(&h, body, "key=abc"), NOW * 1_000_000_000).unwrap();
        assert_eq!(ok.id, "ak");
        // The Python SDK adds x-log-date after signing.
        h.insert("x-log-date", time::format_rfc1123(NOW));
        assert!(verify(&config(), &request(&h, body, "key=abc"), NOW * 1_000_000_000).is_ok());
        assert_eq!(
            verify(&config(), &request(&h, body, "key=abd"), NOW * 1_000_000_000).unwrap_err(),
            IngestError::SignatureNotMatch
        );

        let mut h = headers(&[("content-type", "application/x-protobuf"), ("host", "p.localhost")]);
        signer.sign_v4("POST", "/logstores/app/shards/lb", &query, &mut h, body, "cn-hangzhou", NOW);
        assert!(verify(&config(), &request(&h, body, "key=abc"), NOW * 1_000_000_000).is_ok());
        assert_eq!(
            verify(&config(), &request(&h, b"other body", "key=abc"), NOW * 1_000_000_000).unwrap_err(),
            IngestError::ContentSha256Mismatch
        );
    }

    #[test]
    fn v1_signs_with_sha1_or_sha256_and_sts_tokens_are_checked() {
        let signer = Signer { key_id: "ak", secret: "secret" };
        let body = b"some body";
        let mut h = headers(&[("content-type", "application/x-protobuf"), ("host", "p.localhost")]);
        signer.sign_v1_with(true, "POST", "/logstores/app/shards/lb", &[], &mut h, body, NOW);
        assert_eq!(h.get("x-log-signaturemethod"), Some("hmac-sha256"));
        assert!(verify(&config(), &request(&h, body, ""), NOW * 1_000_000_000).is_ok());
        h.set("x-log-signaturemethod", "hmac-sha1");
        assert_eq!(
            verify(&config(), &request(&h, body, ""), NOW * 1_000_000_000).unwrap_err(),
            IngestError::SignatureNotMatch
        );
        h.set("x-log-signaturemethod", "hmac-md5");
        assert!(matches!(
            verify(&config(), &request(&h, body, ""), NOW * 1_000_000_000),
            Err(IngestError::InvalidSignatureMethod(_))
        ));

        let mut sts = config();
        sts.sls.access_keys.push(AccessKey {
            id: "sts".into(),
            secret: Secret::Value("s".into()),
            projects: vec![],
            security_token: Some(Secret::Value("token-1".into())),
        });
        let signer = Signer { key_id: "sts", secret: "s" };
        let mut h = headers(&[("x-acs-security-token", "token-1")]);
        signer.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut h, body, NOW);
        assert!(verify(&sts, &request(&h, body, ""), NOW * 1_000_000_000).is_ok());
        let mut wrong = headers(&[("x-acs-security-token", "token-2")]);
        signer.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut wrong, body, NOW);
        assert!(matches!(
            verify(&sts, &request(&wrong, body, ""), NOW * 1_000_000_000),
            Err(IngestError::SecurityToken { .. })
        ));
        let mut none = headers(&[]);
        signer.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut none, body, NOW);
        assert!(matches!(
            verify(&sts, &request(&none, body, ""), NOW * 1_000_000_000),
            Err(IngestError::SecurityToken { .. })
        ));
        // The token is signed: changing it after signing breaks the signature.
        h.set("x-acs-security-token", "token-2");
        assert_eq!(
            verify(&sts, &request(&h, body, ""), NOW * 1_000_000_000).unwrap_err(),
            IngestError::SignatureNotMatch
        );
    }

    #[test]
    fn the_project_comes_from_host_else_x_log_project() {
        assert_eq!(project_of(&headers(&[("host", "shop.cn-hangzhou.log.aliyuncs.com")])), Ok("shop"));
        assert_eq!(project_of(&headers(&[("host", "10.0.0.1:8080"), ("x-log-project", "shop")])), Ok("shop"));
        assert_eq!(project_of(&headers(&[("host", "localhost:8080"), ("x-log-project", "shop")])), Ok("shop"));
        assert_eq!(project_of(&headers(&[("host", "web.example.com"), ("x-log-project", "shop")])), Ok("web"));
        assert!(project_of(&headers(&[("host", "10.0.0.1:8080")])).is_err());
    }

    /// Regression: a V4 signature for any region was accepted.
    #[test]
    fn v4_signatures_name_this_endpoints_region() {
        let signer = Signer { key_id: "ak", secret: "secret" };
        let body = b"some body";
        let mut h = headers(&[("content-type", "application/x-protobuf"), ("host", "p.localhost")]);
        signer.sign_v4("POST", "/logstores/app/shards/lb", &[], &mut h, body, "cn-shanghai", NOW);
        assert_eq!(
            verify(&config(), &request(&h, body, ""), NOW * 1_000_000_000).unwrap_err(),
            IngestError::WrongRegion { region: "cn-shanghai".into(), expected: "cn-hangzhou".into() }
        );
        let mut shanghai = config();
        shanghai.sls.region = "cn-shanghai".into();
        assert!(verify(&shanghai, &request(&h, body, ""), NOW * 1_000_000_000).is_ok());
    }

    #[test]
    fn refuses_bad_credentials_dates_and_bodies() {
        let signer = Signer { key_id: "ak", secret: "secret" };
        let body = b"some body";
        let mut h = headers(&[("content-type", "application/x-protobuf")]);
        signer.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut h, body, NOW);
        let now = NOW * 1_000_000_000;
        let late = now + 16 * 60 * 1_000_000_000;
        assert!(matches!(verify(&config(), &request(&h, body, ""), late), Err(IngestError::RequestTimeExpired { .. })));
        assert!(matches!(
            verify(&config(), &request(&h, b"tampered!", ""), now),
            Err(IngestError::ContentMd5Mismatch { .. })
        ));
        let wrong = Signer { key_id: "ak", secret: "wrong" };
        let mut h2 = headers(&[("content-type", "application/x-protobuf")]);
        wrong.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut h2, body, NOW);
        assert_eq!(verify(&config(), &request(&h2, body, ""), now).unwrap_err(), IngestError::SignatureNotMatch);
        let unknown = Signer { key_id: "nobody", secret: "secret" };
        let mut h3 = headers(&[]);
        unknown.sign_v1("POST", "/logstores/app/shards/lb", &[], &mut h3, body, NOW);
        assert!(matches!(verify(&config(), &request(&h3, body, ""), now), Err(IngestError::UnknownAccessKey(_))));
    }

    #[test]
    fn parses_authorization_headers() {
        assert_eq!(Authorization::parse("LOG id:sig").unwrap(), Authorization::V1 { key_id: "id", signature: "sig" });
        assert_eq!(Authorization::parse("SLS id:sig").unwrap(), Authorization::V1 { key_id: "id", signature: "sig" });
        assert_eq!(Authorization::parse("LOG :sig").unwrap_err(), IngestError::MissAccessKeyId);
        assert_eq!(
            Authorization::parse(
                "SLS4-HMAC-SHA256 Credential=id/20220808/cn-hangzhou/sls/aliyun_v4_request,Signature=ab"
            )
            .unwrap(),
            Authorization::V4 { key_id: "id", date: "20220808", region: "cn-hangzhou", signature: "ab" }
        );
        assert!(Authorization::parse("Bearer x").is_err());
        assert!(Authorization::parse("SLS4-HMAC-SHA256 Credential=id/2022,Signature=ab").is_err());
    }
}
