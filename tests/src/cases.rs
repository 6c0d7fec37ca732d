//! Requests with exactly one thing wrong, and the answer each product gives, shared by
//! the tests of `sluice serve` and of the edge worker: the same request must get the
//! same answer from either edge, and store nothing.

use prost::Message as _;
use serde_json::Value;
use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_proto::sls::{Content, Log, LogGroup};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::http;

/// An edge under test and the storage behind it.
pub trait Target {
    fn url(&self, path: &str) -> String;
    /// Keys of everything stored so far.
    fn stored(&self) -> Vec<String>;

    fn assert_nothing_stored(&self, what: &str) {
        let stored = self.stored();
        assert!(stored.is_empty(), "{what} stored something: {stored:?}");
    }
}

/// Limits both edges run the error cases with (a small body limit for the 413 case).
pub const ERROR_CASE_LIMITS: &str = "\n[limits]\nmax_raw_bytes = 65536\n";

/// A closed configuration: project `shop` with logstores `app` (quota 10 KB/s) and
/// `logs` (quota 10 KB/s), LTS stream p1/g1/s1 mapped to shop/app, the demo keys.
pub const CLOSED_CONFIG: &str = r#"
[[projects]]
name = "shop"
logstores = [{ name = "app", write_quota_mb_per_sec = 0.01 }, { name = "logs", write_quota_mb_per_sec = 0.01 }]
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"
[[lts.tokens]]
token = "sluice-demo-token"
[[lts.streams]]
project_id = "p1"
group_id = "g1"
stream_id = "s1"
project = "shop"
logstore = "app"
[[proliferate.keys]]
key = "pk_sluice_demo"
project = "shop"
"#;

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn group(logs: Vec<Log>) -> Vec<u8> {
    LogGroup { logs, topic: Some("t".into()), ..Default::default() }.encode_to_vec()
}

pub fn log(time: u32, key: &str, value: &str) -> Log {
    Log { time, contents: vec![Content { key: key.into(), value: value.as_bytes().to_vec() }], time_ns: None }
}

fn good_group() -> Vec<u8> {
    group(vec![log(now() as u32, "message", "hello")])
}

/// A PutLogs request: `before` edits headers and body before signing, `after` after.
#[derive(Debug)]
pub struct Put {
    pub project: &'static str,
    pub logstore: &'static str,
    pub raw: Vec<u8>,
    pub secret: &'static str,
    pub key_id: &'static str,
    pub before: fn(&mut Headers, &mut Vec<u8>),
    pub after: fn(&mut Headers),
    pub chunked: bool,
}

impl Default for Put {
    fn default() -> Self {
        Self {
            project: "demo",
            logstore: "app",
            raw: good_group(),
            secret: DEMO_SLS_ACCESS_KEY_SECRET,
            key_id: DEMO_SLS_ACCESS_KEY_ID,
            before: |_, _| {},
            after: |_| {},
            chunked: false,
        }
    }
}

/// Sends a PutLogs; returns status, JSON body and headers.
pub fn send_put(target: &dyn Target, put: Put) -> (u16, Value, reqwest::header::HeaderMap) {
    send_put_with(&http(), target, put)
}

/// Sends a PutLogs with a given client (one kept for many requests, as SDKs do).
pub fn send_put_with(
    client: &reqwest::blocking::Client,
    target: &dyn Target,
    put: Put,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut body = lz4_flex::block::compress(&put.raw);
    let path = format!("/logstores/{}/shards/lb", put.logstore);
    let mut headers: Headers = [
        ("host", format!("{}.localhost", put.project)),
        ("content-type", "application/x-protobuf".to_owned()),
        ("x-log-bodyrawsize", put.raw.len().to_string()),
        ("x-log-compresstype", "lz4".to_owned()),
    ]
    .into_iter()
    .collect();
    (put.before)(&mut headers, &mut body);
    Signer { key_id: put.key_id, secret: put.secret }.sign_v1("POST", &path, &[], &mut headers, &body, now());
    (put.after)(&mut headers);
    let mut request = client.post(target.url(&path));
    for (k, v) in headers.iter() {
        request = request.header(k, v);
    }
    let request = if put.chunked {
        request.body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
    } else {
        request.body(body)
    };
    let response = request.send().expect("the edge answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = serde_json::from_slice(&response.bytes().expect("a body")).unwrap_or(Value::Null);
    (status, body, headers)
}

/// Sends a PutLogs that must fail with `status` and SLS error `code`, storing nothing.
pub fn assert_sls(target: &dyn Target, put: Put, status: u16, code: &str) {
    let (got_status, body, headers) = send_put(target, put);
    assert_eq!((got_status, body["errorCode"].as_str()), (status, Some(code)), "{body}");
    assert!(!body["errorMessage"].as_str().unwrap_or("").is_empty(), "{code} has a message");
    assert!(headers.contains_key("x-log-requestid"), "{code} answers carry x-log-requestid");
    target.assert_nothing_stored(code);
}

/// Every SLS request-shape, signature and body error.
pub fn sls_errors(t: &dyn Target) {
    assert_sls(t, Put { chunked: true, ..Put::default() }, 411, "MissingContentLength");
    assert_sls(
        t,
        Put { before: |h, _| h.set("content-type", "application/json"), ..Put::default() },
        415,
        "InvalidContentType",
    );
    assert_sls(t, Put { before: |h, _| h.remove("x-log-bodyrawsize"), ..Put::default() }, 400, "MissingBodyRawSize");
    assert_sls(
        t,
        Put { before: |h, _| h.set("x-log-bodyrawsize", "many"), ..Put::default() },
        400,
        "InvalidBodyRawSize",
    );
    assert_sls(t, Put { before: |h, _| h.set("x-log-bodyrawsize", "3"), ..Put::default() }, 400, "InvalidBodyRawSize");
    assert_sls(
        t,
        Put { before: |h, _| h.set("x-log-compresstype", "snappy"), ..Put::default() },
        400,
        "InvalidCompressType",
    );
    let no_date = |h: &mut Headers| {
        h.remove("date");
        h.remove("x-log-date");
    };
    assert_sls(t, Put { after: no_date, ..Put::default() }, 400, "MissingDate");
    assert_sls(t, Put { after: |h| h.set("date", "yesterday at noon"), ..Put::default() }, 400, "InvalidDateFormat");
    assert_sls(t, Put { after: |h| h.remove("x-log-apiversion"), ..Put::default() }, 400, "MissingAPIVersion");
    assert_sls(t, Put { after: |h| h.set("x-log-apiversion", "0.5.0"), ..Put::default() }, 400, "InvalidAPIVersion");
    assert_sls(
        t,
        Put { after: |h| h.set("x-log-signaturemethod", "hmac-md5"), ..Put::default() },
        400,
        "InvalidSignatureMethod",
    );
    assert_sls(t, Put { raw: b"\x0a\x09not a log".to_vec(), ..Put::default() }, 400, "PostBodyInvalid");
    let empty_log = group(vec![Log { time: 1, contents: vec![], time_ns: None }]);
    assert_sls(t, Put { raw: empty_log, ..Put::default() }, 400, "PostBodyInvalid");
    assert_sls(
        t,
        Put { before: |h, _| h.set("x-log-bodyrawsize", "20000000"), ..Put::default() },
        400,
        "PostBodyTooLarge",
    );
    assert_sls(t, Put { before: |_, b| b.truncate(b.len() / 2), ..Put::default() }, 400, "PostBodyUncompressError");
    assert_sls(t, Put { raw: group(vec![log(0, "k", "v")]), ..Put::default() }, 400, "InvalidTimestamp");
    let mut bad_utf8 = group(vec![log(now() as u32, "k\u{e9}", "v")]);
    let at = bad_utf8.windows(2).position(|w| w == "\u{e9}".as_bytes()).expect("the é");
    bad_utf8[at] = 0xff;
    assert_sls(t, Put { raw: bad_utf8, ..Put::default() }, 400, "InvalidEncoding");
    assert_sls(t, Put { raw: group(vec![log(now() as u32, "__time__", "v")]), ..Put::default() }, 400, "InvalidKey");
    let stale = |h: &mut Headers| h.set("date", sluice_ingest::time::format_rfc1123(now() - 3600));
    assert_sls(t, Put { after: stale, ..Put::default() }, 400, "RequestTimeExpired");
    assert_sls(t, Put { key_id: "nobody", ..Put::default() }, 401, "Unauthorized");
    assert_sls(t, Put { secret: "not-the-secret", ..Put::default() }, 401, "SignatureNotMatch");
    assert_sls(t, Put { after: |h| h.set("authorization", "LOG :abc"), ..Put::default() }, 401, "MissAccessKeyId");
}

fn post(target: &dyn Target, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> (u16, Value) {
    let mut request = http().post(target.url(path));
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.body(body).send().expect("the edge answers");
    let status = response.status().as_u16();
    (status, serde_json::from_slice(&response.bytes().expect("a body")).unwrap_or(Value::Null))
}

/// Every LTS error, then one good request.
pub fn lts_errors(t: &dyn Target) {
    let now_ns = i128::from(now()) * 1_000_000_000;
    let path = "/v2/p1/lts/groups/g1/streams/s1/tenant/contents";
    let good = format!(r#"{{"log_time_ns": {now_ns}, "contents": ["a"], "labels": {{}}}}"#);
    let token = ("x-auth-token", DEMO_LTS_TOKEN);
    // path, headers, body, status, error code
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, String, u16, &'a str);
    let high_accuracy = "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy";
    let cases: Vec<Case<'_>> = vec![
        (path, vec![], good.clone(), 401, "SVCSTG.ALS.403.105"),
        (path, vec![("x-auth-token", "wrong-token")], good.clone(), 401, "SVCSTG.ALS.403.105"),
        (path, vec![token], "{not json".into(), 400, "SVCSTG.ALS.200.201"),
        (path, vec![token], r#"{"log_time_ns": 1, "contents": ["a"]}"#.into(), 400, "SVCSTG.ALS.200.201"),
        (path, vec![token], format!(r#"{{"log_time_ns": {now_ns}, "contents": []}}"#), 400, "SVCSTG.ALS.200.201"),
        (path, vec![token, ("content-encoding", "br")], good.clone(), 400, "SVCSTG.ALS.200.201"),
        (path, vec![token, ("content-encoding", "gzip")], good.clone(), 400, "SVCSTG.ALS.200.201"),
        (
            high_accuracy,
            vec![token],
            format!(r#"{{"contents": [{{"log_time_ns": "{now_ns}", "log": "x"}}]}}"#),
            400,
            "SVCSTG.ALS.200.201",
        ),
    ];
    for (path, headers, body, status, code) in cases {
        let (got, json) = post(t, path, &headers, body.into_bytes());
        assert_eq!((got, json["errorCode"].as_str()), (status, Some(code)), "{json}");
        assert!(json.get("result").is_some_and(Value::is_null), "{json}");
        t.assert_nothing_stored(code);
    }
    let (status, json) = post(t, path, &[token], good.into_bytes());
    assert_eq!(
        (status, json["errorCode"].as_str(), json["errorMessage"].as_str()),
        (200, Some("SVCSTG.ALS.200.200"), Some("Report success."))
    );
}

/// Every Proliferate error (with [`ERROR_CASE_LIMITS`]), storing nothing.
pub fn proliferate_errors(t: &dyn Target) {
    let send = |body: String| post(t, "/api/v1/logs/batch", &[("content-type", "application/json")], body.into_bytes());
    let entry = serde_json::json!({"timestamp": now(), "level": "info", "message": "hi"});
    let (status, body) = send(serde_json::json!({"api_key": "pk_wrong", "logs": [entry]}).to_string());
    assert_eq!((status, body), (401, serde_json::json!({"detail": "Invalid API key"})));
    let (status, body) = send("{oops".into());
    assert_eq!(status, 422, "{body}");
    let (status, body) = send(serde_json::json!({"logs": [entry]}).to_string());
    assert_eq!(status, 422, "{body}");
    let many: Vec<Value> = (0..101).map(|_| serde_json::json!({"message": "x"})).collect();
    let (status, body) = send(serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": many}).to_string());
    assert_eq!(status, 422, "{body}");
    assert!(body["detail"][0]["msg"].as_str().unwrap_or("").contains("at most 100"), "{body}");
    let huge = "x".repeat(70_000);
    let (status, body) =
        send(serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"message": huge}]}).to_string());
    assert_eq!(status, 413, "{body}");
    t.assert_nothing_stored("proliferate errors");
    let bad_level = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"level": "nope", "message": "x"}]});
    let (status, body) = send(bad_level.to_string());
    assert_eq!((status, body), (202, serde_json::json!({"accepted": 0, "dropped": 1})));
    t.assert_nothing_stored("a batch with nothing accepted");
}

/// Unknown projects, logstores and streams, and write quotas, with [`CLOSED_CONFIG`].
pub fn closed_project_errors(t: &dyn Target) {
    assert_sls(t, Put { project: "other", ..Put::default() }, 404, "ProjectNotExist");
    assert_sls(t, Put { project: "shop", logstore: "nginx", ..Put::default() }, 404, "LogStoreNotExist");
    let now_ns = i128::from(now()) * 1_000_000_000;
    let token = ("x-auth-token", DEMO_LTS_TOKEN);
    let body = format!(r#"{{"log_time_ns": {now_ns}, "contents": ["x"], "labels": {{}}}}"#);
    let (status, json) = post(t, "/v2/p1/lts/groups/g1/streams/s2/tenant/contents", &[token], body.into_bytes());
    assert_eq!((status, json["errorCode"].as_str()), (404, Some("LTS.0201")), "{json}");
    t.assert_nothing_stored("unknown targets");

    // 10 KB/s per logstore: a ~9.6 KB request fits, a second one at once does not.
    let big =
        group((0..200).map(|i| log(now() as u32, "message", &format!("log line {i:04} with some text"))).collect());
    assert!(big.len() > 9000 && big.len() < 10_240, "{}", big.len());
    let (status, body, _) = send_put(t, Put { project: "shop", raw: big.clone(), ..Put::default() });
    assert_eq!(status, 200, "{body}");
    let mut second = big;
    second.extend_from_slice(&LogGroup { topic: Some("again".into()), ..Default::default() }.encode_to_vec());
    let (status, body, _) = send_put(t, Put { project: "shop", raw: second, ..Put::default() });
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("WriteQuotaExceed")), "{body}");
    assert_eq!(t.stored().len(), 1, "the refused request stored nothing");

    let lts: Vec<String> = (0..400).map(|i| format!("lts log line number {i:05}")).collect();
    let lts = serde_json::json!({"log_time_ns": now_ns.to_string(), "contents": lts, "labels": {}}).to_string();
    let path = "/v2/p1/lts/groups/g1/streams/s1/tenant/contents";
    let (status, json) = post(t, path, &[token], lts.clone().into_bytes());
    assert_eq!((status, json["errorCode"].as_str()), (400, Some("SVCSTG.ALS.200.210")), "shop/app's bucket is empty");
    let logs: Vec<Value> = (0..100)
        .map(
            |i| serde_json::json!({"message": format!("proliferate log {i:05} with padding text"), "timestamp": now()}),
        )
        .collect();
    let batch = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": logs}).to_string();
    let (status, _) = post(t, "/api/v1/logs/batch", &[], batch.clone().into_bytes());
    assert_eq!(status, 202);
    let (status, body) = post(t, "/api/v1/logs/batch", &[], batch.replace("padding", "Padding").into_bytes());
    assert_eq!(
        (status, body),
        (429, serde_json::json!({"detail": "write quota of logstore \"logs\" is exceeded, retry later"}))
    );
    assert_eq!(t.stored().len(), 2);
}
