//! Measures the edge worker's CPU per MB of SLS lz4 input inside workerd.
//!
//!     cargo run --release -p sluice-tests --bin measure-worker [REQUESTS] [--profile]
//!
//! Sends REQUESTS (default 100) distinct signed PutLogs requests of 1 MB raw each
//! (lz4, as the SDK sends them) through the worker under `wrangler dev` into Garage, and
//! measures two things:
//!
//! - **workerd process CPU** (user + system, from /proc): everything workerd does,
//!   including wrangler's local proxy worker that streams each body through JavaScript
//!   before it reaches ours, the HTTP server and the fetch to Garage: an upper bound on
//!   the isolate's own CPU, which is what Cloudflare counts. A trivial request's cost
//!   (GET /health) is measured too.
//! - with `--profile`, where the isolate's time goes: V8's sampling profiler through the
//!   inspector (`scripts/profile-isolate.mjs`), by script and by function. The profiler
//!   slows the isolate down and counts preempted time, so use it for shares only.

use sluice_ingest::Headers;
use sluice_ingest::auth::sls::Signer;
use sluice_ingest::config::{DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};
use sluice_loggen::{Generator, Kind, putlogs_body};
use sluice_tests::garage::Garage;
use sluice_tests::workerd::{Worker, WorkerStorage};
use sluice_tests::{cases::now, http};

fn workerd_cpu(worker: &Worker) -> f64 {
    worker.cpu_seconds().iter().filter(|(name, _)| name.starts_with("workerd")).map(|(_, s)| s).sum()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let requests: usize = args.iter().find_map(|a| a.parse().ok()).unwrap_or(100);
    let profile = args.iter().any(|a| a == "--profile");
    let garage = Garage::start();
    let worker = if profile {
        Worker::start_inspected(WorkerStorage::S3(&garage))
    } else {
        Worker::start(WorkerStorage::S3(&garage))
    };
    let signer = Signer { key_id: DEMO_SLS_ACCESS_KEY_ID, secret: DEMO_SLS_ACCESS_KEY_SECRET };
    let path = "/logstores/bench/shards/lb";
    let start_ns = now() * 1_000_000_000 - 3_600_000_000_000;
    let bodies: Vec<(usize, Vec<u8>)> = (0..requests)
        .map(|i| {
            let kind = if i % 2 == 0 { Kind::Nginx } else { Kind::App };
            let group = Generator::new(i as u64, start_ns, 1_000_000).log_group_of_size(kind, 1 << 20);
            let (raw, lz4) = putlogs_body(&group);
            (raw.len(), lz4)
        })
        .collect();
    let send = |raw_len: usize, body: &[u8]| {
        let mut headers: Headers = [
            ("host", "bench.localhost".to_owned()),
            ("content-type", "application/x-protobuf".to_owned()),
            ("x-log-bodyrawsize", raw_len.to_string()),
            ("x-log-compresstype", "lz4".to_owned()),
        ]
        .into_iter()
        .collect();
        signer.sign_v1("POST", path, &[], &mut headers, body, now());
        let mut request = http().post(worker.url(path));
        for (k, v) in headers.iter() {
            request = request.header(k, v);
        }
        let response = request.body(body.to_vec()).send().expect("the worker answers");
        assert_eq!(response.status().as_u16(), 200, "{:?}", response.text());
    };
    // Warm up: the first requests compile and tier up the wasm.
    for (raw_len, body) in bodies.iter().take(5) {
        send(*raw_len, body);
    }
    let idle_before = workerd_cpu(&worker);
    std::thread::sleep(std::time::Duration::from_secs(2));
    let idle = workerd_cpu(&worker) - idle_before;
    let mut profiler = worker.inspector_port.map(|port| {
        let mut child = std::process::Command::new("node")
            .arg(sluice_tests::repo_root().join("scripts/profile-isolate.mjs"))
            .arg(format!("ws://127.0.0.1:{port}/ws"))
            .current_dir(sluice_tests::repo_root())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("node runs");
        let mut out = std::io::BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        std::io::BufRead::read_line(&mut out, &mut line).expect("the profiler starts");
        (child, out)
    });
    let before = workerd_cpu(&worker);
    let started = std::time::Instant::now();
    for (raw_len, body) in &bodies {
        send(*raw_len, body);
    }
    let wall = started.elapsed().as_secs_f64();
    let after = workerd_cpu(&worker);
    let shares = profiler.as_mut().map(|(child, out)| {
        std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), b"stop\n").expect("stop");
        let mut line = String::new();
        std::io::BufRead::read_line(out, &mut line).expect("a profile");
        let _ = child.wait();
        serde_json::from_str::<serde_json::Value>(&line).expect("json")
    });
    let cpu = after - before - idle * wall / 2.0;
    let mb: f64 = bodies.iter().map(|(raw, _)| *raw as f64).sum::<f64>() / (1024.0 * 1024.0);
    let compressed: f64 = bodies.iter().map(|(_, b)| b.len() as f64).sum::<f64>() / (1024.0 * 1024.0);
    println!("requests: {requests} of 1 MiB raw ({:.2} MiB lz4 on the wire)", compressed / requests as f64);
    if let Some(shares) = shares {
        println!("isolate profile (shares only): busy {} ms", shares["busy_ms"]);
        println!("  by script: {}", shares["by_script"]);
        println!("  top functions: {}", shares["top"]);
    }
    println!("workerd process CPU: {:.1} ms total, {:.2} ms per MiB of raw input", cpu * 1000.0, cpu * 1000.0 / mb);
    println!("wall: {:.2} s, {:.1} ms per request", wall, wall * 1000.0 / requests as f64);
    // The fixed cost of a request that does nothing: workerd's HTTP server and the JS glue.
    let before = workerd_cpu(&worker);
    for _ in 0..requests {
        let response = http().get(worker.url("/health")).send().expect("the worker answers");
        assert!(response.status().is_success());
    }
    let baseline = workerd_cpu(&worker) - before;
    println!("baseline (GET /health): {:.2} ms per request", baseline * 1000.0 / requests as f64);
    let objects = garage.objects("raw/bench/bench").len();
    println!("objects in Garage: {objects}");
}
