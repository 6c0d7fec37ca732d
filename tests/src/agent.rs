//! Running the real `sluice-agent` binary against real files and a real receiver, and
//! counting what arrived through GetLogs.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sluice_ingest::config::{DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET};

use crate::{get_logs_in, http};

/// The `sluice-agent` binary built next to this test binary.
pub fn agent_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("SLUICE_AGENT_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test binary has a path");
    // A test runs from target/<profile>/deps/, a binary (agent-bench) from target/<profile>/.
    let beside = exe.parent().expect("a directory").join("sluice-agent");
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps/<test>");
    let bin = if beside.exists() { beside } else { profile_dir.join("sluice-agent") };
    assert!(bin.exists(), "{} is missing: run `cargo build -p sluice-agent` first (scripts/test does)", bin.display());
    bin
}

/// A pipeline config tailing `files` into project `demo`, logstore `app` of the
/// receiver on `port`, with the demo key, plus `extra` YAML for the input and
/// `processors` YAML.
pub fn pipeline_yaml(files: &str, port: u16, input_extra: &str, processors: &str) -> String {
    format!(
        "enable: true\ninputs:\n  - Type: input_file\n    FilePaths:\n      - {files}\n{input_extra}{processors}\
         flushers:\n  - Type: flusher_sls\n    Project: demo\n    Logstore: app\n    Endpoint: http://127.0.0.1:{port}\n\
         \x20   Region: cn-hangzhou\n    TelemetryType: logs\n    AccessKeyId: {DEMO_SLS_ACCESS_KEY_ID}\n\
         \x20   AccessKeySecret: {DEMO_SLS_ACCESS_KEY_SECRET}\n"
    )
}

/// A running agent.
#[derive(Debug)]
pub struct Agent {
    child: Option<Child>,
    pub metrics: String,
    pub conf: PathBuf,
    pub data: PathBuf,
}

impl Agent {
    /// Starts `sluice-agent run` on config directory `conf` and data directory `data`.
    pub fn start(conf: &Path, data: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(agent_bin())
            .arg("run")
            .arg("--config-dir")
            .arg(conf)
            .arg("--data-dir")
            .arg(data)
            .args(["--metrics-listen", "127.0.0.1:0", "--scan-interval-ms", "500", "--cpu-limit", "0"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("sluice-agent starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.split("metrics on ").nth(1) {
                    let _ = tx.send(url.trim().to_owned());
                }
            }
        });
        let metrics = rx.recv_timeout(Duration::from_secs(30)).expect("sluice-agent prints its metrics address");
        Self { child: Some(child), metrics, conf: conf.to_owned(), data: data.to_owned() }
    }

    /// The agent's own log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data.join("sluice-agent.log")).unwrap_or_default()
    }

    /// The agent's metrics page, or `None` when it does not answer.
    pub fn metrics_text(&self) -> Option<String> {
        http().get(&self.metrics).send().and_then(|r| r.text()).ok()
    }

    /// The sum of a metric over its labels.
    pub fn metric(&self, name: &str) -> f64 {
        let Some(text) = self.metrics_text() else { return f64::NAN };
        text.lines()
            .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }

    /// SIGTERM, and waits for the agent to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = i32::try_from(child.id()).ok().and_then(rustix::process::Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
            let _ = child.wait();
        }
    }

    /// `kill -9`.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Runs a GetLogs SQL query over the last hour (and the next minute) of `demo/app` on
/// the receiver at `port`, as the SDKs sign it; the first row.
pub fn sql_row(port: u16, query: &str) -> serde_json::Value {
    let now = crate::cases::now();
    let (status, body, _) =
        get_logs_in(port, (DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET), "demo", (now - 3600, now + 60), query);
    assert_eq!(status, 200, "{query}: {body}");
    body[0].clone()
}

/// How many logs arrived and how many distinct `key` values they have.
pub fn count(port: u16, filter: &str, key: &str) -> (u64, u64) {
    let row = sql_row(port, &format!("{filter} | select count(1) as n, count(distinct \"{key}\") as d"));
    let get = |k: &str| row[k].as_str().and_then(|v| v.parse().ok()).or_else(|| row[k].as_u64()).unwrap_or(0);
    (get("n"), get("d"))
}

/// Waits until `count` says `expected` distinct lines arrived (or `limit` passes), then
/// a little longer for anything that would arrive twice; the final (count, distinct).
pub fn wait_for_lines(port: u16, filter: &str, key: &str, expected: u64, limit: Duration) -> (u64, u64) {
    let start = Instant::now();
    let mut last = (0, 0);
    while start.elapsed() < limit {
        last = count(port, filter, key);
        if last.1 >= expected {
            std::thread::sleep(Duration::from_secs(2));
            return count(port, filter, key);
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    last
}
