//! Where the training loop gets its mini-batches: a [`BatchSource`] gives
//! the mini-batches of each epoch — from a datastore, shuffled as the options
//! say ([`DatastoreBatches`]), or held in memory ([`InMemoryBatches`]).

use crate::error::{Error, Result};
use crate::options::{LastMiniBatch, Shuffle, TrainingOptions};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use seqnet_data::{BatchOptions, Batcher, Datastore, LastBatch, MiniBatch, Share};
use std::sync::Arc;

/// What the loop needs from a data source: the mini-batches of each epoch.
pub trait BatchSource {
    /// The mini-batches of 0-based `epoch`, in order.
    fn epoch(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<MiniBatch>> + '_>>;
}

/// The same mini-batches every epoch, held in memory.
#[derive(Debug, Clone)]
pub struct InMemoryBatches(pub Vec<MiniBatch>);

impl BatchSource for InMemoryBatches {
    fn epoch(&mut self, _epoch: usize) -> Result<Box<dyn Iterator<Item = Result<MiniBatch>> + '_>> {
        Ok(Box::new(self.0.iter().cloned().map(Ok)))
    }
}

/// The mini-batches of a datastore, shuffled as the options say.
pub struct DatastoreBatches {
    store: Arc<dyn Datastore>,
    batcher: Batcher,
    mini_batch_size: usize,
    shuffle: Shuffle,
    last: LastBatch,
    order: Vec<usize>,
    rng: StdRng,
    /// Epochs whose shuffle has been applied to `order`.
    shuffled_through: usize,
    /// Data-parallel training: this rank's share and every observation's length.
    share: Option<(Share, Arc<Vec<usize>>)>,
}

impl DatastoreBatches {
    /// Training batches, shuffled as `options.shuffle` says. The last
    /// partial mini-batch is kept or discarded as `options.last_mini_batch`
    /// says (discarded only when there is a full one).
    pub fn training(store: Arc<dyn Datastore>, options: &TrainingOptions) -> Result<Self> {
        let discard = options.last_mini_batch == LastMiniBatch::Discard;
        let last = if discard && store.len() >= options.mini_batch_size {
            LastBatch::Discard
        } else {
            LastBatch::Keep
        };
        Self::new(store, options, options.shuffle, last)
    }

    /// Batches for validation or prediction: file order, every observation.
    pub fn in_order(store: Arc<dyn Datastore>, options: &TrainingOptions) -> Result<Self> {
        Self::new(store, options, Shuffle::Never, LastBatch::Keep)
    }

    fn new(
        store: Arc<dyn Datastore>,
        options: &TrainingOptions,
        shuffle: Shuffle,
        last: LastBatch,
    ) -> Result<Self> {
        if store.is_empty() {
            return Err(Error::EmptyDatastore);
        }
        let batch_options = BatchOptions {
            sequence_length: options.sequence_length,
            direction: options.sequence_padding_direction,
            padding_value: options.sequence_padding_value,
        };
        let batcher = Batcher::for_datastore(batch_options, store.as_ref())?;
        let order = (0..store.len()).collect();
        Ok(DatastoreBatches {
            store,
            batcher,
            mini_batch_size: options.mini_batch_size,
            shuffle,
            last,
            order,
            rng: StdRng::seed_from_u64(options.seed ^ SHUFFLE_STREAM),
            shuffled_through: 0,
            share: None,
        })
    }

    /// Data-parallel training: gives only `share` of each mini-batch (the
    /// same shuffles on every rank), reading only the share's observations.
    /// Reads the datastore's sequence lengths once, to pad and cut each
    /// share as its whole mini-batch.
    pub fn shared(mut self, share: Share) -> Result<Self> {
        if share.ranks > 1 {
            let lengths = self.store.sequence_lengths()?;
            self.share = Some((share, Arc::new(lengths)));
        }
        Ok(self)
    }
}

/// Keeps the shuffling stream apart from the other streams seeded by `options.seed`.
const SHUFFLE_STREAM: u64 = 0x5f1f_f1e5;

impl BatchSource for DatastoreBatches {
    fn epoch(&mut self, epoch: usize) -> Result<Box<dyn Iterator<Item = Result<MiniBatch>> + '_>> {
        // Replay the shuffles of any epochs not seen yet, so that a resumed run
        // sees the same orders as an uninterrupted one.
        while self.shuffled_through <= epoch {
            let e = self.shuffled_through;
            if self.shuffle == Shuffle::EveryEpoch || (self.shuffle == Shuffle::Once && e == 0) {
                self.order.shuffle(&mut self.rng);
            }
            self.shuffled_through += 1;
        }
        if let Some((share, lengths)) = &self.share {
            if share.rank == 0 && crate::distributed::phases::enabled() {
                eprintln!(
                    "{}",
                    share_balance(
                        &self.batcher,
                        &self.order,
                        self.mini_batch_size,
                        lengths,
                        share.ranks
                    )
                );
            }
        }
        let batches = match &self.share {
            Some((share, lengths)) => self.batcher.epoch_share(
                self.store.clone(),
                &self.order,
                self.mini_batch_size,
                self.last,
                *share,
                lengths.clone(),
            )?,
            None => self.batcher.epoch(
                self.store.clone(),
                &self.order,
                self.mini_batch_size,
                self.last,
            )?,
        };
        Ok(Box::new(batches.map(|b| b.map_err(Error::from))))
    }
}

/// How evenly an epoch's shares divide the real work (time steps) among
/// `ranks`, by equal observation counts ([`Share::range`]) and as balanced
/// ([`Share::positions`]): the mean and worst per-mini-batch ratio of the
/// largest to the smallest share, and the sum over mini-batches of the
/// largest share against the even split (what the slowest rank computes,
/// the others waiting for it). Printed by rank 0 with `SEQNET_MPI_TIMES`.
fn share_balance(
    batcher: &Batcher,
    order: &[usize],
    mini_batch_size: usize,
    lengths: &[usize],
    ranks: usize,
) -> String {
    let mut stats = [(0.0f64, 1.0f64, 0usize); 2];
    let (mut even, mut batches) = (0.0f64, 0usize);
    for batch in order.chunks(mini_batch_size.max(1)) {
        if batch.len() < ranks {
            continue;
        }
        let batch_lengths: Vec<usize> = batch.iter().map(|&i| lengths[i]).collect();
        let costs = batcher.share_costs(&batch_lengths);
        let by_count: Vec<usize> = (0..ranks)
            .map(|rank| {
                Share { rank, ranks }
                    .range(costs.len())
                    .map(|p| costs[p])
                    .sum()
            })
            .collect();
        let mut balanced = vec![0usize; ranks];
        for (p, r) in seqnet_data::balanced_owners(&costs, ranks)
            .into_iter()
            .enumerate()
        {
            balanced[r] += costs[p];
        }
        for (k, totals) in [by_count, balanced].iter().enumerate() {
            let max = *totals.iter().max().unwrap_or(&0) as f64;
            let min = (*totals.iter().min().unwrap_or(&0)).max(1) as f64;
            stats[k].0 += max / min;
            stats[k].1 = stats[k].1.max(max / min);
            stats[k].2 += max as usize;
        }
        even += costs.iter().sum::<usize>() as f64 / ranks as f64;
        batches += 1;
    }
    let n = batches.max(1) as f64;
    let line = |(sum, worst, slowest): (f64, f64, usize)| {
        format!(
            "max/min mean {:.3} worst {:.3}, slowest share {:.0} steps ({:.3} of even)",
            sum / n,
            worst,
            slowest,
            slowest as f64 / even.max(1.0)
        )
    };
    format!(
        "shares' time steps over {batches} mini-batches of {ranks} ranks: by count: {}; balanced: {}",
        line(stats[0]),
        line(stats[1])
    )
}
