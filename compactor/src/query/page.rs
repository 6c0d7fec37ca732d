//! The first rows of a selection in time order, newest or oldest first ("the newest 100
//! logs that match"), read one time window at a time from the end the order starts at,
//! stopping as soon as the windows read hold enough rows.
//!
//! Windows are disjoint and adjacent, and a row belongs to the window of its time, so
//! the rows of the windows read, each window in order, are the first rows of the whole
//! selection: the answer is exactly what one sort over the whole range gives. Each
//! window is cut, from what is known of where the rows the scan reads are ([`Chunk`]s:
//! the row groups the token index keeps, with their times from the time rollups; the
//! Delta statistics of files without; the headers of the fresh raw batches), to hold
//! about 8 times more rows than the one before, starting from twice the rows wanted, and
//! at a chunk's edge (a row group's, or a few seconds' within the range's first and last
//! row groups for a search about the level alone); when the token index narrowed the row groups down, what is
//! left is read in one window once it is small (a million rows). A needle's few row
//! groups are then read by one window, a broad search reads the newest row groups only.

use datafusion::arrow::array::RecordBatch;
use datafusion::logical_expr::SortExpr;
use datafusion::prelude::{DataFrame, col};

use super::QueryError;
use super::sls::Range;
use super::source::Source;
use super::syntax::Search;
use crate::lake::schema::{BATCH_ID, POSITION, TIME_NS};

/// Rows known to lie between two times (inclusive), as far as statistics say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Chunk {
    pub min_ns: i64,
    pub max_ns: i64,
    pub rows: u64,
}

impl Chunk {
    /// Rows estimated in `[from, to)`, as if spread evenly over the chunk's times.
    fn rows_in(&self, from: i64, to: i64) -> f64 {
        let (a, b) = (from.max(self.min_ns), to.min(self.max_ns.saturating_add(1)));
        if a >= b {
            return 0.0;
        }
        let span = (self.max_ns as f64 - self.min_ns as f64 + 1.0).max(1.0);
        self.rows as f64 * ((b as f64 - a as f64) / span).min(1.0)
    }
}

/// Growth of the rows each window is cut to hold.
const GROWTH: f64 = 8.0;
/// Rows left to read in one window rather than several (8 row groups of the default size);
/// none in unit tests, whose small tables then go through every window.
const SMALL_ROWS: f64 = if cfg!(test) { 0.0 } else { (1 << 20) as f64 };

/// The next window within `[from, to)` after `done` (the bound reached so far: `to`
/// newest first, `from` oldest first): the narrowest that holds about `target` rows of
/// `chunks`, cut where a chunk starts (newest first) or ends (oldest first), so that a
/// row group is read by one window rather than by several.
pub fn next_window(chunks: &[Chunk], from: i64, to: i64, done: i64, target: f64, newest_first: bool) -> (i64, i64) {
    let rows = |a: i64, b: i64| chunks.iter().map(|c| c.rows_in(a, b)).sum::<f64>();
    if newest_first {
        let mut cuts: Vec<i64> = chunks.iter().map(|c| c.min_ns).filter(|c| *c > from && *c < done).collect();
        cuts.sort_unstable_by(|a, b| b.cmp(a));
        let cut = cuts.into_iter().find(|c| rows(*c, done) >= target).unwrap_or(from);
        (cut, done)
    } else {
        let mut cuts: Vec<i64> =
            chunks.iter().map(|c| c.max_ns.saturating_add(1)).filter(|c| *c > done && *c < to).collect();
        cuts.sort_unstable();
        let cut = cuts.into_iter().find(|c| rows(done, *c) >= target).unwrap_or(to);
        (done, cut)
    }
}

/// The bounds of the data in `[from, to)`: where windows start and stop. Unknown chunks
/// (no statistics) leave the range as it is.
fn data_bounds(chunks: &[Chunk], from: i64, to: i64) -> (i64, i64) {
    let low = chunks.iter().map(|c| c.min_ns).min().unwrap_or(to).max(from);
    let high = chunks.iter().map(|c| c.max_ns.saturating_add(1)).max().unwrap_or(from).min(to);
    (low, high.max(low))
}

/// Rows `offset..offset + limit` of `selected` (the logs of `source` a search selects
/// within `range`; the search itself when it is an SLS one, see [`Source::chunks`])
/// ordered by time, batch and position, newest first or oldest first.
pub async fn first_in_time(
    source: &Source,
    selected: DataFrame,
    search: Option<&Search>,
    range: Range,
    newest_first: bool,
    offset: usize,
    limit: usize,
) -> Result<Vec<RecordBatch>, QueryError> {
    let wanted = offset.saturating_add(limit);
    let order = |c: &str| SortExpr::new(col(c), !newest_first, false);
    let sorted = |df: DataFrame, rows: usize| {
        df.sort(vec![order(TIME_NS), order(BATCH_ID), order(POSITION)])?.limit(0, Some(rows))
    };
    let chunks = source.chunks(search).await?;
    let (from, to) = data_bounds(&chunks, range.from_ns, range.to_ns);
    if wanted == 0 || from >= to {
        return Ok(Vec::new());
    }
    let (mut done, mut target, mut got) = (if newest_first { to } else { from }, wanted as f64 * 2.0, Vec::new());
    let mut have = 0usize;
    // Only where the token index narrowed the row groups down: a broad search's rest is
    // most of the range.
    let small = if source.narrowed() { SMALL_ROWS } else { 0.0 };
    loop {
        // What is left is read in one window when it is small: each window is a query.
        let left = if newest_first { (from, done) } else { (done, to) };
        let left_rows = chunks.iter().map(|c| c.rows_in(left.0, left.1)).sum::<f64>();
        let (a, b) = if left_rows <= target.max(small) {
            left
        } else {
            next_window(&chunks, from, to, done, target, newest_first)
        };
        let window = sorted(selected.clone().filter(Range { from_ns: a, to_ns: b }.filter())?, wanted - have)?;
        let batches = source.scanned.collect(window, source.limits.max_result_bytes).await?;
        have += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
        got.extend(batches);
        done = if newest_first { a } else { b };
        if have >= wanted || done == if newest_first { from } else { to } {
            break;
        }
        target *= GROWTH;
    }
    Ok(skip(got, offset))
}

/// `batches` without their first `offset` rows.
fn skip(batches: Vec<RecordBatch>, mut offset: usize) -> Vec<RecordBatch> {
    let mut out = Vec::new();
    for batch in batches {
        if offset >= batch.num_rows() {
            offset -= batch.num_rows();
            continue;
        }
        out.push(batch.slice(offset, batch.num_rows() - offset));
        offset = 0;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_cut_where_chunks_start_or_end() {
        // Row groups of 100 rows over [0, 100), [100, 200), ...; one more over [950, 1000).
        let mut chunks: Vec<Chunk> =
            (0..10).map(|i| Chunk { min_ns: i * 100, max_ns: i * 100 + 99, rows: 100 }).collect();
        chunks.push(Chunk { min_ns: 950, max_ns: 999, rows: 100 });
        assert_eq!(data_bounds(&chunks, -50, 5000), (0, 1000));
        assert_eq!(next_window(&chunks, 0, 1000, 1000, 150.0, true), (950, 1000));
        assert_eq!(next_window(&chunks, 0, 1000, 1000, 201.0, true), (800, 1000));
        assert_eq!(next_window(&chunks, 0, 1000, 900, 250.0, true), (600, 900));
        assert_eq!(next_window(&chunks, 0, 1000, 0, 50.0, false), (0, 100));
        assert_eq!(next_window(&chunks, 0, 1000, 100, 150.0, false), (100, 300));
        // Not enough rows anywhere: the rest of the range.
        assert_eq!(next_window(&chunks, 0, 1000, 700, 1e9, true), (0, 700));
        assert_eq!(next_window(&chunks, 0, 1000, 50, 1e9, false), (50, 1000));
        assert_eq!(next_window(&[], 0, 1000, 1000, 10.0, true), (0, 1000));
        // A needle's one row group: one window holds it.
        let needle = [Chunk { min_ns: 400, max_ns: 499, rows: 100 }];
        assert_eq!(next_window(&needle, 0, 1000, 1000, 200.0, true), (0, 1000));
    }

    #[test]
    fn skipping_crosses_batches() {
        use datafusion::arrow::array::{ArrayRef, Int64Array};
        let batch = |n: i64| {
            let column: ArrayRef = Arc::new(Int64Array::from((0..n).collect::<Vec<_>>()));
            RecordBatch::try_from_iter([("n", column)]).unwrap_or_else(|e| panic!("{e}"))
        };
        let rows = |b: Vec<RecordBatch>| b.iter().map(RecordBatch::num_rows).collect::<Vec<_>>();
        assert_eq!(rows(skip(vec![batch(3), batch(4)], 5)), [2]);
        assert_eq!(rows(skip(vec![batch(3), batch(4)], 0)), [3, 4]);
        assert_eq!(rows(skip(vec![batch(3)], 9)), Vec::<usize>::new());
    }

    use std::sync::Arc;
}
