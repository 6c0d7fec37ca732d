//! The agent's own numbers, per pipeline, served in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::tail::{Lag, lock};

/// Reads one of a pipeline's numbers.
type Field = fn(&PipelineMetrics) -> &AtomicU64;

#[derive(Debug, Default)]
pub struct PipelineMetrics {
    pub lines_read: AtomicU64,
    pub bytes_read: AtomicU64,
    pub logs_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub batches_sent: AtomicU64,
    pub batches_retried: AtomicU64,
    pub batches_buffered: AtomicU64,
    pub batches_replayed: AtomicU64,
    pub batches_refused: AtomicU64,
    pub parse_failures: AtomicU64,
    pub logs_discarded: AtomicU64,
    pub files_open: AtomicU64,
    pub buffer_bytes: AtomicU64,
    pub buffer_batches: AtomicU64,
    pub reading_paused: AtomicU64,
    pub lags: Mutex<Vec<Lag>>,
}

impl PipelineMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn set(gauge: &AtomicU64, n: u64) {
        gauge.store(n, Ordering::Relaxed);
    }
}

/// Every pipeline's metrics, and the process's.
#[derive(Debug, Default)]
pub struct Registry {
    pipelines: Mutex<Vec<(String, Arc<PipelineMetrics>)>>,
    /// Time spent inside the limits: reading slept off CPU, reading waited for memory,
    /// sends waited for bandwidth.
    pub cpu_throttled_ms: AtomicU64,
    pub memory_throttled_ms: AtomicU64,
    pub bandwidth_throttled_ms: AtomicU64,
}

impl Registry {
    /// The metrics of pipeline `name` (the same ones again after a reload).
    pub fn pipeline(&self, name: &str) -> Arc<PipelineMetrics> {
        let mut all = lock(&self.pipelines);
        if let Some((_, m)) = all.iter().find(|(n, _)| n == name) {
            return m.clone();
        }
        let m = Arc::new(PipelineMetrics::default());
        all.push((name.to_owned(), m.clone()));
        m
    }

    /// The text format, with the process's CPU time and resident memory.
    pub fn render(&self, cpu_seconds: f64, rss_bytes: u64) -> String {
        let mut out = String::new();
        let all = lock(&self.pipelines);
        let metrics: [(&str, &str, &str, Field); 15] = [
            ("lines_read_total", "counter", "lines read from files", |m| &m.lines_read),
            ("bytes_read_total", "counter", "bytes read from files", |m| &m.bytes_read),
            ("logs_sent_total", "counter", "logs the receiver accepted", |m| &m.logs_sent),
            ("bytes_sent_total", "counter", "compressed bytes the receiver accepted", |m| &m.bytes_sent),
            ("batches_sent_total", "counter", "batches the receiver accepted", |m| &m.batches_sent),
            ("batches_retried_total", "counter", "sends that failed and were tried again", |m| &m.batches_retried),
            ("batches_buffered_total", "counter", "batches written to the disk buffer", |m| &m.batches_buffered),
            ("batches_replayed_total", "counter", "batches sent from the disk buffer", |m| &m.batches_replayed),
            ("batches_refused_total", "counter", "batches the receiver refused for good (kept on disk)", |m| {
                &m.batches_refused
            }),
            ("parse_failures_total", "counter", "processor parse failures", |m| &m.parse_failures),
            ("logs_discarded_total", "counter", "logs left with no fields after processing, not sent", |m| {
                &m.logs_discarded
            }),
            ("files_open", "gauge", "files being followed", |m| &m.files_open),
            ("buffer_bytes", "gauge", "bytes in the disk buffer", |m| &m.buffer_bytes),
            ("buffer_batches", "gauge", "batches in the disk buffer", |m| &m.buffer_batches),
            ("reading_paused", "gauge", "1 while reading waits for the sender (buffer full or limits)", |m| {
                &m.reading_paused
            }),
        ];
        for (name, kind, help, get) in metrics {
            let _ = writeln!(out, "# HELP sluice_agent_{name} {help}\n# TYPE sluice_agent_{name} {kind}");
            for (pipeline, m) in all.iter() {
                let _ = writeln!(
                    out,
                    "sluice_agent_{name}{{pipeline=\"{}\"}} {}",
                    escape(pipeline),
                    get(m).load(Ordering::Relaxed)
                );
            }
        }
        let _ = writeln!(
            out,
            "# HELP sluice_agent_file_lag_bytes bytes of a file not read yet\n# TYPE sluice_agent_file_lag_bytes gauge"
        );
        for (pipeline, m) in all.iter() {
            for lag in lock(&m.lags).iter() {
                let _ = writeln!(
                    out,
                    "sluice_agent_file_lag_bytes{{pipeline=\"{}\",path=\"{}\"}} {}",
                    escape(pipeline),
                    escape(&lag.path),
                    lag.behind
                );
            }
        }
        let seconds = |ms: &AtomicU64| format!("{:.3}", ms.load(Ordering::Relaxed) as f64 / 1000.0);
        let process = [
            ("cpu_seconds_total", "counter", "CPU time of the agent", format!("{cpu_seconds:.3}")),
            ("resident_memory_bytes", "gauge", "resident memory of the agent", rss_bytes.to_string()),
            (
                "cpu_throttled_seconds_total",
                "counter",
                "time reading slept to stay inside the CPU limit",
                seconds(&self.cpu_throttled_ms),
            ),
            (
                "memory_throttled_seconds_total",
                "counter",
                "time reading waited for the sender while memory was over its limit",
                seconds(&self.memory_throttled_ms),
            ),
            (
                "bandwidth_throttled_seconds_total",
                "counter",
                "time sends waited to stay inside the bandwidth limit",
                seconds(&self.bandwidth_throttled_ms),
            ),
        ];
        for (name, kind, help, value) in process {
            let _ = writeln!(out, "# HELP sluice_agent_{name} {help}\n# TYPE sluice_agent_{name} {kind}");
            let _ = writeln!(out, "sluice_agent_{name} {value}");
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// The process's CPU time (user + system) and resident memory, from `/proc/self`.
pub fn process_usage() -> (f64, u64) {
    let cpu = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the command name (which may hold spaces) in parentheses.
            let rest = s.rsplit_once(')')?.1;
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / 100.0)
        })
        .unwrap_or(0.0);
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096);
    (cpu, rss)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_pipeline() {
        let r = Registry::default();
        let m = r.pipeline("access");
        PipelineMetrics::add(&m.lines_read, 42);
        lock(&m.lags).push(Lag { path: "/var/log/a \"b\".log".into(), behind: 7 });
        assert!(Arc::ptr_eq(&m, &r.pipeline("access")));
        let text = r.render(1.5, 4096);
        assert!(text.contains("sluice_agent_lines_read_total{pipeline=\"access\"} 42\n"));
        assert!(
            text.contains("sluice_agent_file_lag_bytes{pipeline=\"access\",path=\"/var/log/a \\\"b\\\".log\"} 7\n")
        );
        assert!(text.contains("sluice_agent_cpu_seconds_total 1.500\n"));
        r.bandwidth_throttled_ms.fetch_add(1250, Ordering::Relaxed);
        assert!(r.render(0.0, 0).contains("sluice_agent_bandwidth_throttled_seconds_total 1.250\n"));
        let (cpu, rss) = process_usage();
        assert!(cpu >= 0.0 && rss > 0);
    }
}
