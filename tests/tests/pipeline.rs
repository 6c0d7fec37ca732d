//! The whole chain through every real part: the unmodified SLS Python SDK (lz4, and a
//! hash key), LTS bodies and Proliferate batches go to the edge worker under
//! `wrangler dev` (workerd), which writes raw batches to Garage over the S3 API;
//! `sluice compact` turns them into Delta tables in Garage; `sluice serve` answers the
//! SDK's `get_histograms` / `get_logs` and Proliferate's search and event APIs with
//! exactly what was sent. Then a second pass, not compacted, so that half of what is
//! read comes from the tables and half from raw batches.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use serde_json::{Value, json};
use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY};
use sluice_loggen::{Generator, Kind, Line, lts_body, proliferate_batch};
use sluice_tests::garage::{Garage, REGION};
use sluice_tests::workerd::{DEMO_CONFIG, Worker, WorkerStorage};
use sluice_tests::{Server, http, put_logs, run_python, sluice_bin};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

/// What the worker and `sluice serve` both read: the demo credentials, and LTS stream
/// `p1/g1/s1` going to logstore `demo/lts`.
fn ingest_config() -> String {
    format!(
        "{DEMO_CONFIG}[[lts.streams]]\nproject_id = \"p1\"\ngroup_id = \"g1\"\nstream_id = \"s1\"\n\
         project = \"demo\"\nlogstore = \"lts\"\n"
    )
}

/// Everything sent, as each API should give it back.
#[derive(Default)]
struct Expected {
    /// SLS: (time ns, sorted contents).
    sls: BTreeSet<(i64, Vec<(String, String)>)>,
    /// LTS: (time ns, message).
    lts: BTreeSet<(i64, String)>,
    /// Proliferate: the generated lines.
    proliferate: Vec<Line>,
}

struct Pipeline {
    garage: Garage,
    worker: Worker,
    config: String,
    _dir: tempfile::TempDir,
}

impl Pipeline {
    fn start() -> Self {
        let garage = Garage::start();
        let ingest = ingest_config();
        let worker = Worker::start_with(WorkerStorage::S3(&garage), &ingest, &[]);
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sluice.toml");
        std::fs::write(
            &config,
            format!(
                "{ingest}\n[compaction]\ninterval_secs = 0\n[storage]\nendpoint = \"{}\"\nregion = \"{REGION}\"\n\
                 access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
                garage.endpoint(),
                garage.key_id,
                garage.secret
            ),
        )
        .unwrap();
        Self { garage, worker, config: config.display().to_string(), _dir: dir }
    }

    /// Sends one pass of every kind of data through the worker, starting at `start`.
    fn send(&self, start: i64, seed: u64, expected: &mut Expected) {
        for (case, offset) in [("lz4", 0), ("hashkey", 100)] {
            for log in put_logs(self.worker.port, start + offset, 40, 2, &["--case", case]) {
                let mut contents = log.contents.clone();
                contents.sort();
                expected.sls.insert((log.time * 1_000_000_000 + log.time_ns, contents));
            }
        }

        let lines = Generator::new(seed, (start + 300) * 1_000_000_000, 250_000_000).lines(Kind::App, 200);
        let (plain, precise) = (&lines[..50], &lines[50..100]);
        let base = plain[0].time_ns;
        expected.lts.extend(plain.iter().enumerate().map(|(i, l)| (base + i as i64, l.message.clone())));
        expected.lts.extend(precise.iter().map(|l| (l.time_ns, l.message.clone())));
        let posts = [
            ("/v2/p1/lts/groups/g1/streams/s1/tenant/contents", lts_body(plain, false)),
            ("/v2/p1/lts/groups/g1/streams/s1/tenant/contents/high-accuracy", lts_body(precise, true)),
            ("/api/v1/logs/batch", proliferate_batch(&lines[100..150], DEMO_PROLIFERATE_KEY)),
            ("/api/v1/logs/batch", proliferate_batch(&lines[150..], DEMO_PROLIFERATE_KEY)),
        ];
        for (path, body) in posts {
            let r = http()
                .post(format!("http://127.0.0.1:{}{path}", self.worker.port))
                .header("x-auth-token", DEMO_LTS_TOKEN)
                .body(body)
                .send()
                .unwrap();
            assert!(r.status().is_success(), "{path}: {} {}", r.status(), r.text().unwrap_or_default());
        }
        expected.proliferate.extend_from_slice(&lines[100..]);
    }

    fn compact(&self) {
        let out = Command::new(sluice_bin())
            .args(["compact", "--data", "s3://sluice", "--config", &self.config])
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(self.garage.objects("raw").is_empty(), "every raw batch compacted");
    }
}

fn sdk(args: &[&str]) -> Value {
    serde_json::from_str(&run_python("query_logs.py", args)).unwrap()
}

fn time_ns(log: &Value) -> i64 {
    let seconds: i64 = log["__time__"].as_str().unwrap().parse().unwrap();
    let part: i64 = log["__time_ns_part__"].as_str().unwrap_or("0").parse().unwrap();
    seconds * 1_000_000_000 + part
}

/// Checks every API's answer against what was sent.
/// A Proliferate query API answer, with the demo key.
fn proliferate_get(server: &Server, path: &str) -> Value {
    http()
        .get(server.url(path))
        .header("authorization", format!("Bearer {DEMO_PROLIFERATE_KEY}"))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

fn check(server: &Server, expected: &Expected, start: i64, end: i64) {
    let (port, from, to) = (server.port.to_string(), start.to_string(), end.to_string());
    let range = ["--port", &port, "--from", &from, "--to", &to];

    // SLS GetLogs, every page: exactly the logs sent, with their topic, source and tags.
    let got = sdk(&[&["logs", "--all", "--query", "*"][..], &range[..]].concat());
    assert_eq!(got["complete"], true, "{got}");
    let mut logs = BTreeSet::new();
    for log in got["logs"].as_array().unwrap() {
        assert_eq!(
            (log["__topic__"].as_str(), log["__source__"].as_str(), log["__tag__:host"].as_str()),
            (Some("sdk"), Some("10.0.0.1"), Some("web-01"))
        );
        let mut contents: Vec<(String, String)> = log
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with("__"))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        contents.sort();
        assert!(logs.insert((time_ns(log), contents)), "each log once");
    }
    assert_eq!(logs, expected.sls, "SLS get_logs returns exactly what the SDK sent");

    // SLS GetHistograms: every subinterval's count, with and without a search.
    for (query, only_errors) in [("*", false), ("level: error", true)] {
        let keep = |c: &[(String, String)]| !only_errors || c.iter().any(|(k, v)| k == "level" && v == "error");
        let h = sdk(&[&["histogram", "--query", query][..], &range[..]].concat());
        assert_eq!(h["complete"], true);
        for bucket in h["histograms"].as_array().unwrap() {
            let (a, z) =
                (bucket["from"].as_i64().unwrap() * 1_000_000_000, bucket["to"].as_i64().unwrap() * 1_000_000_000);
            let want = expected.sls.iter().filter(|(t, c)| *t >= a && *t < z && keep(c)).count();
            assert_eq!(bucket["count"].as_u64().unwrap() as usize, want, "{query}: [{a}, {z})");
        }
    }

    // LTS logs, read with the SLS SDK from their logstore, labels as tags.
    let got = sdk(&[&["logs", "--all", "--query", "*", "--logstore", "lts"][..], &range[..]].concat());
    let mut lts = BTreeSet::new();
    for log in got["logs"].as_array().unwrap() {
        assert_eq!((log["__tag__:service"].as_str(), log["__tag__:cluster"].as_str()), (Some("shop"), Some("prod-1")));
        lts.insert((time_ns(log), log["message"].as_str().unwrap().to_owned()));
    }
    assert_eq!(lts, expected.lts, "LTS logs come back exactly");

    // Proliferate search: every log, newest first, with its fields and attributes.
    let mut found = Vec::new();
    loop {
        let page = proliferate_get(server, &format!("/api/v1/projects/demo/logs?limit=1000&offset={}", found.len()));
        assert_eq!(page["total"].as_u64().unwrap() as usize, expected.proliferate.len());
        found.extend(page["logs"].as_array().unwrap().iter().cloned());
        if page["has_more"] != true {
            break;
        }
    }
    let mut want = expected.proliferate.clone();
    want.sort_by_key(|l| std::cmp::Reverse(l.time_ns));
    assert_eq!(found.len(), want.len());
    for (got, line) in found.iter().zip(&want) {
        let attributes: serde_json::Map<String, Value> =
            line.attributes.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        assert_eq!(
            (
                &got["message"],
                &got["level"],
                &got["trace_id"],
                &got["attributes"],
                &got["environment"],
                &got["release"]
            ),
            (
                &json!(line.message),
                &json!(line.level),
                &json!(line.trace_id),
                &Value::Object(attributes),
                &json!("production"),
                &json!("v1.2.3")
            ),
        );
    }

    // The logs leading up to an error: its trace within five minutes, oldest first.
    let error =
        want.iter().zip(&found).find(|(l, _)| l.level == "error").or_else(|| want.iter().zip(&found).next()).unwrap();
    let related = proliferate_get(server, &format!("/api/v1/events/{}/logs", error.1["id"].as_str().unwrap()));
    let mut trace: Vec<&Line> = expected
        .proliferate
        .iter()
        .filter(|l| l.trace_id == error.0.trace_id && (l.time_ns - error.0.time_ns).abs() <= 300_000_000_000)
        .collect();
    trace.sort_by_key(|l| l.time_ns);
    let messages: Vec<&str> =
        related["logs"].as_array().unwrap().iter().map(|l| l["message"].as_str().unwrap()).collect();
    assert_eq!(messages, trace.iter().map(|l| l.message.as_str()).collect::<Vec<_>>());
}

#[test]
fn sdk_lts_and_proliferate_through_workerd_garage_compaction_and_the_query_apis() {
    let pipeline = Pipeline::start();
    let start = sluice_tests::cases::now() - 3000;
    let mut expected = Expected::default();

    // First pass: everything compacted before it is read.
    pipeline.send(start, 1, &mut expected);
    pipeline.compact();
    let server = Server::start(Path::new("s3://sluice"), &["--config", &pipeline.config]);
    check(&server, &expected, start - 10, start + 1200);

    // Second pass, not compacted: half of what is read is in raw batches.
    pipeline.send(start + 600, 2, &mut expected);
    assert!(!pipeline.garage.objects("raw").is_empty());
    check(&server, &expected, start - 10, start + 1200);

    // And once compacted, the same answers.
    pipeline.compact();
    check(&server, &expected, start - 10, start + 1200);
    let counts: BTreeMap<&str, usize> =
        [("sls", expected.sls.len()), ("lts", expected.lts.len()), ("proliferate", expected.proliferate.len())].into();
    assert_eq!(counts, [("sls", 320), ("lts", 200), ("proliferate", 200)].into());
}
