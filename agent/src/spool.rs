//! The disk buffer: batches the receiver could not take, kept in order on disk until it
//! can, across restarts. Bounded: when it is full the pipeline stops reading its files
//! (the files are the buffer then), it never drops.
//!
//! One file per batch (`{seq:020}.batch`), written atomically: magic, a JSON header,
//! the LogGroup bytes, an xxh3 checksum. A batch is replayed byte for byte, so a batch the
//! receiver did accept before an error is recognized there by its content and stored once.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use twox_hash::XxHash3_64;

use crate::batch::Batch;
use crate::checkpoint::{FileId, write_atomically};

const MAGIC: &[u8; 4] = b"SLB1";

#[derive(Serialize, Deserialize)]
struct Header {
    dev: u64,
    ino: u64,
    epoch: u32,
    end: u64,
    lines: u64,
    raw_bytes: u64,
    hash_key: Option<String>,
}

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_bytes: u64,
    /// (sequence number, size on disk), oldest first.
    entries: VecDeque<(u64, u64)>,
    bytes: u64,
    next: u64,
}

impl Spool {
    /// Opens (or creates) the buffer in `dir`, with what an earlier run left in it.
    pub fn open(dir: &Path, max_bytes: u64) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut entries = Vec::new();
        for entry in std::fs::read_dir(dir)?.flatten() {
            let name = entry.file_name();
            let Some(seq) = name.to_str().and_then(|n| n.strip_suffix(".batch")).and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            entries.push((seq, entry.metadata()?.len()));
        }
        entries.sort_unstable();
        let bytes = entries.iter().map(|(_, s)| s).sum();
        let next = entries.last().map_or(0, |(s, _)| s + 1);
        Ok(Self { dir: dir.to_owned(), max_bytes, entries: entries.into(), bytes, next })
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `batch` fits.
    pub fn has_room(&self, batch: &Batch) -> bool {
        self.bytes + batch.group.len() as u64 + 256 <= self.max_bytes
    }

    /// Writes `batch` at the end, durably.
    pub fn push(&mut self, batch: &Batch) -> std::io::Result<()> {
        let header = Header {
            dev: batch.file.dev,
            ino: batch.file.ino,
            epoch: batch.epoch,
            end: batch.end,
            lines: batch.lines,
            raw_bytes: batch.raw_bytes,
            hash_key: batch.hash_key.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(std::io::Error::other)?;
        let mut bytes = Vec::with_capacity(16 + header.len() + batch.group.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&(header.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&batch.group);
        let sum = XxHash3_64::oneshot(&bytes);
        bytes.extend_from_slice(&sum.to_le_bytes());
        let seq = self.next;
        write_atomically(&self.path(seq), &bytes)?;
        self.next += 1;
        self.bytes += bytes.len() as u64;
        self.entries.push_back((seq, bytes.len() as u64));
        Ok(())
    }

    /// The oldest batch. A damaged entry (which atomic writes should make impossible) is
    /// moved aside as `.damaged` and skipped.
    pub fn front(&mut self) -> std::io::Result<Option<Batch>> {
        while let Some(&(seq, _)) = self.entries.front() {
            let bytes = std::fs::read(self.path(seq))?;
            match decode(&bytes) {
                Some(batch) => return Ok(Some(batch)),
                None => {
                    tracing::error!(file = %self.path(seq).display(), "damaged buffered batch set aside");
                    std::fs::rename(self.path(seq), self.path(seq).with_extension("damaged"))?;
                    self.drop_front();
                }
            }
        }
        Ok(None)
    }

    /// Removes the oldest batch (it was accepted).
    pub fn pop_front(&mut self) -> std::io::Result<()> {
        if let Some(&(seq, _)) = self.entries.front() {
            std::fs::remove_file(self.path(seq))?;
            self.drop_front();
        }
        Ok(())
    }

    fn drop_front(&mut self) {
        if let Some((_, size)) = self.entries.pop_front() {
            self.bytes -= size;
        }
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.batch"))
    }
}

fn decode(bytes: &[u8]) -> Option<Batch> {
    let (body, sum) = bytes.split_at_checked(bytes.len().checked_sub(8)?)?;
    if XxHash3_64::oneshot(body) != u64::from_le_bytes(sum.try_into().ok()?) {
        return None;
    }
    let rest = body.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_at_checked(4)?;
    let len = u32::from_le_bytes(len.try_into().ok()?) as usize;
    let (header, group) = rest.split_at_checked(len)?;
    let h: Header = serde_json::from_slice(header).ok()?;
    Some(Batch {
        file: FileId { dev: h.dev, ino: h.ino },
        epoch: h.epoch,
        end: h.end,
        lines: h.lines,
        raw_bytes: h.raw_bytes,
        hash_key: h.hash_key,
        group: group.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(i: u64) -> Batch {
        Batch {
            file: FileId { dev: 1, ino: i },
            epoch: 0,
            end: i * 10,
            lines: i,
            raw_bytes: 5,
            hash_key: i.is_multiple_of(2).then(|| "k".to_owned()),
            group: vec![i as u8; 100],
        }
    }

    #[test]
    fn keeps_order_across_reopening_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1000).unwrap();
        let mut pushed = 0;
        for i in 1..=20 {
            if !spool.has_room(&batch(i)) {
                break;
            }
            spool.push(&batch(i)).unwrap();
            pushed += 1;
        }
        assert!((3..20).contains(&pushed), "bounded: {pushed}");
        spool.pop_front().unwrap();
        drop(spool);

        let mut again = Spool::open(dir.path(), 1000).unwrap();
        assert_eq!(again.len(), pushed - 1);
        let first = again.front().unwrap().unwrap();
        assert_eq!((first.file.ino, first.end, first.group.clone()), (2, 20, vec![2u8; 100]));
        assert_eq!(first.hash_key.as_deref(), Some("k"));
        again.push(&batch(99)).unwrap_or(());
        let mut order = Vec::new();
        while let Some(b) = again.front().unwrap() {
            order.push(b.file.ino);
            again.pop_front().unwrap();
        }
        assert_eq!(order.first(), Some(&2));
        assert!(order.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(again.bytes(), 0);
    }

    #[test]
    fn a_damaged_entry_is_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.push(&batch(1)).unwrap();
        spool.push(&batch(2)).unwrap();
        let first = dir.path().join(format!("{:020}.batch", 0));
        let mut bytes = std::fs::read(&first).unwrap();
        bytes[20] ^= 1;
        std::fs::write(&first, bytes).unwrap();
        assert_eq!(spool.front().unwrap().unwrap().file.ino, 2);
        assert!(first.with_extension("damaged").exists());
    }
}
