//! The token index of a data file: for each of its row groups, and for each quarter of it
//! (a *slice*, [`SLICES_PER_ROW_GROUP`]), a binary fuse filter (`xorf`, 8-bit
//! fingerprints: under 0.4% false positives, about 9 bits per distinct token) over the
//! lowercased SLS tokens of every text the rows hold: message, level, ids, topic, source,
//! every tag and every field's value. The tokenizer is the one queries match with
//! ([`tokens`]). A search skips the row groups whose filter lacks a token it needs, or
//! none of whose slices may match, and reads only the slices that may in the others:
//! with the Parquet page index, the pages of the other slices are neither fetched nor
//! decoded (the writer cuts pages at slice boundaries, see `schema::writer_properties`).
//! The row group's own filter keeps its false positives at one filter's (four slices'
//! filters alone would have four times as many). More slices would read less of a row
//! group but repeat its common tokens in more filters: at eighths, the index was 10.3%
//! of the compaction bench's table.
//!
//! An index is a sidecar object, `{table}/_sluice_index/{data file}.idx` (see
//! [`index_path`]): written after its data file and before the commit that adds the file,
//! so it is never visible without its data (readers look only for the files of the
//! snapshot they read); Delta's vacuum skips `_` folders, and [`orphans`] names the
//! sidecars whose data file is gone, for maintenance to delete. An index names the size
//! and the row count of each row group of its file; a reader that finds anything else
//! (an older file, a file written by another tool) ignores it and scans.
//!
//! The index also holds each row group's **time rollup**: how many of its rows fall in
//! each second (each minute, in a file whose logs are sparser than one per 8 seconds and
//! level), per `level` value, so that histograms over the row groups a range holds whole
//! are counted without reading rows (see `query::rollup`). A file with more than
//! [`MAX_LEVELS`] distinct levels gets no rollups. Span ids (one per log, found by
//! equality) are left out of the filters: they would double their size.
//!
//! Encoding (little-endian): `SLX3`, data file size (u64), the levels rollups count by
//! (u32 count, then each as a length (u32, `u32::MAX` for no level) and bytes, then the
//! rollups' unit in seconds (u32); a count of `u32::MAX`: no rollups), row groups (u32),
//! then per row group its rows (u32), its filter, its slices (u32) and per slice its rows
//! (u32) and filter; a filter is a flag (u32) and, when its rows have text, its
//! descriptor and fingerprints, each as a length (u32) and bytes; then the row group's
//! rollup as a length (u32) and LEB128
//! varints: the number of counts, then per count (ordered by second, then level) the
//! second's difference to the one before (zigzag), the level's position and the rows.
//! `SLX2` indexes (a row group's filter, no slices) and `SLX1` indexes (no levels, no
//! rollups either) are still read, each row group one slice.

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use deltalake::kernel::Add;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use prost::encoding::{decode_varint, encode_varint};
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use xorf::{BinaryFuse8, BinaryFuse8Ref, DmaSerializable, Filter, FilterRef};

use super::schema::{LEVEL, TIME_NS};

/// SLS's default token delimiters.
const DELIMITERS: &[u8] = b" ,'\";=()[]{}?@&<>/:\n\t\r";

/// [`DELIMITERS`] as a table, so that telling a delimiter is one load.
static IS_DELIMITER: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < DELIMITERS.len() {
        table[DELIMITERS[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether `b` is one of SLS's default token delimiters.
#[inline(always)]
pub fn is_delimiter(b: u8) -> bool {
    IS_DELIMITER[b as usize]
}

/// The tokens of `text`, as they are (not lowercased): the runs between delimiters.
pub fn tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| is_delimiter(*b)).filter(|t| !t.is_empty())
}

const MAGIC: &[u8; 4] = b"SLX3";
/// The second version: one filter per row group.
const MAGIC_V2: &[u8; 4] = b"SLX2";
/// The first version: one filter per row group, no rollups.
const MAGIC_V1: &[u8; 4] = b"SLX1";
/// The slices a full row group's filters are cut into.
pub const SLICES_PER_ROW_GROUP: usize = 4;

/// Rows per slice (and per Parquet page at most) for row groups of `row_group_rows`.
pub fn slice_rows(row_group_rows: usize) -> usize {
    row_group_rows.div_ceil(SLICES_PER_ROW_GROUP).max(1)
}
/// Distinct `level` values a file's rollups count by, at most.
pub const MAX_LEVELS: usize = 256;
/// The rollups' unit when a file's rows are sparse: a minute.
pub const SPARSE_UNIT_SECONDS: u32 = 60;
/// Rollups count by minute when they would hold more than one count per this many rows,
/// and more than [`MIN_SPARSE_COUNTS`] in the file (fewer take little room anyway).
const ROWS_PER_COUNT: usize = 8;
const MIN_SPARSE_COUNTS: usize = 4096;
/// The folder of a table's index sidecars.
pub const INDEX_DIR: &str = "_sluice_index";
const SUFFIX: &str = ".idx";

/// Where a data file's index lives, relative to the table: the file's own path (as the
/// Delta log names it) under [`INDEX_DIR`].
pub fn index_path(data_path: &str) -> String {
    format!("{INDEX_DIR}/{data_path}{SUFFIX}")
}

/// The data file an index path belongs to, if it is one.
pub fn data_path_of(index_path: &str) -> Option<&str> {
    index_path.strip_prefix(INDEX_DIR)?.strip_prefix('/')?.strip_suffix(SUFFIX)
}

/// The index paths (relative to the table) of `listed` whose data file is not in it:
/// what maintenance deletes after a vacuum (or a compaction that crashed before its
/// data file was kept).
pub fn orphans(listed: &[String]) -> Vec<&str> {
    let files: std::collections::HashSet<&str> = listed.iter().map(String::as_str).collect();
    listed.iter().map(String::as_str).filter(|p| data_path_of(p).is_some_and(|data| !files.contains(data))).collect()
}

/// The hash of a token, lowercased: xxHash64, stable across versions and machines.
pub fn token_hash(lowercase: &[u8]) -> u64 {
    twox_hash::XxHash64::oneshot(0, lowercase)
}

/// A hasher for keys that are hashes already (xxHash64 of tokens): the key itself.
#[derive(Debug, Default)]
pub struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// One row group's filters and rollup.
#[derive(Clone, Debug)]
pub struct RowGroupIndex {
    pub rows: u32,
    /// Over all its rows.
    pub filter: TokenFilter,
    /// Its rows in order, slice by slice.
    pub slices: Vec<Slice>,
    /// Rows per second and level, ordered by second then level (empty without rollups).
    pub rollup: Vec<Count>,
}

/// Consecutive rows of a row group, and their filter.
#[derive(Clone, Debug)]
pub struct Slice {
    pub rows: u32,
    pub filter: TokenFilter,
}

/// A binary fuse filter over the token hashes of some rows: descriptor and fingerprints;
/// `None` when the rows hold no text.
#[derive(Clone, Debug)]
pub struct TokenFilter(Option<Fuse>);

/// Rows of one unit of time and one level (a position in [`FileIndex::levels`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Count {
    /// The unit's first second (a multiple of [`FileIndex::unit_seconds`]).
    pub second: i64,
    pub level: u32,
    pub rows: u32,
}

/// A binary fuse filter as stored: descriptor and fingerprints.
type Fuse = (Box<[u8]>, Box<[u8]>);

impl TokenFilter {
    /// A filter over distinct hashes.
    fn build(distinct: &[u64]) -> Result<Self, IndexError> {
        if distinct.is_empty() {
            return Ok(Self(None));
        }
        let filter = BinaryFuse8::try_from(distinct).map_err(IndexError::Filter)?;
        let mut descriptor = vec![0; BinaryFuse8::DESCRIPTOR_LEN];
        filter.dma_copy_descriptor_to(&mut descriptor);
        Ok(Self(Some((descriptor.into(), filter.fingerprints))))
    }

    /// Whether the rows may hold every one of these tokens (hashes of lowercased
    /// tokens), one row all of them as far as the filter can tell: `false` is certain,
    /// `true` is probable.
    pub fn may_contain_all(&self, hashes: &[u64]) -> bool {
        match &self.0 {
            Some((descriptor, fingerprints)) => {
                let filter = BinaryFuse8Ref::from_dma(descriptor, fingerprints);
                hashes.iter().all(|h| filter.contains(h))
            }
            None => hashes.is_empty(),
        }
    }

    fn size(&self) -> usize {
        self.0.as_ref().map_or(0, |(d, f)| d.len() + f.len())
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match &self.0 {
            None => out.extend_from_slice(&0u32.to_le_bytes()),
            Some((descriptor, fingerprints)) => {
                out.extend_from_slice(&1u32.to_le_bytes());
                put_bytes(out, descriptor);
                put_bytes(out, fingerprints);
            }
        }
    }
}

impl RowGroupIndex {
    /// Bytes the index takes in memory.
    pub fn size(&self) -> usize {
        self.filter.size()
            + self.slices.iter().map(|s| s.filter.size()).sum::<usize>()
            + self.rollup.len() * size_of::<Count>()
    }
}

/// The index of one data file.
#[derive(Clone, Debug)]
pub struct FileIndex {
    /// The data file's size: the index belongs to that file and no other.
    pub data_size: u64,
    pub row_groups: Vec<RowGroupIndex>,
    /// The `level` values the rollups count by (`None`: logs without a level); `None`
    /// when the index has no rollups.
    pub levels: Option<Vec<Option<String>>>,
    /// The seconds each count of the rollups spans: 1, or [`SPARSE_UNIT_SECONDS`].
    pub unit_seconds: u32,
}

/// Why an index could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IndexError {
    #[error("the index is truncated or not an index")]
    Malformed,
    #[error("building a filter: {0}")]
    Filter(&'static str),
}

impl FileIndex {
    /// Rows in the file.
    pub fn rows(&self) -> u64 {
        self.row_groups.iter().map(|g| u64::from(g.rows)).sum()
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.row_groups.iter().map(|g| g.size() / 4 + 16).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.data_size.to_le_bytes());
        match &self.levels {
            None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
            Some(levels) => {
                out.extend_from_slice(&(levels.len() as u32).to_le_bytes());
                for level in levels {
                    match level {
                        None => out.extend_from_slice(&u32::MAX.to_le_bytes()),
                        Some(text) => put_bytes(&mut out, text.as_bytes()),
                    }
                }
                out.extend_from_slice(&self.unit_seconds.to_le_bytes());
            }
        }
        out.extend_from_slice(&(self.row_groups.len() as u32).to_le_bytes());
        let mut rollup = Vec::new();
        for group in &self.row_groups {
            out.extend_from_slice(&group.rows.to_le_bytes());
            group.filter.encode(&mut out);
            out.extend_from_slice(&(group.slices.len() as u32).to_le_bytes());
            for slice in &group.slices {
                out.extend_from_slice(&slice.rows.to_le_bytes());
                slice.filter.encode(&mut out);
            }
            rollup.clear();
            encode_varint(group.rollup.len() as u64, &mut rollup);
            let mut second = 0i64;
            for count in &group.rollup {
                let delta = count.second.wrapping_sub(second);
                encode_varint(((delta << 1) ^ (delta >> 63)) as u64, &mut rollup);
                encode_varint(u64::from(count.level), &mut rollup);
                encode_varint(u64::from(count.rows), &mut rollup);
                second = count.second;
            }
            put_bytes(&mut out, &rollup);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let mut r = Reader(bytes);
        let version = r.take(4)?;
        let (v1, v2) = (version == MAGIC_V1, version == MAGIC_V2);
        if !v1 && !v2 && version != MAGIC {
            return Err(IndexError::Malformed);
        }
        let data_size = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| IndexError::Malformed)?);
        let levels = match if v1 { u32::MAX } else { r.u32()? } {
            u32::MAX => None,
            n if n as usize > MAX_LEVELS => return Err(IndexError::Malformed),
            n => Some(
                (0..n)
                    .map(|_| match r.u32()? {
                        u32::MAX => Ok(None),
                        len => {
                            let text = std::str::from_utf8(r.take(len as usize)?).map_err(|_| IndexError::Malformed)?;
                            Ok(Some(text.to_owned()))
                        }
                    })
                    .collect::<Result<Vec<_>, IndexError>>()?,
            ),
        };
        let unit_seconds = if levels.is_some() { r.u32()? } else { 1 };
        if unit_seconds != 1 && unit_seconds != SPARSE_UNIT_SECONDS {
            return Err(IndexError::Malformed);
        }
        let count = r.u32()?;
        let mut row_groups = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let rows = r.u32()?;
            let filter = r.filter()?;
            let slices = if v1 || v2 {
                vec![Slice { rows, filter: filter.clone() }]
            } else {
                let count = r.u32()?;
                // Each slice holds rows: no more slices than rows.
                if count > rows || (count == 0 && rows > 0) {
                    return Err(IndexError::Malformed);
                }
                let slices = (0..count)
                    .map(|_| Ok(Slice { rows: r.u32()?, filter: r.filter()? }))
                    .collect::<Result<Vec<_>, _>>()?;
                if slices.iter().any(|s| s.rows == 0)
                    || slices.iter().map(|s| u64::from(s.rows)).sum::<u64>() != u64::from(rows)
                {
                    return Err(IndexError::Malformed);
                }
                slices
            };
            let rollup = if v1 {
                Vec::new()
            } else {
                let len = r.u32()? as usize;
                decode_rollup(r.take(len)?, levels.as_ref().map_or(0, Vec::len), unit_seconds, rows)?
            };
            row_groups.push(RowGroupIndex { rows, filter, slices, rollup });
        }
        if !r.0.is_empty() {
            return Err(IndexError::Malformed);
        }
        Ok(Self { data_size, row_groups, levels, unit_seconds })
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// A row group's rollup; it must count exactly its `rows` (none when there are no
/// levels), in order, in whole units, with levels among the `levels` of the file.
fn decode_rollup(mut bytes: &[u8], levels: usize, unit: u32, rows: u32) -> Result<Vec<Count>, IndexError> {
    let mut varint = || decode_varint(&mut bytes).map_err(|_| IndexError::Malformed);
    let n = varint()?;
    if n > u64::from(rows) {
        return Err(IndexError::Malformed);
    }
    let (mut counts, mut second, mut total) = (Vec::with_capacity(n as usize), 0i64, 0u64);
    for _ in 0..n {
        let zigzag = varint()?;
        second = second.wrapping_add(((zigzag >> 1) as i64) ^ -((zigzag & 1) as i64));
        let level = u32::try_from(varint()?).map_err(|_| IndexError::Malformed)?;
        let count_rows = u32::try_from(varint()?).map_err(|_| IndexError::Malformed)?;
        let count = Count { second, level, rows: count_rows };
        let ordered = counts.last().is_none_or(|last: &Count| (last.second, last.level) < (second, level));
        if level as usize >= levels || count_rows == 0 || !ordered || second.rem_euclid(i64::from(unit)) != 0 {
            return Err(IndexError::Malformed);
        }
        total += u64::from(count_rows);
        counts.push(count);
    }
    if !bytes.is_empty() || (levels > 0 && total != u64::from(rows)) || (levels == 0 && n > 0) {
        return Err(IndexError::Malformed);
    }
    Ok(counts)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], IndexError> {
        if self.0.len() < n {
            return Err(IndexError::Malformed);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }
    fn u32(&mut self) -> Result<u32, IndexError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| IndexError::Malformed)?))
    }
    /// A flag, then when set a filter's descriptor and fingerprints.
    fn filter(&mut self) -> Result<TokenFilter, IndexError> {
        if self.u32()? == 0 {
            return Ok(TokenFilter(None));
        }
        let len = self.u32()? as usize;
        let descriptor = self.take(len)?;
        if descriptor.len() != BinaryFuse8::DESCRIPTOR_LEN {
            return Err(IndexError::Malformed);
        }
        let len = self.u32()? as usize;
        let fingerprints = self.take(len)?;
        Ok(TokenFilter(Some((descriptor.into(), fingerprints.into()))))
    }
}

/// Builds a file's index from its rows, in the order they are written, cutting a row
/// group every `row_group_rows` rows as the Parquet writer does, and a slice every
/// [`slice_rows`].
#[derive(Debug)]
pub struct IndexBuilder {
    row_group_rows: usize,
    slice_rows: usize,
    /// Rows in the row group, and in its slice.
    rows: usize,
    rows_in_slice: usize,
    /// The row group's distinct token hashes, those new to a slice added as it is sealed.
    group_hashes: HashSet<u64, BuildHasherDefault<Prehashed>>,
    /// The slice's distinct token hashes (kept distinct as they come: sorting every
    /// token's hash per row group cost as much as the rest of compaction).
    hashes: HashSet<u64, BuildHasherDefault<Prehashed>>,
    lower: Vec<u8>,
    /// The hashes added last, by their low bits: a token seen again soon (a common word,
    /// a key, a status) is known without a probe of `hashes`, which grows past the caches.
    recent: Box<[u64]>,
    slices: Vec<Slice>,
    row_groups: Vec<RowGroupIndex>,
    /// `None` once the rows cannot be rolled up (no time, too many levels).
    rollup: Option<RollupBuilder>,
}

impl IndexBuilder {
    pub fn new(row_group_rows: usize) -> Self {
        Self {
            row_group_rows: row_group_rows.max(1),
            slice_rows: slice_rows(row_group_rows),
            rows: 0,
            rows_in_slice: 0,
            group_hashes: HashSet::default(),
            hashes: HashSet::default(),
            lower: Vec::new(),
            recent: empty_recent(),
            slices: Vec::new(),
            row_groups: Vec::new(),
            rollup: Some(RollupBuilder::default()),
        }
    }

    /// Adds rows that follow the rows added before.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), IndexError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = (self.row_group_rows - self.rows)
                .min(self.slice_rows - self.rows_in_slice)
                .min(batch.num_rows() - offset);
            let part = batch.slice(offset, n);
            for (field, column) in part.schema().fields().iter().zip(part.columns()) {
                if super::schema::tokens_indexed(field.name()) {
                    self.add_text(column.as_ref());
                }
            }
            if let Some(rollup) = &mut self.rollup
                && rollup.add(&part).is_none()
            {
                self.rollup = None;
            }
            self.rows += n;
            self.rows_in_slice += n;
            offset += n;
            if self.rows == self.row_group_rows {
                self.seal()?;
            } else if self.rows_in_slice == self.slice_rows {
                self.seal_slice()?;
            }
        }
        Ok(())
    }

    /// The index, for the data file of `data_size` bytes the rows were written to.
    pub fn finish(mut self, data_size: u64) -> Result<FileIndex, IndexError> {
        if self.rows > 0 {
            self.seal()?;
        }
        let levels = self.rollup.map(|r| r.levels);
        let (counts, rows) = self.row_groups.iter().fold((0, 0), |(c, r), g| (c + g.rollup.len(), r + g.rows as usize));
        let sparse = counts > rows / ROWS_PER_COUNT && counts > MIN_SPARSE_COUNTS;
        let unit_seconds = if sparse { SPARSE_UNIT_SECONDS } else { 1 };
        for group in &mut self.row_groups {
            if levels.is_none() {
                group.rollup = Vec::new();
            } else if unit_seconds > 1 {
                for count in &mut group.rollup {
                    count.second = count.second.div_euclid(i64::from(unit_seconds)) * i64::from(unit_seconds);
                }
                merge_counts(&mut group.rollup);
            }
        }
        Ok(FileIndex { data_size, row_groups: self.row_groups, levels, unit_seconds })
    }

    fn seal(&mut self) -> Result<(), IndexError> {
        if self.rows_in_slice > 0 {
            self.seal_slice()?;
        }
        let rollup = self.rollup.as_mut().map(RollupBuilder::seal).unwrap_or_default();
        let slices = std::mem::take(&mut self.slices);
        let distinct: Vec<u64> = self.group_hashes.drain().collect();
        let filter = TokenFilter::build(&distinct)?;
        self.row_groups.push(RowGroupIndex { rows: self.rows as u32, filter, slices, rollup });
        self.rows = 0;
        Ok(())
    }

    fn seal_slice(&mut self) -> Result<(), IndexError> {
        let distinct: Vec<u64> = self.hashes.drain().collect();
        let filter = TokenFilter::build(&distinct)?;
        self.group_hashes.extend(distinct);
        self.slices.push(Slice { rows: self.rows_in_slice as u32, filter });
        forget_recent(&mut self.recent);
        self.rows_in_slice = 0;
        Ok(())
    }

    /// The tokens of every string an array holds: its own, a map's values, a struct's
    /// columns, a dictionary's values.
    fn add_text(&mut self, array: &dyn Array) {
        match array.data_type() {
            DataType::Utf8 => {
                // A value the row before had too (a run of one topic, source or level)
                // adds nothing.
                let mut previous = None;
                for value in array.as_string::<i32>().iter().flatten() {
                    if previous != Some(value) {
                        self.add_value(value.as_bytes());
                        previous = Some(value);
                    }
                }
            }
            DataType::LargeUtf8 => {
                for value in array.as_string::<i64>().iter().flatten() {
                    self.add_value(value.as_bytes());
                }
            }
            DataType::Utf8View => {
                for value in array.as_string_view().iter().flatten() {
                    self.add_value(value.as_bytes());
                }
            }
            DataType::Dictionary(_, _) => {
                if let Some(dictionary) = array.as_any_dictionary_opt() {
                    self.add_text(dictionary.values().as_ref());
                }
            }
            DataType::Map(_, _) => {
                let map = array.as_map();
                let offsets = map.value_offsets();
                let (start, end) = (offsets[0] as usize, offsets[map.len()] as usize);
                self.add_text(map.values().slice(start, end - start).as_ref());
            }
            DataType::Struct(_) => {
                for column in array.as_struct().columns() {
                    self.add_text(column.as_ref());
                }
            }
            _ => {}
        }
    }

    fn add_value(&mut self, value: &[u8]) {
        // Lowercased once for the whole value (ASCII case only, as queries lowercase
        // tokens: delimiters are ASCII and keep their place).
        self.lower.clear();
        self.lower.extend(value.iter().map(u8::to_ascii_lowercase));
        for token in tokens(&self.lower) {
            let hash = token_hash(token);
            let slot = &mut self.recent[hash as usize & (RECENT - 1)];
            if *slot != hash {
                *slot = hash;
                self.hashes.insert(hash);
            }
        }
    }
}

/// Slots of [`IndexBuilder::recent`]: 32 KB, within the first-level cache.
const RECENT: usize = 4096;

/// A `recent` that knows no hash.
fn empty_recent() -> Box<[u64]> {
    let mut recent = vec![0; RECENT].into_boxed_slice();
    forget_recent(&mut recent);
    recent
}

/// Makes a `recent` know no hash: each slot holds a value whose low bits name another
/// slot, so that no hash finds itself there.
fn forget_recent(recent: &mut [u64]) {
    recent.iter_mut().zip(0u64..).for_each(|(hash, slot)| *hash = !slot);
}

/// Counts a row group's rows per second and level as they are added: rows in time order
/// make one count per second and level without a lookup per row.
#[derive(Debug, Default)]
struct RollupBuilder {
    /// The file's levels, by position, and the positions of the named ones.
    levels: Vec<Option<String>>,
    named: HashMap<String, u32>,
    unnamed: Option<u32>,
    /// The second being counted, its rows per level position, and the positions it has.
    second: Option<i64>,
    per_level: Vec<u32>,
    touched: Vec<u32>,
    counts: Vec<Count>,
    ids: Vec<u32>,
}

impl RollupBuilder {
    /// Counts rows; `None` when they cannot be rolled up.
    fn add(&mut self, batch: &RecordBatch) -> Option<()> {
        let times = batch.column_by_name(TIME_NS)?.as_primitive_opt::<Int64Type>()?;
        if times.null_count() > 0 {
            return None;
        }
        self.level_ids(batch.column_by_name(LEVEL), batch.num_rows())?;
        let ids = std::mem::take(&mut self.ids);
        for (time, level) in times.values().iter().zip(&ids) {
            let second = time.div_euclid(1_000_000_000);
            if self.second != Some(second) {
                self.end_second();
                self.second = Some(second);
            }
            let slot = &mut self.per_level[*level as usize];
            if *slot == 0 {
                self.touched.push(*level);
            }
            *slot += 1;
        }
        self.ids = ids;
        Some(())
    }

    /// The level position of each row, in `self.ids`; `None` past [`MAX_LEVELS`].
    fn level_ids(&mut self, column: Option<&ArrayRef>, rows: usize) -> Option<()> {
        self.ids.clear();
        let Some(column) = column else {
            let id = self.id(None)?;
            self.ids.resize(rows, id);
            return Some(());
        };
        if let Some(dictionary) = column.as_any_dictionary_opt() {
            let values = cast(dictionary.values(), &DataType::Utf8).ok()?;
            let values = values.as_string::<i32>();
            let value_ids = (0..values.len())
                .map(|i| self.id(values.is_valid(i).then(|| values.value(i))))
                .collect::<Option<Vec<u32>>>()?;
            let null = if column.logical_null_count() > 0 { Some(self.id(None)?) } else { None };
            let nulls = column.logical_nulls();
            for (row, key) in dictionary.normalized_keys().into_iter().enumerate() {
                let valid = nulls.as_ref().is_none_or(|n| n.is_valid(row));
                self.ids.push(if valid { value_ids[key] } else { null.unwrap_or(0) });
            }
            return Some(());
        }
        let strings = cast(column, &DataType::Utf8).ok()?;
        let mut last: Option<(Option<&str>, u32)> = None;
        for value in strings.as_string::<i32>().iter() {
            let id = match last {
                Some((seen, id)) if seen == value => id,
                _ => self.id(value)?,
            };
            last = Some((value, id));
            self.ids.push(id);
        }
        Some(())
    }

    /// A level's position, added when new.
    fn id(&mut self, level: Option<&str>) -> Option<u32> {
        let known = match level {
            None => self.unnamed,
            Some(text) => self.named.get(text).copied(),
        };
        if known.is_some() {
            return known;
        }
        if self.levels.len() >= MAX_LEVELS {
            return None;
        }
        let id = self.levels.len() as u32;
        self.levels.push(level.map(str::to_owned));
        self.per_level.push(0);
        match level {
            None => self.unnamed = Some(id),
            Some(text) => {
                self.named.insert(text.to_owned(), id);
            }
        }
        Some(id)
    }

    fn end_second(&mut self) {
        let Some(second) = self.second.take() else { return };
        self.touched.sort_unstable();
        for level in self.touched.drain(..) {
            let rows = std::mem::take(&mut self.per_level[level as usize]);
            self.counts.push(Count { second, level, rows });
        }
    }

    /// The row group's counts, ordered by second and level.
    fn seal(&mut self) -> Vec<Count> {
        self.end_second();
        let mut counts = std::mem::take(&mut self.counts);
        merge_counts(&mut counts);
        counts
    }
}

/// Counts in order, one per unit and level.
fn merge_counts(counts: &mut Vec<Count>) {
    if counts.is_sorted() {
        return;
    }
    counts.sort_unstable();
    counts.dedup_by(|later, kept| {
        let same = (later.second, later.level) == (kept.second, kept.level);
        if same {
            kept.rows += later.rows;
        }
        same
    });
}

/// The indexes of the files one writer writes, one per partition: rows are added per
/// partition in the order they are written; each partition's rows go to one file.
#[derive(Debug)]
pub struct PartitionIndexes {
    row_group_rows: usize,
    builders: HashMap<String, IndexBuilder>,
}

impl PartitionIndexes {
    pub fn new(row_group_rows: usize) -> Self {
        Self { row_group_rows, builders: HashMap::new() }
    }

    /// Adds rows written to `partition` (the `date` value) after the ones added before.
    pub fn add(&mut self, partition: &str, batch: &RecordBatch) -> Result<(), IndexError> {
        let row_group_rows = self.row_group_rows;
        self.builders.entry(partition.to_owned()).or_insert_with(|| IndexBuilder::new(row_group_rows)).add(batch)
    }

    /// The index of each file the writer wrote (`adds`, with their partition value under
    /// `partition_column`): `(index path relative to the table, encoded index)`. A
    /// partition written to more than one file gets none (its files are scanned).
    pub fn finish(mut self, adds: &[Add], partition_column: &str) -> Result<Vec<(String, Vec<u8>)>, IndexError> {
        let mut files: HashMap<&str, Vec<&Add>> = HashMap::new();
        for add in adds {
            if let Some(Some(value)) = add.partition_values.get(partition_column) {
                files.entry(value.as_str()).or_default().push(add);
            }
        }
        let mut out = Vec::new();
        for (partition, adds) in files {
            if let ([add], Some(builder)) = (adds.as_slice(), self.builders.remove(partition)) {
                let index = builder.finish(u64::try_from(add.size).unwrap_or(0))?;
                if i64::try_from(index.rows()).ok() == add.get_stats().ok().flatten().map(|s| s.num_records) {
                    out.push((index_path(&add.path), index.encode()));
                }
            }
        }
        Ok(out)
    }
}

/// Writes indexes (paths relative to the table at `table_prefix`) before the commit that
/// adds their files.
pub async fn put_all(
    store: &dyn ObjectStore,
    table_prefix: &str,
    indexes: Vec<(String, Vec<u8>)>,
) -> Result<(), super::LakeError> {
    futures::stream::iter(indexes)
        .map(|(path, bytes)| async move {
            let key = Path::parse(format!("{table_prefix}/{path}"))?;
            store.put(&key, PutPayload::from(bytes)).await?;
            Ok::<_, super::LakeError>(())
        })
        .buffer_unordered(8)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Deletes the indexes of a table whose data files are gone. Returns how many.
pub async fn delete_orphans(store: &dyn ObjectStore, table_prefix: &str) -> Result<usize, super::LakeError> {
    let root = Path::parse(table_prefix)?;
    let listed: Vec<String> = store
        .list(Some(&root))
        .map_ok(|meta| {
            meta.location
                .prefix_match(&root)
                .map(|parts| parts.map(|p| p.as_ref().to_owned()).collect::<Vec<_>>().join("/"))
                .unwrap_or_default()
        })
        .try_collect()
        .await?;
    let orphans: Vec<Path> =
        orphans(&listed).into_iter().map(|p| Path::parse(format!("{table_prefix}/{p}"))).collect::<Result<_, _>>()?;
    let count = orphans.len();
    for key in orphans {
        store.delete(&key).await?;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use std::sync::Arc;

    fn batch(values: &[&str]) -> RecordBatch {
        let column: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        RecordBatch::try_from_iter([("message", column)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn hashes(words: &[&str]) -> Vec<u64> {
        words.iter().map(|w| token_hash(w.as_bytes())).collect()
    }

    impl RowGroupIndex {
        /// Whether the row group may hold a row with every one of these tokens, as a
        /// search decides it: its filter may, and one of its slices' may.
        fn may_contain_all(&self, hashes: &[u64]) -> bool {
            self.filter.may_contain_all(hashes) && self.slices.iter().any(|s| s.filter.may_contain_all(hashes))
        }
    }

    #[test]
    fn row_groups_hold_their_own_tokens_and_round_trip() {
        let mut builder = IndexBuilder::new(2);
        builder.add(&batch(&["GET /api/V1 ok", "alpha"])).unwrap();
        builder.add(&batch(&["beta", "", "gamma"])).unwrap();
        let index = FileIndex::decode(&builder.finish(1234).unwrap().encode()).unwrap();
        assert_eq!(index.data_size, 1234);
        assert_eq!(index.row_groups.iter().map(|g| g.rows).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(index.row_groups[0].may_contain_all(&hashes(&["get", "api", "v1"])));
        assert!(index.row_groups[0].may_contain_all(&hashes(&["alpha"])));
        // Tokens of different rows (slices of one row, here) are not found together.
        assert!(!index.row_groups[0].may_contain_all(&hashes(&["get", "alpha"])));
        assert!(!index.row_groups[1].may_contain_all(&hashes(&["alpha"])));
        assert!(index.row_groups[1].may_contain_all(&hashes(&["beta"])));
        assert!(index.row_groups[2].may_contain_all(&hashes(&["gamma"])));
        assert!(index.row_groups[2].may_contain_all(&[]));
        // Row groups of 2 rows are cut into slices of 1 row, each with its own tokens.
        let slices = &index.row_groups[0].slices;
        assert_eq!(slices.iter().map(|s| s.rows).collect::<Vec<_>>(), [1, 1]);
        assert!(
            slices[0].filter.may_contain_all(&hashes(&["get", "api", "v1"]))
                && !slices[0].filter.may_contain_all(&hashes(&["alpha"]))
        );
        assert!(
            slices[1].filter.may_contain_all(&hashes(&["alpha"]))
                && !slices[1].filter.may_contain_all(&hashes(&["get"]))
        );
        // The second row group's second slice is the empty message: no tokens, no filter.
        assert!(!index.row_groups[1].slices[1].filter.may_contain_all(&hashes(&["beta"])));
        assert!(index.row_groups[1].slices[1].filter.may_contain_all(&[]));
    }

    #[test]
    fn slices_cut_row_groups_in_quarters_across_batches() {
        let words: Vec<String> = (0..45).map(|i| format!("w{i}")).collect();
        let mut builder = IndexBuilder::new(20);
        for part in words.chunks(7) {
            builder.add(&batch(&part.iter().map(String::as_str).collect::<Vec<_>>())).unwrap();
        }
        let index = FileIndex::decode(&builder.finish(5).unwrap().encode()).unwrap();
        let rows: Vec<Vec<u32>> = index.row_groups.iter().map(|g| g.slices.iter().map(|s| s.rows).collect()).collect();
        assert_eq!(rows, [vec![5; 4], vec![5; 4], vec![5]]);
        // Each word is found in its own slice, and in others only as the filters' false
        // positives (0.4% each).
        let (mut first, mut false_positives) = (0, 0);
        for group in &index.row_groups {
            for slice in &group.slices {
                for (i, word) in words.iter().enumerate() {
                    let inside = (first..first + slice.rows as usize).contains(&i);
                    let found = slice.filter.may_contain_all(&hashes(&[word]));
                    assert!(found || !inside, "{word} is in its slice");
                    false_positives += usize::from(found && !inside);
                }
                first += slice.rows as usize;
            }
        }
        assert!(false_positives < 10, "{false_positives} false positives");
    }

    #[test]
    fn second_version_indexes_are_read_as_one_slice_per_row_group() {
        let mut v2 = b"SLX2".to_vec();
        v2.extend_from_slice(&7u64.to_le_bytes());
        v2.extend_from_slice(&u32::MAX.to_le_bytes()); // no rollups
        v2.extend_from_slice(&1u32.to_le_bytes());
        v2.extend_from_slice(&3u32.to_le_bytes());
        v2.extend_from_slice(&0u32.to_le_bytes()); // no filter
        v2.extend_from_slice(&1u32.to_le_bytes());
        v2.push(0); // an empty rollup
        let index = FileIndex::decode(&v2).unwrap();
        assert_eq!(index.row_groups[0].slices.iter().map(|s| s.rows).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn anything_else_is_malformed() {
        let encoded = IndexBuilder::new(4).finish(1).unwrap().encode();
        assert!(FileIndex::decode(&encoded).is_ok());
        for bad in [&b""[..], b"SLX2", b"SLX3", &encoded[..encoded.len() - 1], &[encoded.as_slice(), b"x"].concat()] {
            assert!(FileIndex::decode(bad).is_err());
        }
    }

    fn timed(rows: &[(i64, Option<&str>)]) -> RecordBatch {
        let times: ArrayRef = Arc::new(Int64Array::from(rows.iter().map(|r| r.0).collect::<Vec<_>>()));
        let levels: ArrayRef = Arc::new(StringArray::from(rows.iter().map(|r| r.1).collect::<Vec<_>>()));
        RecordBatch::try_from_iter([(TIME_NS, times), (LEVEL, levels)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn counts(index: &FileIndex, group: usize) -> Vec<(i64, Option<&str>, u32)> {
        let levels = index.levels.as_ref().unwrap();
        index.row_groups[group].rollup.iter().map(|c| (c.second, levels[c.level as usize].as_deref(), c.rows)).collect()
    }

    #[test]
    fn rollups_count_each_row_group_by_second_and_level() {
        const S: i64 = 1_000_000_000;
        let mut builder = IndexBuilder::new(4);
        builder.add(&timed(&[(5 * S, Some("info")), (5 * S + 1, Some("ERROR")), (5 * S + 2, Some("info"))])).unwrap();
        // Out of time order within a row group, and a level-less row.
        builder
            .add(&timed(&[(9 * S, None), (-S - 1, Some("info")), (9 * S + 7, None), (5 * S, Some("info"))]))
            .unwrap();
        let index = FileIndex::decode(&builder.finish(99).unwrap().encode()).unwrap();
        assert_eq!(
            counts(&index, 0),
            [(5, Some("info"), 2), (5, Some("ERROR"), 1), (9, None, 1)],
            "by second, then level position"
        );
        assert_eq!(counts(&index, 1), [(-2, Some("info"), 1), (5, Some("info"), 1), (9, None, 1)]);

        // Dictionary-encoded levels count the same.
        let mut builder = IndexBuilder::new(8);
        let rows = timed(&[(S, Some("warn")), (S, None), (2 * S, Some("warn"))]);
        let dictionary =
            cast(rows.column(1), &DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))).unwrap();
        assert!(matches!(dictionary.data_type(), DataType::Dictionary(..)));
        builder
            .add(&RecordBatch::try_from_iter([(TIME_NS, rows.column(0).clone()), (LEVEL, dictionary)]).unwrap())
            .unwrap();
        let index = FileIndex::decode(&builder.finish(1).unwrap().encode()).unwrap();
        assert_eq!(counts(&index, 0), [(1, Some("warn"), 1), (1, None, 1), (2, Some("warn"), 1)]);
    }

    #[test]
    fn sparse_rows_roll_up_by_minute() {
        const S: i64 = 1_000_000_000;
        let rows: Vec<(i64, Option<&str>)> =
            (0..6000).map(|i| (i * 7 * S, Some(if i % 3 == 0 { "error" } else { "info" }))).collect();
        let mut builder = IndexBuilder::new(4000);
        builder.add(&timed(&rows)).unwrap();
        let index = FileIndex::decode(&builder.finish(1).unwrap().encode()).unwrap();
        assert_eq!(index.unit_seconds, SPARSE_UNIT_SECONDS);
        let counts = &index.row_groups[0].rollup;
        assert!(counts.iter().all(|c| c.second % 60 == 0) && counts.is_sorted());
        assert_eq!(counts.iter().map(|c| u64::from(c.rows)).sum::<u64>(), 4000);
        // 0, 7, ..., 56 s: 9 logs in the first minute, 3 of them errors.
        assert_eq!((counts[0].second, counts[0].rows, counts[1].second, counts[1].rows), (0, 3, 0, 6));
        // Dense rows keep their seconds.
        let rows: Vec<(i64, Option<&str>)> = (0..6000).map(|i| (i / 100 * S, Some("info"))).collect();
        let mut builder = IndexBuilder::new(4000);
        builder.add(&timed(&rows)).unwrap();
        assert_eq!(builder.finish(1).unwrap().unit_seconds, 1);
    }

    #[test]
    fn rows_without_time_or_with_too_many_levels_get_no_rollups() {
        let mut builder = IndexBuilder::new(4);
        builder.add(&batch(&["a"])).unwrap();
        let index = FileIndex::decode(&builder.finish(1).unwrap().encode()).unwrap();
        assert!(index.levels.is_none() && index.row_groups[0].rollup.is_empty());

        let levels: Vec<String> = (0..=MAX_LEVELS).map(|i| format!("l{i}")).collect();
        let rows: Vec<(i64, Option<&str>)> = levels.iter().map(|l| (0, Some(l.as_str()))).collect();
        let mut builder = IndexBuilder::new(100);
        builder.add(&timed(&rows)).unwrap();
        let index = FileIndex::decode(&builder.finish(1).unwrap().encode()).unwrap();
        assert!(index.levels.is_none() && index.row_groups.iter().all(|g| g.rollup.is_empty()));
        assert!(index.row_groups[0].may_contain_all(&hashes(&["l7"])));
    }

    #[test]
    fn first_version_indexes_are_read_without_rollups() {
        let mut v1 = b"SLX1".to_vec();
        v1.extend_from_slice(&7u64.to_le_bytes());
        v1.extend_from_slice(&1u32.to_le_bytes());
        v1.extend_from_slice(&3u32.to_le_bytes());
        v1.extend_from_slice(&0u32.to_le_bytes());
        let index = FileIndex::decode(&v1).unwrap();
        assert_eq!((index.data_size, index.rows(), index.levels.is_none()), (7, 3, true));
    }

    #[test]
    fn index_paths_name_their_data_file() {
        let data = "date=2025-01-15/part-00000-1f2e-c000.zstd.parquet";
        assert_eq!(data_path_of(&index_path(data)), Some(data));
        assert_eq!(data_path_of(data), None);
        let listed = vec![data.to_owned(), index_path(data), index_path("date=2025-01-14/gone.parquet")];
        assert_eq!(orphans(&listed), [index_path("date=2025-01-14/gone.parquet")]);
    }
}
