//! `sluice`: the native command line.
//!
//! - `sluice serve`: ingest APIs on one port, raw batches into the object store, and
//!   compaction in the background. With no arguments it runs the development setup:
//!   `./data`, `127.0.0.1:8080`, any project and logstore name, the demo credentials.
//! - `sluice compact`: one compaction run, then exit (for cron or a Kubernetes CronJob).

/// Compaction builds and drops buffers of hundreds of megabytes; mimalloc reuses freed
/// memory where glibc gives it back to the kernel and faults it in again (README,
/// "Compaction").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use sluice_compactor::api::{self, AppState};
use sluice_compactor::compact::{self, CompactError, CompactOptions, Progress};
use sluice_compactor::lake::{store as storage, table};
use sluice_compactor::maintain::{self, MaintenanceSummary};
use sluice_compactor::settings::{DEFAULT_DATA_DIR, DEFAULT_LISTEN, Settings};
use sluice_ingest::config::{
    DEMO_LTS_TOKEN, DEMO_PROLIFERATE_KEY, DEMO_PROLIFERATE_PROJECT, DEMO_SLS_ACCESS_KEY_ID, DEMO_SLS_ACCESS_KEY_SECRET,
};
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Parser, Debug)]
#[command(name = "sluice", version, about = "Logs at the edge, searchable at data-lake cost")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the ingest APIs (SLS PutLogs, LTS reporting, Proliferate batches).
    Serve(ServeArgs),
    /// Compact raw batches into each logstore's Delta table once, then exit.
    Compact(CompactArgs),
}

#[derive(clap::Args, Debug, Default)]
struct CompactArgs {
    /// Where data is: a directory, or a URL (s3://bucket/prefix, file:///path)
    /// [default: ./data, or [storage] url]
    #[arg(long)]
    data: Option<String>,
    /// Configuration file (TOML)
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop as if crashed at a point of the first commit (for tests)
    #[arg(long, hide = true)]
    fail_at: Option<sluice_compactor::compact::FailPoint>,
}

#[derive(clap::Args, Debug, Default)]
struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:8080, or [server] listen]
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Where data goes: a directory, or a URL (s3://bucket/prefix, file:///path)
    /// [default: ./data, or [storage] url]
    #[arg(long)]
    data: Option<String>,
    /// Configuration file (TOML); without it, the development setup with demo credentials
    #[arg(long)]
    config: Option<PathBuf>,
}

/// The clock: nanoseconds since the epoch. Read here and at the edge of each request
/// (`api`), and passed down.
fn now_ns() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,sluice=info".into()),
        )
        .with_writer(std::io::stderr)
        // Color codes only for a terminal, not in a file or a pipe.
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let command = cli.command.unwrap_or(Command::Serve(ServeArgs::default()));
    // Queries get threads of their own, so that they never delay ingest.
    let queries = match &command {
        Command::Serve(_) => match api::query_runtime() {
            Ok(queries) => Some(queries),
            Err(e) => {
                eprintln!("error: cannot start the query runtime: {e}");
                return std::process::ExitCode::FAILURE;
            }
        },
        Command::Compact(_) => None,
    };
    let query_handle = queries.as_ref().map(|q| q.handle().clone());
    let result = runtime.block_on(async {
        match (command, query_handle) {
            (Command::Serve(args), Some(queries)) => serve(args, queries).await,
            (Command::Compact(args), _) => compact(args).await,
            (Command::Serve(_), None) => Err(anyhow::anyhow!("no query runtime")),
        }
    });
    if let Some(queries) = queries {
        queries.shutdown_background();
    }
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if matches!(e.downcast_ref(), Some(CompactError::Injected(_))) {
                return std::process::ExitCode::from(3);
            }
            std::process::ExitCode::FAILURE
        }
    }
}

fn location(data: Option<&String>, settings: &Settings) -> String {
    match (data, &settings.storage.url) {
        (Some(data), _) => data.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => DEFAULT_DATA_DIR.to_owned(),
    }
}

/// A progress bar on a terminal, nothing otherwise.
struct Bar(indicatif::ProgressBar);

impl Progress for Bar {
    fn planned(&self, _batches: usize, bytes: u64) {
        self.0.inc_length(bytes);
    }
    fn done(&self, _batches: usize, bytes: u64) {
        self.0.inc(bytes);
    }
}

async fn compact(args: CompactArgs) -> anyhow::Result<()> {
    let settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::development(),
    };
    let storage = storage::open(&location(args.data.as_ref(), &settings), &settings.storage)?;
    storage::check(&storage).await?;
    storage::remove_stale_staging(&storage, now_ns());
    let mut options = settings.compaction.options();
    options.fail_at = args.fail_at;
    if !storage::honours_conditional_writes(storage.store.as_ref(), now_ns()).await? {
        tracing::warn!(
            storage = storage.description,
            "this store ignores conditional writes (If-None-Match): run one compactor at a time \
             (a single sluice compact schedule, or sluice serve's background compaction in one process)"
        );
    }
    let bar = if std::io::stderr().is_terminal() {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} compacting [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    } else {
        indicatif::ProgressBar::hidden()
    };
    let started = std::time::Instant::now();
    let summary = compact::compact_all(&storage, &options, &Bar(bar.clone()), now_ns()).await?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    let rate = summary.bytes_in as f64 / 1e6 / seconds.max(1e-9);
    println!("sluice: compacted {summary} in {seconds:.2} s ({rate:.1} MB/s)");
    let (maintained, maintenance_failed) = maintain_all(&storage, &settings, now_ns()).await?;
    if maintained != MaintenanceSummary::default() {
        println!(
            "sluice: merged {} small files in {} partitions, expired {} files, vacuumed {} files",
            maintained.merged_files, maintained.merges, maintained.expired_files, maintained.vacuumed_files
        );
    }
    tracing::info!(
        batches = summary.batches,
        records = summary.records,
        bytes_in = summary.bytes_in,
        bytes_out = summary.bytes_out,
        seconds,
        "compaction finished"
    );
    let failed: Vec<String> = summary
        .failed
        .iter()
        .map(|f| format!("compacting {f}"))
        .chain(maintenance_failed.iter().map(|f| format!("maintaining {f}")))
        .collect();
    if !failed.is_empty() {
        anyhow::bail!("some logstores failed (the others are done):\n  {}", failed.join("\n  "));
    }
    Ok(())
}

/// Merges small files, applies retention and vacuums every table as of `now_ns`; a table
/// that fails is reported (`project/logstore: why`, with the others done) rather than
/// stopping the rest.
async fn maintain_all(
    storage: &storage::Storage,
    settings: &Settings,
    now_ns: i64,
) -> anyhow::Result<(MaintenanceSummary, Vec<String>)> {
    let options = settings.compaction.maintenance();
    let mut total = MaintenanceSummary::default();
    let mut failed = Vec::new();
    for (project, logstore) in table::logstores_with_tables(storage).await? {
        let retention = settings.ingest.logstore(&project, &logstore).and_then(|l| l.retention_days);
        match maintain::maintain(storage, &project, &logstore, retention, &options, now_ns).await {
            Ok(done) => {
                total.merged_files += done.merged_files;
                total.merges += done.merges;
                total.expired_files += done.expired_files;
                total.vacuumed_files += done.vacuumed_files;
            }
            Err(error) => {
                tracing::error!(project, logstore, %error, "maintaining this table failed; going on with the others");
                failed.push(format!("{project}/{logstore}: {error}"));
            }
        }
    }
    Ok((total, failed))
}

/// Compacts every `interval`, and maintains the tables every `maintenance_interval`, for
/// as long as the server runs.
async fn compact_in_background(storage: storage::Storage, settings: Settings) {
    let options: CompactOptions = settings.compaction.options();
    let interval = std::time::Duration::from_secs(settings.compaction.interval_secs);
    let maintenance_every = std::time::Duration::from_secs(settings.compaction.maintenance_interval_secs.max(1));
    let mut last_maintenance = std::time::Instant::now();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match compact::compact_all(&storage, &options, &compact::Quiet, now_ns()).await {
            Ok(summary) if summary.batches > 0 || summary.already_compacted > 0 || !summary.failed.is_empty() => {
                tracing::info!(%summary, "background compaction")
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "background compaction failed; retrying at the next interval"),
        }
        if last_maintenance.elapsed() >= maintenance_every {
            last_maintenance = std::time::Instant::now();
            if let Err(error) = maintain_all(&storage, &settings, now_ns()).await {
                tracing::warn!(%error, "table maintenance failed; retrying later");
            }
            storage::remove_stale_staging(&storage, now_ns());
        }
    }
}

async fn serve(args: ServeArgs, queries: tokio::runtime::Handle) -> anyhow::Result<()> {
    let settings = match &args.config {
        Some(path) => Settings::load(path)?,
        None => Settings::development(),
    };
    let listen: SocketAddr = match args.listen.or(settings.server.listen) {
        Some(addr) => addr,
        None => DEFAULT_LISTEN.parse().context("the default listen address")?,
    };
    if settings.ingest.has_demo_credentials() && !listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve the public demo credentials on {listen}\n  \
             hint: listen on a loopback address (--listen 127.0.0.1:8080), or pass --config with your own credentials"
        );
    }
    let storage = storage::open(&location(args.data.as_ref(), &settings), &settings.storage)?;
    storage::check(&storage).await?;
    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
            "address {listen} is already in use\n  hint: stop the other process, or pass --listen with another port (for example --listen 127.0.0.1:8081)"
        ),
        _ => anyhow::anyhow!("cannot listen on {listen}: {e}"),
    })?;
    let local = listener.local_addr()?;
    if settings.compaction.interval_secs > 0 {
        tokio::spawn(compact_in_background(storage.clone(), settings.clone()));
    }
    storage::remove_stale_staging(&storage, now_ns());
    let state = Arc::new(AppState::new(&settings, storage.clone(), queries));
    if settings.source.is_none() {
        println!("sluice: development setup (any project and logstore), demo credentials:");
        println!("  SLS          AccessKeyId {DEMO_SLS_ACCESS_KEY_ID}  AccessKeySecret {DEMO_SLS_ACCESS_KEY_SECRET}");
        println!("  LTS          X-Auth-Token {DEMO_LTS_TOKEN}");
        println!("  Proliferate  api_key {DEMO_PROLIFERATE_KEY} (project {DEMO_PROLIFERATE_PROJECT})");
    }
    println!("sluice: storing raw batches in {}", storage.description);
    println!("sluice: listening on http://{local}");
    println!("sluice: the log explorer is at http://{local}/");
    tracing::info!(%local, storage = storage.description, "serving");
    api::serve(listener, api::router(state), &settings.server, shutdown()).await;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut signal) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            signal.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
