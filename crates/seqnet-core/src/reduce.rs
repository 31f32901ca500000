//! Sums across the processes of a data-parallel run.
//!
//! In data-parallel training every process (rank) holds a share of each
//! mini-batch. Layers whose forward depends on the whole mini-batch — batch
//! normalization's statistics — add their per-share sums across ranks
//! through a [`StatReducer`] given to the network with
//! [`crate::Network::set_stat_reducer`]. A single process has none and
//! computes as before.

use std::sync::Arc;

/// Adds values elementwise across all ranks of a data-parallel run.
///
/// Every rank must make the same calls in the same order with slices of the
/// same length (a collective operation): a layer that reduces in training
/// must reduce on every rank even when its share holds no real value.
pub trait StatReducer: Send + Sync {
    /// Replaces every element of `values` by its sum over all ranks.
    fn sum(&self, values: &mut [f64]);
}

/// A shared reducer, as kernels keep it.
pub type SharedReducer = Arc<dyn StatReducer>;
