//! The sharded solver (ZeRO stage 1): instead of every rank updating all
//! weights, each rank updates its shard of each large learnable and of its
//! solver state, and the ranks exchange the updated weights.
//!
//! Per iteration, for each learnable of at least [`DIRECT`] elements: a
//! reduce-scatter of the gradient (this rank receives its shard's sum), the
//! solver step on the shard ([`solver::step_parts`]; clipping by norm sums
//! the shards' squared norms in one small reduction), an all-gather of the
//! weights. The ring allreduce is itself a reduce-scatter and an
//! all-gather, so the bytes moved are the same; what is saved is the
//! solver's passes over the other ranks' shards. Small learnables are
//! summed and updated whole on every rank, as without sharding.
//!
//! The solver state of the other shards goes stale on each rank:
//! [`gather_solver_state`] brings it back before anything reads it
//! (checkpoints, the end of a run), so a checkpoint resumes with any number
//! of ranks.

use super::weights::DIRECT;
use super::{Communicator, GradientSum};
use crate::options::{Solver, TrainingOptions};
use crate::solver::{self, SolverState};
use seqnet_core::Network;
use std::ops::Range;

/// Rank `rank`'s shard of `len` elements among `ranks`:
/// `⌊len·rank/ranks⌋..⌊len·(rank+1)/ranks⌋` (contiguous, in rank order,
/// covering `0..len`).
pub fn shard_range(len: usize, rank: usize, ranks: usize) -> Range<usize> {
    let at = |r: usize| (len as u128 * r as u128 / ranks.max(1) as u128) as usize;
    at(rank)..at(rank + 1)
}

/// The part of each learnable (network order) this rank updates: its shard
/// for learnables of at least [`DIRECT`] elements, `None` (all) for the others.
pub fn shard_parts(network: &Network, comm: &dyn Communicator) -> Vec<Option<Range<usize>>> {
    network
        .learnables()
        .iter()
        .map(|(_, p)| {
            let n = p.value.len();
            (n >= DIRECT).then(|| shard_range(n, comm.rank(), comm.size()))
        })
        .collect()
}

/// One solver step of the sharded solver after backward: sums the
/// gradients with `sums` ([`GradientSum::sum_shards`]: small ones whole,
/// large ones this rank's shard; `None` when they are already summed
/// whole, as the gradient buckets do), updates this rank's parts, then
/// gathers the large learnables' weights from their shards' ranks. Every
/// rank ends with the same weights.
pub fn sharded_step(
    network: &mut Network,
    state: &mut SolverState,
    options: &TrainingOptions,
    lr: f32,
    comm: &dyn Communicator,
    sums: Option<&mut GradientSum>,
) {
    if let Some(sums) = sums {
        sums.sum_shards(network, comm);
    }
    let parts = shard_parts(network, comm);
    let mut params: Vec<_> = network
        .learnables_mut()
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    solver::step_parts(&mut params, state, options, lr, &parts, &mut |v| {
        comm.sum_f64(v)
    });
    for (p, part) in params.iter_mut().zip(&parts) {
        if part.is_some() {
            // `step_parts` left the weights in standard layout.
            if let Some(w) = p.value.as_slice_mut() {
                comm.all_gather_f32(w);
            }
        }
    }
}

/// Gathers the solver state of every large learnable's shards from their
/// ranks (after [`sharded_step`]s, each rank's state is current on its
/// shards only), so that every rank holds all of it, as one process would.
/// A collective: every rank calls it at the same point.
pub fn gather_solver_state(
    network: &Network,
    state: &mut SolverState,
    solver: Solver,
    comm: &dyn Communicator,
) {
    let parts = shard_parts(network, comm);
    let (first, second) = match solver {
        Solver::Sgdm => (true, false),
        Solver::Adam => (true, true),
        Solver::Rmsprop => (false, true),
    };
    let arrays = [(first, &mut state.first), (second, &mut state.second)];
    for (used, arrays) in arrays {
        if !used || arrays.len() != parts.len() {
            // Not used by this solver, or no step taken yet.
            continue;
        }
        for (a, part) in arrays.iter_mut().zip(&parts) {
            if part.is_some() {
                if let Some(a) = a.as_slice_mut() {
                    comm.all_gather_f32(a);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_cover_every_element_once_in_rank_order() {
        for (len, ranks) in [(10, 3), (2, 3), (0, 2), (65536, 2), (7, 1)] {
            let mut next = 0;
            for rank in 0..ranks {
                let r = shard_range(len, rank, ranks);
                assert_eq!(r.start, next, "{len} on {ranks}");
                assert!(r.len() <= len.div_ceil(ranks));
                next = r.end;
            }
            assert_eq!(next, len);
        }
    }
}
