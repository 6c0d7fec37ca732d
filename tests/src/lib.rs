//! Helpers for Sluice's end-to-end tests: find and start the real `sluice` binary, run
//! the official SDKs from the test virtualenv, and read what landed in storage.
//!
//! The test command in README builds the binary and the virtualenv first; when one is
//! missing, a test fails with what to run.

pub mod agent;
pub mod cases;
pub mod garage;
pub mod workerd;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The repository root: of the checkout `cargo test` runs in (it sets `CARGO_MANIFEST_DIR`
/// for the test process), else of the one this was compiled in. Two checkouts sharing a
/// target directory can share a test binary, whose compile-time path is the other's.
pub fn repo_root() -> PathBuf {
    let manifest =
        std::env::var_os("CARGO_MANIFEST_DIR").map_or_else(|| env!("CARGO_MANIFEST_DIR").into(), PathBuf::from);
    manifest.parent().expect("tests/ sits in the repository").to_owned()
}

/// The `sluice` binary built next to this test binary (`cargo build -p sluice-compactor`).
pub fn sluice_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = profile_dir.join("sluice");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p sluice-compactor` first (scripts/test does)",
        bin.display()
    );
    bin
}

/// Where tools and the virtualenv are installed: `$SLUICE_CACHE`, default `~/.cache/sluice`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os("SLUICE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache/sluice"))
}

/// The Python of the test virtualenv with the official SDKs.
pub fn python() -> PathBuf {
    let path =
        std::env::var_os("SLUICE_PYTHON").map(PathBuf::from).unwrap_or_else(|| cache_dir().join("venv/bin/python"));
    assert!(path.exists(), "{} is missing: run scripts/setup-python (scripts/test does)", path.display());
    path
}

/// Runs a script from `tests/python` and returns its standard output.
pub fn run_python(script: &str, args: &[&str]) -> String {
    let output = Command::new(python())
        .arg(repo_root().join("tests/python").join(script))
        .args(args)
        .output()
        .expect("python runs");
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8 output")
}

/// A running `sluice serve`, stopped when dropped.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub port: u16,
    pub data: PathBuf,
}

impl Server {
    /// Starts `sluice serve --listen 127.0.0.1:0 --data DIR` plus `extra` arguments and
    /// waits until it listens.
    pub fn start(data: &Path, extra: &[&str]) -> Self {
        Self::start_on("127.0.0.1:0", data, extra)
    }

    /// [`Server::start`] on a given address (to start it again where a client expects it).
    pub fn start_on(listen: &str, data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(sluice_bin())
            .arg("serve")
            .args(["--listen", listen, "--data"])
            .arg(data)
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("sluice starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(addr.trim().to_owned());
                }
            }
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("sluice prints its address");
        let port = addr.rsplit(':').next().and_then(|p| p.parse().ok()).expect("a port");
        Self { child, port, data: data.to_owned() }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every raw batch file under `dir/raw`, sorted by path.
pub fn raw_batches(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "batch") {
                out.push(path);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("raw"), &mut out);
    out.sort();
    out
}

/// Every file under `dir/raw`, batches or not: what a failed request must not leave.
pub fn raw_files(dir: &Path) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() { walk(&path, out) } else { out.push(path) }
        }
    }
    let mut out = Vec::new();
    walk(&dir.join("raw"), &mut out);
    out
}

/// Reads and checks every raw batch under `dir`.
pub fn read_batches(dir: &Path) -> Vec<sluice_ingest::batch::DecodedBatch> {
    raw_batches(dir)
        .iter()
        .map(|p| sluice_ingest::batch::decode(&std::fs::read(p).expect("readable"), 1 << 30).expect("a valid batch"))
        .collect()
}

/// A blocking HTTP client for tests.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().expect("a client")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// Kills a child started as a process group leader (`process_group(0)`) and every
/// process in its group (wrangler's workerd, for one).
///
/// Not through the `kill` command: procps-ng 4.0.2 turns `kill -KILL -19270` into
/// `kill(-1, SIGKILL)`, which kills every process the user may signal.
pub fn kill_group(child: &mut Child) {
    if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// Runs a future to completion on a small runtime.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime").block_on(future)
}

/// Every raw batch a `sluice serve` data directory holds, keyed like object keys.
pub fn local_objects(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = raw_batches(dir)
        .into_iter()
        .map(|p| {
            let key = p.strip_prefix(dir).expect("under dir").to_string_lossy().into_owned();
            (key, std::fs::read(&p).expect("readable"))
        })
        .collect();
    out.sort();
    out
}

impl cases::Target for Server {
    fn url(&self, path: &str) -> String {
        Server::url(self, path)
    }
    fn stored(&self) -> Vec<String> {
        raw_files(&self.data).iter().map(|p| p.display().to_string()).collect()
    }
}

/// An edge at a port, for case lists that only send (what it stored is not looked at).
#[derive(Clone, Copy, Debug)]
pub struct Port(pub u16);

impl cases::Target for Port {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.0)
    }
    fn stored(&self) -> Vec<String> {
        Vec::new()
    }
}

/// An SLS log's contents as a client sees them again: the promoted columns (level,
/// message, trace_id, span_id) and the fields, sorted by key then value.
pub fn sls_contents(record: &sluice_proto::batch::Record) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = [
        ("level", &record.level),
        ("message", &record.message),
        ("trace_id", &record.trace_id),
        ("span_id", &record.span_id),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_owned(), v.clone()))
    .chain(record.fields.iter().map(|f| (f.key.clone(), String::from_utf8_lossy(&f.value).into_owned())))
    .collect();
    out.sort();
    out
}

/// A log the SLS SDK sent, as `tests/python/put_logs.py` reports it.
#[derive(serde::Deserialize, Clone, Debug)]
pub struct SentLog {
    pub time: i64,
    pub time_ns: i64,
    pub contents: Vec<(String, String)>,
}

impl SentLog {
    /// A content's value.
    pub fn get(&self, key: &str) -> &str {
        &self.contents.iter().find(|(k, _)| k == key).unwrap_or_else(|| panic!("no content {key}")).1
    }
}

/// Sends `requests` PutLogs of `count` logs each, from time `start`, with the unmodified
/// SLS Python SDK (`extra`: more `put_logs.py` arguments); the logs it sent.
pub fn put_logs(port: u16, start: i64, count: usize, requests: usize, extra: &[&str]) -> Vec<SentLog> {
    #[derive(serde::Deserialize)]
    struct Sent {
        logs: Vec<SentLog>,
    }
    let (port, start, count, requests) = (port.to_string(), start.to_string(), count.to_string(), requests.to_string());
    let args = ["--port", &port, "--count", &count, "--requests", &requests, "--start", &start];
    let out = run_python("put_logs.py", &[&args[..], extra].concat());
    serde_json::from_str::<Sent>(&out).unwrap_or_else(|e| panic!("put_logs.py: {e}: {out}")).logs
}

/// A signed GetLogs (V1) over `[from, to)` seconds, as the SDKs send it, with access key
/// `key` (id, secret): the status, the JSON body, and `x-log-progress`.
pub fn get_logs_in(
    port: u16,
    key: (&str, &str),
    project: &str,
    (from, to): (i64, i64),
    query: &str,
) -> (u16, serde_json::Value, String) {
    let (status, body, headers) = get_logs_answer(port, key, project, (from, to), query);
    let progress = headers.get("x-log-progress").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    (status, body, progress)
}

/// [`get_logs_in`] with every header of the answer (`x-sluice-scanned`, ...).
pub fn get_logs_answer(
    port: u16,
    key: (&str, &str),
    project: &str,
    (from, to): (i64, i64),
    query: &str,
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let params = [
        ("type", "log".to_owned()),
        ("from", from.to_string()),
        ("to", to.to_string()),
        ("query", query.to_owned()),
        ("line", "100".to_owned()),
        ("offset", "0".to_owned()),
    ];
    sls_get(port, key, project, "/logstores/app", &params)
}

/// A signed (V1) SLS `GET` of `path` with query `params`, as the SDKs send it: the
/// status, the body (JSON, or the text as a JSON string) and the headers.
pub fn sls_get(
    port: u16,
    key: (&str, &str),
    project: &str,
    path: &str,
    params: &[(&str, String)],
) -> (u16, serde_json::Value, reqwest::header::HeaderMap) {
    let pairs: Vec<(String, String)> = params.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
    let mut headers: sluice_ingest::Headers = [("host", format!("{project}.localhost"))].into_iter().collect();
    sluice_ingest::auth::sls::Signer { key_id: key.0, secret: key.1 }.sign_v1(
        "GET",
        path,
        &pairs,
        &mut headers,
        &[],
        cases::now(),
    );
    let url = reqwest::Url::parse_with_params(&format!("http://127.0.0.1:{port}{path}"), &pairs).expect("a url");
    let mut request = http().get(url);
    for (k, v) in headers.iter() {
        request = request.header(k, v);
    }
    let response = request.send().expect("sluice answers");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().expect("a body");
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)), headers)
}
