//! Where each file of a pipeline was acknowledged up to, kept on disk so that a restart
//! (even after `kill -9`) resumes there.
//!
//! A file is its (device, inode) plus a signature of its first bytes, so that a reused
//! inode or a truncated file is not taken for the one that was read. The book is written
//! (to one of two slots in turn, checksummed, synced: [`Store`]) each time the sender has
//! acknowledgements to record, never on a timer, so after a crash at most the batches in
//! flight are sent again.

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

/// The book's files: two slots written in turn, each a checksum and a sequence number
/// before the JSON. A write goes to the older slot in place (no new file, no rename: on
/// ext4 creating a file per acknowledgement cost more CPU than everything else the
/// sender does), then `fdatasync`; a crash in the middle of a write leaves that slot
/// damaged and the other one, one acknowledgement older, whole. Loading takes the newest
/// whole slot.
#[derive(Debug)]
pub struct Store {
    slots: [PathBuf; 2],
    /// Each slot's file, once opened, and its length.
    open: [Option<(std::fs::File, u64)>; 2],
    seq: u64,
}

/// A slot keeps stale bytes after its frame up to this many (the frame says its own
/// length); truncating on every save cost as much CPU as the write.
const STALE_TAIL: u64 = 64 * 1024;

impl Store {
    pub fn new(dir: &Path) -> Self {
        Self { slots: [dir.join("checkpoint.0"), dir.join("checkpoint.1")], open: [None, None], seq: 0 }
    }

    /// The newest saved book, if there is one.
    pub fn load(&mut self) -> std::io::Result<Option<Book>> {
        let mut best: Option<(u64, Book)> = None;
        for slot in &self.slots {
            let bytes = match std::fs::read(slot) {
                Ok(b) => b,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let Some((seq, json)) = unframe(&bytes) else {
                tracing::warn!(slot = %slot.display(), "damaged checkpoint slot (a write was cut short); using the other");
                continue;
            };
            let book: Book = serde_json::from_slice(json).map_err(|e| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", slot.display()))
            })?;
            if best.as_ref().is_none_or(|(s, _)| seq > *s) {
                best = Some((seq, book));
            }
        }
        Ok(best.map(|(seq, mut book)| {
            self.seq = seq;
            book.reindex();
            book
        }))
    }

    /// Writes the book to the older slot and syncs it.
    pub fn save(&mut self, book: &Book) -> std::io::Result<()> {
        let json = serde_json::to_vec(book).map_err(std::io::Error::other)?;
        let seq = self.seq + 1;
        let i = (seq % 2) as usize;
        if self.open[i].is_none() {
            if let Some(dir) = self.slots[i].parent() {
                std::fs::create_dir_all(dir)?;
            }
            let file =
                std::fs::OpenOptions::new().create(true).truncate(false).read(true).write(true).open(&self.slots[i])?;
            let len = file.metadata()?.len();
            self.open[i] = Some((file, len));
        }
        let (file, len) = self.open[i].as_mut().expect("opened above");
        let mut framed = Vec::with_capacity(json.len() + 20);
        framed.extend_from_slice(&(json.len() as u32).to_le_bytes());
        framed.extend_from_slice(&seq.to_le_bytes());
        framed.extend_from_slice(&XxHash3_64::oneshot(&json).to_le_bytes());
        framed.extend_from_slice(&json);
        std::os::unix::fs::FileExt::write_all_at(file, &framed, 0)?;
        let framed_len = framed.len() as u64;
        *len = if *len > framed_len + STALE_TAIL {
            file.set_len(framed_len)?;
            framed_len
        } else {
            (*len).max(framed_len)
        };
        file.sync_data()?;
        self.seq = seq;
        Ok(())
    }
}

/// A slot's sequence number and JSON, if its checksum holds.
fn unframe(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = u32::from_le_bytes(bytes.get(..4)?.try_into().ok()?) as usize;
    let seq = u64::from_le_bytes(bytes.get(4..12)?.try_into().ok()?);
    let sum = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?);
    let json = bytes.get(20..20 + len)?;
    (XxHash3_64::oneshot(json) == sum).then_some((seq, json))
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
    fn saves_and_loads_the_newest_whole_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        assert!(store.load().unwrap().is_none());
        let mut book = Book { since: 12.5, ..Book::default() };
        book.upsert(entry(1, 10));
        book.upsert(entry(2, 20));
        book.remove(FileId { dev: 1, ino: 1 });
        store.save(&book).unwrap();
        let loaded = Store::new(dir.path()).load().unwrap().unwrap();
        assert_eq!(loaded.files, vec![entry(2, 20)]);
        assert_eq!(loaded.entry(FileId { dev: 1, ino: 2 }).unwrap().acked, 20);
        assert_eq!(loaded.since, 12.5);

        // Later saves go to the slots in turn; a restarted store carries on from the newest.
        book.ack(FileId { dev: 1, ino: 2 }, 0, 30);
        store.save(&book).unwrap();
        book.ack(FileId { dev: 1, ino: 2 }, 0, 40);
        let mut again = Store::new(dir.path());
        assert_eq!(again.load().unwrap().unwrap().files[0].acked, 30);
        again.save(&book).unwrap();
        assert_eq!(Store::new(dir.path()).load().unwrap().unwrap().files[0].acked, 40);
    }

    /// A slot written shorter than before keeps the old tail (up to [`STALE_TAIL`]) after
    /// its frame, which loading ignores; a much shorter one is cut.
    #[test]
    fn a_shorter_save_ignores_or_cuts_the_old_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        let mut book = Book::default();
        for ino in 0..5000 {
            book.upsert(entry(ino, 10));
        }
        store.save(&book).unwrap();
        store.save(&book).unwrap();
        let big = std::fs::metadata(dir.path().join("checkpoint.0")).unwrap().len();
        assert!(big > STALE_TAIL, "{big}");
        for ino in 1..5000 {
            book.remove(FileId { dev: 1, ino });
        }
        store.save(&book).unwrap();
        assert!(std::fs::metadata(dir.path().join("checkpoint.1")).unwrap().len() < 1000, "cut");
        book.ack(FileId { dev: 1, ino: 0 }, 0, 70);
        store.save(&book).unwrap();
        let empty = Book { files: Vec::new(), ..book.clone() };
        store.save(&empty).unwrap();
        let slot = std::fs::read(dir.path().join("checkpoint.1")).unwrap();
        assert!(unframe(&slot).unwrap().1.len() + 20 < slot.len(), "the old tail stays");
        assert!(Store::new(dir.path()).load().unwrap().unwrap().files.is_empty());
        store.save(&book).unwrap();
        assert_eq!(Store::new(dir.path()).load().unwrap().unwrap().files, book.files);
    }

    /// A write cut short (a crash, a power cut) damages one slot: the other is used.
    #[test]
    fn a_torn_write_falls_back_to_the_other_slot() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::new(dir.path());
        let mut book = Book::default();
        book.upsert(entry(2, 20));
        store.save(&book).unwrap();
        book.ack(FileId { dev: 1, ino: 2 }, 0, 50);
        store.save(&book).unwrap();
        let newest = dir.path().join("checkpoint.0");
        let bytes = std::fs::read(&newest).unwrap();
        std::fs::write(&newest, &bytes[..bytes.len() - 7]).unwrap();
        assert_eq!(Store::new(dir.path()).load().unwrap().unwrap().files[0].acked, 20);
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
