//! Histograms from the time rollups of the token index ([`crate::lake::index`]): a row
//! group whose every second lies inside the range, each second inside one subinterval,
//! is counted from its rollup and not read. Only searches about the level alone (or `*`)
//! are answered so, since rollups count by second and level; the level is matched as the
//! search's filter matches it ([`super::filter`]).

use super::prune::Pruning;
use super::syntax::{Key, Search, Term};
use crate::lake::index::FileIndex;
use crate::lake::schema::LEVEL;

/// Whether a row with this level matches a search about levels alone, with SQL's three
/// values (`None`: null, which a filter drops) exactly as the search's filter computes
/// it; `None` when the search reads anything but the level.
pub fn on_level(search: &Search, level: Option<&str>) -> Option<Option<bool>> {
    Some(match search {
        Search::All => Some(true),
        Search::Field(Key::Field(key), Term::Word(word)) if key == LEVEL => {
            level.map(|l| l.to_lowercase() == word.to_lowercase())
        }
        Search::And(a, b) => match (on_level(a, level)?, on_level(b, level)?) {
            (Some(false), _) | (_, Some(false)) => Some(false),
            (Some(true), Some(true)) => Some(true),
            _ => None,
        },
        Search::Or(a, b) => match (on_level(a, level)?, on_level(b, level)?) {
            (Some(true), _) | (_, Some(true)) => Some(true),
            (Some(false), Some(false)) => Some(false),
            _ => None,
        },
        Search::Not(inner) => Some(!on_level(inner, level)?.unwrap_or(false)),
        _ => return None,
    })
}

/// A histogram's subintervals: `count` of `width_ns` from `from_ns`, the last cut at
/// `to_ns`.
#[derive(Clone, Copy, Debug)]
pub struct Buckets {
    pub from_ns: i64,
    pub to_ns: i64,
    pub width_ns: i64,
    pub count: usize,
}

const SECOND: i64 = 1_000_000_000;

impl Buckets {
    /// The subinterval that holds the whole second starting at `second`, if one does.
    fn of_second(&self, second: i64) -> Option<usize> {
        let start = second.checked_mul(SECOND)?;
        let last = start.checked_add(SECOND - 1)?;
        if start < self.from_ns || last >= self.to_ns || self.width_ns <= 0 {
            return None;
        }
        let (first, end) = ((start - self.from_ns) / self.width_ns, (last - self.from_ns) / self.width_ns);
        usize::try_from(first).ok().filter(|b| first == end && *b < self.count)
    }
}

/// Counts into `counts` (one per subinterval) the rows matching `search` of the row
/// groups that rollups answer, among `files` (`(path, size, index)`) and the row groups
/// `pruning` still reads, and has `pruning` skip them. Nothing when the search is not
/// about levels alone.
pub fn count<'a>(
    search: &Search,
    buckets: &Buckets,
    files: impl IntoIterator<Item = (&'a str, u64, &'a FileIndex)>,
    pruning: &mut Pruning,
    counts: &mut [u64],
) {
    if on_level(search, None).is_none() {
        return;
    }
    for (path, size, index) in files {
        let Some(levels) = index.levels.as_ref().filter(|_| index.data_size == size) else { continue };
        let matching: Vec<bool> = levels.iter().map(|l| on_level(search, l.as_deref()) == Some(Some(true))).collect();
        for (group, rollup) in index.row_groups.iter().enumerate() {
            if rollup.rollup.is_empty()
                || !pruning.reads(path, group)
                || !rollup.rollup.iter().all(|c| buckets.of_second(c.second).is_some())
            {
                continue;
            }
            for c in rollup.rollup.iter().filter(|c| matching[c.level as usize]) {
                if let Some(bucket) = buckets.of_second(c.second) {
                    counts[bucket] += u64::from(c.rows);
                }
            }
            pruning.roll_up(path, index.row_groups.len(), group);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::syntax;

    fn on(query: &str, level: Option<&str>) -> Option<Option<bool>> {
        on_level(&syntax::parse(query).unwrap_or_else(|e| panic!("{e}")).search, level)
    }

    #[test]
    fn searches_about_levels_alone_are_decided_per_level() {
        assert_eq!(on("*", None), Some(Some(true)));
        assert_eq!(on("level: ERROR", Some("error")), Some(Some(true)));
        assert_eq!(on("level: error", Some("warn")), Some(Some(false)));
        assert_eq!(on("level: error", None), Some(None), "no level: null, dropped");
        assert_eq!(on("not level: error", None), Some(Some(true)), "not of null is a match");
        assert_eq!(on("level: error or level: warn", Some("WARN")), Some(Some(true)));
        assert_eq!(on("level: error or level: warn", None), Some(None));
        assert_eq!(on("level: error and not level: warn", None), Some(None));
        assert_eq!(on("level: error", Some("error x")), Some(Some(false)), "the whole value");
        for other in ["error", "level: err*", "level: \"a b\"", "message: error", "level: error and x", "latency > 3"] {
            assert_eq!(on(other, Some("error")), None, "{other}");
        }
    }

    #[test]
    fn a_second_counts_only_inside_one_subinterval() {
        let b = Buckets { from_ns: 10 * SECOND, to_ns: 70 * SECOND, width_ns: 30 * SECOND, count: 2 };
        assert_eq!(b.of_second(9), None);
        assert_eq!(b.of_second(10), Some(0));
        assert_eq!(b.of_second(39), Some(0));
        assert_eq!(b.of_second(40), Some(1));
        assert_eq!(b.of_second(69), Some(1));
        assert_eq!(b.of_second(70), None);
        assert_eq!(b.of_second(i64::MAX), None);
        // Boundaries within a second: it straddles them.
        let b = Buckets { from_ns: 10 * SECOND + 5, to_ns: 70 * SECOND, width_ns: 30 * SECOND, count: 2 };
        assert_eq!(
            (b.of_second(10), b.of_second(11), b.of_second(40), b.of_second(41)),
            (None, Some(0), None, Some(1))
        );
    }
}
