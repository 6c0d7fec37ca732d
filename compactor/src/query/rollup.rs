//! Histograms from the time rollups of the token index ([`crate::lake::index`]): a row
//! group whose every unit (second, or minute in sparse files) lies inside the range, each
//! inside one subinterval, is counted from its rollup and not read. Only searches about the level alone (or `*`)
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
    /// The subinterval that holds the whole unit of `seconds` starting at `second`, if one
    /// does.
    fn of_unit(&self, second: i64, seconds: i64) -> Option<usize> {
        let start = second.checked_mul(SECOND)?;
        let last = start.checked_add(seconds.checked_mul(SECOND)? - 1)?;
        if start < self.from_ns || last >= self.to_ns || self.width_ns <= 0 {
            return None;
        }
        let (first, end) = ((start - self.from_ns) / self.width_ns, (last - self.from_ns) / self.width_ns);
        usize::try_from(first).ok().filter(|b| first == end && *b < self.count)
    }

    /// Whether every unit of `seconds` (aligned to multiples of it) lies inside one
    /// subinterval, wherever it is in the range.
    fn aligned(&self, seconds: i64) -> bool {
        let unit = seconds.saturating_mul(SECOND);
        unit > 0 && self.from_ns.rem_euclid(unit) == 0 && self.width_ns % unit == 0
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
        let seconds = i64::from(index.unit_seconds);
        let aligned = buckets.aligned(seconds);
        for (group, rollup) in index.row_groups.iter().enumerate() {
            let (Some(first), Some(last)) = (rollup.rollup.first(), rollup.rollup.last()) else { continue };
            // Units in order: aligned ones are all inside when the first and last are.
            let inside = if aligned {
                buckets.of_unit(first.second, seconds).is_some() && buckets.of_unit(last.second, seconds).is_some()
            } else {
                rollup.rollup.iter().all(|c| buckets.of_unit(c.second, seconds).is_some())
            };
            if !inside || !pruning.reads(path, group) {
                continue;
            }
            for c in rollup.rollup.iter().filter(|c| matching[c.level as usize]) {
                if let Some(bucket) = buckets.of_unit(c.second, seconds) {
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
    fn a_unit_counts_only_inside_one_subinterval() {
        let b = Buckets { from_ns: 10 * SECOND, to_ns: 70 * SECOND, width_ns: 30 * SECOND, count: 2 };
        let of_second = |s| b.of_unit(s, 1);
        assert_eq!(of_second(9), None);
        assert_eq!(of_second(10), Some(0));
        assert_eq!(of_second(39), Some(0));
        assert_eq!(of_second(40), Some(1));
        assert_eq!(of_second(69), Some(1));
        assert_eq!(of_second(70), None);
        assert_eq!(of_second(i64::MAX), None);
        assert!(b.aligned(1) && !b.aligned(60));
        // Minutes: [0, 60) starts before the range, [60, 120) ends past it.
        assert_eq!((b.of_unit(0, 60), b.of_unit(60, 60)), (None, None));
        let hours = Buckets { from_ns: 0, to_ns: 7200 * SECOND, width_ns: 3600 * SECOND, count: 2 };
        assert!(hours.aligned(60));
        assert_eq!(
            (hours.of_unit(3540, 60), hours.of_unit(3600, 60), hours.of_unit(7140, 60)),
            (Some(0), Some(1), Some(1))
        );
        // Boundaries within a second: it straddles them.
        let b = Buckets { from_ns: 10 * SECOND + 5, to_ns: 70 * SECOND, width_ns: 30 * SECOND, count: 2 };
        assert!(!b.aligned(1));
        assert_eq!(
            (b.of_unit(10, 1), b.of_unit(11, 1), b.of_unit(40, 1), b.of_unit(41, 1)),
            (None, Some(0), None, Some(1))
        );
    }
}
