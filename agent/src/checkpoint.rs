//! Where each file of a pipeline was acknowledged up to, kept on disk so that a restart
//! (even after `kill -9`) resumes there.
//!
//! A file is its (device, inode) plus a signature of its first bytes, so that a reused
//! inode or a truncated file is not taken for the one that was read. The book is written
//! atomically (temporary file, fsync, rename, fsync of the directory) each time the
//! sender has acknowledgements to record, never on a timer, so after a crash at most the
//! batches in flight are sent again.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_64;

/// How many leading bytes identify a file (as Logtail's signature).
pub const SIGNATURE_BYTES: usize = 1024;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
}

/// A hash of a file's first `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Signature {
    pub len: u32,
    pub hash: u64,
}

impl Signature {
    pub fn of(head: &[u8]) -> Self {
        let head = &head[..head.len().min(SIGNATURE_BYTES)];
        Self { len: head.len() as u32, hash: XxHash3_64::oneshot(head) }
    }

    /// Whether `head` (a file's first bytes, at least `self.len` of them) starts as this
    /// signature says.
    pub fn matches(&self, head: &[u8]) -> bool {
        head.len() >= self.len as usize && XxHash3_64::oneshot(&head[..self.len as usize]) == self.hash
    }
}

/// One file the pipeline has read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub id: FileId,
    pub signature: Signature,
    /// The path it was found at (a rotated file keeps the path of its primary name).
    pub path: String,
    /// Everything before this offset has been acknowledged (or buffered on disk).
    pub acked: u64,
    /// Counts truncations: an acknowledgement of an older epoch no longer moves the offset.
    pub epoch: u32,
}

/// A file incarnation that was truncated: where it had been read up to. A copy of it (a
/// `copytruncate` rotation) continues from there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retired {
    pub signature: Signature,
    pub offset: u64,
    pub at_secs: i64,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Book {
    pub version: u32,
    /// The time of the last scan that saw every file (seconds since the epoch, with
    /// fractions). A rotated file changed after it, and not in the book, was missed.
    pub since: f64,
    pub files: Vec<Entry>,
    pub retired: Vec<Retired>,
    #[serde(skip)]
    index: HashMap<FileId, usize>,
}

impl Book {
    pub fn entry(&self, id: FileId) -> Option<&Entry> {
        self.index.get(&id).map(|&i| &self.files[i])
    }

    pub fn upsert(&mut self, entry: Entry) {
        match self.index.get(&entry.id) {
            Some(&i) => self.files[i] = entry,
            None => {
                self.index.insert(entry.id, self.files.len());
                self.files.push(entry);
            }
        }
    }

    pub fn remove(&mut self, id: FileId) {
        if self.index.remove(&id).is_some() {
            self.files.retain(|e| e.id != id);
            self.reindex();
        }
    }

    /// Records that a file's batch up to `end` was acknowledged. Returns whether the
    /// offset moved.
    pub fn ack(&mut self, id: FileId, epoch: u32, end: u64) -> bool {
        match self.index.get(&id) {
            Some(&i) if self.files[i].epoch == epoch && self.files[i].acked < end => {
                self.files[i].acked = end;
                true
            }
            _ => false,
        }
    }

    pub fn retire(&mut self, retired: Retired) {
        self.retired.push(retired);
        let len = self.retired.len();
        if len > 64 {
            self.retired.drain(..len - 64);
        }
    }

    fn reindex(&mut self) {
        self.index = self.files.iter().enumerate().map(|(i, e)| (e.id, i)).collect();
    }
}

/// The book's file.
#[derive(Clone, Debug)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self { path: dir.join("checkpoint.json") }
    }

    /// The saved book, if there is one.
    pub fn load(&self) -> std::io::Result<Option<Book>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let mut book: Book = serde_json::from_slice(&bytes).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", self.path.display()))
                })?;
                book.reindex();
                Ok(Some(book))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes the book so that a crash leaves either the old or the new one.
    pub fn save(&self, book: &Book) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(book).map_err(std::io::Error::other)?;
        write_atomically(&self.path, &bytes)
    }
}

/// Write, fsync, rename, fsync the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ino: u64, acked: u64) -> Entry {
        Entry {
            id: FileId { dev: 1, ino },
            signature: Signature::of(b"first line\n"),
            path: "/var/log/app.log".into(),
            acked,
            epoch: 0,
        }
    }

    #[test]
    fn acks_move_forward_only_in_the_current_epoch() {
        let mut book = Book::default();
        book.upsert(entry(7, 0));
        assert!(book.ack(FileId { dev: 1, ino: 7 }, 0, 100));
        assert!(!book.ack(FileId { dev: 1, ino: 7 }, 0, 50), "an older batch's ack does not move it back");
        assert!(!book.ack(FileId { dev: 1, ino: 7 }, 1, 500), "another epoch's ack is ignored");
        assert!(!book.ack(FileId { dev: 1, ino: 8 }, 0, 500));
        assert_eq!(book.entry(FileId { dev: 1, ino: 7 }).unwrap().acked, 100);
    }

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        assert!(store.load().unwrap().is_none());
        let mut book = Book { since: 12.5, ..Book::default() };
        book.upsert(entry(1, 10));
        book.upsert(entry(2, 20));
        book.remove(FileId { dev: 1, ino: 1 });
        store.save(&book).unwrap();
        let loaded = store.load().unwrap().unwrap();
        assert_eq!(loaded.files, vec![entry(2, 20)]);
        assert_eq!(loaded.entry(FileId { dev: 1, ino: 2 }).unwrap().acked, 20);
        assert_eq!(loaded.since, 12.5);
        assert!(!dir.path().join("checkpoint.tmp").exists());
    }

    #[test]
    fn signatures_see_a_different_start() {
        let sig = Signature::of(b"abc");
        assert!(sig.matches(b"abcdef"));
        assert!(!sig.matches(b"abd"));
        assert!(!sig.matches(b"ab"));
        assert_eq!(Signature::of(&[b'x'; 5000]).len, SIGNATURE_BYTES as u32);
    }
}
