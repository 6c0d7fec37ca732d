//! `sluice-agent` with real files and a real receiver (`sluice serve`; the edge worker
//! under `wrangler dev` in `worker.rs`), every line counted end to end through GetLogs
//! (`count(1)` and `count(distinct ...)` in the `| SQL` part, signed as the SDKs sign).
//!
//! Each test prints its counts: lines written, arrived, distinct, lost, duplicated.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use sluice_tests::Server;
use sluice_tests::agent::{Agent, agent_bin, count, pipeline_yaml, sql_row, wait_for_lines};

struct Setup {
    dir: tempfile::TempDir,
    server: Server,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for d in ["logs", "conf", "agent", "data", "spare"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let server = Server::start(&dir.path().join("data"), &[]);
        Self { dir, server }
    }

    fn path(&self, p: &str) -> PathBuf {
        self.dir.path().join(p)
    }

    fn pipeline(&self, name: &str, files: &str, input_extra: &str, processors: &str) {
        let yaml = pipeline_yaml(&self.path(files).display().to_string(), self.server.port, input_extra, processors);
        std::fs::write(self.path("conf").join(format!("{name}.yaml")), yaml).unwrap();
    }

    fn agent(&self) -> Agent {
        Agent::start(&self.path("conf"), &self.path("agent"), &[])
    }
}

/// Prints a test's counts, and adds them to `$SLUICE_AGENT_COUNTS` (scripts/test shows
/// that file after the tests, passing ones included).
fn report(test: &str, written: u64, (n, d): (u64, u64)) {
    let line = format!(
        "{test}: written {written}, arrived {n}, distinct {d}, lost {}, duplicated {}",
        written.saturating_sub(d),
        n.saturating_sub(d)
    );
    note(&line);
}

fn note(line: &str) {
    println!("{line}");
    if let Some(path) = std::env::var_os("SLUICE_AGENT_COUNTS") {
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
        writeln!(f, "{line}").unwrap();
    }
}

fn line(seq: u64, tag: &str) -> String {
    format!("{seq:08} {tag} the quick brown fox jumps over the lazy dog\n")
}

#[derive(Clone, Copy, Debug)]
enum Rotation {
    Rename,
    CopyTruncate,
    DeleteRecreate,
    SymlinkSwap,
}

/// 200,000 lines written at about 50,000 a second while the file is rotated every
/// 100 ms: 0 lost, 0 duplicated.
fn rotation_storm(rotation: Rotation) {
    const LINES: u64 = 200_000;
    let tag = format!("{rotation:?}").to_lowercase();
    let s = Setup::new();
    let log = s.path("logs/app.log");
    let targets = s.path("logs/targets");
    std::fs::create_dir_all(&targets).unwrap();
    let open_new = |generation: u64| -> std::fs::File {
        match rotation {
            Rotation::SymlinkSwap => {
                let target = targets.join(format!("app-{generation}.log"));
                let file = std::fs::OpenOptions::new().create(true).append(true).open(&target).unwrap();
                let tmp = s.path("logs/app.log.swap");
                std::os::unix::fs::symlink(&target, &tmp).unwrap();
                std::fs::rename(&tmp, &log).unwrap();
                file
            }
            _ => std::fs::OpenOptions::new().create(true).append(true).open(&log).unwrap(),
        }
    };
    let mut file = open_new(0);
    s.pipeline("storm", "logs/app.log", "", "");
    let agent = s.agent();

    let start = Instant::now();
    let mut last_rotation = Instant::now();
    let mut generation = 0;
    let mut seq = 0;
    while seq < LINES {
        let mut chunk = String::new();
        for _ in 0..500 {
            chunk.push_str(&line(seq, &tag));
            seq += 1;
        }
        file.write_all(chunk.as_bytes()).unwrap();
        if last_rotation.elapsed() >= Duration::from_millis(100) {
            generation += 1;
            match rotation {
                Rotation::Rename => {
                    std::fs::rename(&log, s.path(&format!("logs/app.log.{generation}"))).unwrap();
                    file = open_new(generation);
                }
                Rotation::CopyTruncate => {
                    std::fs::copy(&log, s.path(&format!("logs/app.log.{generation}"))).unwrap();
                    file.set_len(0).unwrap();
                }
                Rotation::DeleteRecreate => {
                    std::fs::remove_file(&log).unwrap();
                    file = open_new(generation);
                }
                Rotation::SymlinkSwap => file = open_new(generation),
            }
            last_rotation = Instant::now();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let writing = start.elapsed();
    let counts = wait_for_lines(s.server.port, &tag, "content", LINES, Duration::from_secs(120));
    report(&format!("rotation storm ({tag}, {generation} rotations in {writing:.1?})"), LINES, counts);
    assert!(generation >= 20, "the file was rotated {generation} times");
    assert_eq!(counts, (LINES, LINES), "0 lost, 0 duplicated; agent log:\n{}", tail(&agent.log()));
}

#[test]
fn rotation_storm_by_rename() {
    rotation_storm(Rotation::Rename);
}

#[test]
fn rotation_storm_by_copytruncate() {
    rotation_storm(Rotation::CopyTruncate);
}

#[test]
fn rotation_storm_by_delete_and_recreate() {
    rotation_storm(Rotation::DeleteRecreate);
}

#[test]
fn rotation_storm_by_symlink_swap() {
    rotation_storm(Rotation::SymlinkSwap);
}

fn append(path: &Path, from: u64, n: u64, tag: &str) {
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap();
    let text: String = (from..from + n).map(|i| line(i, tag)).collect();
    f.write_all(text.as_bytes()).unwrap();
}

/// The agent is stopped, the file is written and rotated 3 times (logrotate's numbered
/// shift), and the agent is started again: nothing is lost, nothing sent twice. Logtail
/// documents loss in exactly this case.
#[test]
fn stopped_while_the_file_rotates_three_times() {
    let s = Setup::new();
    let log = s.path("logs/app.log");
    append(&log, 0, 1000, "restart");
    s.pipeline("restart", "logs/app.log", "", "");
    let mut agent = s.agent();
    let counts = wait_for_lines(s.server.port, "restart", "content", 1000, Duration::from_secs(60));
    assert_eq!(counts, (1000, 1000));
    agent.stop();

    let mut seq = 1000;
    for _ in 0..3 {
        append(&log, seq, 700, "restart");
        seq += 700;
        for i in (1..=3).rev() {
            let from = s.path(&format!("logs/app.log.{i}"));
            if from.exists() {
                std::fs::rename(&from, s.path(&format!("logs/app.log.{}", i + 1))).unwrap();
            }
        }
        std::fs::rename(&log, s.path("logs/app.log.1")).unwrap();
    }
    append(&log, seq, 300, "restart");
    seq += 300;

    let agent = s.agent();
    let counts = wait_for_lines(s.server.port, "restart", "content", seq, Duration::from_secs(60));
    report("stopped while rotating 3 times", seq, counts);
    assert_eq!(counts, (seq, seq), "agent log:\n{}", tail(&agent.log()));
}

/// `kill -9` in the middle of a burst, then a restart: nothing lost, and no more
/// duplicates than the batches that were in flight.
#[test]
fn kill_9_during_a_burst_loses_nothing() {
    const LINES: u64 = 150_000;
    let s = Setup::new();
    let log = s.path("logs/app.log");
    s.pipeline("burst", "logs/app.log", "", "");
    let mut agent = s.agent();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            for block in 0..LINES / 1000 {
                append(&log, block * 1000, 1000, "burst");
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let start = Instant::now();
    while agent.metric("sluice_agent_logs_sent_total") < 30_000.0 && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent_before = agent.metric("sluice_agent_logs_sent_total");
    agent.kill9();
    writer.join().unwrap();
    let agent = s.agent();
    let counts = wait_for_lines(s.server.port, "burst", "content", LINES, Duration::from_secs(120));
    report(&format!("kill -9 after {sent_before} logs were acknowledged"), LINES, counts);
    assert_eq!(counts.1, LINES, "0 lost; agent log:\n{}", tail(&agent.log()));
    // At most the batch in flight arrives twice: one at a time per file, of at most
    // 8,192 logs (the default `MinCnt`).
    assert!(counts.0 - counts.1 <= 8192, "duplicates {}", counts.0 - counts.1);
}

/// The metric's value once `done` says so (or after `limit`), polling every 200 ms.
fn metric_when(agent: &Agent, name: &str, limit: Duration, done: impl Fn(f64) -> bool) -> f64 {
    let start = Instant::now();
    loop {
        let v = agent.metric(name);
        if done(v) || start.elapsed() > limit {
            return v;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Creates `path` empty and waits until the agent follows it, so that what is written
/// next is new content (a file found at a pipeline's first start with more than
/// `TailSizeKB` in it is read from its last megabyte, as Logtail does).
fn followed_empty(agent: &Agent, path: &Path) {
    std::fs::write(path, "").unwrap();
    let open = metric_when(agent, "sluice_agent_files_open", Duration::from_secs(30), |v| v >= 1.0);
    assert!(open >= 1.0, "the agent follows {}", path.display());
}

/// Pipeline `tag` on `logs/app.log`, the agent started with `flags` and following the
/// file, then `lines` written to it in blocks of 10,000; and when the writing began.
fn limited(tag: &str, flags: &[&str], lines: u64) -> (Setup, Agent, Instant) {
    let s = Setup::new();
    let log = s.path("logs/app.log");
    s.pipeline(tag, "logs/app.log", "", "");
    let agent = Agent::start(&s.path("conf"), &s.path("agent"), flags);
    followed_empty(&agent, &log);
    let start = Instant::now();
    for block in 0..lines / 10_000 {
        append(&log, block * 10_000, 10_000, tag);
    }
    (s, agent, start)
}

/// `--cpu-limit 0.02`: reading sleeps off what the agent used over a fiftieth of a core,
/// and nothing is lost. The agent's CPU over six seconds in the middle of the run stays
/// under the limit plus what one measuring window and the carried debt allow (an upper
/// bound the governor enforces; a busy machine only lowers it). Unthrottled, this debug
/// build reads at about a whole core.
#[test]
fn the_cpu_limit_holds_and_loses_nothing() {
    const LINES: u64 = 250_000;
    const LIMIT: f64 = 0.02;
    let (s, agent, _) = limited("cpu", &["--cpu-limit", "0.02"], LINES);
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, t0) = (agent.metric("sluice_agent_cpu_seconds_total"), Instant::now());
    std::thread::sleep(Duration::from_secs(6));
    let (cpu1, t1) = (agent.metric("sluice_agent_cpu_seconds_total"), Instant::now());
    let read = agent.metric("sluice_agent_lines_read_total");
    let elapsed = t1.duration_since(t0).as_secs_f64();
    let rate = (cpu1 - cpu0) / elapsed;
    note(&format!(
        "cpu limit {LIMIT}: {:.3} of a core over {elapsed:.1} s, {read} of {LINES} lines read by then",
        rate
    ));
    // Owed at most: a window's use by the collector and the sender (0.25 s each), the
    // rest of a shortened sleep and the second of credit.
    assert!(rate <= LIMIT + 0.6 / elapsed, "{rate:.3} cores over {elapsed:.1} s");
    assert!(read < LINES as f64, "still reading at the end of the window: the limit was binding");
    let counts = wait_for_lines(s.server.port, "cpu", "content", LINES, Duration::from_secs(300));
    report("cpu limit 0.02", LINES, counts);
    let metrics = agent.metrics_text().unwrap_or_default();
    assert_eq!(counts, (LINES, LINES), "agent log:\n{}\nmetrics:\n{metrics}", tail(&agent.log()));
    assert!(agent.metric("sluice_agent_cpu_throttled_seconds_total") > 0.0);
}

/// `--max-bytes-per-sec 200000 --mem-limit-mb 1`: sends wait so that at most a second's
/// worth of credit is ever ahead of 200 KB/s, reading waits for the sender while memory
/// is over its (here always exceeded) limit, and nothing is lost. The time taken is at
/// least what the bandwidth allows: a lower bound, which a busy machine only raises.
#[test]
fn the_bandwidth_and_memory_limits_hold_and_lose_nothing() {
    const LINES: u64 = 200_000;
    const BYTES_PER_SEC: f64 = 200_000.0;
    let (s, agent, start) = limited("bandwidth", &["--max-bytes-per-sec", "200000", "--mem-limit-mb", "1"], LINES);
    metric_when(&agent, "sluice_agent_logs_sent_total", Duration::from_secs(300), |v| v >= LINES as f64);
    let wall = start.elapsed().as_secs_f64();
    let sent = agent.metric("sluice_agent_bytes_sent_total");
    let least = (sent - BYTES_PER_SEC) / BYTES_PER_SEC;
    note(&format!(
        "bandwidth limit 200 KB/s: {sent} compressed bytes in {wall:.1} s (at least {least:.1} s allowed); \
         waited {:.1} s for bandwidth, {:.1} s for memory",
        agent.metric("sluice_agent_bandwidth_throttled_seconds_total"),
        agent.metric("sluice_agent_memory_throttled_seconds_total")
    ));
    assert!(wall >= least, "{sent} bytes in {wall:.1} s");
    assert!(least > 2.0, "the limit was binding: {sent} bytes");
    assert!(agent.metric("sluice_agent_bandwidth_throttled_seconds_total") > 0.0);
    assert!(agent.metric("sluice_agent_memory_throttled_seconds_total") > 0.0);
    let counts = wait_for_lines(s.server.port, "bandwidth", "content", LINES, Duration::from_secs(120));
    report("bandwidth limit 200 KB/s, memory limit 1 MB", LINES, counts);
    assert_eq!(counts, (LINES, LINES), "agent log:\n{}", tail(&agent.log()));
}

/// Pipelines come, change and go while the agent runs: a new config file starts its
/// pipeline, a changed one restarts it on its new files, a removed one stops it, and the
/// others carry on.
#[test]
fn configs_reload_while_running() {
    let s = Setup::new();
    let (a, b, c) = (s.path("logs/a.log"), s.path("logs/b.log"), s.path("logs/c.log"));
    s.pipeline("first", "logs/a.log", "", "");
    let agent = s.agent();
    let arrived = |tag: &str, n: u64| wait_for_lines(s.server.port, tag, "content", n, Duration::from_secs(60));
    append(&a, 0, 1000, "first");
    assert_eq!(arrived("first", 1000), (1000, 1000));

    s.pipeline("second", "logs/b.log", "", "");
    append(&b, 0, 1000, "second");
    assert_eq!(arrived("second", 1000), (1000, 1000), "a new config starts its pipeline");

    s.pipeline("first", "logs/c.log", "", "");
    append(&c, 0, 1000, "third");
    assert_eq!(arrived("third", 1000), (1000, 1000), "a changed config follows its new files");

    std::fs::remove_file(s.path("conf/second.yaml")).unwrap();
    let start = Instant::now();
    while agent.log().matches("pipeline stopped").count() < 2 {
        assert!(start.elapsed() < Duration::from_secs(60), "agent log:\n{}", tail(&agent.log()));
        std::thread::sleep(Duration::from_millis(200));
    }
    append(&b, 1000, 1000, "second");
    append(&a, 1000, 1000, "first");
    append(&c, 1000, 1000, "third");
    assert_eq!(arrived("third", 2000), (2000, 2000), "the remaining pipeline carries on");
    let stopped = (count(s.server.port, "second", "content").0, count(s.server.port, "first", "content").0);
    note(&format!("config reload: after removal and change, second {} and first {} (1000 each)", stopped.0, stopped.1));
    assert_eq!(stopped, (1000, 1000), "a removed pipeline and a changed one's old file are not read");
}

/// The receiver is down for 60 s under a steady load, then back on the same address:
/// everything arrives once, through the disk buffer, in file order.
#[test]
fn receiver_down_for_60_seconds() {
    let mut s = Setup::new();
    let port = s.server.port;
    let log = s.path("logs/app.log");
    s.pipeline(
        "outage",
        "logs/app.log",
        "",
        "processors:\n  - Type: processor_parse_regex_native\n    SourceKey: content\n    Regex: (\\d+) (\\w+) (.*)\n    Keys: [seq, tag, msg]\n",
    );
    let agent = s.agent();
    let writer = {
        let log = log.clone();
        std::thread::spawn(move || {
            // 100 lines every 100 ms for 75 s.
            for block in 0..750 {
                append(&log, block * 100, 100, "outage");
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(5));
    let data = s.server.data.clone();
    let spare = Server::start(&s.path("spare"), &[]);
    drop(std::mem::replace(&mut s.server, spare));
    let down_at = Instant::now();
    std::thread::sleep(Duration::from_secs(60));
    let buffered = agent.metric("sluice_agent_batches_buffered_total");
    let buffer_bytes = agent.metric("sluice_agent_buffer_bytes");
    s.server = Server::start_on(&format!("127.0.0.1:{port}"), &data, &[]);
    note(&format!(
        "receiver down for {:.1?}: {buffered} batches ({buffer_bytes} bytes) buffered on disk",
        down_at.elapsed()
    ));
    writer.join().unwrap();
    let counts = wait_for_lines(port, "tag: outage", "seq", 75_000, Duration::from_secs(120));
    report("receiver down for 60 s", 75_000, counts);
    assert_eq!(counts, (75_000, 75_000), "agent log:\n{}", tail(&agent.log()));
    assert!(buffered > 0.0, "batches went through the disk buffer");
    assert!(agent.metric("sluice_agent_batches_replayed_total") >= buffered);
    // File order as delivered: ordered by when the receiver got each batch, the file's
    // sequence numbers never go back (a batch replayed out of order would).
    let row = sql_row(
        port,
        "tag: outage | select count(1) as back from (select cast(seq as bigint) as s, \
         lag(cast(seq as bigint)) over (order by received_ns, cast(seq as bigint)) as p from log) where s < p",
    );
    assert_eq!(row["back"], "0", "{row}");
    note("receiver down for 60 s: sequence numbers going back in the order received: 0");
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Multiline Java stack traces, JSON lines and an nginx access log parsed by an
/// unchanged LoongCollector config: GetLogs returns the fields, and `key: value` finds
/// them. This pipeline signs V1 (no Region).
#[test]
fn parsed_fields_come_back_as_fields() {
    let s = Setup::new();
    let port = s.server.port;
    let no_region = |yaml: String| yaml.replace("    Region: cn-hangzhou\n", "");
    let java = "2025-06-01 10:00:00.123 ERROR [main] c.e.Shop - checkout failed\n\
                java.lang.IllegalStateException: cart is empty\n\
                \tat com.example.Shop.checkout(Shop.java:42)\n\
                \tat com.example.Main.main(Main.java:7)\n\
                2025-06-01 10:00:01.000 INFO [main] c.e.Shop - retry ok\n";
    std::fs::write(s.path("logs/java.log"), java).unwrap();
    let yaml = pipeline_yaml(
        &s.path("logs/java.log").display().to_string(),
        port,
        "    Multiline:\n      StartPattern: \\d+-\\d+-\\d+ \\d+:\\d+:\\d+\\.\\d+ .*\n",
        "processors:\n  - Type: processor_parse_regex_native\n    SourceKey: content\n    \
         Regex: (\\S+ \\S+) (\\w+) \\[(\\w+)\\] (\\S+) - ([\\s\\S]*)\n    Keys: [time, level, thread, logger, message]\n",
    );
    // With a shard hash key: sent to /shards/route?key=.
    let yaml =
        no_region(yaml).replace("    TelemetryType: logs\n", "    TelemetryType: logs\n    ShardHashKeys: [level]\n");
    std::fs::write(s.path("conf/java.yaml"), yaml).unwrap();

    std::fs::write(
        s.path("logs/events.json"),
        "{\"event\":\"signup\",\"user\":\"ann\",\"plan\":{\"tier\":\"pro\"},\"n\":3}\n{\"event\":\"login\",\"user\":\"bob\"}\n",
    )
    .unwrap();
    let yaml = pipeline_yaml(
        &s.path("logs/*.json").display().to_string(),
        port,
        "",
        "processors:\n  - Type: processor_parse_json_native\n    SourceKey: content\n",
    );
    // zstd instead of lz4.
    let yaml =
        no_region(yaml).replace("    TelemetryType: logs\n", "    TelemetryType: logs\n    CompressType: zstd\n");
    std::fs::write(s.path("conf/json.yaml"), yaml).unwrap();

    // A GBK file ("订单已支付 paid", GBK-encoded): stored as UTF-8.
    let gbk: &[u8] = &[0xB6, 0xA9, 0xB5, 0xA5, 0xD2, 0xD1, 0xD6, 0xA7, 0xB8, 0xB6, b' ', b'p', b'a', b'i', b'd', b'\n'];
    std::fs::write(s.path("logs/legacy.log"), gbk).unwrap();
    let yaml = pipeline_yaml(&s.path("logs/legacy.log").display().to_string(), port, "    FileEncoding: gbk\n", "");
    std::fs::write(s.path("conf/gbk.yaml"), yaml).unwrap();

    // The access log config as LoongCollector's documentation gives it, unchanged.
    std::fs::write(
        s.path("logs/access.log"),
        "127.0.0.1 - - [07/Jul/2022:10:43:30 +0800] \"POST /PutData?Category=YunOsAccountOpLog\" 0.024 18204 200 37 \"-\" \"aliyun-sdk-java\"\n\
         10.0.0.9 - - [07/Jul/2022:10:43:31 +0800] \"GET /index.html\" 0.001 512 404 0 \"-\" \"curl/8.5.0\"\n",
    )
    .unwrap();
    let access = format!(
        r#"enable: true
inputs:
  - Type: input_file
    FilePaths:
      - {}/logs/access.log
processors:
  - Type: processor_parse_regex_native
    SourceKey: content
    Regex: ([\d\.]+) \S+ \S+ \[(\S+) \S+\] \"(\w+) ([^\\"]*)\" ([\d\.]+) (\d+) (\d+) (\d+|-) \"([^\\"]*)\" \"([^\\"]*)\"
    Keys:
      - ip
      - time
      - method
      - url
      - request_time
      - request_length
      - status
      - length
      - ref_url
      - browser
  - Type: processor_parse_timestamp_native
    SourceKey: time
    SourceFormat: '%d/%b/%Y:%H:%M:%S'
    SourceTimezone: GMT+08:00
flushers:
  - Type: flusher_sls
    Project: demo
    Logstore: app
    Endpoint: http://127.0.0.1:{port}
    AccessKeyId: sluice-demo
    AccessKeySecret: sluice-demo-secret
"#,
        s.dir.path().display()
    );
    std::fs::write(s.path("conf/access.yaml"), access).unwrap();
    let agent = s.agent();

    // The Java record waits for the next start line (or the 5 s flush timeout): both come.
    let start = Instant::now();
    let wide = |query: &str| {
        let (status, body, _) = sluice_tests::get_logs_in(
            port,
            ("sluice-demo", "sluice-demo-secret"),
            "demo",
            (1_600_000_000, sluice_tests::cases::now() + 60),
            query,
        );
        assert_eq!(status, 200, "{body}");
        body.as_array().cloned().unwrap_or_default()
    };
    let mut errors = Vec::new();
    while start.elapsed() < Duration::from_secs(60) {
        errors = wide("level: ERROR and logger: c.e.Shop");
        let statuses = wide("status: 404 and method: GET");
        let pro = wide("event: signup and user: ann");
        let infos = wide("level: INFO");
        let legacy = wide("paid");
        if errors.len() == 1 && statuses.len() == 1 && pro.len() == 1 && infos.len() == 1 && legacy.len() == 1 {
            assert_eq!(legacy[0]["content"], "订单已支付 paid");
            assert_eq!(statuses[0]["url"], "/index.html");
            assert_eq!(statuses[0]["browser"], "curl/8.5.0");
            // 10:43:31 at GMT+08:00.
            assert_eq!(statuses[0]["__time__"].to_string().trim_matches('"'), "1657161811");
            assert_eq!(pro[0]["plan"], "{\"tier\":\"pro\"}");
            assert_eq!(pro[0]["n"], "3");
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(errors.len(), 1, "agent log:\n{}", tail(&agent.log()));
    let message = errors[0]["message"].as_str().unwrap();
    assert!(message.starts_with(
        "checkout failed\njava.lang.IllegalStateException: cart is empty\n\tat com.example.Shop.checkout"
    ));
    assert!(message.ends_with("(Main.java:7)"), "{message}");
    assert_eq!(errors[0]["thread"], "main");
    assert_eq!(errors[0]["__tag__:__path__"], s.path("logs/java.log").display().to_string());
    note(
        "parsing: a 4-line Java stack trace as one log with level, thread, logger and message; JSON lines \
         as fields (zstd); a GBK file as UTF-8; the LoongCollector access-log config unchanged, found by `status: 404 and method: GET` \
         with __time__ from its own time field",
    );
}

/// Mistakes name the file and the key, in `sluice-agent check` and while running; the
/// other pipelines keep running.
#[test]
fn config_mistakes_name_file_and_key() {
    let s = Setup::new();
    s.pipeline("good", "logs/good.log", "", "");
    std::fs::write(
        s.path("conf/typo.yaml"),
        pipeline_yaml(
            "/tmp/x.log",
            s.server.port,
            "    MaxDirSearchDepht: 3\n",
            "processors:\n  - Type: processor_parse_regx_native\n",
        ),
    )
    .unwrap();
    std::fs::write(s.path("conf/broken.json"), "{\"inputs\": [").unwrap();

    let out = std::process::Command::new(agent_bin()).arg("check").arg(s.path("conf")).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(!out.status.success());
    let conf = s.path("conf").display().to_string();
    assert!(text.contains(&format!("{conf}/broken.json: error: not valid JSON")), "{text}");
    assert!(
        text.contains(&format!("{conf}/typo.yaml: warning: inputs[0].MaxDirSearchDepht: unknown key for input_file")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "{conf}/typo.yaml: error: processors[0].Type: unknown processor type \"processor_parse_regx_native\""
        )),
        "{text}"
    );
    assert!(text.contains("1 pipeline(s) ready, 2 error(s), 1 warning(s)"), "{text}");

    append(&s.path("logs/good.log"), 0, 10, "good");
    let agent = s.agent();
    let counts = wait_for_lines(s.server.port, "good", "content", 10, Duration::from_secs(30));
    assert_eq!(counts, (10, 10));
    let log = agent.log();
    assert!(log.contains("typo.yaml: error: processors[0].Type: unknown processor type"), "{log}");
    assert!(log.contains("broken.json: error: not valid JSON"), "{log}");
    note(&format!("config mistakes: check said {:?}; the good pipeline's 10 lines arrived", text.lines().last()));
}

/// The same agent against the edge worker under `wrangler dev` (writing to Garage), read
/// back by `sluice serve` from Garage: a storm of rename rotations, 0 lost, 0 duplicated.
#[test]
fn through_the_edge_worker() {
    use sluice_tests::garage::{Garage, REGION};
    use sluice_tests::workerd::{DEMO_CONFIG, Worker, WorkerStorage};
    const LINES: u64 = 50_000;
    let garage = Garage::start();
    let worker = Worker::start(WorkerStorage::S3(&garage));
    let dir = tempfile::tempdir().unwrap();
    for d in ["logs", "conf", "agent"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "{DEMO_CONFIG}\n[compaction]\ninterval_secs = 0\n[storage]\nendpoint = \"{}\"\nregion = \"{REGION}\"\n\
             access_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
            garage.endpoint(),
            garage.key_id,
            garage.secret
        ),
    )
    .unwrap();
    let log = dir.path().join("logs/app.log");
    std::fs::write(dir.path().join("conf/edge.yaml"), pipeline_yaml(&log.display().to_string(), worker.port, "", ""))
        .unwrap();
    let agent = Agent::start(&dir.path().join("conf"), &dir.path().join("agent"), &[]);
    let mut generation = 0;
    for block in 0..LINES / 500 {
        append(&log, block * 500, 500, "edge");
        if block % 10 == 9 {
            generation += 1;
            std::fs::rename(&log, dir.path().join(format!("logs/app.log.{generation}"))).unwrap();
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let server = Server::start(Path::new("s3://sluice"), &["--config", config.to_str().unwrap()]);
    let counts = wait_for_lines(server.port, "edge", "content", LINES, Duration::from_secs(120));
    report(&format!("through the edge worker ({generation} rotations)"), LINES, counts);
    assert_eq!(counts, (LINES, LINES), "agent log:\n{}", tail(&agent.log()));
}
