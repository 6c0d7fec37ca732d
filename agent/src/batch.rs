//! Logs into LogGroups: one open group per file (its `__path__` tag, its own
//! `__pack_id__` sequence), sent at a size, a count or a time, as Logtail batches.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use md5::{Digest, Md5};
use prost::encoding::encoded_len_varint;
use twox_hash::XxHash3_64;

use crate::checkpoint::FileId;
use crate::config::BatchLimits;

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
    /// The group's `logs` (field 1), already in protobuf: a log is encoded once, as it
    /// comes, with no copy of its fields kept.
    encoded: Vec<u8>,
    lines: u64,
    bytes: usize,
    first_at: Instant,
    end: u64,
    hash_key: Option<String>,
    context: u64,
    seq: u64,
}

impl Open {
    /// Appends a log; whether the group is now full.
    fn push(&mut self, limits: &BatchLimits, (secs, ns): (u32, u32), fields: &[(&str, &[u8])], end: u64) -> bool {
        self.bytes += fields.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
        self.end = self.end.max(end);
        self.lines += 1;
        match fields {
            [(CONTENT, text)] => encode_line(&mut self.encoded, secs, ns, text),
            _ => encode_log(&mut self.encoded, secs, ns, fields),
        }
        self.bytes >= limits.min_bytes || self.lines >= limits.min_count as u64
    }
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

    /// Adds a file's log (its time and fields); returns a batch when the file's group is
    /// full (or the file's epoch or hash key changed, which closes the open group first).
    #[allow(clippy::too_many_arguments)]
    pub fn add<'f>(
        &mut self,
        file: FileId,
        epoch: u32,
        path: &Arc<str>,
        topic: &str,
        end: u64,
        (time_secs, time_ns): (u32, u32),
        fields: &[(&'f str, &'f [u8])],
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        let hash_key = (!self.shard_hash_keys.is_empty()).then(|| hash_key(&self.shard_hash_keys, fields));
        if !self.open.get(&file).is_some_and(|o| o.epoch == epoch && o.hash_key == hash_key) {
            out.extend(self.close(file));
            let (context, seq) = self.pack(file, path);
            // Room for the logs and their protobuf framing, so the buffer is not grown.
            let capacity = self.limits.min_bytes.min(4 << 20) * 5 / 4 + 64 * 1024;
            let open = Open {
                epoch,
                path: path.clone(),
                topic: topic.to_owned(),
                encoded: Vec::with_capacity(capacity),
                lines: 0,
                bytes: 0,
                first_at: now,
                end,
                hash_key,
                context,
                seq,
            };
            self.open.insert(file, open);
        }
        let limits = self.limits;
        if self.open.get_mut(&file).is_some_and(|open| open.push(&limits, (time_secs, time_ns), fields, end)) {
            out.extend(self.close(file));
        }
    }

    /// Adds a run of single-line logs of one file (field `content`, no processors, no hash
    /// key): [`Batcher::add`] with the group looked up once per run rather than per log.
    /// `clock` gives each log its time.
    #[allow(clippy::too_many_arguments)]
    pub fn add_lines<'t>(
        &mut self,
        file: FileId,
        epoch: u32,
        path: &Arc<str>,
        topic: &str,
        lines: impl Iterator<Item = (&'t [u8], u64)>,
        mut clock: impl FnMut() -> (u32, u32),
        now: Instant,
        out: &mut Vec<Batch>,
    ) {
        let mut lines = lines.peekable();
        while let Some(&(first, first_end)) = lines.peek() {
            if first.is_empty() {
                self.advance(file, epoch, first_end);
                lines.next();
                continue;
            }
            // Opens the group (or closes one of another epoch) through the general path.
            if !self.open.get(&file).is_some_and(|o| o.epoch == epoch && o.hash_key.is_none()) {
                lines.next();
                self.add(file, epoch, path, topic, first_end, clock(), &[("content", first)], now, out);
                continue;
            }
            let limits = self.limits;
            let Some(open) = self.open.get_mut(&file) else { return };
            let mut full = false;
            for (text, end) in lines.by_ref() {
                if text.is_empty() {
                    open.end = open.end.max(end);
                } else if open.push(&limits, clock(), &[(CONTENT, text)], end) {
                    full = true;
                    break;
                }
            }
            if full {
                out.extend(self.close(file));
            }
        }
    }

    /// A file's `__pack_id__` context and next sequence number.
    fn pack(&mut self, file: FileId, path: &str) -> (u64, u64) {
        *self.packs.entry(file).or_insert_with(|| {
            let mut id = Vec::new();
            id.extend_from_slice(self.identity.hostname.as_bytes());
            id.extend_from_slice(path.as_bytes());
            id.extend_from_slice(&file.dev.to_le_bytes());
            id.extend_from_slice(&file.ino.to_le_bytes());
            id.extend_from_slice(&self.identity.run.to_le_bytes());
            (XxHash3_64::oneshot(&id), 1)
        })
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
        // The rest of the LogGroup after its logs, in field order, as prost writes it.
        let mut group = open.encoded;
        put_bytes(&mut group, 3, open.topic.as_bytes());
        put_bytes(&mut group, 4, self.identity.source.as_bytes());
        let pack_id = format!("{:016X}-{:X}", open.context, open.seq);
        let tags =
            [("__hostname__", self.identity.hostname.as_str()), ("__path__", &open.path), ("__pack_id__", &pack_id)];
        for (k, v) in tags {
            group.push(6 << 3 | 2);
            encode_varint((field_len(k.len()) + field_len(v.len())) as u64, &mut group);
            put_bytes(&mut group, 1, k.as_bytes());
            put_bytes(&mut group, 2, v.as_bytes());
        }
        Some(Batch {
            file,
            epoch: open.epoch,
            end: open.end,
            lines: open.lines,
            raw_bytes: open.bytes as u64,
            hash_key: open.hash_key,
            group,
        })
    }
}

/// The field a line is sent in when no processor parsed it.
pub const CONTENT: &str = "content";

/// A varint, written with one bounds check.
#[inline]
fn encode_varint(v: u64, buf: &mut Vec<u8>) {
    let mut bytes = [0u8; 10];
    let n = put_varint(&mut bytes, 0, v);
    buf.extend_from_slice(&bytes[..n]);
}

/// Writes `v` as a varint into `out` at `at`; returns where it ends.
#[inline]
fn put_varint(out: &mut [u8], mut at: usize, mut v: u64) -> usize {
    while v >= 0x80 {
        out[at] = (v as u8) | 0x80;
        v >>= 7;
        at += 1;
    }
    out[at] = v as u8;
    at + 1
}

/// The length of a length-delimited field of `len` bytes, key included.
fn field_len(len: usize) -> usize {
    1 + encoded_len_varint(len as u64) + len
}

fn put_bytes(buf: &mut Vec<u8>, tag: u8, bytes: &[u8]) {
    buf.push(tag << 3 | 2);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

/// Appends one `LogGroup.logs` entry: `Log { Time, Contents, Time_ns }`.
#[inline]
fn encode_log(buf: &mut Vec<u8>, time: u32, time_ns: u32, fields: &[(&str, &[u8])]) {
    let contents: usize = fields.iter().map(|(k, v)| field_len(field_len(k.len()) + field_len(v.len()))).sum();
    let len = 1 + encoded_len_varint(u64::from(time)) + contents + 5;
    buf.push(1 << 3 | 2);
    encode_varint(len as u64, buf);
    buf.push(1 << 3);
    encode_varint(u64::from(time), buf);
    for (k, v) in fields {
        buf.push(2 << 3 | 2);
        encode_varint((field_len(k.len()) + field_len(v.len())) as u64, buf);
        put_bytes(buf, 1, k.as_bytes());
        put_bytes(buf, 2, v);
    }
    buf.push(4 << 3 | 5);
    buf.extend_from_slice(&time_ns.to_le_bytes());
}

/// [`encode_log`] for the one field `content`, the bulk of what an agent sends: the
/// framing is put together on the stack and appended once, then the text, then
/// `Time_ns` (three copies a line where the general path makes nine).
#[inline]
fn encode_line(buf: &mut Vec<u8>, time: u32, time_ns: u32, text: &[u8]) {
    const KEY: [u8; 9] = [1 << 3 | 2, 7, b'c', b'o', b'n', b't', b'e', b'n', b't'];
    let content = KEY.len() + field_len(text.len());
    let len = 1 + encoded_len_varint(u64::from(time)) + field_len(content) + 5;
    let mut head = [0u8; 48];
    head[0] = 1 << 3 | 2;
    let mut at = put_varint(&mut head, 1, len as u64);
    head[at] = 1 << 3;
    at = put_varint(&mut head, at + 1, u64::from(time));
    head[at] = 2 << 3 | 2;
    at = put_varint(&mut head, at + 1, content as u64);
    head[at..at + KEY.len()].copy_from_slice(&KEY);
    at += KEY.len();
    head[at] = 2 << 3 | 2;
    at = put_varint(&mut head, at + 1, text.len() as u64);
    let mut tail = [4 << 3 | 5, 0, 0, 0, 0];
    tail[1..].copy_from_slice(&time_ns.to_le_bytes());
    buf.reserve(at + text.len() + tail.len());
    buf.extend_from_slice(&head[..at]);
    buf.extend_from_slice(text);
    buf.extend_from_slice(&tail);
}

/// The hex MD5 of the values of `keys` (missing ones empty), joined by `_`.
pub fn hash_key(keys: &[String], fields: &[(&str, &[u8])]) -> String {
    let values: Vec<&[u8]> =
        keys.iter().map(|k| fields.iter().find(|(f, _)| f == k).map_or(&b""[..], |(_, v)| *v)).collect();
    Md5::digest(values.join(&b'_')).iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use sluice_proto::sls::{Content, Log as ProtoLog, LogGroup, LogTag};

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
            let text = format!("line {i}");
            b.add(file, 0, &path, "t", end, (100, i as u32), &[("content", text.as_bytes())], now, &mut out);
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
        let log = |user: &'static str| [("user", user.as_bytes())];
        b.add(file, 0, &path, "", 5, (1, 0), &log("ann"), now, &mut out);
        b.add(file, 0, &path, "", 9, (1, 0), &log("bob"), now, &mut out);
        b.add(file, 1, &path, "", 3, (1, 0), &log("bob"), now, &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].hash_key.as_deref(), Some("7e0d7f8a5d96c24ffcc840f31bce72b2"), "md5 of the user's value");
        assert_eq!((out[1].epoch, out[1].end), (0, 9));
    }

    /// The hand-written encoding is byte for byte what prost writes for the same group.
    #[test]
    fn groups_are_the_bytes_prost_writes() {
        let mut b = Batcher::new(BatchLimits::default(), identity(), Vec::new());
        let file = FileId { dev: 3, ino: 4 };
        let path: Arc<str> = "/p".into();
        let now = Instant::now();
        let mut out = Vec::new();
        let long = "x".repeat(300);
        b.add(file, 0, &path, "top", 1, (1_700_000_000, 123), &[("content", long.as_bytes())], now, &mut out);
        b.add(file, 0, &path, "top", 2, (5, 0), &[("a", b"1"), ("", b"")], now, &mut out);
        b.drain(&mut out);
        let decoded = LogGroup::decode(out[0].group.as_slice()).unwrap();
        let expected = LogGroup {
            logs: vec![
                ProtoLog {
                    time: 1_700_000_000,
                    contents: vec![Content { key: "content".into(), value: long.clone().into_bytes() }],
                    values: Vec::new(),
                    time_ns: Some(123),
                },
                ProtoLog {
                    time: 5,
                    contents: vec![
                        Content { key: "a".into(), value: b"1".to_vec() },
                        Content { key: String::new(), value: Vec::new() },
                    ],
                    values: Vec::new(),
                    time_ns: Some(0),
                },
            ],
            category: None,
            topic: Some("top".into()),
            source: Some("10.0.0.1".into()),
            machine_uuid: None,
            log_tags: decoded.log_tags.clone(),
        };
        assert_eq!(decoded, expected);
        assert_eq!(out[0].group, expected.encode_to_vec());
        assert_eq!(decoded.log_tags[1], LogTag { key: "__path__".into(), value: "/p".into() });
    }

    /// The one-field path writes what the general one writes, at every varint width.
    #[test]
    fn a_line_is_encoded_as_any_log() {
        for time in [0, 127, 128, 1_700_000_000, u32::MAX] {
            for len in [0, 1, 105, 106, 127, 128, 16_370, 16_384, 2_100_000] {
                let text = vec![b'a'; len];
                let (mut line, mut log) = (Vec::new(), Vec::new());
                encode_line(&mut line, time, 7, &text);
                encode_log(&mut log, time, 7, &[(CONTENT, &text)]);
                assert!(line == log, "time {time}, {len} bytes");
            }
        }
    }

    /// A run of lines gives the very groups that adding them one by one gives.
    #[test]
    fn runs_of_lines_make_the_same_groups() {
        let limits = BatchLimits { min_bytes: 1 << 20, min_count: 3, timeout_secs: 3 };
        let file = FileId { dev: 1, ino: 9 };
        let path: Arc<str> = "/r".into();
        let now = Instant::now();
        let lines: Vec<(Vec<u8>, u64)> =
            (0..8u64).map(|i| (if i == 4 { Vec::new() } else { format!("l{i}").into_bytes() }, i * 10 + 10)).collect();
        let mut one = Batcher::new(limits, identity(), Vec::new());
        let mut by_one = Vec::new();
        let mut t = 0;
        for (text, end) in &lines {
            if text.is_empty() {
                one.advance(file, 0, *end);
                continue;
            }
            t += 1;
            one.add(file, 0, &path, "", *end, (t, 0), &[(CONTENT, text)], now, &mut by_one);
        }
        one.drain(&mut by_one);
        let mut run = Batcher::new(limits, identity(), Vec::new());
        let mut by_run = Vec::new();
        let mut t = 0;
        let clock = || {
            t += 1;
            (t, 0)
        };
        run.add_lines(file, 0, &path, "", lines.iter().map(|(l, e)| (l.as_slice(), *e)), clock, now, &mut by_run);
        run.drain(&mut by_run);
        let summary = |b: &[Batch]| b.iter().map(|b| (b.end, b.lines, b.group.clone())).collect::<Vec<_>>();
        assert_eq!(summary(&by_run), summary(&by_one));
        assert_eq!(by_run.len(), 3);
    }
}
