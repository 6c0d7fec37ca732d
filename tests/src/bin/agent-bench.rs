//! Measures `sluice-agent` tailing single-line logs into a local `sluice serve`.
//!
//!     scripts/bench-agent            (builds the release binaries, then runs this)
//!
//! Two measurements, each against its floor in the same run:
//!
//! - **Throughput on one core**: a file of single-line logs (256 MB by default) is read
//!   whole by the agent and sent. The agent's CPU time (user + system, from its own
//!   metrics) gives MB per CPU second, which is MB/s on one core whatever the receiver's
//!   speed. The floor is this process reading the same file in 1 MiB chunks and
//!   lz4-compressing them: the least any agent must do with these bytes.
//! - **Steady 10 MB/s**: lines are appended at 10 MB/s for 30 s while the agent follows
//!   them (30 s by default, or the second argument); its CPU share (cores) and resident
//!   memory after the first 5 s.
//!
//! Published anchors (their own runs, other machines): LoongCollector 3.4% of a core and
//! 29 MB at 10 MB/s, 546 MB/s at most; Vector 35.8% and 38 MB/s; Fluent Bit 12.3% and
//! 36 MB/s.

use std::io::{Read, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use sluice_tests::Server;
use sluice_tests::agent::{Agent, pipeline_yaml};

const MB: f64 = 1_000_000.0;

fn line(i: u64) -> String {
    let levels = ["INFO", "INFO", "INFO", "WARN", "ERROR", "DEBUG"];
    format!(
        "2025-06-01T10:{:02}:{:02}.{:03}Z {} [worker-{}] com.example.shop.CheckoutService - order {} for user u{} took {} ms status={}\n",
        (i / 60_000) % 60,
        (i / 1000) % 60,
        i % 1000,
        levels[(i % 6) as usize],
        i % 16,
        1_000_000 + i,
        i % 9973,
        (i * 7) % 1500,
        if i.is_multiple_of(50) { 500 } else { 200 }
    )
}

fn write_lines(path: &Path, bytes: u64) -> u64 {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("bench file"));
    let (mut written, mut i) = (0, 0);
    while written < bytes {
        let l = line(i);
        f.write_all(l.as_bytes()).expect("write");
        written += l.len() as u64;
        i += 1;
    }
    f.flush().expect("flush");
    i
}

/// Reading the file in 1 MiB chunks and lz4-compressing each, on this one thread.
fn floor(path: &Path) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let mut f = std::fs::File::open(path).expect("open");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0usize;
        let mut out = 0usize;
        loop {
            let n = f.read(&mut buf).expect("read");
            if n == 0 {
                break;
            }
            total += n;
            out += lz4_flex::block::compress(&buf[..n]).len();
        }
        std::hint::black_box(out);
        best = best.min(start.elapsed().as_secs_f64());
        assert!(total > 0);
    }
    std::fs::metadata(path).expect("size").len() as f64 / MB / best
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let size_mb: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(256);
    let steady_secs: u32 = std::env::args().nth(2).and_then(|a| a.parse().ok()).unwrap_or(30);
    let dir = tempfile::tempdir().expect("tempdir");
    for d in ["logs", "conf", "agent", "data", "conf2", "agent2"] {
        std::fs::create_dir_all(dir.path().join(d)).expect("dirs");
    }
    let server = Server::start(&dir.path().join("data"), &[]);

    // Throughput.
    let file = dir.path().join("logs/bulk.log");
    let lines = write_lines(&file, size_mb * 1_000_000);
    let bytes = std::fs::metadata(&file).expect("size").len();
    let floor_mbs = floor(&file);
    let yaml = pipeline_yaml(&file.display().to_string(), server.port, "    TailSizeKB: 10485760\n", "");
    std::fs::write(dir.path().join("conf/bulk.yaml"), yaml).expect("config");
    let agent = Agent::start(
        &dir.path().join("conf"),
        &dir.path().join("agent"),
        &["--max-bytes-per-sec", "0", "--mem-limit-mb", "0"],
    );
    let cpu0 = agent.metric("sluice_agent_cpu_seconds_total");
    let start = Instant::now();
    wait_until("the bulk file to be sent", Duration::from_secs(1800), || {
        agent.metric("sluice_agent_logs_sent_total") >= lines as f64
    });
    let wall = start.elapsed().as_secs_f64();
    let cpu = agent.metric("sluice_agent_cpu_seconds_total") - cpu0;
    let rss = agent.metric("sluice_agent_resident_memory_bytes");
    drop(agent);
    let per_core = bytes as f64 / MB / cpu;

    // Steady 10 MB/s.
    let steady = dir.path().join("logs/steady.log");
    std::fs::write(&steady, "").expect("steady file");
    let yaml = pipeline_yaml(&steady.display().to_string(), server.port, "", "");
    std::fs::write(dir.path().join("conf2/steady.yaml"), yaml).expect("config");
    let agent = Agent::start(&dir.path().join("conf2"), &dir.path().join("agent2"), &[]);
    let mut f = std::fs::OpenOptions::new().append(true).open(&steady).expect("append");
    let per_tick: u64 = 1_000_000; // every 100 ms
    let (mut i, mut sent_bytes) = (0u64, 0u64);
    let start = Instant::now();
    let (mut cpu_at_5, mut max_rss) = (None, 0f64);
    for tick in 0..steady_secs * 10 {
        let mut chunk = String::with_capacity(per_tick as usize + 200);
        while (chunk.len() as u64) < per_tick {
            chunk.push_str(&line(i));
            i += 1;
        }
        f.write_all(chunk.as_bytes()).expect("append");
        sent_bytes += chunk.len() as u64;
        if tick == 50 {
            cpu_at_5 = Some((agent.metric("sluice_agent_cpu_seconds_total"), Instant::now()));
        }
        if tick % 10 == 0 {
            max_rss = max_rss.max(agent.metric("sluice_agent_resident_memory_bytes"));
        }
        let next = start + Duration::from_millis(100 * u64::from(tick + 1));
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let (cpu5, t5) = cpu_at_5.expect("sampled");
    let steady_cores = (agent.metric("sluice_agent_cpu_seconds_total") - cpu5) / t5.elapsed().as_secs_f64();
    let rate = sent_bytes as f64 / MB / start.elapsed().as_secs_f64();
    wait_until("the steady file to be sent", Duration::from_secs(120), || {
        agent.metric("sluice_agent_logs_sent_total") >= i as f64
    });

    println!(
        "sluice-agent, single-line logs ({} B a line on average), into sluice serve on this machine",
        bytes / lines
    );
    println!();
    println!("| measurement | sluice-agent | floor (read + lz4, same run) | agent vs floor |");
    println!("|---|---:|---:|---:|");
    println!(
        "| throughput on one core ({size_mb} MB, {lines} lines) | {per_core:.0} MB per CPU second ({:.0} MB/s wall, {:.1} s CPU) | {floor_mbs:.0} MB/s | {:.2}× |",
        bytes as f64 / MB / wall,
        cpu,
        per_core / floor_mbs
    );
    println!(
        "| steady {rate:.1} MB/s for {steady_secs} s | {:.2}% of a core, {:.0} MB resident | {:.1}% of a core | |",
        steady_cores * 100.0,
        max_rss / MB,
        rate / floor_mbs * 100.0
    );
    println!();
    println!("resident memory at the end of the bulk run: {:.0} MB", rss / MB);
}
