//! The compaction planner: which raw batches to delete only, and which to compact in
//! which commit. A pure function, so that its promise is checked by a property test: no
//! batch is lost or compacted twice, whatever the listing order.

use sluice_ingest::batch::BatchId;
use std::collections::HashSet;

pub use crate::lake::raw::Pending;

/// What one compaction run of a logstore does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Already in the table (a run that crashed after its commit, a client's late retry
    /// of a compacted request): only delete these.
    pub already_compacted: Vec<Pending>,
    /// The rest, oldest first, one commit per group.
    pub commits: Vec<Vec<Pending>>,
}

/// Plans a run: batches whose id `consumed` holds are deleted only; the others are
/// grouped, oldest first, into commits of at most `max_bytes_per_commit` (a larger
/// batch gets a commit of its own).
pub fn plan(mut pending: Vec<Pending>, consumed: &HashSet<BatchId>, max_bytes_per_commit: u64) -> Plan {
    pending.sort_by(|a, b| (a.received_ns, &a.key).cmp(&(b.received_ns, &b.key)));
    // A key listed twice (a store that lists an overwritten object twice) is one batch.
    let mut seen = HashSet::with_capacity(pending.len());
    pending.retain(|p| seen.insert(p.key.clone()));
    let mut out = Plan::default();
    let mut current: Vec<Pending> = Vec::new();
    let mut current_bytes = 0u64;
    for batch in pending {
        if consumed.contains(&batch.key.id) {
            out.already_compacted.push(batch);
            continue;
        }
        if !current.is_empty() && current_bytes + batch.size > max_bytes_per_commit {
            out.commits.push(std::mem::take(&mut current));
            current_bytes = 0;
        }
        current_bytes += batch.size;
        current.push(batch);
    }
    if !current.is_empty() {
        out.commits.push(current);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sluice_ingest::layout::RawBatchKey;

    fn pending(id: u128, size: u64, received_ns: i64) -> Pending {
        Pending { key: RawBatchKey { project: "p".into(), logstore: "l".into(), id: BatchId(id) }, size, received_ns }
    }

    #[test]
    fn oldest_first_within_the_byte_limit() {
        let plan = plan(
            vec![pending(3, 60, 30), pending(1, 60, 10), pending(2, 60, 20), pending(4, 500, 40)],
            &HashSet::from([BatchId(2)]),
            100,
        );
        assert_eq!(plan.already_compacted, vec![pending(2, 60, 20)]);
        assert_eq!(plan.commits, vec![vec![pending(1, 60, 10)], vec![pending(3, 60, 30)], vec![pending(4, 500, 40)]]);
    }

    proptest! {
        /// Every pending batch is either deleted only (it is in the table) or in exactly
        /// one commit (it is not), whatever the order and the limit.
        #[test]
        fn no_batch_is_lost_or_compacted_twice(
            batches in proptest::collection::vec((0u128..40, 1u64..1000, 0i64..100), 0..60),
            consumed in proptest::collection::hash_set(0u128..40, 0..20),
            limit in 1u64..3000,
        ) {
            let pending: Vec<Pending> = batches.iter().map(|&(id, size, t)| pending(id, size, t)).collect();
            let consumed: HashSet<BatchId> = consumed.into_iter().map(BatchId).collect();
            let out = plan(pending.clone(), &consumed, limit);
            let ids: HashSet<BatchId> = pending.iter().map(|p| p.key.id).collect();
            let mut seen = HashSet::new();
            for p in &out.already_compacted {
                prop_assert!(consumed.contains(&p.key.id));
                prop_assert!(seen.insert(p.key.id), "listed twice");
            }
            for commit in &out.commits {
                prop_assert!(!commit.is_empty());
                let bytes: u64 = commit.iter().map(|p| p.size).sum();
                prop_assert!(bytes <= limit || commit.len() == 1, "a commit over the limit holds one batch");
                for p in commit {
                    prop_assert!(!consumed.contains(&p.key.id), "compacted twice");
                    prop_assert!(seen.insert(p.key.id), "in two places");
                }
            }
            prop_assert_eq!(seen, ids, "every batch is accounted for");
            let order: Vec<i64> = out.commits.iter().flatten().map(|p| p.received_ns).collect();
            prop_assert!(order.windows(2).all(|w| w[0] <= w[1]), "oldest first");
        }
    }
}
