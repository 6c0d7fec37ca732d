//! The edge worker under `wrangler dev` (workerd), built from this repository by
//! `scripts/build-worker`, writing to an R2 binding or to Garage through the S3 API.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::garage::{BUCKET, Garage, REGION};
use crate::{free_port, kill_group, repo_root};

/// Where the worker writes.
#[derive(Debug, Clone, Copy)]
pub enum WorkerStorage<'a> {
    R2,
    S3(&'a Garage),
    /// Any S3 endpoint URL (for fault injection).
    S3Endpoint(&'a str),
}

/// A worker under `wrangler dev`, stopped (with workerd) when dropped.
#[derive(Debug)]
pub struct Worker {
    child: Child,
    pub port: u16,
    /// The inspector port, when started with one ([`Worker::start_inspected`]).
    pub inspector_port: Option<u16>,
    dir: tempfile::TempDir,
}

/// The development configuration of `sluice serve`, as the worker's `SLUICE_CONFIG`.
pub const DEMO_CONFIG: &str = r#"
open = true
[[sls.access_keys]]
id = "sluice-demo"
secret = "sluice-demo-secret"
[[lts.tokens]]
token = "sluice-demo-token"
[[proliferate.keys]]
key = "pk_sluice_demo"
project = "demo"
"#;

fn wrangler() -> PathBuf {
    let path = repo_root().join("node_modules/.bin/wrangler");
    assert!(path.exists(), "{} is missing: run npm ci (scripts/test does)", path.display());
    path
}

fn worker_main() -> PathBuf {
    let path = repo_root().join("worker/build/index.js");
    assert!(path.exists(), "{} is missing: run scripts/build-worker (scripts/test does)", path.display());
    path
}

/// Nests a TOML document under `[vars.SLUICE_CONFIG]` for wrangler.toml.
fn nest_config(config: &str) -> String {
    let mut out = String::from("[vars.SLUICE_CONFIG]\n");
    for line in config.lines() {
        let trimmed = line.trim();
        if let Some(table) = trimmed.strip_prefix("[[").and_then(|t| t.strip_suffix("]]")) {
            out.push_str(&format!("[[vars.SLUICE_CONFIG.{table}]]\n"));
        } else if let Some(table) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            out.push_str(&format!("[vars.SLUICE_CONFIG.{table}]\n"));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

impl Worker {
    /// Starts the worker with the development configuration.
    pub fn start(storage: WorkerStorage<'_>) -> Self {
        Self::start_with(storage, DEMO_CONFIG, &[])
    }

    /// Starts the worker with a `SLUICE_CONFIG` (TOML, as `sluice serve` reads it) and
    /// extra vars.
    pub fn start_with(storage: WorkerStorage<'_>, config: &str, vars: &[(&str, &str)]) -> Self {
        Self::launch(storage, config, vars, None)
    }

    /// Starts the worker with the V8 inspector on a port, for profiling.
    pub fn start_inspected(storage: WorkerStorage<'_>) -> Self {
        Self::launch(storage, DEMO_CONFIG, &[], Some(free_port()))
    }

    fn launch(storage: WorkerStorage<'_>, config: &str, vars: &[(&str, &str)], inspector_port: Option<u16>) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        let mut toml = format!(
            "name = \"sluice-test\"\nmain = \"{}\"\ncompatibility_date = \"2025-11-01\"\n\n[vars]\nSLUICE_ALLOW_DEMO_CREDENTIALS = \"true\"\n",
            worker_main().display()
        );
        let mut secrets = String::new();
        match storage {
            WorkerStorage::R2 => toml.push_str("SLUICE_STORAGE = \"r2\"\n"),
            WorkerStorage::S3(garage) => {
                toml.push_str(&format!(
                    "SLUICE_STORAGE = \"s3\"\nSLUICE_S3_ENDPOINT = \"{}\"\nSLUICE_S3_BUCKET = \"{BUCKET}\"\nSLUICE_S3_REGION = \"{REGION}\"\n",
                    garage.endpoint()
                ));
                secrets = format!(
                    "SLUICE_S3_ACCESS_KEY_ID={}\nSLUICE_S3_SECRET_ACCESS_KEY={}\n",
                    garage.key_id, garage.secret
                );
            }
            WorkerStorage::S3Endpoint(endpoint) => {
                toml.push_str(&format!(
                    "SLUICE_STORAGE = \"s3\"\nSLUICE_S3_ENDPOINT = \"{endpoint}\"\nSLUICE_S3_BUCKET = \"{BUCKET}\"\nSLUICE_S3_REGION = \"{REGION}\"\n"
                ));
                secrets = "SLUICE_S3_ACCESS_KEY_ID=test\nSLUICE_S3_SECRET_ACCESS_KEY=test\n".into();
            }
        }
        for (name, value) in vars {
            toml.push_str(&format!("{name} = \"{value}\"\n"));
        }
        toml.push('\n');
        toml.push_str(&nest_config(config));
        toml.push_str("\n[[r2_buckets]]\nbinding = \"RAW\"\nbucket_name = \"sluice-raw\"\n");
        std::fs::write(dir.path().join("wrangler.toml"), toml).expect("wrangler.toml");
        std::fs::write(dir.path().join(".dev.vars"), secrets).expect(".dev.vars");
        let log = std::fs::File::create(dir.path().join("wrangler.log")).expect("a log file");
        let mut command = Command::new(wrangler());
        command
            .current_dir(dir.path())
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &inspector_port.unwrap_or(0).to_string(), "--persist-to"])
            .arg(dir.path().join("state"))
            .env("WRANGLER_SEND_METRICS", "false")
            .env("WRANGLER_SEND_ERROR_REPORTS", "false")
            .env("WRANGLER_HIDE_BANNER", "true")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().expect("a log file")))
            .stderr(Stdio::from(log));
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("wrangler starts");
        let worker = Self { child, port, inspector_port, dir };
        worker.wait_ready();
        worker
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        let client = crate::http();
        loop {
            if client.get(self.url("/health")).send().is_ok_and(|r| r.status().is_success()) {
                return;
            }
            assert!(Instant::now() < deadline, "wrangler dev did not start:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// wrangler's output so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wrangler.log")).unwrap_or_default()
    }

    /// Every object in the local R2 bucket, with its bytes, sorted by key. Read from
    /// miniflare's store: an sqlite index and one blob file per object.
    pub fn r2_objects(&self) -> Vec<(String, Vec<u8>)> {
        let state = self.dir.path().join("state/v3/r2");
        let script = "import sqlite3, glob, json, sys\n\
            rows = []\n\
            for f in glob.glob(sys.argv[1] + '/miniflare-R2BucketObject/*.sqlite'):\n\
            \x20   if f.endswith('metadata.sqlite'): continue\n\
            \x20   rows += sqlite3.connect(f).execute('select key, blob_id from _mf_objects').fetchall()\n\
            print(json.dumps(rows))\n";
        let output = Command::new("python3").arg("-c").arg(script).arg(&state).output().expect("python3 runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let rows: Vec<(String, String)> = serde_json::from_slice(&output.stdout).expect("json rows");
        let mut out: Vec<(String, Vec<u8>)> = rows
            .into_iter()
            .map(|(key, blob)| (key, std::fs::read(state.join("sluice-raw/blobs").join(blob)).expect("a blob")))
            .collect();
        out.sort();
        out
    }

    /// CPU time (user + system) used so far by every process of this worker's group
    /// (wrangler's node and workerd), by name, from `/proc`.
    pub fn cpu_seconds(&self) -> Vec<(String, f64)> {
        let group = self.child.id();
        let tick = 100.0; // USER_HZ on Linux
        let mut out = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid pgrp ... utime(14) stime(15)
            let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
            let name = head.split_once(" (").map_or("", |(_, n)| n).to_owned();
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() > 13 && fields[2].parse::<u32>().ok() == Some(group) {
                let utime: f64 = fields[11].parse().unwrap_or(0.0);
                let stime: f64 = fields[12].parse().unwrap_or(0.0);
                out.push((name, (utime + stime) / tick));
            }
        }
        out
    }

    /// The directory holding this worker's config and state.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// The worker writing to Garage, as a target for the shared error cases.
#[derive(Debug)]
pub struct OnGarage<'a> {
    pub worker: &'a Worker,
    pub garage: &'a Garage,
}

impl crate::cases::Target for OnGarage<'_> {
    fn url(&self, path: &str) -> String {
        self.worker.url(path)
    }
    fn stored(&self) -> Vec<String> {
        self.garage.objects("raw").into_iter().map(|(k, _)| k).collect()
    }
}
