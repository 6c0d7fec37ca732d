//! The token index of a data file: for each of its row groups, a binary fuse filter
//! (`xorf`, 8-bit fingerprints: under 0.4% false positives, about 9 bits per distinct
//! token) over the lowercased SLS tokens of every text the rows hold: message, level,
//! ids, topic, source, every tag and every field's value. The tokenizer is the one
//! queries match with ([`tokens`]).
//!
//! An index is a sidecar object, `{table}/_sluice_index/{data file}.idx` (see
//! [`index_path`]): written after its data file and before the commit that adds the file,
//! so it is never visible without its data (readers look only for the files of the
//! snapshot they read); Delta's vacuum skips `_` folders, and [`orphans`] names the
//! sidecars whose data file is gone, for maintenance to delete. An index names the size
//! and the row count of each row group of its file; a reader that finds anything else
//! (an older file, a file written by another tool) ignores it and scans.
//!
//! Encoding (little-endian): `SLX1`, data file size (u64), row groups (u32), then per row
//! group its rows (u32), its distinct tokens (u32) and, when it has any, the filter's
//! descriptor and fingerprints, each as a length (u32) and bytes.

use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use deltalake::kernel::Add;
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::collections::HashMap;
use xorf::{BinaryFuse8, BinaryFuse8Ref, DmaSerializable, Filter, FilterRef};

/// SLS's default token delimiters.
pub fn is_delimiter(b: u8) -> bool {
    matches!(
        b,
        b' ' | b','
            | b'\''
            | b'"'
            | b';'
            | b'='
            | b'('
            | b')'
            | b'['
            | b']'
            | b'{'
            | b'}'
            | b'?'
            | b'@'
            | b'&'
            | b'<'
            | b'>'
            | b'/'
            | b':'
            | b'\n'
            | b'\t'
            | b'\r'
    )
}

/// The tokens of `text`, as they are (not lowercased): the runs between delimiters.
pub fn tokens(text: &[u8]) -> impl Iterator<Item = &[u8]> {
    text.split(|b| is_delimiter(*b)).filter(|t| !t.is_empty())
}

const MAGIC: &[u8; 4] = b"SLX1";
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

/// One row group's filter.
#[derive(Clone, Debug)]
pub struct RowGroupIndex {
    pub rows: u32,
    /// The filter's descriptor and fingerprints; `None` when the row group holds no text.
    filter: Option<Fuse>,
}

/// A binary fuse filter as stored: descriptor and fingerprints.
type Fuse = (Box<[u8]>, Box<[u8]>);

impl RowGroupIndex {
    /// Whether the row group may hold every one of these tokens (hashes of lowercased
    /// tokens): `false` is certain, `true` is probable.
    pub fn may_contain_all(&self, hashes: &[u64]) -> bool {
        match &self.filter {
            Some((descriptor, fingerprints)) => {
                let filter = BinaryFuse8Ref::from_dma(descriptor, fingerprints);
                hashes.iter().all(|h| filter.contains(h))
            }
            None => hashes.is_empty(),
        }
    }

    /// Bytes of the filter.
    pub fn size(&self) -> usize {
        self.filter.as_ref().map_or(0, |(d, f)| d.len() + f.len())
    }
}

/// The index of one data file.
#[derive(Clone, Debug)]
pub struct FileIndex {
    /// The data file's size: the index belongs to that file and no other.
    pub data_size: u64,
    pub row_groups: Vec<RowGroupIndex>,
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
        let mut out = Vec::with_capacity(16 + self.row_groups.iter().map(|g| g.size() + 16).sum::<usize>());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.data_size.to_le_bytes());
        out.extend_from_slice(&(self.row_groups.len() as u32).to_le_bytes());
        for group in &self.row_groups {
            out.extend_from_slice(&group.rows.to_le_bytes());
            match &group.filter {
                None => out.extend_from_slice(&0u32.to_le_bytes()),
                Some((descriptor, fingerprints)) => {
                    out.extend_from_slice(&1u32.to_le_bytes());
                    for part in [descriptor, fingerprints] {
                        out.extend_from_slice(&(part.len() as u32).to_le_bytes());
                        out.extend_from_slice(part);
                    }
                }
            }
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, IndexError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(IndexError::Malformed);
        }
        let data_size = u64::from_le_bytes(r.take(8)?.try_into().map_err(|_| IndexError::Malformed)?);
        let count = r.u32()?;
        let mut row_groups = Vec::with_capacity(count.min(1 << 16) as usize);
        for _ in 0..count {
            let rows = r.u32()?;
            let filter = match r.u32()? {
                0 => None,
                _ => {
                    let len = r.u32()? as usize;
                    let descriptor = r.take(len)?;
                    if descriptor.len() != BinaryFuse8::DESCRIPTOR_LEN {
                        return Err(IndexError::Malformed);
                    }
                    let len = r.u32()? as usize;
                    let fingerprints = r.take(len)?;
                    Some((descriptor.into(), fingerprints.into()))
                }
            };
            row_groups.push(RowGroupIndex { rows, filter });
        }
        if !r.0.is_empty() {
            return Err(IndexError::Malformed);
        }
        Ok(Self { data_size, row_groups })
    }
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
}

/// Builds a file's index from its rows, in the order they are written, cutting a row
/// group every `row_group_rows` rows as the Parquet writer does.
#[derive(Debug)]
pub struct IndexBuilder {
    row_group_rows: usize,
    rows: usize,
    hashes: Vec<u64>,
    lower: Vec<u8>,
    row_groups: Vec<RowGroupIndex>,
}

impl IndexBuilder {
    pub fn new(row_group_rows: usize) -> Self {
        Self {
            row_group_rows: row_group_rows.max(1),
            rows: 0,
            hashes: Vec::new(),
            lower: Vec::new(),
            row_groups: Vec::new(),
        }
    }

    /// Adds rows that follow the rows added before.
    pub fn add(&mut self, batch: &RecordBatch) -> Result<(), IndexError> {
        let mut offset = 0;
        while offset < batch.num_rows() {
            let n = (self.row_group_rows - self.rows).min(batch.num_rows() - offset);
            let part = batch.slice(offset, n);
            for column in part.columns() {
                self.add_text(column.as_ref());
            }
            self.rows += n;
            offset += n;
            if self.rows == self.row_group_rows {
                self.seal()?;
            }
        }
        Ok(())
    }

    /// The index, for the data file of `data_size` bytes the rows were written to.
    pub fn finish(mut self, data_size: u64) -> Result<FileIndex, IndexError> {
        if self.rows > 0 {
            self.seal()?;
        }
        Ok(FileIndex { data_size, row_groups: self.row_groups })
    }

    fn seal(&mut self) -> Result<(), IndexError> {
        self.hashes.sort_unstable();
        self.hashes.dedup();
        let filter = if self.hashes.is_empty() {
            None
        } else {
            let filter = BinaryFuse8::try_from(&self.hashes).map_err(IndexError::Filter)?;
            let mut descriptor = vec![0; BinaryFuse8::DESCRIPTOR_LEN];
            filter.dma_copy_descriptor_to(&mut descriptor);
            Some((descriptor.into(), filter.fingerprints))
        };
        self.row_groups.push(RowGroupIndex { rows: self.rows as u32, filter });
        self.hashes.clear();
        self.rows = 0;
        Ok(())
    }

    /// The tokens of every string an array holds: its own, a map's values, a struct's
    /// columns, a dictionary's values.
    fn add_text(&mut self, array: &dyn Array) {
        match array.data_type() {
            DataType::Utf8 => {
                let strings = array.as_string::<i32>();
                for value in strings.iter().flatten() {
                    self.add_value(value.as_bytes());
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
        for token in tokens(value) {
            self.lower.clear();
            self.lower.extend(token.iter().map(u8::to_ascii_lowercase));
            self.hashes.push(token_hash(&self.lower));
        }
    }
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
    use datafusion::arrow::array::{ArrayRef, StringArray};
    use std::sync::Arc;

    fn batch(values: &[&str]) -> RecordBatch {
        let column: ArrayRef = Arc::new(StringArray::from(values.to_vec()));
        RecordBatch::try_from_iter([("message", column)]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn hashes(words: &[&str]) -> Vec<u64> {
        words.iter().map(|w| token_hash(w.as_bytes())).collect()
    }

    #[test]
    fn row_groups_hold_their_own_tokens_and_round_trip() {
        let mut builder = IndexBuilder::new(2);
        builder.add(&batch(&["GET /api/V1 ok", "alpha"])).unwrap();
        builder.add(&batch(&["beta", "", "gamma"])).unwrap();
        let index = FileIndex::decode(&builder.finish(1234).unwrap().encode()).unwrap();
        assert_eq!(index.data_size, 1234);
        assert_eq!(index.row_groups.iter().map(|g| g.rows).collect::<Vec<_>>(), [2, 2, 1]);
        assert!(index.row_groups[0].may_contain_all(&hashes(&["get", "api", "v1", "alpha"])));
        assert!(!index.row_groups[1].may_contain_all(&hashes(&["alpha"])));
        assert!(index.row_groups[1].may_contain_all(&hashes(&["beta"])));
        assert!(index.row_groups[2].may_contain_all(&hashes(&["gamma"])));
        assert!(index.row_groups[2].may_contain_all(&[]));
    }

    #[test]
    fn anything_else_is_malformed() {
        let encoded = IndexBuilder::new(4).finish(1).unwrap().encode();
        assert!(FileIndex::decode(&encoded).is_ok());
        for bad in [&b""[..], b"SLX2", &encoded[..encoded.len() - 1], &[encoded.as_slice(), b"x"].concat()] {
            assert!(FileIndex::decode(bad).is_err());
        }
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
