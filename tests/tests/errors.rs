//! Every error of wire.md, answered by `sluice serve` over HTTP with the product's status,
//! code and body, and nothing stored.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use prost::Message as _;
use serde_json::Value;
use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_proto::sls::{Content, Log, LogGroup};
use sluice_tests::{Server, http, raw_batches, raw_files};
use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

fn group(logs: Vec<Log>) -> Vec<u8> {
    LogGroup { logs, topic: Some("t".into()), ..Default::default() }.encode_to_vec()
}

fn log(time: u32, key: &str, value: &str) -> Log {
    Log { time, contents: vec![Content { key: key.into(), value: value.as_bytes().to_vec() }], time_ns: None }
}

fn good_group() -> Vec<u8> {
    group(vec![log(now() as u32, "message", "hello")])
}

/// A PutLogs request: `before` edits headers and body before signing, `after` after.
struct Put {
    project: &'static str,
    logstore: &'static str,
    raw: Vec<u8>,
    secret: &'static str,
    key_id: &'static str,
    before: fn(&mut Headers, &mut Vec<u8>),
    after: fn(&mut Headers),
    chunked: bool,
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

fn send_put(server: &Server, put: Put) -> (u16, Value, reqwest::header::HeaderMap) {
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
    let mut request = http().post(server.url(&path));
    for (k, v) in headers.iter() {
        request = request.header(k, v);
    }
    let request = if put.chunked {
        request.body(reqwest::blocking::Body::new(std::io::Cursor::new(body)))
    } else {
        request.body(body)
    };
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body: Value = serde_json::from_slice(&response.bytes().unwrap()).unwrap_or(Value::Null);
    (status, body, headers)
}

fn assert_sls(server: &Server, put: Put, status: u16, code: &str) {
    let (got_status, body, headers) = send_put(server, put);
    assert_eq!((got_status, body["errorCode"].as_str()), (status, Some(code)), "{body}");
    assert!(!body["errorMessage"].as_str().unwrap_or("").is_empty(), "{code} has a message");
    assert!(headers.contains_key("x-log-requestid"), "{code} answers carry x-log-requestid");
    assert!(raw_files(&server.data).is_empty(), "{code} stored something: {:?}", raw_files(&server.data));
}

#[test]
fn sls_errors() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let s = &server;
    assert_sls(s, Put { chunked: true, ..Put::default() }, 411, "MissingContentLength");
    assert_sls(
        s,
        Put { before: |h, _| h.set("content-type", "application/json"), ..Put::default() },
        415,
        "InvalidContentType",
    );
    assert_sls(s, Put { before: |h, _| h.remove("x-log-bodyrawsize"), ..Put::default() }, 400, "MissingBodyRawSize");
    assert_sls(
        s,
        Put { before: |h, _| h.set("x-log-bodyrawsize", "many"), ..Put::default() },
        400,
        "InvalidBodyRawSize",
    );
    assert_sls(s, Put { before: |h, _| h.set("x-log-bodyrawsize", "3"), ..Put::default() }, 400, "InvalidBodyRawSize");
    assert_sls(
        s,
        Put { before: |h, _| h.set("x-log-compresstype", "snappy"), ..Put::default() },
        400,
        "InvalidCompressType",
    );
    assert_sls(
        s,
        Put {
            after: |h| {
                h.remove("date");
                h.remove("x-log-date");
            },
            ..Put::default()
        },
        400,
        "MissingDate",
    );
    assert_sls(s, Put { after: |h| h.set("date", "yesterday at noon"), ..Put::default() }, 400, "InvalidDateFormat");
    assert_sls(s, Put { after: |h| h.remove("x-log-apiversion"), ..Put::default() }, 400, "MissingAPIVersion");
    assert_sls(s, Put { after: |h| h.set("x-log-apiversion", "0.5.0"), ..Put::default() }, 400, "InvalidAPIVersion");
    assert_sls(
        s,
        Put { after: |h| h.set("x-log-signaturemethod", "hmac-md5"), ..Put::default() },
        400,
        "InvalidSignatureMethod",
    );
    assert_sls(s, Put { raw: b"\x0a\x09not a log".to_vec(), ..Put::default() }, 400, "PostBodyInvalid");
    assert_sls(
        s,
        Put { raw: group(vec![Log { time: 1, contents: vec![], time_ns: None }]), ..Put::default() },
        400,
        "PostBodyInvalid",
    );
    assert_sls(
        s,
        Put { before: |h, _| h.set("x-log-bodyrawsize", "20000000"), ..Put::default() },
        400,
        "PostBodyTooLarge",
    );
    assert_sls(s, Put { before: |_, b| b.truncate(b.len() / 2), ..Put::default() }, 400, "PostBodyUncompressError");
    assert_sls(s, Put { raw: group(vec![log(0, "k", "v")]), ..Put::default() }, 400, "InvalidTimestamp");
    let mut bad_utf8 = group(vec![log(now() as u32, "k\u{e9}", "v")]);
    let at = bad_utf8.windows(2).position(|w| w == "\u{e9}".as_bytes()).unwrap();
    bad_utf8[at] = 0xff;
    assert_sls(s, Put { raw: bad_utf8, ..Put::default() }, 400, "InvalidEncoding");
    assert_sls(s, Put { raw: group(vec![log(now() as u32, "__time__", "v")]), ..Put::default() }, 400, "InvalidKey");
    assert_sls(
        s,
        Put { after: |h| h.set("date", sluice_ingest::time::format_rfc1123(now() - 3600)), ..Put::default() },
        400,
        "RequestTimeExpired",
    );
    assert_sls(s, Put { key_id: "nobody", ..Put::default() }, 401, "Unauthorized");
    assert_sls(s, Put { secret: "not-the-secret", ..Put::default() }, 401, "SignatureNotMatch");
    assert_sls(s, Put { after: |h| h.set("authorization", "LOG :abc"), ..Put::default() }, 401, "MissAccessKeyId");
}

fn config_file(dir: &Path, text: &str) -> String {
    let path = dir.join("sluice.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

const DEMO_KEYS: &str = r#"
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"
[[lts.tokens]]
token = "sluice-demo-token"
[[proliferate.keys]]
key = "pk_sluice_demo"
project = "shop"
"#;

#[test]
fn closed_projects_and_quotas() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(
        dir.path(),
        &format!(
            "{DEMO_KEYS}
[[projects]]
name = \"shop\"
logstores = [{{ name = \"app\", write_quota_mb_per_sec = 0.01 }}, {{ name = \"logs\", write_quota_mb_per_sec = 0.01 }}]
[[lts.streams]]
project_id = \"p1\"
group_id = \"g1\"
stream_id = \"s1\"
project = \"shop\"
logstore = \"app\"
"
        ),
    );
    let server = Server::start(&data, &["--config", &config]);
    let s = &server;
    assert_sls(s, Put { project: "other", ..Put::default() }, 404, "ProjectNotExist");
    assert_sls(s, Put { project: "shop", logstore: "nginx", ..Put::default() }, 404, "LogStoreNotExist");

    // 10 KB/s: the first ~9.6 KB request fits, the second at once does not.
    let big =
        group((0..200).map(|i| log(now() as u32, "message", &format!("log line {i:04} with some text"))).collect());
    assert!(big.len() > 9000 && big.len() < 10_240, "{}", big.len());
    let (status, body, _) = send_put(s, Put { project: "shop", raw: big.clone(), ..Put::default() });
    assert_eq!(status, 200, "{body}");
    let mut second = big;
    second.extend_from_slice(&LogGroup { topic: Some("again".into()), ..Default::default() }.encode_to_vec());
    let (status, body, _) = send_put(s, Put { project: "shop", raw: second, ..Put::default() });
    assert_eq!((status, body["errorCode"].as_str()), (403, Some("WriteQuotaExceed")), "{body}");
    assert_eq!(raw_batches(&data).len(), 1, "the refused request stored nothing");

    let lts = |path: &str, token: &str, body: &str| {
        let r = http().post(server.url(path)).header("x-auth-token", token).body(body.to_owned()).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let now_ns = now() as i128 * 1_000_000_000;
    let (status, body) = lts(
        "/v2/p1/lts/groups/g1/streams/s2/tenant/contents",
        DEMO_LTS_TOKEN,
        &format!(r#"{{"log_time_ns": {now_ns}, "contents": ["x"], "labels": {{}}}}"#),
    );
    assert_eq!((status, body["errorCode"].as_str()), (404, Some("LTS.0201")), "{body}");
    let big: Vec<String> = (0..400).map(|i| format!("lts log line number {i:05}")).collect();
    let body = serde_json::json!({"log_time_ns": now_ns.to_string(), "contents": big, "labels": {}}).to_string();
    let (status, _) = lts("/v2/p1/lts/groups/g1/streams/s1/tenant/contents", DEMO_LTS_TOKEN, &body);
    assert_eq!(status, 400, "the app logstore's bucket is still empty");
    let before = raw_batches(&data).len();
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (status, _) = lts("/v2/p1/lts/groups/g1/streams/s1/tenant/contents", DEMO_LTS_TOKEN, &body);
    assert_eq!(status, 200);
    let (status, body) = lts(
        "/v2/p1/lts/groups/g1/streams/s1/tenant/contents",
        DEMO_LTS_TOKEN,
        &body.to_string().replace("lts log", "LTS log"),
    );
    assert_eq!((status, body["errorCode"].as_str()), (400, Some("SVCSTG.ALS.200.210")), "{body}");
    assert_eq!(raw_batches(&data).len(), before + 1);

    let logs: Vec<Value> = (0..100)
        .map(
            |i| serde_json::json!({"message": format!("proliferate log {i:05} with padding text"), "timestamp": now()}),
        )
        .collect();
    let batch = serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": logs}).to_string();
    let r = http().post(server.url("/api/v1/logs/batch")).body(batch.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = http().post(server.url("/api/v1/logs/batch")).body(batch.replace("padding", "Padding")).send().unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(raw_batches(&data).len(), before + 2);
}

#[test]
fn lts_errors() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let now_ns = now() as i128 * 1_000_000_000;
    let path = "/v2/p1/lts/groups/g1/streams/s1/tenant/contents";
    let send = |path: &str, token: Option<&str>, encoding: Option<&str>, body: String| {
        let mut r = http().post(server.url(path)).header("content-type", "application/json;charset=UTF-8");
        if let Some(token) = token {
            r = r.header("x-auth-token", token);
        }
        if let Some(encoding) = encoding {
            r = r.header("content-encoding", encoding);
        }
        let r = r.body(body).send().unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
    let good = format!(r#"{{"log_time_ns": {now_ns}, "contents": ["a"], "labels": {{}}}}"#);
    // path, token, content encoding, body, status, error code
    type Case<'a> = (&'a str, Option<&'a str>, Option<&'a str>, String, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (path, None, None, good.clone(), 401, "SVCSTG.ALS.403.105"),
        (path, Some("wrong-token"), None, good.clone(), 401, "SVCSTG.ALS.403.105"),
        (path, Some(DEMO_LTS_TOKEN), None, "{not json".into(), 400, "SVCSTG.ALS.200.201"),
        (
            path,
            Some(DEMO_LTS_TOKEN),
            None,
            r#"{"log_time_ns": 1, "contents": ["a"]}"#.into(),
            400,
            "SVCSTG.ALS.200.201",
        ),
        (
            path,
            Some(DEMO_LTS_TOKEN),
            None,
            format!(r#"{{"log_time_ns": {now_ns}, "contents": []}}"#),
            400,
            "SVCSTG.ALS.200.201",
        ),
        (path, Some(DEMO_LTS_TOKEN), Some("br"), good.clone(), 400, "SVCSTG.ALS.200.201"),
        (path, Some(DEMO_LTS_TOKEN), Some("gzip"), good.clone(), 400, "SVCSTG.ALS.200.201"),
        (
            "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy",
            Some(DEMO_LTS_TOKEN),
            None,
            format!(r#"{{"contents": [{{"log_time_ns": "{now_ns}", "log": "x"}}]}}"#),
            400,
            "SVCSTG.ALS.200.201",
        ),
    ];
    for (path, token, encoding, body, status, code) in cases {
        let (got, json) = send(path, token, encoding, body);
        assert_eq!((got, json["errorCode"].as_str()), (status, Some(code)), "{json}");
        assert!(json.get("result").is_some_and(Value::is_null), "{json}");
        assert!(raw_files(data.path()).is_empty());
    }
    let (status, json) = send(path, Some(DEMO_LTS_TOKEN), None, good);
    assert_eq!(
        (status, json["errorCode"].as_str(), json["errorMessage"].as_str()),
        (200, Some("SVCSTG.ALS.200.200"), Some("Report success."))
    );
}

#[test]
fn proliferate_errors() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), &format!("open = true\n[limits]\nmax_raw_bytes = 4096\n{DEMO_KEYS}"));
    let server = Server::start(&data, &["--config", &config]);
    let send = |body: String| {
        let r = http()
            .post(server.url("/api/v1/logs/batch"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().unwrap())
    };
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
    assert!(body["detail"][0]["msg"].as_str().unwrap().contains("at most 100"), "{body}");
    let huge = "x".repeat(5000);
    let (status, body) =
        send(serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"message": huge}]}).to_string());
    assert_eq!(status, 413, "{body}");
    assert!(raw_files(&data).is_empty());
    let (status, body) = send(
        serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"level": "nope", "message": "x"}]}).to_string(),
    );
    assert_eq!((status, body), (202, serde_json::json!({"accepted": 0, "dropped": 1})));
    assert!(raw_files(&data).is_empty(), "a batch with nothing accepted stores nothing");
}

#[test]
fn storage_failures_answer_retryable_errors_and_store_nothing() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    // A file where the project's directory should be: every write under it fails.
    std::fs::create_dir_all(data.path().join("raw")).unwrap();
    std::fs::write(data.path().join("raw/demo"), b"in the way").unwrap();
    std::fs::write(data.path().join("raw/p1"), b"in the way").unwrap();
    assert_sls_storage_failure(&server);
    let now_ns = now() as i128 * 1_000_000_000;
    let r = http()
        .post(server.url("/v2/p1/lts/groups/g1/streams/s1/tenant/contents"))
        .header("x-auth-token", DEMO_LTS_TOKEN)
        .body(format!(r#"{{"log_time_ns": {now_ns}, "contents": ["a"], "labels": {{}}}}"#))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 500);
    assert_eq!(r.json::<Value>().unwrap()["errorCode"], "LTS.0010");
    let r = http()
        .post(server.url("/api/v1/logs/batch"))
        .body(serde_json::json!({"api_key": DEMO_PROLIFERATE_KEY, "logs": [{"message": "x"}]}).to_string())
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(r.json::<Value>().unwrap(), serde_json::json!({"detail": "Log storage temporarily unavailable"}));
    assert!(raw_batches(data.path()).is_empty());
}

fn assert_sls_storage_failure(server: &Server) {
    let (status, body, _) = send_put(server, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (500, Some("InternalServerError")), "{body}");
    assert!(raw_batches(&server.data).is_empty());
}

#[test]
fn a_busy_server_answers_server_busy() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = config_file(dir.path(), &format!("open = true\n[server]\nmax_concurrent_requests = 1\n{DEMO_KEYS}"));
    let server = Server::start(&data, &["--config", &config]);
    // Hold the only slot: headers sent, body still on its way.
    let mut slow = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    write!(slow, "POST /api/v1/logs/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{{").unwrap();
    slow.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_sls_busy(&server);
    // Once the slow request ends, the slot is free again.
    drop(slow);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let (status, body, _) = send_put(&server, Put::default());
    assert_eq!(status, 200, "{body}");
}

fn assert_sls_busy(server: &Server) {
    let (status, body, _) = send_put(server, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (503, Some("ServerBusy")), "{body}");
    assert!(raw_files(&server.data).is_empty());
}
