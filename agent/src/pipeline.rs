//! One running pipeline: a collector thread (scan, read, cut, process, batch) and a
//! sender task (send, retry, buffer on disk, checkpoint), joined by a small bounded
//! channel, so that a sender that cannot keep up stops the reading, not the other way.
//!
//! The sender keeps a file's batches in order: one batch of a file is in flight at a
//! time, a failed batch goes back to the front, and once the receiver is unreachable
//! everything goes through the disk buffer, oldest first, until it is empty again.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::batch::{Batch, Batcher, Identity};
use crate::checkpoint::{Book, FileId, Store};
use crate::config::{Encoding, Pipeline};
use crate::limits::Governor;
use crate::metrics::PipelineMetrics;
use crate::process::{self, Log};
use crate::send::{Outcome, Target};
use crate::spool::Spool;
use crate::tail::{Read, Tailer, lock};
use crate::watch::Watcher;

/// Settings shared by every pipeline.
#[derive(Clone, Debug)]
pub struct Settings {
    pub data_dir: PathBuf,
    pub buffer_max_bytes: u64,
    pub max_in_flight: usize,
    /// How often files are looked for when nothing woke the collector.
    pub scan_interval: Duration,
}

/// A running pipeline.
#[derive(Debug)]
pub struct Running {
    pub name: String,
    stop: Arc<AtomicBool>,
    collector: Option<std::thread::JoinHandle<()>>,
    sender: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Stops reading, lets the sender finish or buffer what it holds, and waits for both.
    pub async fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(c) = self.collector.take() {
            let _ = tokio::task::spawn_blocking(move || c.join()).await;
        }
        let _ = self.sender.await;
    }
}

/// Starts `pipeline`.
pub fn start(
    pipeline: Pipeline,
    settings: &Settings,
    identity: Identity,
    client: reqwest::Client,
    governor: Arc<Governor>,
    metrics: Arc<PipelineMetrics>,
) -> anyhow::Result<Running> {
    let dir = settings.data_dir.join("pipelines").join(&pipeline.name);
    std::fs::create_dir_all(&dir)?;
    let mut store = Store::new(&dir);
    let (book, resumed) = match store.load()? {
        Some(book) => (book, true),
        None => (Book::default(), false),
    };
    let book = Arc::new(Mutex::new(book));
    let spool = Spool::open(&dir.join("buffer"), settings.buffer_max_bytes)?;
    let refused = Spool::open(&dir.join("refused"), u64::MAX)?;
    let (tx, rx) = mpsc::channel(2);
    let stop = Arc::new(AtomicBool::new(false));

    let sender = Sender {
        name: pipeline.name.clone(),
        target: Arc::new(Target::new(&pipeline.flusher)),
        client,
        book: book.clone(),
        store,
        spool,
        refused,
        metrics: metrics.clone(),
        governor: governor.clone(),
        max_in_flight: settings.max_in_flight.max(1),
    };
    let sender = tokio::spawn(sender.run(rx));
    let collector = {
        let stop = stop.clone();
        let scan_interval = settings.scan_interval;
        std::thread::Builder::new()
            .name(format!("collect-{}", pipeline.name))
            .spawn(move || collect(&pipeline, book, resumed, tx, &metrics, &governor, &stop, identity, scan_interval))?
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Running { name, stop, collector: Some(collector), sender })
}

#[allow(clippy::too_many_arguments)]
fn collect(
    p: &Pipeline,
    book: Arc<Mutex<Book>>,
    resumed: bool,
    tx: mpsc::Sender<Batch>,
    metrics: &PipelineMetrics,
    governor: &Governor,
    stop: &AtomicBool,
    identity: Identity,
    scan_interval: Duration,
) {
    let mut tailer = Tailer::new(p.input.clone(), book, resumed);
    let mut batcher = Batcher::new(p.flusher.batch, identity, p.flusher.shard_hash_keys.clone());
    let mut watcher = Watcher::new();
    let flush_after = Duration::from_secs(p.input.flush_timeout_secs);
    let mut reads: Vec<Read> = Vec::new();
    let mut batches: Vec<Batch> = Vec::new();
    let mut last_time: HashMap<FileId, u64> = HashMap::new();
    let mut topics: HashMap<Arc<str>, String> = HashMap::new();
    let mut last_scan: Option<Instant> = None;
    let mut names_changed = true;
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if names_changed || last_scan.is_none_or(|t| now.duration_since(t) >= scan_interval) {
            tailer.scan(now);
            watcher.watch(&tailer.dirs);
            last_scan = Some(now);
            PipelineMetrics::set(&metrics.files_open, tailer.open_files() as u64);
            *lock(&metrics.lags) = tailer.lags();
        }
        governor.throttle(metrics, tx.capacity() < tx.max_capacity());

        reads.clear();
        tailer.read(now, flush_after, &mut reads);
        let wall = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
        for read in reads.drain(..) {
            PipelineMetrics::add(&metrics.bytes_read, read.bytes);
            let topic = topics.entry(read.path.clone()).or_insert_with(|| p.topic.for_path(&read.path)).clone();
            // Collection time, strictly increasing per file, so that time order is file order.
            let last = last_time.entry(read.id).or_insert(0);
            let utf8 = p.input.encoding == Encoding::Utf8 && read.cuts.all_utf8();
            let mut lines = 0;
            if utf8 && p.processors.is_empty() && p.flusher.shard_hash_keys.is_empty() {
                // The common case: single lines sent as they are.
                let clock = || {
                    *last = (*last + 1).max(wall);
                    ((*last / 1_000_000_000) as u32, (*last % 1_000_000_000) as u32)
                };
                let counted = read.cuts.iter().inspect(|(text, _)| lines += u64::from(!text.is_empty()));
                batcher.add_lines(read.id, read.epoch, &read.path, &topic, counted, clock, now, &mut batches);
                PipelineMetrics::add(&metrics.lines_read, lines);
                tailer.recycle(read.cuts);
                continue;
            }
            for (text, end) in read.cuts.iter() {
                if text.is_empty() {
                    batcher.advance(read.id, read.epoch, end);
                    continue;
                }
                lines += 1;
                *last = (*last + 1).max(wall);
                let time = ((*last / 1_000_000_000) as u32, (*last % 1_000_000_000) as u32);
                // Text as UTF-8: decoded (GBK), or with replacement characters where it is
                // not valid; a buffer that is valid as a whole (nearly always) is used as it
                // lies, each line being valid too (lines end at an ASCII newline).
                let decode = || -> std::borrow::Cow<'_, str> {
                    match p.input.encoding {
                        Encoding::Utf8 => String::from_utf8_lossy(text),
                        Encoding::Gbk => encoding_rs::GBK.decode_without_bom_handling(text).0,
                    }
                };
                if p.processors.is_empty() {
                    let decoded = if utf8 { None } else { Some(decode()) };
                    let content = decoded.as_ref().map_or(text, |d| d.as_bytes());
                    batcher.add(
                        read.id,
                        read.epoch,
                        &read.path,
                        &topic,
                        end,
                        time,
                        &[("content", content)],
                        now,
                        &mut batches,
                    );
                    continue;
                }
                let mut log = Log::new(decode().into_owned(), time.0, time.1);
                let outcome = process::run(&p.processors, &mut log);
                PipelineMetrics::add(&metrics.parse_failures, u64::from(outcome.parse_failures));
                if log.fields.is_empty() {
                    PipelineMetrics::add(&metrics.logs_discarded, 1);
                    batcher.advance(read.id, read.epoch, end);
                    continue;
                }
                let fields: Vec<(&str, &[u8])> = log.fields.iter().map(|(k, v)| (k.as_str(), v.as_bytes())).collect();
                let time = (log.time_secs, log.time_ns);
                batcher.add(read.id, read.epoch, &read.path, &topic, end, time, &fields, now, &mut batches);
            }
            PipelineMetrics::add(&metrics.lines_read, lines);
            tailer.recycle(read.cuts);
        }
        if topics.len() > 10_000 {
            topics.clear();
        }
        batcher.due(now, &mut batches);
        for b in batches.drain(..) {
            if tx.blocking_send(b).is_err() {
                return;
            }
        }
        if tailer.behind() {
            // Still catching up: look at the names without waiting, so that a file
            // created and rotated away meanwhile is opened while it is still there.
            names_changed = watcher.wait(Duration::ZERO).names_changed;
            continue;
        }
        let mut wait = if watcher.is_active() { scan_interval } else { scan_interval.min(Duration::from_millis(200)) };
        if let Some(due) = batcher.next_due() {
            wait = wait.min(due.saturating_duration_since(Instant::now()));
        }
        // Flush timeouts of unfinished lines are checked at least every second.
        wait = wait.min(Duration::from_secs(1));
        names_changed = watcher.wait(wait).names_changed;
    }
    // Stopping: what is batched goes to the sender, which sends or buffers it.
    batcher.drain(&mut batches);
    for b in batches.drain(..) {
        if tx.blocking_send(b).is_err() {
            return;
        }
    }
}

/// A send's result, and whether the batch came from the disk buffer.
type Sent = (Batch, Outcome, usize, bool);

struct Sender {
    name: String,
    target: Arc<Target>,
    client: reqwest::Client,
    book: Arc<Mutex<Book>>,
    store: Store,
    spool: Spool,
    refused: Spool,
    metrics: Arc<PipelineMetrics>,
    governor: Arc<Governor>,
    max_in_flight: usize,
}

/// Batches the sender holds beyond those in flight. Few: the files are the buffer, and
/// a slow receiver should stop reading rather than fill memory.
const QUEUE: usize = 4;
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const BLOCKED_RETRY: Duration = Duration::from_secs(30);

impl Sender {
    async fn run(mut self, mut rx: mpsc::Receiver<Batch>) {
        let mut queue: VecDeque<Batch> = VecDeque::new();
        let mut inflight: JoinSet<Sent> = JoinSet::new();
        let mut busy: HashSet<FileId> = HashSet::new();
        let mut replaying = false;
        // A buffer left by an earlier run is sent before anything new.
        let mut down = !self.spool.is_empty();
        let mut paused_until: Option<Instant> = None;
        let mut next_try = Instant::now();
        let mut backoff = Duration::from_millis(500);
        let mut closed = false;
        self.gauges();
        loop {
            let dirty;
            tokio::select! {
                Some(joined) = inflight.join_next(), if !inflight.is_empty() => {
                    let mut results = vec![joined];
                    while let Some(more) = inflight.try_join_next() {
                        results.push(more);
                    }
                    let mut moved = false;
                    for result in results {
                        let Ok((batch, outcome, bytes, from_spool)) = result else { continue };
                        busy.remove(&batch.file);
                        if from_spool {
                            replaying = false;
                        }
                        moved |= self.settle(batch, outcome, bytes, from_spool, &mut queue, &mut down, &mut paused_until, &mut next_try, &mut backoff);
                    }
                    dirty = moved;
                }
                received = rx.recv(), if !closed && queue.len() < QUEUE => {
                    match received {
                        Some(b) => queue.push_back(b),
                        None => closed = true,
                    }
                    dirty = false;
                }
                () = tokio::time::sleep_until(paused_until.unwrap_or(next_try).into()),
                    if paused_until.is_some() || (down && !replaying && inflight.is_empty()) => {
                    dirty = false;
                }
            }
            let now = Instant::now();
            if paused_until.is_some_and(|t| now >= t) {
                paused_until = None;
            }
            let mut dirty = dirty;
            if paused_until.is_none() {
                if !down {
                    // Send: the first queued batch of each file not already in flight.
                    let mut skipped: HashSet<FileId> = HashSet::new();
                    let mut i = 0;
                    while inflight.len() < self.max_in_flight && i < queue.len() {
                        let file = queue[i].file;
                        if busy.contains(&file) || skipped.contains(&file) {
                            skipped.insert(file);
                            i += 1;
                            continue;
                        }
                        let batch = queue.remove(i).expect("in range");
                        busy.insert(file);
                        self.spawn(&mut inflight, batch, false);
                    }
                } else {
                    if inflight.is_empty() || replaying {
                        // Unreachable: everything waits on disk, in order.
                        while let Some(b) = queue.front() {
                            if !self.spool.has_room(b) {
                                break;
                            }
                            let b = queue.pop_front().expect("non-empty");
                            match self.spool.push(&b) {
                                Ok(()) => {
                                    PipelineMetrics::add(&self.metrics.batches_buffered, 1);
                                    dirty |= lock(&self.book).ack(b.file, b.epoch, b.end);
                                }
                                Err(e) => {
                                    tracing::error!(pipeline = %self.name, error = %e, "disk buffer write failed; the batch waits in memory");
                                    queue.push_front(b);
                                    break;
                                }
                            }
                        }
                    }
                    if !replaying && inflight.is_empty() && now >= next_try {
                        match self.spool.front() {
                            Ok(Some(b)) => {
                                replaying = true;
                                self.spawn(&mut inflight, b, true);
                            }
                            Ok(None) => {
                                down = false;
                                backoff = Duration::from_millis(500);
                            }
                            Err(e) => tracing::error!(pipeline = %self.name, error = %e, "disk buffer read failed"),
                        }
                    }
                }
            }
            if dirty {
                let book = lock(&self.book).clone();
                if let Err(e) = self.store.save(&book) {
                    tracing::error!(pipeline = %self.name, error = %e, "checkpoint write failed");
                }
            }
            self.gauges();
            // Stopping: once nothing is in flight. What is still queued (the receiver refuses
            // us, or the buffer is full) was never acknowledged, so it is read again after a
            // restart; the buffer is replayed then.
            let stuck = paused_until.is_some() || (down && !queue.front().is_some_and(|b| self.spool.has_room(b)));
            if closed && inflight.is_empty() && (queue.is_empty() || stuck) {
                break;
            }
        }
    }

    fn spawn(&self, inflight: &mut JoinSet<Sent>, batch: Batch, from_spool: bool) {
        let (target, client, governor) = (self.target.clone(), self.client.clone(), self.governor.clone());
        inflight.spawn(async move {
            let (outcome, bytes) = target.put_logs(&client, &batch).await;
            // Over the bandwidth limit, the answer waits: the next send starts later.
            governor.bandwidth(bytes as u64).await;
            (batch, outcome, bytes, from_spool)
        });
    }

    /// What an answer does. Returns whether the checkpoint moved.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &mut self,
        batch: Batch,
        outcome: Outcome,
        bytes: usize,
        from_spool: bool,
        queue: &mut VecDeque<Batch>,
        down: &mut bool,
        paused_until: &mut Option<Instant>,
        next_try: &mut Instant,
        backoff: &mut Duration,
    ) -> bool {
        let m = &self.metrics;
        match outcome {
            Outcome::Accepted => {
                PipelineMetrics::add(&m.batches_sent, 1);
                PipelineMetrics::add(&m.logs_sent, batch.lines);
                PipelineMetrics::add(&m.bytes_sent, bytes as u64);
                if from_spool {
                    PipelineMetrics::add(&m.batches_replayed, 1);
                    if let Err(e) = self.spool.pop_front() {
                        tracing::error!(pipeline = %self.name, error = %e, "disk buffer remove failed");
                    }
                    *backoff = Duration::from_millis(500);
                    *next_try = Instant::now();
                    if self.spool.is_empty() {
                        tracing::info!(pipeline = %self.name, "receiver back; disk buffer replayed");
                    }
                    false
                } else {
                    lock(&self.book).ack(batch.file, batch.epoch, batch.end)
                }
            }
            Outcome::Retry { code, message } => {
                PipelineMetrics::add(&m.batches_retried, 1);
                if !*down {
                    tracing::warn!(pipeline = %self.name, code, message, "receiver unavailable; buffering on disk until it is back");
                }
                *down = true;
                *next_try = Instant::now() + *backoff;
                *backoff = (*backoff * 2).min(MAX_BACKOFF);
                if !from_spool {
                    queue.push_front(batch);
                }
                false
            }
            Outcome::Blocked { code, message } => {
                PipelineMetrics::add(&m.batches_retried, 1);
                tracing::error!(pipeline = %self.name, code, message, "the receiver refuses this pipeline's requests; trying again in 30 s (files wait)");
                *paused_until = Some(Instant::now() + BLOCKED_RETRY);
                if !from_spool {
                    queue.push_front(batch);
                }
                false
            }
            Outcome::Refused { status, code, message } => {
                PipelineMetrics::add(&m.batches_refused, 1);
                tracing::error!(pipeline = %self.name, status, code, message, lines = batch.lines, "batch refused; kept in the refused/ directory");
                if let Err(e) = self.refused.push(&batch) {
                    tracing::error!(pipeline = %self.name, error = %e, "could not keep the refused batch");
                }
                if from_spool {
                    let _ = self.spool.pop_front();
                    *next_try = Instant::now();
                    false
                } else {
                    lock(&self.book).ack(batch.file, batch.epoch, batch.end)
                }
            }
        }
    }

    fn gauges(&self) {
        PipelineMetrics::set(&self.metrics.buffer_bytes, self.spool.bytes());
        PipelineMetrics::set(&self.metrics.buffer_batches, self.spool.len() as u64);
    }
}
