//! What maintenance does to a table, decided without doing it: which partitions have
//! expired, and which small files to merge together. A pure function of the table's file
//! list, so that its promise is checked by a property test: no file is lost, merged twice,
//! merged across partitions or both merged and expired.

use sluice_ingest::layout::Partition;
use std::collections::BTreeMap;

/// One data file of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataFile {
    pub path: String,
    /// Its partition's name (`2025-01-15`, `2025-01`, `2025`).
    pub partition: String,
    pub size: u64,
}

/// When files are merged.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// Files smaller than this are merge candidates.
    pub small_file_bytes: u64,
    /// A partition is merged once it has this many small files.
    pub min_small_files: usize,
    /// At most this many bytes of small files per merge.
    pub max_merge_bytes: u64,
}

/// Small files of one partition to rewrite as one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Merge {
    pub partition: String,
    pub files: Vec<DataFile>,
}

/// What maintenance does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Partitions all of whose logs are older than the retention: deleted.
    pub expired: Vec<String>,
    pub merges: Vec<Merge>,
}

/// Plans maintenance: with a retention cutoff, partitions that end before it expire;
/// in the others, small files are merged, in path order, into groups of at most
/// `max_merge_bytes` (two files at least) once a partition has `min_small_files`.
pub fn plan(files: &[DataFile], policy: &Policy, cutoff_ns: Option<i64>) -> Plan {
    let expired = |partition: &str| {
        cutoff_ns.is_some_and(|cutoff| partition.parse::<Partition>().is_ok_and(|p| p.ends_before(cutoff)))
    };
    let mut by_partition: BTreeMap<&str, Vec<&DataFile>> = BTreeMap::new();
    for file in files {
        by_partition.entry(file.partition.as_str()).or_default().push(file);
    }
    let mut out = Plan::default();
    for (partition, mut files) in by_partition {
        if expired(partition) {
            out.expired.push(partition.to_owned());
            continue;
        }
        files.retain(|f| f.size < policy.small_file_bytes);
        if files.len() < policy.min_small_files.max(2) {
            continue;
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files.dedup_by(|a, b| a.path == b.path);
        let mut group: Vec<DataFile> = Vec::new();
        let mut bytes = 0u64;
        for file in files {
            if !group.is_empty() && bytes + file.size > policy.max_merge_bytes {
                push_merge(&mut out.merges, partition, std::mem::take(&mut group));
                bytes = 0;
            }
            bytes += file.size;
            group.push(file.clone());
        }
        push_merge(&mut out.merges, partition, group);
    }
    out
}

/// A merge of at least two files (one file merged with itself changes nothing).
fn push_merge(merges: &mut Vec<Merge>, partition: &str, files: Vec<DataFile>) {
    if files.len() >= 2 {
        merges.push(Merge { partition: partition.to_owned(), files });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    const POLICY: Policy = Policy { small_file_bytes: 100, min_small_files: 3, max_merge_bytes: 250 };

    fn file(path: &str, partition: &str, size: u64) -> DataFile {
        DataFile { path: path.into(), partition: partition.into(), size }
    }

    #[test]
    fn merges_small_files_of_busy_partitions_and_expires_old_ones() {
        let files = [
            file("a1", "2025-01-15", 10),
            file("a2", "2025-01-15", 20),
            file("a3", "2025-01-15", 500),
            file("a4", "2025-01-15", 30),
            file("b1", "2025-01-16", 10),
            file("b2", "2025-01-16", 10),
            file("c1", "2024", 10),
            file("c2", "2024", 10),
            file("c3", "2024", 10),
        ];
        let day = 86_400 * 1_000_000_000i64;
        let cutoff = sluice_ingest::time::date_days(2025, 1, 1).unwrap() * day;
        let out = plan(&files, &POLICY, Some(cutoff));
        assert_eq!(out.expired, ["2024"]);
        assert_eq!(
            out.merges,
            [Merge {
                partition: "2025-01-15".into(),
                files: vec![file("a1", "2025-01-15", 10), file("a2", "2025-01-15", 20), file("a4", "2025-01-15", 30)]
            }]
        );
        assert_eq!(plan(&files, &POLICY, None).expired, Vec::<String>::new());
    }

    proptest! {
        /// Every file is kept, merged once with small files of its own partition, or
        /// expired with its partition; never two of these, never lost.
        #[test]
        fn no_file_is_lost_or_merged_twice(
            files in proptest::collection::vec((0u32..40, 0usize..6, 1u64..200), 0..60),
            cutoff_day in proptest::option::of(20000i64..20010),
            min_small in 0usize..6,
            max_merge in 1u64..600,
        ) {
            let partitions = ["2024-10-01", "2024-10-02", "2024-10", "2024", "2024-09-30", "not a partition"];
            let files: Vec<DataFile> = files
                .iter()
                .map(|&(n, p, size)| file(&format!("part-{n}"), partitions[p], size))
                .collect();
            let policy = Policy { small_file_bytes: 100, min_small_files: min_small, max_merge_bytes: max_merge };
            let cutoff = cutoff_day.map(|d| d * 86_400 * 1_000_000_000);
            let out = plan(&files, &policy, cutoff);
            let expired: HashSet<&str> = out.expired.iter().map(String::as_str).collect();
            let mut merged = HashSet::new();
            for merge in &out.merges {
                prop_assert!(merge.files.len() >= 2);
                prop_assert!(!expired.contains(merge.partition.as_str()), "merged and expired");
                let bytes: u64 = merge.files.iter().map(|f| f.size).sum();
                prop_assert!(bytes <= max_merge, "{} bytes in one merge", bytes);
                for f in &merge.files {
                    prop_assert_eq!(&f.partition, &merge.partition, "within one partition");
                    prop_assert!(f.size < 100, "only small files");
                    prop_assert!(merged.insert((f.partition.clone(), f.path.clone())), "merged twice");
                    prop_assert!(files.contains(f), "a file that exists");
                }
            }
            for partition in &out.expired {
                let p: Partition = partition.parse().unwrap();
                prop_assert!(p.ends_before(cutoff.unwrap()));
            }
        }
    }
}
