//! `sluice-agent`: Sluice's file collector. It reads LoongCollector / iLogtail pipeline
//! configs from a directory, follows the files they name through rotation, parses them
//! with the native processors, and sends signed SLS PutLogs to a Sluice edge (or to SLS).
//!
//! What it guarantees: a file is checkpointed only at the end of a batch the receiver
//! acknowledged (or wrote to the disk buffer), so after a crash at most the batches in
//! flight are sent again; rotated and deleted files are read to their end; an
//! unreachable receiver fills a bounded disk buffer, then stops the reading.
//!
//! Parts: `config` (pipeline files), `discover` (paths), `tail` (files and rotation),
//! `multiline`, `process` (parsers), `batch` (LogGroups), `send` (PutLogs), `spool`
//! (the disk buffer), `checkpoint`, `pipeline` (collector thread and sender task),
//! `limits`, `metrics`, `watch` (inotify).

mod batch;
mod checkpoint;
mod config;
mod discover;
mod limits;
mod metrics;
mod multiline;
mod pipeline;
mod process;
mod send;
mod spool;
mod tail;
mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::{Parser, Subcommand};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{Issue, Pipeline, Severity};
use crate::limits::{Governor, Limits};
use crate::metrics::Registry;
use crate::pipeline::{Running, Settings};

#[derive(Parser, Debug)]
#[command(
    name = "sluice-agent",
    version,
    args_override_self = true,
    about = "Tails log files as LoongCollector pipelines say and sends them to Sluice (SLS PutLogs)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs every pipeline in the config directory, reloading it when files change.
    Run(RunArgs),
    /// Checks the pipeline configs in a directory (or one file) and says what is wrong.
    Check {
        /// A config directory or file.
        path: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// Where the pipeline configs are (`*.yaml`, `*.yml`, `*.json`, one per pipeline).
    #[arg(long, default_value = "/etc/sluice-agent/conf.d")]
    config_dir: PathBuf,
    /// Where checkpoints, the disk buffer and the agent's own log are kept.
    #[arg(long, default_value = "/var/lib/sluice-agent")]
    data_dir: PathBuf,
    /// The Prometheus endpoint (`/metrics`); port 0 picks one, printed at start.
    #[arg(long, default_value = "127.0.0.1:9966")]
    metrics_listen: String,
    /// CPU limit in cores (Logtail's `cpu_usage_limit`); 0 for none.
    #[arg(long, default_value_t = 0.4)]
    cpu_limit: f64,
    /// Resident memory limit in MiB (Logtail's `mem_usage_limit`); 0 for none.
    #[arg(long, default_value_t = 384)]
    mem_limit_mb: u64,
    /// Send bandwidth limit, compressed bytes per second (Logtail's `max_bytes_per_sec`); 0 for none.
    #[arg(long, default_value_t = 20 * 1024 * 1024)]
    max_bytes_per_sec: u64,
    /// The disk buffer's size per pipeline, in MiB.
    #[arg(long, default_value_t = 1024)]
    buffer_max_mb: u64,
    /// Batches in flight per pipeline (one per file at a time).
    #[arg(long, default_value_t = 4)]
    max_in_flight: usize,
    /// How often files are looked for when inotify did not say (milliseconds).
    #[arg(long, default_value_t = 1000)]
    scan_interval_ms: u64,
    /// The agent's own log; default `DATA_DIR/sluice-agent.log`.
    #[arg(long)]
    log_file: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { path } => {
            let (pipelines, issues) = read_configs(&path)?;
            for issue in &issues {
                println!("{issue}");
            }
            let errors = issues.iter().filter(|i| i.severity == Severity::Error).count();
            println!("{} pipeline(s) ready, {errors} error(s), {} warning(s)", pipelines.len(), issues.len() - errors);
            if errors > 0 {
                std::process::exit(1);
            }
            Ok(())
        }
        Command::Run(args) => {
            std::fs::create_dir_all(&args.data_dir).with_context(|| format!("creating {}", args.data_dir.display()))?;
            let log_path = args.log_file.clone().unwrap_or_else(|| args.data_dir.join("sluice-agent.log"));
            let log_file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .with_context(|| format!("opening {}", log_path.display()))?;
            use tracing_subscriber::fmt::writer::MakeWriterExt;
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
                )
                .with_ansi(false)
                .with_writer(std::io::stderr.and(std::sync::Mutex::new(log_file)))
                .init();
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            runtime.block_on(run(args))
        }
    }
}

/// Reads every config in `path` (a directory or a file).
fn read_configs(path: &Path) -> anyhow::Result<(Vec<Pipeline>, Vec<Issue>)> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("reading {}", path.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| config::is_config_file(p))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_owned()]
    };
    let env = |name: &str| std::env::var(name).ok();
    let (mut pipelines, mut issues) = (Vec::new(), Vec::new());
    for file in files {
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let (pipeline, found) = config::load(&file, &text, &env);
        issues.extend(found);
        pipelines.extend(pipeline);
    }
    Ok((pipelines, issues))
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let registry = Arc::new(Registry::default());
    let governor = Arc::new(Governor::new(
        Limits {
            cpu_cores: args.cpu_limit,
            memory_bytes: args.mem_limit_mb * 1024 * 1024,
            bytes_per_sec: args.max_bytes_per_sec,
        },
        registry.clone(),
    ));
    let settings = Settings {
        data_dir: args.data_dir.clone(),
        buffer_max_bytes: args.buffer_max_mb * 1024 * 1024,
        max_in_flight: args.max_in_flight,
        scan_interval: Duration::from_millis(args.scan_interval_ms.max(10)),
    };
    let client = reqwest::Client::builder()
        .user_agent(concat!("sluice-agent/", env!("CARGO_PKG_VERSION")))
        .pool_idle_timeout(Duration::from_secs(30))
        .build()?;

    let listener = tokio::net::TcpListener::bind(&args.metrics_listen)
        .await
        .with_context(|| format!("metrics on {}", args.metrics_listen))?;
    println!("sluice-agent: metrics on http://{}/metrics", listener.local_addr()?);
    tokio::spawn(serve_metrics(listener, registry.clone()));

    let hostname = rustix::system::uname().nodename().to_string_lossy().into_owned();
    let run_id = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    let mut running: BTreeMap<PathBuf, (String, Running)> = BTreeMap::new();
    let mut reported: BTreeMap<PathBuf, String> = BTreeMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
        // Which configs changed: compared by content.
        let mut current: BTreeMap<PathBuf, String> = BTreeMap::new();
        if let Ok(entries) = std::fs::read_dir(&args.config_dir) {
            for p in entries.flatten().map(|e| e.path()).filter(|p| config::is_config_file(p)) {
                if let Ok(text) = std::fs::read_to_string(&p) {
                    current.insert(p, text);
                }
            }
        }
        let stale: Vec<PathBuf> =
            running.iter().filter(|(p, (text, _))| current.get(*p) != Some(text)).map(|(p, _)| p.clone()).collect();
        for p in stale {
            if let Some((_, r)) = running.remove(&p) {
                let name = r.name.clone();
                tracing::info!(pipeline = %name, "config changed or removed; stopping the pipeline");
                r.stop().await;
                tracing::info!(pipeline = %name, "pipeline stopped");
            }
        }
        for (path, text) in &current {
            if running.contains_key(path) || reported.get(path) == Some(text) {
                continue;
            }
            let env = |name: &str| std::env::var(name).ok();
            let (pipeline, issues) = config::load(path, text, &env);
            for issue in &issues {
                match issue.severity {
                    Severity::Warning => tracing::warn!("{issue}"),
                    Severity::Error => tracing::error!("{issue}"),
                }
            }
            let Some(pipeline) = pipeline else {
                // Reported once per content; fixed content is read again.
                reported.insert(path.clone(), text.clone());
                continue;
            };
            reported.remove(path);
            let identity = batch::Identity {
                hostname: hostname.clone(),
                source: source_address(&send::Target::new(&pipeline.flusher)),
                run: run_id,
            };
            let (name, config_file) = (pipeline.name.clone(), pipeline.file.clone());
            let metrics = registry.pipeline(&name);
            match pipeline::start(pipeline, &settings, identity, client.clone(), governor.clone(), metrics) {
                Ok(r) => {
                    tracing::info!(pipeline = %name, config = %config_file.display(), "pipeline started");
                    running.insert(path.clone(), (text.clone(), r));
                }
                Err(e) => tracing::error!(pipeline = %name, error = %e, "pipeline could not start"),
            }
        }
        reported.retain(|p, _| current.contains_key(p));
    }
    tracing::info!("stopping");
    let stopping = futures_join(running.into_values().map(|(_, r)| r).collect());
    if tokio::time::timeout(Duration::from_secs(10), stopping).await.is_err() {
        tracing::warn!("pipelines did not stop in 10 s; what was not acknowledged is read again at the next start");
    }
    Ok(())
}

async fn futures_join(all: Vec<Running>) {
    let mut set = tokio::task::JoinSet::new();
    for r in all {
        set.spawn(r.stop());
    }
    while set.join_next().await.is_some() {}
}

/// The address this host reaches the receiver from (`__source__`): a UDP socket
/// "connected" to it says, without sending anything.
fn source_address(target: &send::Target) -> String {
    let authority = target.authority();
    let with_port = if authority.rsplit_once(':').is_some_and(|(_, p)| p.bytes().all(|b| b.is_ascii_digit())) {
        authority.to_owned()
    } else {
        format!("{authority}:443")
    };
    let found = std::net::ToSocketAddrs::to_socket_addrs(&with_port).ok().and_then(|mut a| a.next()).and_then(|addr| {
        let socket = std::net::UdpSocket::bind(if addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }).ok()?;
        socket.connect(addr).ok()?;
        socket.local_addr().ok()
    });
    found.map_or_else(|| "127.0.0.1".to_owned(), |a| a.ip().to_string())
}

async fn serve_metrics(listener: tokio::net::TcpListener, registry: Arc<Registry>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else { continue };
        let registry = registry.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let n = stream.read(&mut buf).await.unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let path = request.split_whitespace().nth(1).unwrap_or("");
            let (status, body) = if path == "/metrics" {
                let (cpu, rss) = metrics::process_usage();
                ("200 OK", registry.render(cpu, rss))
            } else {
                ("404 Not Found", "see /metrics\n".to_owned())
            };
            let response = format!(
                "HTTP/1.1 {status}\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = stream.write_all(response.as_bytes()).await;
        });
    }
}
