//! PutLogs, as Logtail sends it: the LogGroup in protobuf, lz4 (or zstd), signed with
//! `sluice-ingest`'s signer (V1, or V4 when the flusher has a `Region`), to
//! `/logstores/{logstore}/shards/lb` (or `/shards/route?key=` with a hash key).
//!
//! An answer is sorted into: done, worth retrying (no connection, a timeout,
//! `ServerBusy`, `InternalServerError`, quota errors, any 5xx), waiting on the operator
//! (credentials, a project or logstore that does not exist: retried slowly, so that the
//! files wait rather than anything being dropped), or refused for good (the product's
//! code and message, logged and counted; the batch is kept on disk).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;

use crate::batch::Batch;
use crate::config::{Compression, SlsFlusher};

/// Where a pipeline's batches go.
#[derive(Clone, Debug)]
pub struct Target {
    /// `scheme://host[:port]` the request goes to.
    base: String,
    /// The project, when the host does not name it (an address or `localhost`).
    project_header: Option<String>,
    logstore: String,
    region: Option<String>,
    key_id: String,
    secret: String,
    compression: Compression,
}

/// What an answer means for the batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    Accepted,
    /// Try again soon.
    Retry {
        code: String,
        message: String,
    },
    /// Try again, slowly: the configuration or the account needs fixing.
    Blocked {
        code: String,
        message: String,
    },
    /// The product refused these logs; sending them again cannot help.
    Refused {
        status: u16,
        code: String,
        message: String,
    },
}

impl Target {
    pub fn new(flusher: &SlsFlusher) -> Self {
        let (scheme, rest) = match flusher.endpoint.split_once("://") {
            Some((s, r)) => (s.to_owned(), r.trim_end_matches('/').to_owned()),
            None => ("https".to_owned(), flusher.endpoint.trim_end_matches('/').to_owned()),
        };
        let host = rest
            .rsplit_once(':')
            .map_or(rest.as_str(), |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { &rest });
        let by_address = host == "localhost" || host.parse::<std::net::IpAddr>().is_ok() || host.starts_with('[');
        let (base, project_header) = if by_address {
            (format!("{scheme}://{rest}"), Some(flusher.project.clone()))
        } else {
            (format!("{scheme}://{}.{rest}", flusher.project), None)
        };
        Self {
            base,
            project_header,
            logstore: flusher.logstore.clone(),
            region: flusher.region.clone(),
            key_id: flusher.access_key_id.clone(),
            secret: flusher.access_key_secret.clone(),
            compression: flusher.compression,
        }
    }

    /// The host to find the receiver's address from.
    pub fn authority(&self) -> &str {
        self.base.split_once("://").map_or(&self.base, |(_, r)| r)
    }

    /// The compressed body and signed headers of a PutLogs for `batch`.
    pub fn request(&self, batch: &Batch, now_secs: i64) -> (String, Headers, Vec<u8>) {
        let (body, compress_type) = match self.compression {
            Compression::Lz4 => (lz4_flex::block::compress(&batch.group), "lz4"),
            Compression::Zstd => (
                ruzstd::encoding::compress_to_vec(batch.group.as_slice(), ruzstd::encoding::CompressionLevel::Fastest),
                "zstd",
            ),
        };
        let (path, query) = match &batch.hash_key {
            Some(key) => (format!("/logstores/{}/shards/route", self.logstore), vec![("key".to_owned(), key.clone())]),
            None => (format!("/logstores/{}/shards/lb", self.logstore), Vec::new()),
        };
        let mut headers = Headers::new();
        headers.insert("content-type", "application/x-protobuf");
        headers.insert("x-log-bodyrawsize", batch.group.len().to_string());
        headers.insert("x-log-compresstype", compress_type);
        if let Some(project) = &self.project_header {
            headers.insert("x-log-project", project.clone());
        }
        let signer = Signer { key_id: &self.key_id, secret: &self.secret };
        match &self.region {
            Some(region) => signer.sign_v4("POST", &path, &query, &mut headers, &body, region, now_secs),
            None => signer.sign_v1("POST", &path, &query, &mut headers, &body, now_secs),
        }
        let mut url = format!("{}{path}", self.base);
        if let Some((k, v)) = query.first() {
            url.push_str(&format!("?{k}={v}"));
        }
        (url, headers, body)
    }

    /// Sends `batch` once.
    pub async fn put_logs(&self, client: &reqwest::Client, batch: &Batch) -> (Outcome, usize) {
        let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let (url, headers, body) = self.request(batch, now);
        let sent = body.len();
        let mut request = client.post(url).timeout(Duration::from_secs(30));
        for (k, v) in headers.iter() {
            request = request.header(k, v);
        }
        let response = match request.body(body).send().await {
            Ok(r) => r,
            Err(e) => return (Outcome::Retry { code: "NetworkError".into(), message: error_chain(&e) }, sent),
        };
        let status = response.status().as_u16();
        if status == 200 {
            return (Outcome::Accepted, sent);
        }
        let text = response.text().await.unwrap_or_default();
        (classify(status, &text), sent)
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "errorCode")]
    code: String,
    #[serde(rename = "errorMessage", default)]
    message: String,
}

/// Sorts an error answer by its SLS error code (and status when it has none).
pub fn classify(status: u16, body: &str) -> Outcome {
    let (code, message) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(e) => (e.code, e.message),
        Err(_) => (format!("HTTP{status}"), body.chars().take(200).collect()),
    };
    match code.as_str() {
        "ServerBusy"
        | "InternalServerError"
        | "RequestTimeout"
        | "ExceedQuota"
        | "WriteQuotaExceed"
        | "ShardWriteQuotaExceed"
        | "ProjectQuotaExceed"
        | "QuotaExceed"
        | "RequestTimeExpired" => Outcome::Retry { code, message },
        "Unauthorized" | "SignatureNotMatch" | "InvalidAccessKeyId" | "ProjectNotExist" | "LogStoreNotExist"
        | "ProjectForbidden" | "WriteForbidden" => Outcome::Blocked { code, message },
        _ if status >= 500 || status == 429 => Outcome::Retry { code, message },
        _ => Outcome::Refused { status, code, message },
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::FileId;
    use crate::config::BatchLimits;

    fn flusher(endpoint: &str, region: Option<&str>) -> SlsFlusher {
        SlsFlusher {
            project: "demo".into(),
            logstore: "app".into(),
            endpoint: endpoint.into(),
            region: region.map(str::to_owned),
            access_key_id: "sluice-demo".into(),
            access_key_secret: "sluice-demo-secret".into(),
            shard_hash_keys: Vec::new(),
            compression: Compression::Lz4,
            batch: BatchLimits::default(),
        }
    }

    fn batch() -> Batch {
        Batch {
            file: FileId { dev: 1, ino: 1 },
            epoch: 0,
            end: 3,
            lines: 1,
            raw_bytes: 3,
            hash_key: None,
            group: b"\x0a\x03abc".to_vec(),
        }
    }

    #[test]
    fn addresses_carry_the_project_in_a_header_and_names_in_the_host() {
        let (url, headers, _) = Target::new(&flusher("http://127.0.0.1:8080", None)).request(&batch(), 1_700_000_000);
        assert_eq!(url, "http://127.0.0.1:8080/logstores/app/shards/lb");
        assert_eq!(headers.get("x-log-project"), Some("demo"));
        assert!(headers.get("authorization").unwrap().starts_with("LOG sluice-demo:"));
        let (url, headers, _) =
            Target::new(&flusher("cn-hangzhou.log.aliyuncs.com", Some("cn-hangzhou"))).request(&batch(), 1_700_000_000);
        assert_eq!(url, "https://demo.cn-hangzhou.log.aliyuncs.com/logstores/app/shards/lb");
        assert_eq!(headers.get("x-log-project"), None);
        assert!(
            headers
                .get("authorization")
                .unwrap()
                .starts_with("SLS4-HMAC-SHA256 Credential=sluice-demo/20231114/cn-hangzhou/sls/aliyun_v4_request")
        );
    }

    #[test]
    fn a_signed_request_is_what_the_ingest_core_accepts() {
        let config = sluice_ingest::Config::development();
        let target = Target::new(&flusher("http://127.0.0.1:8080", None));
        let group = sluice_proto::sls::LogGroup {
            logs: vec![sluice_proto::sls::Log {
                time: 1_700_000_000,
                contents: vec![sluice_proto::sls::Content { key: "content".into(), value: b"hello".to_vec() }],
                values: Vec::new(),
                time_ns: Some(0),
            }],
            ..Default::default()
        };
        let b = Batch { group: prost::Message::encode_to_vec(&group), ..batch() };
        let (url, mut headers, body) = target.request(&b, 1_700_000_000);
        headers.insert("host", "127.0.0.1:8080");
        let path = url.trim_start_matches("http://127.0.0.1:8080");
        let req = sluice_ingest::Request { method: "POST", path, query: "", headers: &headers, body: &body };
        let verified = sluice_ingest::auth::sls::authorize(&config, &req, "app", 1_700_000_000 * 1_000_000_000);
        assert!(verified.is_ok(), "{verified:?}");
    }

    #[test]
    fn errors_are_sorted_by_their_code() {
        let body = |c: &str| format!(r#"{{"errorCode":"{c}","errorMessage":"m"}}"#);
        assert!(matches!(classify(503, &body("ServerBusy")), Outcome::Retry { .. }));
        assert!(matches!(classify(403, &body("WriteQuotaExceed")), Outcome::Retry { .. }));
        assert!(matches!(classify(401, &body("SignatureNotMatch")), Outcome::Blocked { .. }));
        assert!(matches!(classify(404, &body("LogStoreNotExist")), Outcome::Blocked { .. }));
        assert_eq!(
            classify(400, &body("PostBodyInvalid")),
            Outcome::Refused { status: 400, code: "PostBodyInvalid".into(), message: "m".into() }
        );
        assert!(matches!(classify(502, "<html>bad gateway</html>"), Outcome::Retry { .. }));
    }
}
