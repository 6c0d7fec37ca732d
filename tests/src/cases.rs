//! Requests with exactly one thing wrong, and the answer each product gives, shared by
//! the tests of `sluice serve` and of the edge worker: the same request must get the
//! same answer from either edge, and store nothing.

use prost::Message as _;
use serde_json::Value;
use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_proto::sls::{Content, Log, LogGroup, SlsLogPackage, SlsLogPackageList};
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
/// `logs` (quota 10 KB/s), LTS stream p1/g1/s1 mapped to shop/app, the demo keys, and an
/// STS credential (`sts-key`, with a security token).
pub const CLOSED_CONFIG: &str = r#"
[[projects]]
name = "shop"
logstores = [{ name = "app", write_quota_mb_per_sec = 0.01 }, { name = "logs", write_quota_mb_per_sec = 0.01 }]
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"
[[sls.access_keys]]
id = "sts-key"
secret = "sts-secret"
security_token = "sts-token"
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
    Log { time, contents: vec![Content { key: key.into(), value: value.as_bytes().to_vec() }], ..Default::default() }
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
    /// Sign V1 with HMAC-SHA256 (the OpenAPI SDKs) instead of HMAC-SHA1.
    pub sha256: bool,
    /// Send `raw` as it is (LoongCollector's `batch_group` lists), not lz4-compressed.
    pub plain: bool,
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
            sha256: false,
            plain: false,
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
    let mut body = if put.plain { put.raw.clone() } else { lz4_flex::block::compress(&put.raw) };
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
    Signer { key_id: put.key_id, secret: put.secret }.sign_v1_with(
        put.sha256,
        "POST",
        &path,
        &[],
        &mut headers,
        &body,
        now(),
    );
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

/// A log as an SLS client sees it again: its topic and its contents, sorted (as
/// `sluice_tests::sls_contents` gives them).
pub type SlsLog = (String, Vec<(String, String)>);

fn contents(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
    out.sort();
    out
}

/// `LogGroup`s as LoongCollector's `batch_group` sends them: each its own package,
/// compressed with `codecs` (SlsCompressType: `None` for the default lz4, 0 none,
/// 1 deflate).
pub fn package_list(groups: &[LogGroup], codecs: &[Option<i32>]) -> Vec<u8> {
    let packages = groups
        .iter()
        .zip(codecs)
        .map(|(group, codec)| {
            let raw = group.encode_to_vec();
            let data = match codec {
                Some(0) => raw.clone(),
                Some(1) => {
                    use std::io::Write;
                    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
                    z.write_all(&raw).expect("in memory");
                    z.finish().expect("in memory")
                }
                _ => lz4_flex::block::compress(&raw),
            };
            SlsLogPackage { data, uncompress_size: Some(raw.len() as i32), compress_type: *codec }
        })
        .collect();
    SlsLogPackageList { packages }.encode_to_vec()
}

fn topic_group(topic: &str, logs: Vec<Log>) -> LogGroup {
    LogGroup { logs, topic: Some(topic.into()), ..Default::default() }
}

/// Every SLS PutLogs form besides the SDK's protobuf, each accepted with `200`: a JSON
/// LogGroup (Java SDK), a `batch_group` package list with lz4, deflate and uncompressed
/// packages and a `Log.values` field (LoongCollector), a V1 signature with HMAC-SHA256
/// (OpenAPI SDKs), and the project in `x-log-project` under an address `Host`
/// (Logtail pointed at an IP), every log at `now` (seconds). Returns the logs sent, in
/// order. Edges compared byte for byte must be sent the same `now`.
pub fn sls_forms(t: &dyn Target, now: i64) -> Vec<SlsLog> {
    let mut sent = Vec::new();
    let mut accept = |put: Put, logs: Vec<SlsLog>| {
        let (status, body, headers) = send_put(t, put);
        assert_eq!(status, 200, "{body}");
        assert!(headers.contains_key("x-log-requestid"));
        sent.extend(logs);
    };

    let json = serde_json::json!({
        "__topic__": "json", "__source__": "10.0.0.2",
        "__logs__": [
            {"__time__": now, "message": "json 0", "k": "v"},
            {"__time__": now.to_string(), "__time_ns_part__": 7, "message": "json 1", "n": 3},
        ],
        "__tags__": {"host": "web-02"},
    });
    accept(
        Put {
            raw: json.to_string().into_bytes(),
            before: |h, _| h.set("content-type", "application/json"),
            ..Put::default()
        },
        vec![
            ("json".into(), contents(&[("message", "json 0"), ("k", "v")])),
            ("json".into(), contents(&[("message", "json 1"), ("n", "3")])),
        ],
    );

    let t0 = now as u32;
    let with_values = Log { values: vec!["GET".into(), "/x".into()], ..log(t0, "message", "bg 1 values") };
    let groups = [
        topic_group("bg-lz4", vec![log(t0, "message", "bg 0")]),
        topic_group("bg-deflate", vec![with_values, log(t0, "k", "bg 2")]),
        topic_group("bg-none", vec![log(t0, "message", "bg 3")]),
    ];
    accept(
        Put {
            raw: package_list(&groups, &[None, Some(1), Some(0)]),
            plain: true,
            before: |h, _| h.set("x-log-mode", "batch_group"),
            ..Put::default()
        },
        vec![
            ("bg-lz4".into(), contents(&[("message", "bg 0")])),
            ("bg-deflate".into(), contents(&[("message", "bg 1 values"), ("__values__", r#"["GET","/x"]"#)])),
            ("bg-deflate".into(), contents(&[("k", "bg 2")])),
            ("bg-none".into(), contents(&[("message", "bg 3")])),
        ],
    );

    accept(
        Put { raw: group_with_topic("sha256", t0), sha256: true, ..Put::default() },
        vec![("sha256".into(), contents(&[("message", "sha256")]))],
    );
    let by_header = |h: &mut Headers, _: &mut Vec<u8>| {
        h.set("host", "127.0.0.1");
        h.set("x-log-project", "demo");
    };
    accept(
        Put { raw: group_with_topic("x-log-project", t0), before: by_header, ..Put::default() },
        vec![("x-log-project".into(), contents(&[("message", "x-log-project")]))],
    );
    sent
}

fn group_with_topic(topic: &str, time: u32) -> Vec<u8> {
    topic_group(topic, vec![log(time, "message", topic)]).encode_to_vec()
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
        Put { before: |h, _| h.set("content-type", "text/plain"), ..Put::default() },
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
    let empty_log = group(vec![Log { time: 1, ..Default::default() }]);
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
    sls_form_errors(t);
    assert_sls(t, Put { key_id: "nobody", ..Put::default() }, 401, "Unauthorized");
    assert_sls(t, Put { secret: "not-the-secret", ..Put::default() }, 401, "SignatureNotMatch");
    assert_sls(t, Put { after: |h| h.set("authorization", "LOG :abc"), ..Put::default() }, 401, "MissAccessKeyId");
}

/// The malformed variants of each form [`sls_forms`] sends.
fn sls_form_errors(t: &dyn Target) {
    let json = |raw: &str| Put {
        raw: raw.as_bytes().to_vec(),
        before: |h, _| h.set("content-type", "application/json"),
        ..Put::default()
    };
    assert_sls(t, json("not json"), 400, "PostBodyInvalid");
    assert_sls(t, json(r#"{"__logs__": {"k": "v"}}"#), 400, "PostBodyInvalid");
    assert_sls(t, json(r#"{"__logs__": [{"__time__": 0, "k": "v"}]}"#), 400, "InvalidTimestamp");
    assert_sls(t, json(r#"{"__logs__": [{"__time__": 1700000000, "__source__": "v"}]}"#), 400, "InvalidKey");
    let mut bad_utf8 = br#"{"__logs__": [{"__time__": 1700000000, "k": "v"}]}"#.to_vec();
    let at = bad_utf8.iter().position(|b| *b == b'v').expect("a v");
    bad_utf8[at] = 0xff;
    assert_sls(t, Put { raw: bad_utf8, ..json("") }, 400, "PostBodyInvalid");

    let now = now() as u32;
    let good = topic_group("ok", vec![log(now, "message", "fine")]);
    let batch_group =
        |raw: Vec<u8>| Put { raw, plain: true, before: |h, _| h.set("x-log-mode", "batch_group"), ..Put::default() };
    let stale = topic_group("bad", vec![log(0, "message", "no time")]);
    let one_lz4 = package_list(std::slice::from_ref(&good), &[None]);
    let one_deflate = package_list(std::slice::from_ref(&good), &[Some(1)]);
    // One bad log in the second package: the first is not stored either.
    assert_sls(t, batch_group(package_list(&[good.clone(), stale], &[None, None])), 400, "InvalidTimestamp");
    let mut list = SlsLogPackageList::decode(&one_deflate[..]).expect("a list");
    list.packages[0].data.truncate(4);
    assert_sls(t, batch_group(list.encode_to_vec()), 400, "PostBodyUncompressError");
    let mut list = SlsLogPackageList::decode(&one_lz4[..]).expect("a list");
    list.packages[0].uncompress_size = list.packages[0].uncompress_size.map(|n| n + 1);
    assert_sls(t, batch_group(list.encode_to_vec()), 400, "InvalidBodyRawSize");
    let mut list = SlsLogPackageList::decode(&one_lz4[..]).expect("a list");
    list.packages[0].compress_type = Some(9);
    assert_sls(t, batch_group(list.encode_to_vec()), 400, "InvalidCompressType");
    assert_sls(t, batch_group(b"\x0a\x05ab".to_vec()), 400, "PostBodyInvalid");
    // The list is sent as is: a compressed one does not match its raw size.
    let compressed = Put { plain: false, ..batch_group(one_lz4.clone()) };
    assert_sls(t, compressed, 400, "InvalidBodyRawSize");
    let json_list = |h: &mut Headers, _: &mut Vec<u8>| {
        h.set("x-log-mode", "batch_group");
        h.set("content-type", "application/json");
    };
    assert_sls(t, Put { before: json_list, ..batch_group(one_lz4.clone()) }, 400, "PostBodyInvalid");
    assert_sls(t, Put { before: |h, _| h.set("x-log-mode", "stream"), ..Put::default() }, 400, "PostBodyInvalid");

    assert_sls(t, Put { sha256: true, secret: "not-the-secret", ..Put::default() }, 401, "SignatureNotMatch");
    let ip_host = |h: &mut Headers, _: &mut Vec<u8>| h.set("host", "127.0.0.1");
    assert_sls(t, Put { before: ip_host, ..Put::default() }, 404, "ProjectNotExist");
    // `x-log-project` is signed.
    let by_header = |h: &mut Headers, _: &mut Vec<u8>| {
        h.set("host", "127.0.0.1");
        h.set("x-log-project", "demo");
    };
    assert_sls(
        t,
        Put { before: by_header, after: |h| h.set("x-log-project", "other"), ..Put::default() },
        401,
        "SignatureNotMatch",
    );
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

    // STS credentials: the token is required, and must be the key's.
    let sts = || Put { project: "shop", logstore: "app", key_id: "sts-key", secret: "sts-secret", ..Put::default() };
    assert_sls(t, sts(), 401, "Unauthorized");
    let wrong = |h: &mut Headers, _: &mut Vec<u8>| h.set("x-acs-security-token", "not-the-token");
    assert_sls(t, Put { before: wrong, ..sts() }, 401, "Unauthorized");
    let sts_token = |h: &mut Headers, _: &mut Vec<u8>| h.set("x-acs-security-token", "sts-token");
    let (status, body, _) =
        send_put(t, Put { before: sts_token, raw: group(vec![log(now() as u32, "k", "sts")]), ..sts() });
    assert_eq!(status, 200, "{body}");
    assert_eq!(t.stored().len(), 1);

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
    assert_eq!(t.stored().len(), 2, "the refused request stored nothing");

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
    assert_eq!(t.stored().len(), 3);
}

/// What a request no API of an edge serves gets: its product's JSON error (SLS's
/// `errorCode`/`errorMessage` with `x-log-requestid`, LTS's with `x-request-id`,
/// Proliferate's `detail` with `x-request-id`), never plain text or debug formatting.
/// `serves_reads`: the edge serves the SLS and Proliferate read APIs (`sluice serve`).
pub fn unrouted_answers(t: &dyn Target, serves_reads: bool) {
    // method, path, status, SLS or LTS error code (or Proliferate detail), text the message holds
    let mut cases: Vec<(&str, &str, u16, &str, &str)> = vec![
        ("PUT", "/logstores/app", 400, "NotImplemented", "UpdateLogStore"),
        ("DELETE", "/logstores/app", 400, "NotImplemented", "DeleteLogStore"),
        ("PATCH", "/logstores/app", 405, "InvalidMethod", "PATCH"),
        ("OPTIONS", "/logstores/app", 405, "InvalidMethod", "OPTIONS"),
        ("GET", "/logstores/app?type=topic&line=10", 400, "NotImplemented", "ListTopics"),
        ("GET", "/logstores/app/index", 400, "NotImplemented", "GetIndex"),
        ("PUT", "/logstores/app/index", 400, "NotImplemented", "UpdateIndex"),
        ("GET", "/logstores/app/shards/0?type=cursor&from=begin", 400, "NotImplemented", "GetCursor"),
        ("GET", "/logstores/app/shards/0?type=logs&cursor=x", 400, "NotImplemented", "PullLogs"),
        ("GET", "/logstores/app/logs", 405, "InvalidMethod", "GET"),
        ("POST", "/logstores/app/shards", 405, "InvalidMethod", "POST"),
        ("GET", "/logstores/app/consumergroups", 400, "NotImplemented", "ListConsumerGroup"),
        ("GET", "/configs", 400, "NotImplemented", "ListConfig"),
        ("POST", "/machinegroups", 400, "NotImplemented", "CreateMachineGroup"),
        ("GET", "/no/such/api", 404, "NotFound", "/no/such/api"),
        ("POST", "/logstores/app/shards/lb/extra", 404, "NotFound", "/logstores/app/shards/lb/extra"),
        ("GET", "/v2/p1/lts/groups/g1/streams/s1/tenant/contents", 405, "SVCSTG.ALS.200.201", "GET"),
        ("PUT", "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy", 405, "SVCSTG.ALS.200.201", "PUT"),
        ("POST", "/v2/p1/lts/nothing", 404, "LTS.0201", "/v2/p1/lts/nothing"),
        ("GET", "/api/v1/logs/batch", 405, "Method Not Allowed", ""),
        ("DELETE", "/api/v1/projects/demo/logs", 405, "Method Not Allowed", ""),
        ("POST", "/api/v1/nothing", 404, "", "/api/v1/nothing"),
    ];
    if !serves_reads {
        cases.extend([
            // `sluice serve` answers a browser's `GET /` with the log explorer; an SDK's
            // GetProject below.
            ("GET", "/", 400, "NotImplemented", "GetProject"),
            ("GET", "/logstores", 400, "NotImplemented", "ListLogStores"),
            ("GET", "/logstores/app", 400, "NotImplemented", "GetLogStore"),
            ("GET", "/logstores/app?type=log&from=1&to=2", 400, "NotImplemented", "GetLogs"),
            ("GET", "/logstores/app/index?type=histogram&from=1&to=2", 400, "NotImplemented", "GetHistograms"),
            ("GET", "/logstores/app?type=context_log", 400, "NotImplemented", "GetContextLogs"),
            ("GET", "/logstores/app/shards", 400, "NotImplemented", "ListShards"),
            ("POST", "/logstores/app/logs", 400, "NotImplemented", "GetLogsV2"),
            ("GET", "/api/v1/projects/demo/logs", 404, "", "SearchProjectLogs"),
            ("GET", "/health/x", 404, "NotFound", "/health/x"),
        ]);
    } else {
        cases.extend([
            // Unsigned: the read APIs answer what the signature lacks.
            ("GET", "/logstores", 400, "MissingAPIVersion", "x-log-apiversion"),
            ("GET", "/logstores/app/index?type=histogram&from=1&to=2", 400, "MissingAPIVersion", "x-log-apiversion"),
            ("GET", "/logstores/app?type=nonsense", 400, "ParameterInvalid", "\"nonsense\""),
            ("POST", "/health", 404, "NotFound", "/health"),
        ]);
    }
    let stored = t.stored();
    let client = http();
    let sdk_get_project = ("GET", "/", 400, "NotImplemented", "GetProject");
    for (method, path, status, code, text) in cases.into_iter().chain(serves_reads.then_some(sdk_get_project)) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = client.request(method.clone(), t.url(path));
        if serves_reads && path == "/" {
            // GetProject as the SDKs send it (with their API version), not a browser.
            request = request.header("x-log-apiversion", "0.6.0");
        }
        let response = request.send().expect("the edge answers");
        let got = response.status().as_u16();
        let headers = response.headers().clone();
        let raw = response.text().expect("a body");
        let what = format!("{method} {path}: {got} {raw}");
        assert_eq!(got, status, "{what}");
        assert!(
            headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.starts_with("application/json")),
            "{what}"
        );
        let body: Value = serde_json::from_str(&raw).unwrap_or_else(|_| panic!("{what}: not JSON"));
        for debug in ["Some(", "None"] {
            assert!(!raw.contains(debug), "{what}: debug formatting");
        }
        let message = if path.starts_with("/api/") {
            assert!(headers.contains_key("x-request-id"), "{what}");
            let detail = body["detail"].as_str().unwrap_or_else(|| panic!("{what}: a detail"));
            if !code.is_empty() {
                assert_eq!(detail, code, "{what}");
            }
            detail.to_owned()
        } else {
            let id = if path.starts_with("/v2/") { "x-request-id" } else { "x-log-requestid" };
            assert!(headers.get(id).is_some_and(|v| !v.is_empty()), "{what}: {id}");
            assert_eq!(body["errorCode"], code, "{what}");
            body["errorMessage"].as_str().unwrap_or_else(|| panic!("{what}: a message")).to_owned()
        };
        assert!(message.contains(text), "{what}: the message names {text:?}");
    }
    assert_eq!(t.stored(), stored, "unrouted requests store nothing");
}
