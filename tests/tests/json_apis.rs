//! LTS and Proliferate bodies sent over HTTP to `sluice serve`: the raw batches hold
//! exactly what was sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sluice_ingest::config::{DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY};
use sluice_loggen::{Generator, Kind, lts_body, proliferate_batch};
use sluice_tests::{Server, http, read_batches};
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as i64
}

#[test]
fn lts_bodies_plain_precise_and_gzipped() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let lines = Generator::new(3, now_ns() - 60_000_000_000, 1_000_000).lines(Kind::App, 300);
    let base = "/v2/0123456789abcdef0123456789abcdef/lts/groups/g-1/streams/s-1/tenant/contents";

    let plain = lts_body(&lines[..100], false);
    let r = http().post(server.url(base)).header("x-auth-token", DEMO_LTS_TOKEN).body(plain).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let precise = lts_body(&lines[100..200], true);
    let url = server.url(&format!("{base}/high-accuracy"));
    let r = http().post(&url).header("x-auth-token", DEMO_LTS_TOKEN).body(precise).send().unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let mut gz = flate2_gzip(lts_body(&lines[200..], true).as_bytes());
    let r = http()
        .post(&url)
        .header("x-auth-token", DEMO_LTS_TOKEN)
        .header("content-encoding", "gzip")
        .body(std::mem::take(&mut gz))
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);

    let batches = read_batches(data.path());
    assert_eq!(batches.len(), 3);
    let mut stored: Vec<(i64, String)> =
        batches.iter().flat_map(|b| b.body.records.iter().map(|r| (r.time_ns, r.message.clone()))).collect();
    stored.sort();
    let base_time = lines[0].time_ns;
    let mut expected: Vec<(i64, String)> = lines[..100]
        .iter()
        .enumerate()
        .map(|(i, l)| (base_time + i as i64, l.message.clone()))
        .chain(lines[100..].iter().map(|l| (l.time_ns, l.message.clone())))
        .collect();
    expected.sort();
    assert_eq!(stored, expected);
    for b in &batches {
        assert_eq!(b.header.project, "0123456789abcdef0123456789abcdef");
        assert_eq!(b.header.logstore, "g-1.s-1");
        let mut labels: Vec<(&str, &[u8])> =
            b.body.groups[0].tags.iter().map(|t| (t.key.as_str(), t.value.as_slice())).collect();
        labels.sort();
        assert_eq!(labels, [("cluster", &b"prod-1"[..]), ("service", &b"shop"[..])]);
    }
}

fn flate2_gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

#[test]
fn proliferate_batches_keep_every_field() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let lines = Generator::new(5, now_ns() - 60_000_000_000, 1_000_000).lines(Kind::App, 100);
    let body = proliferate_batch(&lines, DEMO_PROLIFERATE_KEY);
    let r = http().post(server.url("/api/v1/logs/batch")).body(body).send().unwrap();
    assert_eq!(r.status().as_u16(), 202);
    assert_eq!(r.json::<serde_json::Value>().unwrap(), serde_json::json!({"accepted": 100, "dropped": 0}));
    let batches = read_batches(data.path());
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!((b.header.project.as_str(), b.header.logstore.as_str()), ("demo", "logs"));
    assert_eq!((b.body.groups[0].environment.as_str(), b.body.groups[0].release.as_str()), ("production", "v1.2.3"));
    for (record, line) in b.body.records.iter().zip(&lines) {
        assert!((record.time_ns - line.time_ns).abs() < 1_000, "float seconds keep microseconds");
        assert_eq!(record.level, line.level);
        assert_eq!(record.message, line.message);
        assert_eq!(record.template, line.template);
        assert_eq!(record.trace_id, line.trace_id);
        assert_eq!(record.span_id, line.span_id);
        assert_eq!(
            (record.user_id.as_str(), record.user_email.as_str()),
            (line.user_id.as_str(), line.user_email.as_str())
        );
        assert_eq!(record.account_name, line.account_name);
        assert_eq!((record.file_path.as_str(), record.line_number), (line.file_path, Some(line.line_number)));
        let mut attributes: Vec<(String, serde_json::Value)> = record
            .fields
            .iter()
            .map(|f| {
                let text = String::from_utf8(f.value.clone()).unwrap();
                (
                    f.key.clone(),
                    if f.json { serde_json::from_str(&text).unwrap() } else { serde_json::Value::String(text) },
                )
            })
            .collect();
        let mut expected: Vec<(String, serde_json::Value)> =
            line.attributes.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
        attributes.sort_by(|a, b| a.0.cmp(&b.0));
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(attributes, expected);
    }
}
