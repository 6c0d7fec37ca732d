//! The edge worker under `wrangler dev` (workerd), built from this repository: the
//! unmodified SLS Python SDK, LTS and Proliferate bodies go through it into Garage (S3
//! API) or an R2 binding, byte for byte what `sluice serve` stores for the same requests;
//! every error gets the product's answer and stores nothing; a storage outage loses and
//! duplicates nothing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde::Deserialize;
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY};
use sluice_loggen::{Generator, Kind, lts_body, proliferate_batch};
use sluice_tests::cases::{self, CLOSED_CONFIG, ERROR_CASE_LIMITS, Put, Target, send_put};
use sluice_tests::garage::Garage;
use sluice_tests::workerd::{DEMO_CONFIG, OnGarage, Worker, WorkerStorage};
use sluice_tests::{Port, Server, http, local_objects, run_python};
use std::collections::BTreeMap;
use std::time::Duration;

/// Sends the same requests to `url_a` and `url_b`: SDK PutLogs (lz4, zstd, hash key, V4),
/// the other SLS forms (JSON, `batch_group`, HMAC-SHA256, `x-log-project`), and LTS /
/// Proliferate bodies. Returns how many logs went to each.
fn send_the_same_requests(port_a: u16, port_b: u16) -> usize {
    let now = cases::now();
    let mut logs = cases::sls_forms(&Port(port_a), now).len();
    assert_eq!(cases::sls_forms(&Port(port_b), now).len(), logs);
    for case in ["lz4", "zstd", "hashkey", "v4"] {
        for port in [port_a, port_b] {
            run_python(
                "put_logs.py",
                &["--port", &port.to_string(), "--case", case, "--count", "40", "--requests", "2"],
            );
        }
        logs += 80;
    }
    let lines = Generator::new(11, now * 1_000_000_000 - 120_000_000_000, 1_000_000).lines(Kind::App, 150);
    let bodies = [
        ("/v2/p1/lts/groups/g1/streams/s1/tenant/contents", lts_body(&lines[..50], false)),
        ("/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy", lts_body(&lines[50..100], true)),
        ("/api/v1/logs/batch", proliferate_batch(&lines[100..], DEMO_PROLIFERATE_KEY)),
    ];
    for (path, body) in bodies {
        for port in [port_a, port_b] {
            let r = http()
                .post(format!("http://127.0.0.1:{port}{path}"))
                .header("x-auth-token", DEMO_LTS_TOKEN)
                .body(body.clone())
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{path}: {}", r.status());
        }
        logs += 50;
    }
    logs
}

/// Raw batches [`cases::sls_forms`] stores: one per form.
const FORMS: usize = 4;

fn record_count(objects: &[(String, Vec<u8>)]) -> usize {
    objects.iter().map(|(_, bytes)| sluice_ingest::batch::decode(bytes, 1 << 30).unwrap().body.records.len()).sum()
}

#[test]
fn through_the_worker_to_garage_byte_identical_to_sluice_serve() {
    let garage = Garage::start();
    let worker = Worker::start(WorkerStorage::S3(&garage));
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let logs = send_the_same_requests(worker.port, server.port);
    let from_worker = garage.objects("raw");
    let from_serve = local_objects(data.path());
    assert_eq!(from_worker.len(), FORMS + 4 * 2 + 3, "one object per request");
    assert_eq!(
        from_worker.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        from_serve.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        "the same keys"
    );
    assert!(from_worker == from_serve, "the same bytes under every key");
    assert_eq!(record_count(&from_worker), logs);
}

#[test]
fn through_the_worker_to_an_r2_binding_byte_identical_to_sluice_serve() {
    let worker = Worker::start(WorkerStorage::R2);
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let logs = send_the_same_requests(worker.port, server.port);
    let from_worker = worker.r2_objects();
    let from_serve = local_objects(data.path());
    assert_eq!(from_worker.len(), FORMS + 4 * 2 + 3);
    assert!(from_worker == from_serve, "the same keys and bytes");
    assert_eq!(record_count(&from_worker), logs);
}

#[test]
fn the_worker_answers_every_error_and_stores_nothing() {
    let garage = Garage::start();
    let worker = Worker::start_with(WorkerStorage::S3(&garage), &format!("{DEMO_CONFIG}{ERROR_CASE_LIMITS}"), &[]);
    let target = OnGarage { worker: &worker, garage: &garage };
    cases::sls_errors(&target);
    cases::proliferate_errors(&target);
    cases::lts_errors(&target);
    cases::unrouted_answers(&target, false);

    let garage = Garage::start();
    let worker = Worker::start_with(WorkerStorage::S3(&garage), CLOSED_CONFIG, &[]);
    cases::closed_project_errors(&OnGarage { worker: &worker, garage: &garage });
}

/// A store shedding load: every request answered `503 SlowDown`.
fn slow_down_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        use std::io::{Read, Write};
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
            // The whole request, headers and body, before answering: closing with a body
            // still unread resets the connection, and the client sees a transport error
            // instead of the 503 (a race that showed on a busy machine).
            let mut request = Vec::new();
            let mut buf = vec![0u8; 1 << 16];
            loop {
                let whole = request.windows(4).position(|w| w == b"\r\n\r\n").is_some_and(|end| {
                    let head = String::from_utf8_lossy(&request[..end]).to_ascii_lowercase();
                    let length = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    request.len() >= end + 4 + length
                });
                if whole {
                    break;
                }
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buf[..n]),
                }
            }
            let body = "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
            let _ = write!(
                stream,
                "HTTP/1.1 503 Slow Down\r\ncontent-type: application/xml\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

#[test]
fn a_throttled_store_gets_the_products_busy_answer() {
    let endpoint = format!("http://127.0.0.1:{}", slow_down_server());
    let worker =
        Worker::start_with(WorkerStorage::S3Endpoint(&endpoint), DEMO_CONFIG, &[("SLUICE_STORAGE_ATTEMPTS", "2")]);
    struct Nowhere<'a>(&'a Worker);
    impl Target for Nowhere<'_> {
        fn url(&self, path: &str) -> String {
            self.0.url(path)
        }
        fn stored(&self) -> Vec<String> {
            Vec::new()
        }
    }
    let (status, body, headers) = send_put(&Nowhere(&worker), Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (503, Some("ServerBusy")), "{body}");
    assert!(headers.contains_key("x-log-requestid"));
}

#[derive(Deserialize)]
struct Sent {
    logs: Vec<SentLog>,
}

#[derive(Deserialize)]
struct SentLog {
    contents: Vec<(String, String)>,
}

/// Garage goes down mid-run: clients get retryable errors; Garage comes back, the
/// clients retry, and every log is stored exactly once.
#[test]
fn a_storage_outage_loses_nothing_and_duplicates_nothing() {
    let mut garage = Garage::start();
    let worker = Worker::start_with(
        WorkerStorage::S3(&garage),
        DEMO_CONFIG,
        &[("SLUICE_STORAGE_ATTEMPTS", "2"), ("SLUICE_STORAGE_TIMEOUT_MS", "1000")],
    );
    let port = worker.port.to_string();
    // Before the outage.
    let before: Sent =
        serde_json::from_str(&run_python("put_logs.py", &["--port", &port, "--count", "30", "--start", "1700000000"]))
            .unwrap();

    garage.stop();
    // During the outage every product answers its retryable error.
    let (status, body, _) = send_put(&OnGarage { worker: &worker, garage: &garage }, Put::default());
    assert_eq!((status, body["errorCode"].as_str()), (500, Some("InternalServerError")), "{body}");
    let now = cases::now() * 1_000_000_000;
    let lines = Generator::new(21, now - 60_000_000_000, 1_000_000).lines(Kind::App, 60);
    let proliferate = proliferate_batch(&lines[..30], DEMO_PROLIFERATE_KEY);
    let lts = lts_body(&lines[30..], true);
    let lts_path = "/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy";
    let r = http().post(worker.url("/api/v1/logs/batch")).body(proliferate.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 503);
    assert_eq!(
        r.json::<serde_json::Value>().unwrap(),
        serde_json::json!({"detail": "Log storage temporarily unavailable"})
    );
    let r = http().post(worker.url(lts_path)).header("x-auth-token", DEMO_LTS_TOKEN).body(lts.clone()).send().unwrap();
    assert_eq!(r.status().as_u16(), 500);

    // The SDK retries on its own (ten times, a second apart) while Garage is down.
    let python = sluice_tests::python();
    let sdk = std::process::Command::new(python)
        .arg(sluice_tests::repo_root().join("tests/python/put_logs.py"))
        .args(["--port", &port, "--count", "30", "--requests", "2", "--start", "1700001000"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    garage.restart();
    let output = sdk.wait_with_output().unwrap();
    assert!(output.status.success(), "the SDK's retries succeed once storage is back");
    let during: Sent = serde_json::from_slice(&output.stdout).unwrap();

    // The other clients retry the same requests.
    let r = http().post(worker.url("/api/v1/logs/batch")).body(proliferate).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let r = http().post(worker.url(lts_path)).header("x-auth-token", DEMO_LTS_TOKEN).body(lts).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // And a retry of a request that had already succeeded changes nothing.
    run_python("put_logs.py", &["--port", &port, "--count", "30", "--start", "1700000000"]);

    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, bytes) in garage.objects("raw") {
        for record in sluice_ingest::batch::decode(&bytes, 1 << 30).unwrap().body.records {
            let message = if record.message.is_empty() {
                record
                    .fields
                    .iter()
                    .find(|f| f.key == "message")
                    .map(|f| String::from_utf8(f.value.clone()).unwrap())
                    .unwrap()
            } else {
                record.message
            };
            *seen.entry(message).or_default() += 1;
        }
    }
    // Compare as multisets: both runs of the SDK send the same message texts (at other
    // times), and generated logs repeat messages, so a loss or a duplicate shows up as
    // a count that differs.
    let mut expected: BTreeMap<String, usize> = BTreeMap::new();
    let sdk_messages = before
        .logs
        .iter()
        .chain(&during.logs)
        .map(|l| l.contents.iter().find(|(k, _)| k == "message").unwrap().1.clone());
    for message in sdk_messages.chain(lines.iter().map(|l| l.message.clone())) {
        *expected.entry(message).or_default() += 1;
    }
    assert_eq!(seen.values().sum::<usize>(), 30 + 60 + 60, "every log once, the retried batch not again");
    assert_eq!(seen, expected);
}
