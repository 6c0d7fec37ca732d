//! Which row groups a search may match, from the data files' token indexes
//! ([`crate::lake::index`]), before anything is read.
//!
//! A search becomes a [`Need`]: the tokens a matching row must hold. A word or a phrase
//! matches only with every one of its tokens whole in the text (see [`super::text`]), and
//! so does an equality on an id, the level, the topic or the source; wildcards, numbers
//! and `not` need nothing. A slice of a row group whose filter lacks a needed token is not
//! read; a row group none of whose slices may match is skipped, a file whose row groups
//! are all skipped is not opened. Files without an index, or whose index does not
//! describe them (another size), are read whole.

use std::collections::HashMap;

use super::syntax::{Key, Search, Term};
use crate::lake::index::{FileIndex, TokenFilter, token_hash, tokens};
use crate::lake::schema::{Kind, LINE_NUMBER, column_named, tokens_indexed};

/// What a matching row must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Need {
    /// Nothing the index knows of.
    Anything,
    /// Every one of these tokens (hashes of lowercased tokens).
    Tokens(Vec<u64>),
    All(Vec<Need>),
    Any(Vec<Need>),
}

impl Need {
    /// What rows matching `search` must hold.
    pub fn of(search: &Search) -> Self {
        match search {
            Search::All | Search::Compare(..) | Search::Range { .. } | Search::Not(_) => Self::Anything,
            Search::Text(term) => Self::term(term),
            Search::Field(Key::Field(k), _)
                if k == LINE_NUMBER
                    || column_named(k)
                        .is_some_and(|c| c.kind != Kind::Text || (c.promoted && !tokens_indexed(c.name))) =>
            {
                Self::Anything
            }
            Search::Field(_, term) => Self::term(term),
            Search::And(a, b) => match (Self::of(a), Self::of(b)) {
                (Self::Anything, other) | (other, Self::Anything) => other,
                (a, b) => Self::All(vec![a, b]),
            },
            Search::Or(a, b) => match (Self::of(a), Self::of(b)) {
                (Self::Anything, _) | (_, Self::Anything) => Self::Anything,
                (a, b) => Self::Any(vec![a, b]),
            },
        }
    }

    /// The tokens of a word or phrase. Only ASCII terms: the index lowercases ASCII, and
    /// equalities (`level`, ids, topic) and word matches lowercase non-ASCII differently.
    fn term(term: &Term) -> Self {
        match term {
            Term::Word(w) | Term::Phrase(w) if w.is_ascii() => {
                let lower = w.to_ascii_lowercase();
                let hashes: Vec<u64> = tokens(lower.as_bytes()).map(token_hash).collect();
                if hashes.is_empty() { Self::Anything } else { Self::Tokens(hashes) }
            }
            _ => Self::Anything,
        }
    }

    pub fn is_anything(&self) -> bool {
        *self == Self::Anything
    }

    /// Whether the rows a filter is over (a row group, a slice of one) may hold a
    /// matching row.
    pub fn may_match(&self, filter: &TokenFilter) -> bool {
        match self {
            Self::Anything => true,
            Self::Tokens(hashes) => filter.may_contain_all(hashes),
            Self::All(needs) => needs.iter().all(|n| n.may_match(filter)),
            Self::Any(needs) => needs.iter().any(|n| n.may_match(filter)),
        }
    }
}

/// What is read of a row group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Read {
    All,
    Nothing,
    /// Its slices, in order: their rows, and whether they are read (some are, some not).
    Slices(Vec<(u32, bool)>),
}

/// What to read of each indexed file, by file name.
#[derive(Clone, Debug, Default)]
pub struct Pruning {
    /// Per file name: what is read of each row group.
    files: HashMap<String, Vec<Read>>,
    /// Row groups skipped by the index.
    pub skipped: usize,
    /// Slices skipped by the index in the row groups read.
    pub slices_skipped: usize,
    /// Row groups skipped because their time rollups answer (see [`super::rollup`]).
    pub rolled_up: usize,
}

impl Pruning {
    /// Decides for each file (`(path as the Delta log names it, size, index)`).
    pub fn new<'a>(need: &Need, files: impl IntoIterator<Item = (&'a str, u64, &'a FileIndex)>) -> Self {
        let mut pruning = Self::default();
        if need.is_anything() {
            return pruning;
        }
        for (path, size, index) in files {
            if index.data_size != size {
                continue;
            }
            let read: Vec<Read> = index
                .row_groups
                .iter()
                .map(|g| {
                    if !need.may_match(&g.filter) {
                        pruning.skipped += 1;
                        return Read::Nothing;
                    }
                    let slices: Vec<(u32, bool)> =
                        g.slices.iter().map(|s| (s.rows, need.may_match(&s.filter))).collect();
                    let skipped = slices.iter().filter(|(_, read)| !read).count();
                    if skipped == 0 {
                        Read::All
                    } else if skipped == slices.len() {
                        pruning.skipped += 1;
                        Read::Nothing
                    } else {
                        pruning.slices_skipped += skipped;
                        Read::Slices(slices)
                    }
                })
                .collect();
            pruning.files.insert(file_name(path).to_owned(), read);
        }
        pruning
    }

    pub fn is_empty(&self) -> bool {
        self.skipped == 0 && self.slices_skipped == 0 && self.rolled_up == 0
    }

    /// What is read of each row group of a file (of the Delta log's `path`), when the
    /// pruning knows the file.
    pub fn kept(&self, path: &str) -> Option<&[Read]> {
        self.files.get(file_name(path)).map(Vec::as_slice)
    }

    /// Whether a row group of a file (of the Delta log's `path`) is read, whole or in part.
    pub fn reads(&self, path: &str, group: usize) -> bool {
        self.files.get(file_name(path)).and_then(|read| read.get(group)).is_none_or(|r| *r != Read::Nothing)
    }

    /// Skips a row group (of a file of `groups`) whose rows were counted from its rollup.
    pub fn roll_up(&mut self, path: &str, groups: usize, group: usize) {
        let read = self.files.entry(file_name(path).to_owned()).or_insert_with(|| vec![Read::All; groups]);
        if let Some(slot) = read.get_mut(group).filter(|r| **r != Read::Nothing) {
            if let Read::Slices(slices) = slot {
                self.slices_skipped -= slices.iter().filter(|(_, read)| !read).count();
            }
            *slot = Read::Nothing;
            self.rolled_up += 1;
        }
    }
}

/// The last segment of a path: data file names are unique (they hold a UUID).
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compact::{self, CompactOptions, Quiet};
    use crate::conformance::{shared, store};
    use crate::lake::Storage;
    use crate::lake::rows::{int_at, text_at};
    use crate::lake::schema::{BATCH_ID, FileSettings, POSITION, TIME_NS};
    use crate::query::sls::{self, Range};
    use crate::query::source::{Reading, Source};
    use crate::query::syntax;
    use proptest::prelude::*;
    use sluice_proto::sls::{Content, Log, LogGroup};

    const SECOND: i64 = 1_000_000_000;
    const VOCABULARY: [&str; 10] =
        ["alpha", "Beta", "gamma", "ERR", "ok", "x-1", "10.0.0.1", "/api/v1", "a.b", "delta"];

    /// Logs of `(message words, field k, level (3: none))`, two per second, in `groups`
    /// raw batches, compacted with 3-row row groups.
    async fn table(logs: &[(Vec<usize>, usize, usize)], groups: usize, start_ns: i64) -> Storage {
        table_spaced(logs, groups, start_ns, |n| (n / 2 * SECOND) + n % 2 * 1000).await
    }

    /// [`table`], the n-th log at `start_ns + offset(n)`.
    async fn table_spaced(
        logs: &[(Vec<usize>, usize, usize)],
        groups: usize,
        start_ns: i64,
        offset: impl Fn(i64) -> i64,
    ) -> Storage {
        let storage = crate::lake::store::open("memory://", &Default::default()).unwrap();
        let per_group = logs.len().div_ceil(groups.max(1)).max(1);
        for (g, chunk) in logs.chunks(per_group).enumerate() {
            let logs = chunk
                .iter()
                .enumerate()
                .map(|(i, (words, k, level))| {
                    let n = (g * per_group + i) as i64;
                    let message: Vec<&str> = words.iter().map(|w| VOCABULARY[*w]).collect();
                    let content =
                        |key: &str, value: &str| Content { key: key.into(), value: value.as_bytes().to_vec() };
                    let mut contents = vec![content("message", &message.join(" ")), content("k", VOCABULARY[*k])];
                    if let Some(level) = ["info", "error", "WARN"].get(*level) {
                        contents.push(content("level", level));
                    }
                    let time_ns = start_ns + offset(n);
                    Log {
                        time: u32::try_from(time_ns / SECOND).unwrap(),
                        contents,
                        time_ns: Some(u32::try_from(time_ns % SECOND).unwrap()),
                        values: vec![],
                    }
                })
                .collect();
            store(&storage, "idx", &LogGroup { logs, topic: Some("t".into()), ..LogGroup::default() }).await.unwrap();
        }
        let options = CompactOptions {
            min_bytes_per_writer: 1,
            files: FileSettings { row_group_rows: 3, ..FileSettings::default() },
            ..CompactOptions::default()
        };
        compact::compact_all(&storage, &options, &Quiet, start_ns + 3600 * SECOND).await.unwrap();
        storage
    }

    /// The test logstore opened for `range`, as of its end.
    async fn open(storage: &Storage, range: Range) -> Source {
        let reading = Reading {
            project: "suite",
            logstore: "idx",
            from_ns: range.from_ns,
            to_ns: range.to_ns,
            now_ns: range.to_ns,
        };
        Source::open(&shared(storage), reading).await.unwrap()
    }

    /// The rows (batch id, position) a search selects, with and without the index, and
    /// the row groups and slices the index skipped.
    async fn both_ways(storage: &Storage, query: &str, start_ns: i64) -> (Vec<String>, Vec<String>, (usize, usize)) {
        let (from_ns, to_ns) = (start_ns - SECOND, start_ns + 3600 * SECOND);
        let source = open(storage, Range { from_ns, to_ns }).await;
        let search = syntax::parse(query).unwrap().search;
        let filter = Range { from_ns, to_ns }.filter().and(source.functions.filter(&search));
        let rows = |df: datafusion::prelude::DataFrame| async {
            let batches = df.filter(filter.clone()).unwrap().collect().await.unwrap();
            let mut rows: Vec<String> = batches
                .iter()
                .flat_map(|b| {
                    (0..b.num_rows()).map(move |r| {
                        let id = text_at(b.column_by_name(BATCH_ID).unwrap().as_ref(), r).unwrap_or_default();
                        format!("{id}/{}", int_at(b, POSITION, r).unwrap_or(-1))
                    })
                })
                .collect();
            rows.sort();
            rows
        };
        let with = rows(source.logs_for(&search).await.unwrap()).await;
        let without = rows(source.logs()).await;
        let stats = source.scanned.get();
        (with, without, (stats.row_groups_pruned_by_index, stats.slices_pruned_by_index))
    }

    /// Yesterday's midnight (UTC). Raw batches are received now, so a fixed date would
    /// move the logs from day to month to year partitions as the calendar moves on, and
    /// a test's logs would one day straddle two partitions.
    fn start_ns() -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
        (i64::try_from(now.as_secs()).unwrap() / 86_400 - 1) * 86_400 * SECOND
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_needle_skips_the_row_groups_without_it() {
        let logs: Vec<_> = (0..30).map(|i| (vec![if i == 17 { 6 } else { i / 10 }], 4, i % 3)).collect();
        let storage = table(&logs, 2, start_ns()).await;
        let (with, without, (skipped, slices)) = both_ways(&storage, "10.0.0.1", start_ns()).await;
        assert_eq!(with.len(), 1);
        assert_eq!(with, without);
        assert!(skipped >= 9, "30 rows in 3-row groups, one holds the needle: {skipped} skipped");
        // Row groups of 3 rows have slices of 1: of the needle's row group, only its row is read.
        assert_eq!(slices, 2, "the needle's row group reads one of its 3 slices");
        let (with, without, (skipped, _)) = both_ways(&storage, "alpha and not beta", start_ns()).await;
        assert_eq!((with.len(), with == without, skipped > 0), (10, true, true));
    }

    fn query() -> impl Strategy<Value = String> {
        let word = (0..VOCABULARY.len()).prop_map(|w| VOCABULARY[w].to_owned());
        let leaf = prop_oneof![
            word.clone(),
            word.clone().prop_map(|w| format!("message: {w}")),
            word.clone().prop_map(|w| format!("k: {w}")),
            (0..3usize).prop_map(|l| format!("level: {}", ["INFO", "error", "warn"][l])),
            (word.clone(), word.clone()).prop_map(|(a, b)| format!("\"{a} {b}\"")),
            word.prop_map(|w| format!("{}*", &w[..2])),
            Just("*".to_owned()),
        ];
        combined(leaf, 12)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]
        /// Random logs, random searches: the index never changes an answer.
        #[test]
        fn the_index_never_changes_an_answer(
            logs in proptest::collection::vec(
                (proptest::collection::vec(0..VOCABULARY.len(), 1..4), 0..VOCABULARY.len(), 0..4usize), 1..40),
            groups in 1..4usize,
            queries in proptest::collection::vec(query(), 1..6),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async {
                let storage = table(&logs, groups, start_ns()).await;
                for query in &queries {
                    let (with, without, _) = both_ways(&storage, query, start_ns()).await;
                    assert_eq!(with, without, "{query}");
                }
            });
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// A time range reads exactly the rows in it: the files it lies across in part are
        /// filtered by time, those wholly inside it are not, those outside not opened.
        #[test]
        fn time_bounds_read_exactly_the_rows_in_range(
            count in 1..40usize,
            step_s in prop_oneof![Just(1i64), Just(600), Just(5 * 3600)],
            from_s in -3600i64..(40 * 5 * 3600),
            len_s in 0i64..(3 * 86_400),
            parts in (0i64..2000, 0i64..2000),
        ) {
            let logs: Vec<_> = (0..count).map(|i| (vec![i % VOCABULARY.len()], 0, 0)).collect();
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async {
                let offset = move |n: i64| n * step_s * SECOND + n % 2 * 1000;
                let storage = table_spaced(&logs, 1 + count / 10, start_ns(), offset).await;
                let from = start_ns() / SECOND + from_s;
                let range = Range::new(from, parts.0, from + len_s, parts.1).unwrap();
                let source = open(&storage, range).await;
                let times = |batches: Vec<datafusion::arrow::array::RecordBatch>| {
                    let mut times: Vec<i64> = batches
                        .iter()
                        .flat_map(|b| (0..b.num_rows()).map(move |r| int_at(b, TIME_NS, r).unwrap()))
                        .collect();
                    times.sort_unstable();
                    times
                };
                let read = times(source.logs().filter(range.filter()).unwrap().collect().await.unwrap());
                let all = times(source.logs().collect().await.unwrap());
                let expected: Vec<i64> = all.into_iter().filter(|t| *t >= range.from_ns && *t < range.to_ns).collect();
                assert_eq!(read, expected);
            });
        }
    }

    /// A histogram of `[from, to)` (seconds; the range starts `part` ns after `from`) as
    /// GetHistograms answers it, and counted from every row; and the row groups counted
    /// from rollups.
    async fn histograms(storage: &Storage, query: &str, from: i64, part: i64, to: i64) -> (Vec<u64>, Vec<u64>, usize) {
        let range = Range::new(from, part, to, 0).unwrap();
        let source = open(storage, range).await;
        let query = syntax::parse(query).unwrap();
        let answer = sls::histogram(&source, range, from, to, None, &query).await.unwrap();
        let width_ns = (answer[0].1 - answer[0].0) * SECOND;
        let filter = range.filter().and(source.functions.filter(&query.search));
        let mut counted = vec![0; answer.len()];
        for batch in source.logs().filter(filter).unwrap().collect().await.unwrap() {
            for row in 0..batch.num_rows() {
                let bucket = (int_at(&batch, TIME_NS, row).unwrap() - range.from_ns) / width_ns;
                if let Some(slot) = counted.get_mut(usize::try_from(bucket).unwrap()) {
                    *slot += 1;
                }
            }
        }
        (answer.iter().map(|b| b.2).collect(), counted, source.scanned.get().row_groups_rolled_up)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn histograms_count_whole_row_groups_from_rollups() {
        let logs: Vec<_> = (0..60).map(|i| (vec![i % 4], 4, i % 4)).collect();
        let start = start_ns() / SECOND;
        let storage = table(&logs, 2, start_ns()).await;
        for query in ["*", "level: ERROR", "not level: error", "level: info or level: warn", "alpha"] {
            let (answer, counted, rolled_up) = histograms(&storage, query, start, 0, start + 30).await;
            assert_eq!(answer, counted, "{query}");
            assert_eq!(rolled_up > 0, query != "alpha", "{query}: {rolled_up} row groups counted from rollups");
        }
        let (answer, _, rolled_up) = histograms(&storage, "*", start, 0, start + 30).await;
        assert_eq!((answer.iter().sum::<u64>(), rolled_up), (60, 20), "every row group, none read");
        // A range ending within the data: the row groups past its end are read.
        let (answer, counted, rolled_up) = histograms(&storage, "*", start, 0, start + 20).await;
        assert_eq!((answer.iter().sum::<u64>(), &answer), (40, &counted));
        assert!(rolled_up > 10 && rolled_up < 20, "{rolled_up}");
        // Subintervals that start within a second: every second straddles two of them.
        let (answer, counted, rolled_up) = histograms(&storage, "*", start, 1, start + 30).await;
        assert_eq!((answer.iter().sum::<u64>(), &answer, rolled_up), (59, &counted, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn sparse_files_roll_up_by_minute() {
        // One log every 7 s for 10 hours: more counts per second than 1 in 8 rows.
        let logs: Vec<_> = (0..5200).map(|i| (vec![i % 4], 4, i % 4)).collect();
        let start = start_ns() / SECOND;
        let storage = table_spaced(&logs, 1, start_ns(), |n| n * 7 * SECOND).await;
        for (from, part, to) in
            [(start, 0, start + 8 * 3600), (start + 3600, 0, start + 5 * 3600), (start + 30, 0, start + 3630)]
        {
            for query in ["*", "level: error"] {
                let (answer, counted, rolled_up) = histograms(&storage, query, from, part, to).await;
                assert_eq!(answer, counted, "{query} over [{from}, {to})");
                let aligned = (from - start) % 60 == 0;
                assert_eq!(rolled_up > 0, aligned, "minutes count only where subintervals start on one");
            }
        }
    }

    /// Searches of `leaf`s joined by `and`, `or` and `not`, up to 3 deep and `size` leaves.
    fn combined(leaf: impl Strategy<Value = String> + 'static, size: u32) -> impl Strategy<Value = String> {
        leaf.prop_recursive(3, size, 2, |inner| {
            prop_oneof![
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
                (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) or ({b})")),
                inner.prop_map(|a| format!("not ({a})")),
            ]
        })
    }

    fn level_query() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            (0..4usize).prop_map(|l| format!("level: {}", ["INFO", "error", "warn", "nope"][l])),
            Just("*".to_owned()),
        ];
        combined(leaf, 8)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
        /// Random logs, ranges and searches: histograms from rollups count exactly what
        /// the rows hold.
        #[test]
        fn rollups_never_change_a_histogram(
            logs in proptest::collection::vec((Just(vec![0]), Just(0), 0..4usize), 1..40),
            groups in 1..4usize,
            ranges in proptest::collection::vec((-3..25i64, 0..2i64, 1..130i64), 1..4),
            queries in proptest::collection::vec(prop_oneof![level_query(), query()], 1..4),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async {
                let storage = table(&logs, groups, start_ns()).await;
                let start = start_ns() / SECOND;
                for ((offset, part, length), query) in ranges.iter().zip(queries.iter().cycle()) {
                    let from = start + offset;
                    let part = part * SECOND / 2;
                    let (answer, counted, _) = histograms(&storage, query, from, part, from + length).await;
                    assert_eq!(answer, counted, "{query} over [{from}+{part}ns, {})", from + length);
                }
            });
        }
    }

    /// Page `(offset, limit, newest first)` of a search over `[from, to)` seconds, as
    /// GetLogs answers it (windows, stopping early), and by one sort of every row.
    async fn pages(
        storage: &Storage,
        query: &str,
        (from, to): (i64, i64),
        (offset, limit, newest_first): (usize, usize, bool),
    ) -> (Vec<String>, Vec<String>) {
        let range = Range::new(from, 0, to, 0).unwrap();
        let source = open(storage, range).await;
        let query = syntax::parse(query).unwrap();
        let ids = |batches: Vec<datafusion::arrow::array::RecordBatch>| -> Vec<String> {
            batches
                .iter()
                .flat_map(|b| {
                    (0..b.num_rows()).map(move |r| {
                        let id = text_at(b.column_by_name(BATCH_ID).unwrap().as_ref(), r).unwrap_or_default();
                        format!("{}/{id}/{}", int_at(b, TIME_NS, r).unwrap(), int_at(b, POSITION, r).unwrap())
                    })
                })
                .collect()
        };
        let selected = sls::selected(&source, range, None, &query).await.unwrap();
        let page = crate::query::page::first_in_time(
            &source,
            selected.clone(),
            Some(&query.search),
            range,
            newest_first,
            offset,
            limit,
        );
        let windows = ids(page.await.unwrap());
        let order =
            |c: &str| datafusion::logical_expr::SortExpr::new(datafusion::prelude::col(c), !newest_first, false);
        let sorted = selected.sort(vec![order(TIME_NS), order(BATCH_ID), order(POSITION)]).unwrap();
        let whole = ids(sorted.limit(offset, Some(limit)).unwrap().collect().await.unwrap());
        (windows, whole)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_newest_logs_are_read_from_the_newest_windows() {
        let logs: Vec<_> = (0..60).map(|i| (vec![i % 4], 4, i % 4)).collect();
        let start = start_ns() / SECOND;
        let storage = table(&logs, 3, start_ns()).await;
        let (windows, whole) = pages(&storage, "*", (start, start + 30), (2, 5, true)).await;
        assert_eq!((windows.len(), &windows), (5, &whole));
        let (windows, whole) = pages(&storage, "alpha", (start - 5, start + 40), (0, 100, false)).await;
        assert_eq!((windows.len(), &windows), (15, &whole));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]
        /// Random logs (compacted and not), searches, ranges and pages: reading windows
        /// newest (or oldest) first gives the page one sort gives.
        #[test]
        fn windows_never_change_a_page(
            logs in proptest::collection::vec(
                (proptest::collection::vec(0..VOCABULARY.len(), 1..3), 0..VOCABULARY.len(), 0..4usize), 1..40),
            fresh in proptest::collection::vec(0..40i64, 0..6),
            groups in 1..4usize,
            pages_asked in proptest::collection::vec(
                (query(), (-3..25i64, 1..40i64), (0..6usize, 1..8usize, any::<bool>())), 1..4),
        ) {
            let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
            runtime.block_on(async {
                let storage = table(&logs, groups, start_ns()).await;
                // Raw batches not compacted yet, at times among the table's.
                let start = start_ns() / SECOND;
                let fresh_logs = fresh
                    .iter()
                    .map(|s| Log {
                        time: u32::try_from(start + s / 2).unwrap(),
                        contents: vec![Content { key: "message".into(), value: b"alpha fresh".to_vec() }],
                        time_ns: Some(u32::try_from(s * 7).unwrap()),
                        values: vec![],
                    })
                    .collect();
                store(&storage, "idx", &LogGroup { logs: fresh_logs, ..LogGroup::default() }).await.unwrap();
                for (query, (offset, length), page) in &pages_asked {
                    let range = (start + offset, start + offset + length);
                    let (windows, whole) = pages(&storage, query, range, *page).await;
                    assert_eq!(windows, whole, "{query} over {range:?}, page {page:?}");
                }
            });
        }
    }

    fn need(query: &str) -> Need {
        Need::of(&syntax::parse(query).unwrap_or_else(|e| panic!("{e}")).search)
    }

    #[test]
    fn what_a_search_needs() {
        let h = |w: &str| token_hash(w.as_bytes());
        assert_eq!(need("*"), Need::Anything);
        assert_eq!(need("Error"), Need::Tokens(vec![h("error")]));
        assert_eq!(need("\"connection refused\""), Need::Tokens(vec![h("connection"), h("refused")]));
        assert_eq!(need("level: ERROR and err*"), Need::Tokens(vec![h("error")]));
        assert_eq!(need("a or b*"), Need::Anything, "one side needs nothing");
        assert_eq!(need("not a"), Need::Anything);
        assert_eq!(need("latency > 3"), Need::Anything);
        assert_eq!(need("a or b"), Need::Any(vec![Need::Tokens(vec![h("a")]), Need::Tokens(vec![h("b")])]));
        assert_eq!(need("\u{c9}t\u{c9}"), Need::Anything, "non-ASCII terms are not pruned");
        assert_eq!(need("span_id: 4bf92f3577b34da6"), Need::Anything, "span ids are not indexed");
    }
}
