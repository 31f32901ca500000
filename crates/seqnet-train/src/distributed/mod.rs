//! Data-parallel training (MATLAB's `ExecutionEnvironment` `"parallel"`,
//! PyTorch's DistributedDataParallel): `N` processes (ranks) train one
//! network on the same global mini-batches.
//!
//! Every rank draws the same shuffles from the seed and takes its
//! contiguous share of each mini-batch ([`seqnet_data::Share`]). After its
//! forward pass, each rank weights its share's loss gradient by its part of
//! the global mini-batch's loss normalizer ([`weigh_shares`]: the output
//! layers average over observations, so rank `r` with `n_r` of the `N`
//! observations scales by `n_r / N`); the ranks' gradients then add up to
//! the global mini-batch's gradient ([`sum_gradients`]), and every rank
//! applies the same solver step. Batch normalization reduces its sums and
//! counts across ranks through the network's [`seqnet_core::StatReducer`]
//! ([`CommunicatorReducer`]).
//!
//! The processes talk through a [`Communicator`]: [`SingleProcess`] (always
//! available), [`ThreadGroup`] (ranks as threads of one process, to test and
//! simulate) and, with the cargo feature `mpi`, `MpiWorld` over the
//! system's MPI library.

mod buckets;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod phases;
mod root;
mod shard;
mod threads;
mod weights;

pub use buckets::{backward_bucketed, Funnel};
pub use root::share_root_metrics;
pub use shard::{gather_solver_state, shard_parts, shard_range, sharded_step};
pub use threads::ThreadGroup;
pub use weights::{
    metric_sums_from_values, metric_sums_to_values, sum_gradients, sum_metrics, weigh_shares,
    weigh_shares_with, GlobalLoss, GradientSum,
};

use seqnet_core::StatReducer;
use seqnet_data::Share;
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;

/// The collective operations data-parallel training needs. Every rank
/// must make the same calls in the same order with slices of the same
/// length.
pub trait Communicator: Send + Sync {
    /// This process's rank, `0 ≤ rank < size`.
    fn rank(&self) -> usize;
    /// The number of ranks.
    fn size(&self) -> usize;
    /// Replaces every element by its sum over all ranks (the same result on
    /// every rank).
    fn sum_f32(&self, values: &mut [f32]);
    /// Replaces every element by its sum over all ranks.
    fn sum_f64(&self, values: &mut [f64]);
    /// Writes into `sums` the element-wise sum over all ranks of `values`
    /// (same lengths). The default copies and sums in place; MPI sums
    /// straight from `values` into `sums`, without a copy.
    fn sum_f32_into(&self, values: &[f32], sums: &mut [f32]) {
        sums.copy_from_slice(values);
        self.sum_f32(sums);
    }
    /// Reduce-scatter: afterwards, this rank's shard of `values`
    /// ([`shard_range`]) holds that shard's sum over all ranks; the rest of
    /// `values` is unspecified. The default sums all of `values`.
    fn reduce_scatter_f32(&self, values: &mut [f32]) {
        self.sum_f32(values);
    }
    /// All-gather: every rank gives its shard of `values` ([`shard_range`]);
    /// afterwards all of `values` holds, shard by shard, what each shard's
    /// rank gave. The default zeroes the other shards and sums.
    fn all_gather_f32(&self, values: &mut [f32]) {
        let mine = shard_range(values.len(), self.rank(), self.size());
        values[..mine.start].fill(0.0);
        values[mine.end..].fill(0.0);
        self.sum_f32(values);
    }
    /// Waits until every rank has called it.
    fn barrier(&self);
    /// Stops every rank at once after a failure on this one, with `message`
    /// (MPI: `MPI_Abort`). Implementations without other processes to stop
    /// may return, and the caller then returns its error.
    fn abort(&self, message: &str);

    /// Starts replacing `values` by their sum over all ranks; the receiver
    /// gives the result. The default sums on the spot; a [`Funnel`] sums on
    /// its communication thread while the caller goes on.
    fn start_sum_f32(&self, mut values: Vec<f32>) -> Receiver<Vec<f32>> {
        self.sum_f32(&mut values);
        let (tx, rx) = channel();
        let _ = tx.send(values);
        rx
    }
    /// Whether its collectives may be called from a thread other than the
    /// one that created it (one thread at a time): a [`Funnel`] needs it.
    fn threads_allowed(&self) -> bool {
        true
    }

    /// This rank's share of each mini-batch.
    fn share(&self) -> Share {
        Share {
            rank: self.rank(),
            ranks: self.size(),
        }
    }
    /// Whether this is rank 0: the one that prints, validates and writes.
    fn is_root(&self) -> bool {
        self.rank() == 0
    }
}

/// One process: rank 0 of 1; every sum is the value itself.
#[derive(Debug, Clone, Copy, Default)]
pub struct SingleProcess;

impl Communicator for SingleProcess {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn sum_f32(&self, _values: &mut [f32]) {}
    fn sum_f64(&self, _values: &mut [f64]) {}
    fn barrier(&self) {}
    fn abort(&self, _message: &str) {}
}

/// Batch normalization's statistics reducer over a communicator.
pub struct CommunicatorReducer(pub Arc<dyn Communicator>);

impl StatReducer for CommunicatorReducer {
    fn sum(&self, values: &mut [f64]) {
        self.0.sum_f64(values);
    }
}

/// The reducer of a rank that holds a stand-in ([`Share::is_stand_in`]): it
/// takes part in every reduction but adds nothing.
pub struct StandInReducer(pub Arc<dyn Communicator>);

impl StatReducer for StandInReducer {
    fn sum(&self, values: &mut [f64]) {
        values.fill(0.0);
        self.0.sum_f64(values);
    }
}

/// Whether any rank has `flag` set (one reduction).
pub fn any_rank(comm: &dyn Communicator, flag: bool) -> bool {
    let mut v = [flag as u8 as f64];
    comm.sum_f64(&mut v);
    v[0] > 0.0
}
