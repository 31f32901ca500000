//! Data-parallel training: each of `ranks` processes takes a share of every
//! mini-batch ([`Share`]) and reads only that share, batched with the layout
//! (padding, truncation, chunks) of the whole mini-batch, so that its chunks
//! are exactly rows of the global mini-batch's chunks. The shares are
//! balanced by real work, the time steps each observation brings
//! ([`Share::positions`]), not by observation count: with sequences of
//! different lengths, equal counts leave one rank waiting for the other at
//! every collective.

use std::ops::Range;

/// Which share of each mini-batch one rank takes: rank `rank` of `ranks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    /// This process's rank, `0 ≤ rank < ranks`.
    pub rank: usize,
    /// The number of processes.
    pub ranks: usize,
}

impl Share {
    /// The whole mini-batch (one process).
    pub const WHOLE: Share = Share { rank: 0, ranks: 1 };

    /// The positions of this rank's observations in a mini-batch of `batch`:
    /// `⌊batch·rank/ranks⌋ .. ⌊batch·(rank+1)/ranks⌋` when `batch ≥ ranks`,
    /// so that the ranks' ranges are non-empty, contiguous, in rank order,
    /// cover the batch and differ in length by at most one.
    ///
    /// A mini-batch smaller than the rank count (a kept last one) gives
    /// ranks below `batch` one observation each and the others an empty
    /// range: such a rank still runs the network (every rank must take part
    /// in every reduction) on a stand-in, see [`Share::is_stand_in`].
    pub fn range(&self, batch: usize) -> Range<usize> {
        let ranks = self.ranks.max(1);
        if batch < ranks {
            return if self.rank < batch {
                self.rank..self.rank + 1
            } else {
                0..0
            };
        }
        batch * self.rank / ranks..batch * (self.rank + 1) / ranks
    }

    /// Whether this rank has no observation of a mini-batch of `batch`. It
    /// then gets a stand-in: the first observation of the mini-batch,
    /// batched as in the whole mini-batch but with no datastore index
    /// ([`crate::MiniBatch::indices`] empty), that must count for nothing
    /// (no loss, no statistics, no metric).
    pub fn is_stand_in(&self, batch: usize) -> bool {
        self.range(batch).is_empty()
    }

    /// The positions (ascending) of this rank's observations in a
    /// mini-batch whose observations bring `costs` (`[B]`, the kept time
    /// steps of each, see [`crate::Batcher::share_costs`]): the ranks'
    /// position sets are disjoint, cover the batch, each non-empty when
    /// `B ≥ ranks`, and their cost totals as equal as
    /// [`balanced_owners`] makes them. A function of `costs` alone, so every
    /// rank computes every rank's share alike. A mini-batch smaller than the
    /// rank count gives [`Share::range`]'s one observation or none (a
    /// stand-in).
    pub fn positions(&self, costs: &[usize]) -> Vec<usize> {
        let batch = costs.len();
        if batch < self.ranks.max(1) {
            return self.range(batch).collect();
        }
        balanced_owners(costs, self.ranks)
            .iter()
            .enumerate()
            .filter(|&(_, &r)| r == self.rank)
            .map(|(p, _)| p)
            .collect()
    }
}

/// The rank owning each position of a mini-batch whose observations bring
/// `costs` (`[B]`, `B ≥ ranks ≥ 1`), chosen so that the largest rank total is
/// small: longest processing time first (the costliest observation to the
/// rank with the least so far; ties to the rank with fewer observations,
/// then the lower rank), then moves and swaps between the costliest and the
/// cheapest rank while they lower the costlier of the two. Every rank keeps
/// at least one observation. Deterministic: ties broken by position.
pub fn balanced_owners(costs: &[usize], ranks: usize) -> Vec<usize> {
    let ranks = ranks.max(1);
    let mut order: Vec<usize> = (0..costs.len()).collect();
    order.sort_by_key(|&p| (std::cmp::Reverse(costs[p]), p));
    let mut owner = vec![0; costs.len()];
    let mut load = vec![0usize; ranks];
    let mut count = vec![0usize; ranks];
    for &p in &order {
        let r = (0..ranks)
            .min_by_key(|&r| (load[r], count[r], r))
            .unwrap_or(0);
        owner[p] = r;
        load[r] += costs[p];
        count[r] += 1;
    }
    // Each improvement lowers the pair's larger total and leaves the other
    // ranks alone, so the sorted totals fall and this ends; the bound only
    // caps the work.
    for _ in 0..4 * costs.len() {
        let hi = (0..ranks).max_by_key(|&r| (load[r], r)).unwrap_or(0);
        let lo = (0..ranks).min_by_key(|&r| (load[r], r)).unwrap_or(0);
        match best_exchange(costs, &owner, (hi, lo), (load[hi], load[lo]), count[hi]) {
            Some((from_hi, from_lo)) => {
                owner[from_hi] = lo;
                load[hi] -= costs[from_hi];
                load[lo] += costs[from_hi];
                if let Some(q) = from_lo {
                    owner[q] = hi;
                    load[lo] -= costs[q];
                    load[hi] += costs[q];
                } else {
                    count[hi] -= 1;
                    count[lo] += 1;
                }
            }
            None => break,
        }
    }
    owner
}

/// The move of one observation from rank `hi` to rank `lo` (`None` second)
/// or the swap of one of each that gives the smallest larger total of the
/// two, if it is below `load_hi`; a move only while `hi` keeps one.
fn best_exchange(
    costs: &[usize],
    owner: &[usize],
    (hi, lo): (usize, usize),
    (load_hi, load_lo): (usize, usize),
    count_hi: usize,
) -> Option<(usize, Option<usize>)> {
    let mut best: Option<(usize, (usize, Option<usize>))> = None;
    let mut consider = |worse: usize, exchange: (usize, Option<usize>)| {
        if worse < load_hi && best.is_none_or(|(b, _)| worse < b) {
            best = Some((worse, exchange));
        }
    };
    for p in (0..costs.len()).filter(|&p| owner[p] == hi) {
        if count_hi > 1 {
            consider((load_hi - costs[p]).max(load_lo + costs[p]), (p, None));
        }
        for q in (0..costs.len()).filter(|&q| owner[q] == lo && costs[q] < costs[p]) {
            let d = costs[p] - costs[q];
            consider((load_hi - d).max(load_lo + d), (p, Some(q)));
        }
    }
    best.map(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_the_batch_in_order_and_balance() {
        for ranks in 1..6 {
            for batch in ranks..20 {
                let ranges: Vec<_> = (0..ranks)
                    .map(|rank| Share { rank, ranks }.range(batch))
                    .collect();
                assert_eq!(ranges[0].start, 0);
                assert_eq!(ranges[ranks - 1].end, batch);
                for w in ranges.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let (min, max) = (
                    ranges.iter().map(|r| r.len()).min().unwrap(),
                    ranges.iter().map(|r| r.len()).max().unwrap(),
                );
                assert!(
                    min >= 1 && max - min <= 1,
                    "{ranks} ranks, batch {batch}: {ranges:?}"
                );
            }
        }
        assert_eq!(Share { rank: 1, ranks: 3 }.range(16), 5..10);
        assert_eq!(Share::WHOLE.range(7), 0..7);
        // Too small to share: one observation each, then stand-ins.
        assert_eq!(Share { rank: 1, ranks: 3 }.range(2), 1..2);
        assert!(Share { rank: 2, ranks: 3 }.is_stand_in(2));
        assert!(!Share { rank: 1, ranks: 3 }.is_stand_in(2));
    }

    /// Every rank's positions for `costs`.
    fn shares(costs: &[usize], ranks: usize) -> Vec<Vec<usize>> {
        (0..ranks)
            .map(|rank| Share { rank, ranks }.positions(costs))
            .collect()
    }

    fn totals(costs: &[usize], shares: &[Vec<usize>]) -> Vec<usize> {
        shares
            .iter()
            .map(|s| s.iter().map(|&p| costs[p]).sum())
            .collect()
    }

    #[test]
    fn balanced_shares_partition_the_batch() {
        // A small deterministic generator of lengths 1..=20.
        let mut x = 12345u64;
        for ranks in 1..6 {
            for batch in ranks..24 {
                let costs: Vec<usize> = (0..batch)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        1 + ((x >> 33) % 20) as usize
                    })
                    .collect();
                let s = shares(&costs, ranks);
                let mut all: Vec<usize> = s.iter().flatten().copied().collect();
                all.sort();
                assert_eq!(all, (0..batch).collect::<Vec<_>>(), "{costs:?} on {ranks}");
                for p in &s {
                    assert!(!p.is_empty() && p.windows(2).all(|w| w[0] < w[1]));
                }
                // No single move or swap between the extreme ranks would lower
                // the larger total; hence within the largest cost of the mean.
                let t = totals(&costs, &s);
                let (max, min) = (*t.iter().max().unwrap(), *t.iter().min().unwrap());
                let largest = *costs.iter().max().unwrap();
                assert!(max - min <= largest, "{costs:?} on {ranks}: {t:?}");
            }
        }
    }

    #[test]
    fn balancing_gives_unequal_counts_where_lengths_differ() {
        // One long sequence against seven short ones: equal counts (4 and 4)
        // would give 20 + 3·2 = 26 steps against 8.
        let costs = [2, 2, 20, 2, 2, 2, 2, 2];
        let s = shares(&costs, 2);
        assert_eq!(s, vec![vec![2], vec![0, 1, 3, 4, 5, 6, 7]]);
        assert_eq!(totals(&costs, &s), vec![20, 14]);
        // Equal lengths: equal counts.
        let s = shares(&[5; 7], 3);
        assert_eq!(s.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 2, 2]);
        // Exact splits are found: 8+7 = 6+5+4.
        let costs = [8, 7, 6, 5, 4];
        assert_eq!(totals(&costs, &shares(&costs, 2)), vec![15, 15]);
        // Too small to share: as `range`.
        assert_eq!(Share { rank: 1, ranks: 3 }.positions(&[4, 9]), vec![1]);
        assert!(Share { rank: 2, ranks: 3 }.positions(&[4, 9]).is_empty());
    }
}
