//! Following a pipeline's files through rotation.
//!
//! A file is followed by its open descriptor, so a file renamed away (`app.log` →
//! `app.log.1`) or deleted is still read to its end; the name is looked at again on every
//! scan, and a new file under it is a new file. A file whose size fell below what was read,
//! or whose first bytes changed, was truncated (`copytruncate`): it is read again from the
//! start, and a copy of its old content continues where the old content was read up to.
//! A rotated sibling (`app.log.1`) that changed after the last complete scan and that the
//! book does not know was rotated faster than a scan, or while the agent was stopped: it
//! is read whole. Files untouched for 12 hours are not read back (as Logtail), and a new
//! file found at start starts `TailSizeKB` before its end.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::checkpoint::{Book, Entry, FileId, Retired, SIGNATURE_BYTES, Signature};
use crate::config::FileInput;
use crate::discover;
use crate::multiline::{Assembler, Cuts};

/// How long a rotated or deleted file stays open after its last new byte.
pub const ROTATED_IDLE: Duration = Duration::from_secs(5);
/// Files not modified for this long are not read back when found.
pub const STALE: Duration = Duration::from_secs(12 * 3600);
/// At most this much is read from one file per pass.
const CHUNK: u64 = 1 << 20;

/// Logs cut from one file in one pass.
#[derive(Debug)]
pub struct Read {
    pub id: FileId,
    pub epoch: u32,
    pub path: Arc<str>,
    pub cuts: Cuts,
    /// Bytes read from the file in this pass.
    pub bytes: u64,
}

/// A file's lag: its path, and how many bytes are still to be read.
#[derive(Debug, Clone)]
pub struct Lag {
    pub path: Arc<str>,
    pub behind: u64,
}

#[derive(Debug)]
struct Open {
    file: File,
    /// The name it was found under (rotated copies keep it, for `__path__`).
    path: Arc<str>,
    signature: Signature,
    epoch: u32,
    /// Bytes read from the file so far.
    read: u64,
    /// Bytes of an unfinished last line, starting at `read - partial.len()`.
    partial: Vec<u8>,
    assembler: Assembler,
    /// Whether a configured path points at it now.
    primary: bool,
    last_data: Instant,
    size: u64,
    /// The directory the file really is in (behind a symlink), to watch.
    real_dir: Option<PathBuf>,
}

impl Open {
    /// Where what has not been cut yet starts.
    fn uncut_from(&self) -> u64 {
        self.assembler.holds_from().unwrap_or(self.read - self.partial.len() as u64)
    }
}

/// A file read to its end and closed; kept so that it is not read again.
#[derive(Debug)]
struct Closed {
    signature: Signature,
    read: u64,
}

/// One pipeline's files.
#[derive(Debug)]
pub struct Tailer {
    input: FileInput,
    book: Arc<Mutex<Book>>,
    open: BTreeMap<FileId, Open>,
    closed: HashMap<FileId, Closed>,
    /// The names rotated files come from: every configured file seen so far.
    bases: HashSet<PathBuf>,
    /// Whether a book was found at start (a restart rather than a first run).
    resumed: bool,
    scans: u64,
    pub dirs: Vec<PathBuf>,
    /// The read buffer, kept between passes.
    scratch: Vec<u8>,
    /// Buffers that went out with single-line cuts and came back ([`Tailer::recycle`]).
    spare: Vec<Vec<u8>>,
}

struct Candidate {
    path: PathBuf,
    primary: bool,
    id: FileId,
    size: u64,
    modified: SystemTime,
}

impl Tailer {
    pub fn new(input: FileInput, book: Arc<Mutex<Book>>, resumed: bool) -> Self {
        let bases = lock(&book).files.iter().map(|e| PathBuf::from(&e.path)).collect();
        Self {
            input,
            book,
            open: BTreeMap::new(),
            closed: HashMap::new(),
            bases,
            resumed,
            scans: 0,
            dirs: Vec::new(),
            scratch: Vec::new(),
            spare: Vec::new(),
        }
    }

    pub fn open_files(&self) -> usize {
        self.open.len()
    }

    pub fn lags(&self) -> Vec<Lag> {
        self.open.values().map(|o| Lag { path: o.path.clone(), behind: o.size.saturating_sub(o.read) }).collect()
    }

    /// Looks at the file system: new files, rotations, truncations, files to close.
    pub fn scan(&mut self, now: Instant) {
        let started = SystemTime::now();
        let found = discover::scan(&self.input);
        self.dirs = found.dirs.clone();
        let mut candidates: Vec<Candidate> = Vec::new();
        let mut seen_paths = HashSet::new();
        for path in &found.files {
            self.bases.insert(path.clone());
            if let Some(c) = candidate(path, true) {
                seen_paths.insert(path.clone());
                candidates.push(c);
            }
        }
        // Rotated siblings of every name a file was ever found under.
        let mut dirs: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
        for base in &self.bases {
            if let (Some(dir), Some(name)) = (base.parent(), base.file_name().and_then(|n| n.to_str())) {
                dirs.entry(dir.to_owned()).or_default().push(name.to_owned());
            }
        }
        for (dir, names) in &dirs {
            let Ok(entries) = std::fs::read_dir(dir) else { continue };
            for entry in entries.flatten() {
                let name = entry.file_name();
                let Some(name) = name.to_str() else { continue };
                if names.iter().any(|base| discover::is_rotation_of(base, name)) {
                    let path = entry.path();
                    if !seen_paths.contains(&path)
                        && let Some(c) = candidate(&path, false)
                    {
                        candidates.push(c);
                    }
                }
            }
        }
        // Oldest first: a rotated file before the one that replaced it.
        candidates.sort_by_key(|c| (c.primary, c.modified));

        let primaries: HashMap<FileId, &Candidate> =
            candidates.iter().filter(|c| c.primary).map(|c| (c.id, c)).collect();
        let present: HashSet<FileId> = candidates.iter().map(|c| c.id).collect();

        // Files already open: still under a configured name? truncated?
        let ids: Vec<FileId> = self.open.keys().copied().collect();
        for id in ids {
            let primary = primaries.get(&id);
            let Some(open) = self.open.get_mut(&id) else { continue };
            open.primary = primary.is_some();
            if let Some(c) = primary {
                open.path = c.path.to_string_lossy().into();
            }
            self.check_truncation(id);
        }

        let since = lock(&self.book).since;
        let first = self.scans == 0;
        for c in &candidates {
            if self.open.contains_key(&c.id) {
                continue;
            }
            let head = read_head(&c.path, c.size);
            if let Some(closed) = self.closed.get(&c.id) {
                if closed.signature.matches(&head) {
                    if c.size > closed.read {
                        let at = closed.read;
                        self.closed.remove(&c.id);
                        self.start(c, at, 0, now);
                    }
                    continue;
                }
                // The inode was reused for a new file.
                self.closed.remove(&c.id);
            }
            let known = lock(&self.book).entry(c.id).cloned();
            if let Some(entry) = known.filter(|e| e.signature.matches(&head) && e.acked <= c.size) {
                self.start(c, entry.acked, entry.epoch, now);
                continue;
            }
            let signature = Signature::of(&head);
            let retired = {
                let book = lock(&self.book);
                book.retired
                    .iter()
                    .rposition(|r| r.signature.len > 0 && r.signature.matches(&head))
                    .map(|i| (i, book.retired[i].offset))
            };
            if let Some((i, offset)) = retired {
                // The copy of a truncated file: it continues where the original was read to.
                lock(&self.book).retired.remove(i);
                self.start(c, offset.min(c.size), 0, now);
                continue;
            }
            if signature.len > 0 && self.open.values().any(|o| o.signature == signature && o.read > 0) {
                // A copy of a file still being read, not yet truncated: wait and see.
                continue;
            }
            if !c.primary
                && head.len() < SIGNATURE_BYTES
                && self.open.values().any(|o| o.read > 0 && read_head_of(&o.file, head.len() as u64) == head)
            {
                // A rotated name that may be a copy still being written (copytruncate
                // copies, then truncates): too short to tell yet; looked at again at the
                // next scan. (A configured name is never put off: a file created under it
                // may be gone by the next scan.)
                continue;
            }
            let modified = secs(c.modified);
            let stale = started.duration_since(c.modified).is_ok_and(|age| age > STALE);
            let offset = if c.primary {
                if stale {
                    c.size
                } else if first && (!self.resumed || modified <= since) {
                    tail_start(&c.path, c.size, self.input.tail_size_kb * 1024)
                } else {
                    0
                }
            } else if (self.resumed || !first) && !stale && modified > since - 1.0 {
                // Rotated before a scan saw it: read it whole.
                0
            } else {
                self.closed.insert(c.id, Closed { signature, read: c.size });
                continue;
            };
            self.start(c, offset, 0, now);
        }

        // Close rotated and deleted files that are done.
        let done: Vec<FileId> = self
            .open
            .iter()
            .filter(|(_, o)| !o.primary && o.read >= o.size && now.duration_since(o.last_data) >= ROTATED_IDLE)
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            if let Some(o) = self.open.get(&id)
                && o.partial.is_empty()
                && o.assembler.holds_from().is_none()
            {
                let o = self.open.remove(&id).expect("present");
                self.closed.insert(id, Closed { signature: o.signature, read: o.read });
            }
        }
        // Watch where the files really are too (a symlinked file's directory).
        self.dirs.extend(self.open.values().filter_map(|o| o.real_dir.clone()));
        self.dirs.sort();
        self.dirs.dedup();
        // Forget what is gone.
        self.closed.retain(|id, _| present.contains(id));
        {
            let mut book = lock(&self.book);
            let gone: Vec<FileId> = book
                .files
                .iter()
                .map(|e| e.id)
                .filter(|id| !present.contains(id) && !self.open.contains_key(id))
                .collect();
            for id in gone {
                book.remove(id);
            }
            book.since = secs(started);
        }
        self.scans += 1;
    }

    fn start(&mut self, c: &Candidate, offset: u64, epoch: u32, now: Instant) {
        let Ok(file) = File::open(&c.path) else { return };
        // The file may have been replaced between the stat and the open.
        match file.metadata() {
            Ok(m) if m.dev() == c.id.dev && m.ino() == c.id.ino => {}
            _ => return,
        }
        let head = read_head_of(&file, c.size);
        let signature = Signature::of(&head);
        let path: Arc<str> = c.path.to_string_lossy().into();
        let open = Open {
            file,
            path: path.clone(),
            signature,
            epoch,
            read: offset,
            partial: Vec::new(),
            assembler: Assembler::new(self.input.multiline.clone()),
            primary: c.primary,
            last_data: now,
            size: c.size,
            real_dir: std::fs::canonicalize(&c.path).ok().and_then(|p| p.parent().map(Path::to_owned)),
        };
        let mut book = lock(&self.book);
        // A file read before (reopened after it grew) keeps what was acknowledged of it.
        let acked = book.entry(c.id).filter(|e| e.epoch == epoch).map_or(offset, |e| e.acked.min(offset));
        book.upsert(Entry { id: c.id, signature, path: path.to_string(), acked, epoch });
        drop(book);
        tracing::debug!(path = %c.path.display(), offset, "following");
        self.open.insert(c.id, open);
    }

    /// A file whose size fell below what was read, or whose first bytes changed, starts
    /// over; its old content's signature and offset are retired for a copy to continue.
    fn check_truncation(&mut self, id: FileId) {
        let Some(open) = self.open.get_mut(&id) else { return };
        let Ok(meta) = open.file.metadata() else { return };
        let size = meta.len();
        let head = read_head_of(&open.file, size);
        let truncated = size < open.read || !open.signature.matches(&head);
        if !truncated {
            // The signature grows with the file up to its full length.
            if (open.signature.len as usize) < SIGNATURE_BYTES && head.len() > open.signature.len as usize {
                open.signature = Signature::of(&head);
                let mut book = lock(&self.book);
                if let Some(mut e) = book.entry(id).cloned() {
                    e.signature = open.signature;
                    book.upsert(e);
                }
            }
            return;
        }
        tracing::info!(path = %open.path, read = open.read, size, "truncated: reading it again from the start");
        let retired =
            Retired { signature: open.signature, offset: open.uncut_from(), at_secs: secs(SystemTime::now()) as i64 };
        open.epoch += 1;
        open.read = 0;
        open.partial.clear();
        open.assembler.reset();
        open.signature = Signature::of(&head);
        let mut book = lock(&self.book);
        book.retire(retired);
        book.upsert(Entry { id, signature: open.signature, path: open.path.to_string(), acked: 0, epoch: open.epoch });
    }

    /// Reads what is new in every open file, up to a chunk each.
    pub fn read(&mut self, now: Instant, flush_after: Duration, out: &mut Vec<Read>) {
        let mut buf = std::mem::take(&mut self.scratch);
        let ids: Vec<FileId> = self.open.keys().copied().collect();
        for id in ids {
            // A truncation is noticed before reading, so that nothing of the new content is
            // read from the old offset.
            self.check_truncation(id);
            let Some(open) = self.open.get_mut(&id) else { continue };
            let size = match open.file.metadata() {
                Ok(m) => m.len(),
                Err(_) => continue,
            };
            open.size = size;
            let mut cuts = Cuts::default();
            let mut bytes = 0;
            if size > open.read {
                // The unfinished line from last time, then what is read now, in one buffer.
                let want = (size - open.read).min(CHUNK) as usize;
                let held = open.partial.len();
                // The buffer keeps its length between reads: it is zeroed only when it grows.
                if buf.len() < held + want {
                    buf.resize(held + want, 0);
                }
                buf[..held].copy_from_slice(&open.partial);
                let n = match open.file.read_at(&mut buf[held..held + want], open.read) {
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(path = %open.path, error = %e, "read failed");
                        continue;
                    }
                };
                // Truncated and written again while reading: what was read is not this
                // file's; the next pass starts it over.
                let head = read_head_of(&open.file, open.signature.len as u64);
                if !open.signature.matches(&head) {
                    continue;
                }
                bytes = n as u64;
                let start = open.read - held as u64;
                open.read += n as u64;
                open.last_data = now;
                let len = held + n;
                let mut line_start = 0;
                if self.input.multiline.is_none() {
                    // One log per line: the lines are ranges of the buffer, which goes out
                    // with them (and comes back through `recycle`).
                    let mut ranges = Vec::with_capacity(n / 64 + 1);
                    for nl in memchr::memchr_iter(b'\n', &buf[..len]) {
                        ranges.push((line_start, trim_cr(&buf[line_start..nl]).len(), start + nl as u64 + 1));
                        line_start = nl + 1;
                    }
                    open.partial.clear();
                    open.partial.extend_from_slice(&buf[line_start..len]);
                    let next = self.spare.pop().unwrap_or_default();
                    cuts = Cuts::over(std::mem::replace(&mut buf, next), len, ranges);
                } else {
                    for nl in memchr::memchr_iter(b'\n', &buf[..len]) {
                        let line = trim_cr(&buf[line_start..nl]);
                        open.assembler.push(line, start + line_start as u64, start + nl as u64 + 1, &mut cuts);
                        line_start = nl + 1;
                    }
                    open.partial.clear();
                    open.partial.extend_from_slice(&buf[line_start..len]);
                }
            } else if now.duration_since(open.last_data) >= flush_after {
                // Nothing new for a while: an unfinished line or record is a log now.
                if !open.partial.is_empty() {
                    let partial = std::mem::take(&mut open.partial);
                    let start = open.read - partial.len() as u64;
                    open.assembler.push(trim_cr(&partial), start, open.read, &mut cuts);
                }
                open.assembler.flush(&mut cuts);
            }
            if !cuts.is_empty() || bytes > 0 {
                out.push(Read { id, epoch: open.epoch, path: open.path.clone(), cuts, bytes });
            }
        }
        self.scratch = buf;
    }

    /// Takes back the buffer of cuts that were used.
    pub fn recycle(&mut self, cuts: Cuts) {
        let text = cuts.into_text();
        if self.spare.len() < 2 && text.len() >= 64 * 1024 {
            self.spare.push(text);
        }
    }

    /// Whether a file has more to read than one pass took.
    pub fn behind(&self) -> bool {
        self.open.values().any(|o| o.size > o.read)
    }
}

fn candidate(path: &Path, primary: bool) -> Option<Candidate> {
    let meta = std::fs::metadata(path).ok()?;
    meta.is_file().then(|| Candidate {
        path: path.to_owned(),
        primary,
        id: FileId { dev: meta.dev(), ino: meta.ino() },
        size: meta.len(),
        modified: meta.modified().unwrap_or(UNIX_EPOCH),
    })
}

fn read_head(path: &Path, size: u64) -> Vec<u8> {
    File::open(path).map(|f| read_head_of(&f, size)).unwrap_or_default()
}

fn read_head_of(file: &File, size: u64) -> Vec<u8> {
    let mut head = vec![0; (size as usize).min(SIGNATURE_BYTES)];
    let mut filled = 0;
    while filled < head.len() {
        match file.read_at(&mut head[filled..], filled as u64) {
            Ok(0) | Err(_) => break,
            Ok(n) => filled += n,
        }
    }
    head.truncate(filled);
    head
}

/// Where to start a file found at start: `tail` bytes before its end, at a line start.
fn tail_start(path: &Path, size: u64, tail: u64) -> u64 {
    if size <= tail {
        return 0;
    }
    let from = size - tail;
    let Ok(file) = File::open(path) else { return from };
    let mut buf = vec![0; 64 * 1024];
    let mut at = from;
    while at < size {
        let Ok(n) = file.read_at(&mut buf, at) else { return from };
        if n == 0 {
            break;
        }
        if let Some(i) = buf[..n].iter().position(|b| *b == b'\n') {
            return at + i as u64 + 1;
        }
        at += n as u64;
    }
    size
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn secs(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Encoding;
    use std::io::Write;

    fn input(pattern: &Path, tail_kb: u64) -> FileInput {
        FileInput {
            file_paths: vec![pattern.display().to_string()],
            max_dir_search_depth: 0,
            exclude_file_paths: Vec::new(),
            exclude_files: Vec::new(),
            exclude_dirs: Vec::new(),
            encoding: Encoding::Utf8,
            tail_size_kb: tail_kb,
            multiline: None,
            flush_timeout_secs: 5,
        }
    }

    /// One scan and one read: the logs cut, as text.
    fn pass(t: &mut Tailer, now: Instant) -> Vec<String> {
        t.scan(now);
        let mut reads = Vec::new();
        t.read(now, Duration::from_secs(5), &mut reads);
        let mut out = Vec::new();
        for r in reads {
            out.extend(r.cuts.iter().map(|(text, _)| String::from_utf8(text.to_vec()).unwrap()));
            t.recycle(r.cuts);
        }
        out
    }

    fn append(path: &Path, text: &str) {
        std::fs::OpenOptions::new().create(true).append(true).open(path).unwrap().write_all(text.as_bytes()).unwrap();
    }

    #[test]
    fn partial_lines_wait_for_their_newline_or_the_flush_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let mut t = Tailer::new(input(&log, 1024), Arc::default(), false);
        let now = Instant::now();
        assert!(pass(&mut t, now).is_empty());
        append(&log, "one\ntw");
        assert_eq!(pass(&mut t, now), vec!["one"]);
        append(&log, "o\r\nthr");
        assert_eq!(pass(&mut t, now), vec!["two"], "\\r\\n endings lose the \\r");
        assert!(pass(&mut t, now + Duration::from_secs(4)).is_empty());
        assert_eq!(pass(&mut t, now + Duration::from_secs(6)), vec!["thr"], "flushed after FlushTimeoutSecs");
    }

    #[test]
    fn at_first_start_old_content_is_skipped_as_logtail_does() {
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.log");
        let lines: String = (0..3000).map(|i| format!("line {i:05}\n")).collect();
        append(&big, &lines);
        let stale = dir.path().join("stale.log");
        append(&stale, "from yesterday\n");
        let f = std::fs::OpenOptions::new().append(true).open(&stale).unwrap();
        f.set_modified(SystemTime::now() - Duration::from_secs(13 * 3600)).unwrap();
        let mut t = Tailer::new(input(&dir.path().join("*.log"), 1), Arc::default(), false);
        let now = Instant::now();
        let got = pass(&mut t, now);
        // TailSizeKB 1: the last KB, from its first whole line; nothing of the stale file.
        assert_eq!(got.last().map(String::as_str), Some("line 02999"));
        assert!(got.len() < 100 && got.len() > 80, "{}", got.len());
        // A file created later is read from its start; the stale one when it is written to.
        append(&dir.path().join("new.log"), "a\nb\n");
        append(&stale, "today\n");
        let mut later = pass(&mut t, now);
        later.sort();
        assert_eq!(later, vec!["a", "b", "today"]);
    }

    #[test]
    fn a_copytruncate_copy_continues_where_the_original_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "1\n2\n");
        let mut t = Tailer::new(input(&log, 1024), Arc::default(), false);
        let now = Instant::now();
        assert_eq!(pass(&mut t, now), vec!["1", "2"]);
        // Written, then copied away and truncated before the agent read it.
        append(&log, "3\n4\n");
        std::fs::copy(&log, dir.path().join("app.log.1")).unwrap();
        std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
        append(&log, "5\n");
        let mut got = pass(&mut t, now);
        got.extend(pass(&mut t, now));
        got.sort();
        assert_eq!(got, vec!["3", "4", "5"], "the copy's new lines once, the new content once");
        assert!(pass(&mut t, now).is_empty());
    }

    #[test]
    fn a_restart_resumes_at_the_acknowledged_offset_and_reads_missed_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        append(&log, "1\n2\n");
        let book: Arc<Mutex<Book>> = Arc::default();
        let mut t = Tailer::new(input(&log, 1024), book.clone(), false);
        let now = Instant::now();
        assert_eq!(pass(&mut t, now), vec!["1", "2"]);
        let id = lock(&book).files[0].id;
        assert!(lock(&book).ack(id, 0, 2), "only the first line was acknowledged");
        drop(t);
        // While stopped: more lines, a rotation, a new file.
        append(&log, "3\n");
        std::thread::sleep(Duration::from_millis(20));
        std::fs::rename(&log, dir.path().join("app.log.1")).unwrap();
        append(&log, "4\n");
        let mut t = Tailer::new(input(&log, 1024), book, true);
        let mut got = pass(&mut t, now);
        got.sort();
        assert_eq!(got, vec!["2", "3", "4"], "from the acknowledged offset, nothing lost");
    }

    /// Regression: a copy seen while `copytruncate` was still writing it (empty, or shorter
    /// than a signature) was taken for a new rotated file and read whole, twice over.
    #[test]
    fn a_copy_seen_half_written_is_not_read_twice() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("app.log");
        let lines: String = (0..200).map(|i| format!("line {i:04}\n")).collect();
        append(&log, &lines);
        let mut t = Tailer::new(input(&log, 1024), Arc::default(), false);
        let now = Instant::now();
        assert_eq!(pass(&mut t, now).len(), 200);
        append(&log, "late 1\nlate 2\n");
        // The copy exists but holds only its first bytes when the agent looks.
        let copy = dir.path().join("app.log.1");
        let whole = std::fs::read(&log).unwrap();
        std::fs::write(&copy, &whole[..10]).unwrap();
        assert_eq!(pass(&mut t, now), vec!["late 1", "late 2"]);
        std::fs::write(&copy, "").unwrap();
        assert!(pass(&mut t, now).is_empty());
        // Then it is written whole and the original truncated.
        std::fs::write(&copy, &whole).unwrap();
        std::fs::OpenOptions::new().write(true).open(&log).unwrap().set_len(0).unwrap();
        append(&log, "after\n");
        let mut got = pass(&mut t, now);
        got.extend(pass(&mut t, now));
        assert_eq!(got, vec!["after"], "nothing of the copy again");
    }
}
