//! Data-parallel training: each of `ranks` processes takes a contiguous
//! share of every mini-batch ([`Share`]) and reads only that share, batched
//! with the layout (padding, truncation, chunks) of the whole mini-batch, so
//! that its chunks are exactly the rows of the global mini-batch's chunks.

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
}
