//! Logs into LogGroups: one open group per file (its `__path__` tag, its own
//! `__pack_id__` sequence), sent at a size, a count or a time, as Logtail batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use prost::Message;
use sluice_proto::sls::{Content, Log as ProtoLog, LogGroup, LogTag};
use twox_hash::XxHash3_64;

use crate::checkpoint::FileId;
use crate::config::BatchLimits;
use crate::process::Log;

/// A LogGroup ready to send, and what acknowledging it means for its file.
#[derive(Clone, Debug)]
pub struct Batch {
    pub file: FileId,
    pub epoch: u32,
    /// The file is read up to here once this batch is acknowledged.
    pub end: u64,
    pub lines: u64,
    pub raw_bytes: u64,
    /// `/shards/route?key=` when `ShardHashKeys` are configured.
    pub hash_key: Option<String>,
    /// The LogGroup, protobuf, not compressed (a retry sends exactly these bytes).
    pub group: Vec<u8>,
}

/// What every group of a pipeline carries.
#[derive(Clone, Debug)]
pub struct Identity {
    pub hostname: String,
    /// `__source__`: the host's address.
    pub source: String,
    /// Differs between agent runs, so that pack ids never repeat.
    pub run: u64,
}

#[derive(Debug)]
struct Open {
    epoch: u32,
    path: Arc<str>,
    topic: String,
    logs: Vec<ProtoLog>,
    bytes: usize,
    first_at: Instant,
    end: u64,
    hash_key: Option<String>,
    context: u64,
    seq: u64,
}

#[derive(Debug)]
pub struct Batcher {
    limits: BatchLimits,
    identity: Identity,
    shard_hash_keys: Vec<String>,
    open: BTreeMap<FileId, Open>,
    /// Each file's next `__pack_id__` sequence number and context, kept across groups.
    packs: BTreeMap<FileId, (u64, u64)>,
}

impl Batcher {
    pub fn new(limits: BatchLimits, identity: Identity, shard_hash_keys: Vec<String>) -> Self {
        Self { limits, identity, shard_hash_keys, open: BTreeMap::new(), packs: BTreeMap::new() }
    }

    /// Adds a file's log; returns a batch when the file's group is full (or the file's
    /// epoch or hash key changed, which closes the open group first).
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        file: FileId,
        epoch: u32,
        path: &Arc<str>,
        topic: &str,
        end: u64,
        log: Log,
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        let hash_key = (!self.shard_hash_keys.is_empty()).then(|| hash_key(&self.shard_hash_keys, &log));
        if let Some(open) = self.open.get(&file)
            && (open.epoch != epoch || open.hash_key != hash_key)
            && let Some(b) = self.close(file)
        {
            out.push(b);
        }
        let (context, seq) = *self.packs.entry(file).or_insert_with(|| {
            let mut id = Vec::new();
            id.extend_from_slice(self.identity.hostname.as_bytes());
            id.extend_from_slice(path.as_bytes());
            id.extend_from_slice(&file.dev.to_le_bytes());
            id.extend_from_slice(&file.ino.to_le_bytes());
            id.extend_from_slice(&self.identity.run.to_le_bytes());
            (XxHash3_64::oneshot(&id), 1)
        });
        let open = self.open.entry(file).or_insert_with(|| Open {
            epoch,
            path: path.clone(),
            topic: topic.to_owned(),
            logs: Vec::new(),
            bytes: 0,
            first_at: now,
            end,
            hash_key,
            context,
            seq,
        });
        open.bytes += log.fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        open.end = open.end.max(end);
        open.logs.push(ProtoLog {
            time: log.time_secs,
            contents: log.fields.into_iter().map(|(key, value)| Content { key, value: value.into_bytes() }).collect(),
            values: Vec::new(),
            time_ns: Some(log.time_ns),
        });
        if (open.bytes >= self.limits.min_bytes || open.logs.len() >= self.limits.min_count)
            && let Some(b) = self.close(file)
        {
            out.push(b);
        }
    }

    /// Moves a file's end past cut content that made no log (discarded lines), so that
    /// the checkpoint can pass it with the file's next group.
    pub fn advance(&mut self, file: FileId, epoch: u32, end: u64) {
        if let Some(open) = self.open.get_mut(&file).filter(|o| o.epoch == epoch) {
            open.end = open.end.max(end);
        }
    }

    /// Closes the groups that have waited `timeout_secs`.
    pub fn due(&mut self, now: Instant, out: &mut Vec<Batch>) {
        let timeout = Duration::from_secs(self.limits.timeout_secs);
        let due: Vec<FileId> =
            self.open.iter().filter(|(_, o)| now.duration_since(o.first_at) >= timeout).map(|(id, _)| *id).collect();
        for id in due {
            out.extend(self.close(id));
        }
    }

    /// Closes every open group.
    pub fn drain(&mut self, out: &mut Vec<Batch>) {
        let ids: Vec<FileId> = self.open.keys().copied().collect();
        for id in ids {
            out.extend(self.close(id));
        }
    }

    /// When the oldest open group is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.open.values().map(|o| o.first_at + Duration::from_secs(self.limits.timeout_secs)).min()
    }

    fn close(&mut self, file: FileId) -> Option<Batch> {
        let open = self.open.remove(&file)?;
        if let Some(p) = self.packs.get_mut(&file) {
            p.1 += 1;
        }
        let lines = open.logs.len() as u64;
        let group = LogGroup {
            logs: open.logs,
            category: None,
            topic: Some(open.topic),
            source: Some(self.identity.source.clone()),
            machine_uuid: None,
            log_tags: vec![
                tag("__hostname__", &self.identity.hostname),
                tag("__path__", &open.path),
                tag("__pack_id__", &format!("{:016X}-{:X}", open.context, open.seq)),
            ],
        };
        Some(Batch {
            file,
            epoch: open.epoch,
            end: open.end,
            lines,
            raw_bytes: open.bytes as u64,
            hash_key: open.hash_key,
            group: group.encode_to_vec(),
        })
    }
}

fn tag(key: &str, value: &str) -> LogTag {
    LogTag { key: key.to_owned(), value: value.to_owned() }
}

/// The hex MD5 of the values of `keys` (missing ones empty), joined by `_`.
pub fn hash_key(keys: &[String], log: &Log) -> String {
    let values: Vec<&str> =
        keys.iter().map(|k| log.fields.iter().find(|(f, _)| f == k).map_or("", |(_, v)| v.as_str())).collect();
    Md5::digest(values.join("_").as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity { hostname: "web-1".into(), source: "10.0.0.1".into(), run: 9 }
    }

    #[test]
    fn groups_close_at_the_count_and_carry_logtails_tags() {
        let limits = BatchLimits { min_bytes: 1 << 20, min_count: 2, timeout_secs: 3 };
        let mut b = Batcher::new(limits, identity(), Vec::new());
        let file = FileId { dev: 1, ino: 2 };
        let path: Arc<str> = "/var/log/app.log".into();
        let now = Instant::now();
        let mut out = Vec::new();
        for (i, end) in [10u64, 20, 30].into_iter().enumerate() {
            b.add(file, 0, &path, "t", end, Log::new(format!("line {i}"), 100, i as u32), now, &mut out);
        }
        assert_eq!(out.len(), 1);
        assert_eq!((out[0].end, out[0].lines), (20, 2));
        let group = LogGroup::decode(out[0].group.as_slice()).unwrap();
        assert_eq!(group.topic.as_deref(), Some("t"));
        assert_eq!(group.source.as_deref(), Some("10.0.0.1"));
        let tags: Vec<(&str, &str)> = group.log_tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        assert_eq!(tags[0], ("__hostname__", "web-1"));
        assert_eq!(tags[1], ("__path__", "/var/log/app.log"));
        assert!(tags[2].1.ends_with("-1"));
        assert_eq!(b.next_due(), Some(now + Duration::from_secs(3)));
        b.due(now + Duration::from_secs(3), &mut out);
        assert_eq!((out[1].end, out[1].lines), (30, 1));
        let second = LogGroup::decode(out[1].group.as_slice()).unwrap();
        assert!(second.log_tags[2].value.ends_with("-2"), "the pack sequence moves on per group");
    }

    #[test]
    fn a_new_epoch_or_hash_key_closes_the_open_group() {
        let mut b = Batcher::new(BatchLimits::default(), identity(), vec!["user".into()]);
        let file = FileId { dev: 1, ino: 2 };
        let path: Arc<str> = "/a".into();
        let now = Instant::now();
        let mut out = Vec::new();
        let log = |user: &str| Log { time_secs: 1, time_ns: 0, fields: vec![("user".into(), user.into())] };
        b.add(file, 0, &path, "", 5, log("ann"), now, &mut out);
        b.add(file, 0, &path, "", 9, log("bob"), now, &mut out);
        b.add(file, 1, &path, "", 3, log("bob"), now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].hash_key.as_deref(), Some("7e0d7f8a5d96c24ffcc840f31bce72b2"), "md5 of the user's value");
        assert_eq!((out[1].epoch, out[1].end), (0, 9));
    }
}
