//! The arithmetic that makes `N` ranks' shares add up to the global
//! mini-batch: loss weights, gradient sums and metric sums.

use super::Communicator;
use crate::error::{Error, Result};
use crate::metrics::MetricSums;
use ndarray::ArrayD;
use seqnet_core::{Learnable, Network};

/// The global mini-batch's loss, the same on every rank.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GlobalLoss {
    /// The sum over output layers of each one's loss over the global
    /// mini-batch (what one process reports for the whole mini-batch).
    pub loss: f32,
}

/// After a training forward of this rank's share: scales each output
/// layer's loss gradient by this rank's part of the global normalizer
/// (`n_r / N`, with `n_r` the observations the layer averaged over on this
/// rank and `N` their sum over ranks; 0 when `N` is 0), so that the next
/// backward gives this share's part of the global mini-batch's gradient.
/// Returns the global loss (`Σ_r n_r·loss_r / N` per output layer). One
/// reduction of two numbers per output layer.
///
/// A rank holding a stand-in (`stand_in`, see [`seqnet_data::Share::is_stand_in`])
/// counts no observation: its gradients become 0.
///
/// An output layer that computed a loss but does not tell its normalizer
/// ([`seqnet_core::LayerKernel::loss_observations`]) cannot be weighted:
/// that is an error naming it, the same on every rank.
pub fn weigh_shares(
    network: &mut Network,
    comm: &dyn Communicator,
    stand_in: bool,
) -> Result<GlobalLoss> {
    weigh_shares_with(network, comm, stand_in, &mut [])
}

/// [`weigh_shares`], also summing `extra` over the ranks in the same
/// reduction (the mini-batch's accuracy and RMSE sums, see
/// [`metric_sums_to_values`]): one latency instead of two per iteration.
pub fn weigh_shares_with(
    network: &mut Network,
    comm: &dyn Communicator,
    stand_in: bool,
    extra: &mut [f64],
) -> Result<GlobalLoss> {
    let mut terms = network.loss_terms();
    if stand_in {
        for (_, loss, n) in &mut terms {
            if loss.is_some() {
                *loss = Some(0.0);
                *n = n.map(|_| 0);
            }
        }
    }
    let k = terms.len();
    let mut v = vec![0f64; 2 * k + extra.len()];
    v[2 * k..].copy_from_slice(extra);
    let mut unweighable = None;
    for (i, (name, loss, n)) in terms.iter().enumerate() {
        match (loss, n) {
            (Some(loss), Some(n)) => {
                v[i] = *n as f64;
                v[k + i] = *n as f64 * *loss as f64;
            }
            (Some(_), None) => unweighable = Some(name.to_string()),
            (None, _) => {}
        }
    }
    if let Some(layer) = unweighable {
        return Err(Error::InvalidOption {
            option: "ExecutionEnvironment",
            message: format!(
                "output layer '{layer}' does not tell the number of observations its loss averages, so its loss cannot be shared across processes"
            ),
        });
    }
    comm.sum_f64(&mut v);
    extra.copy_from_slice(&v[2 * k..]);
    let mut factors = Vec::with_capacity(k);
    let mut loss = 0f64;
    for (i, (_, _, n)) in terms.iter().enumerate() {
        let total = v[i];
        let mine = n.unwrap_or(0) as f64;
        factors.push(if total > 0.0 {
            (mine / total) as f32
        } else {
            0.0
        });
        if total > 0.0 {
            loss += v[k + i] / total;
        }
    }
    network.scale_loss_gradients(&factors);
    Ok(GlobalLoss { loss: loss as f32 })
}

/// Replaces every learnable's gradient by its sum over ranks (one
/// reduction of the small gradients packed, one per large gradient, in
/// network order). [`GradientSum`] does the same with buffers kept from
/// one iteration to the next.
pub fn sum_gradients(network: &mut Network, comm: &dyn Communicator) {
    GradientSum::default().sum(network, comm);
}

/// Gradients of at least this many elements are summed on their own,
/// straight from the gradient into a buffer that then takes its place;
/// smaller ones are packed into one reduction (each reduction costs a
/// latency, each packed element two copies).
pub(super) const DIRECT: usize = 1 << 16;

/// Sums the gradients over ranks every iteration with the same buffers:
/// no allocation and no page faults per iteration, whole-slice copies
/// only. A gradient of at least [`DIRECT`] elements is summed from its
/// array into a spare array of its shape, which is then swapped in (the
/// layer's next backward overwrites whatever its gradient holds); the
/// others are copied into one packed buffer, summed, and copied back.
#[derive(Default)]
pub struct GradientSum {
    /// The small gradients of this rank, one after the other.
    packed: Vec<f32>,
    /// Their sums over ranks.
    packed_sums: Vec<f32>,
    /// Per learnable (network order): the array a large gradient's sum
    /// is written into; after the swap, the one the next sum goes to.
    spares: Vec<Option<ArrayD<f32>>>,
}

impl GradientSum {
    /// Replaces every learnable's gradient by its sum over `comm`'s ranks.
    /// Every rank must call it at the same point with the same network
    /// (the learnables' sizes decide the reductions).
    pub fn sum(&mut self, network: &mut Network, comm: &dyn Communicator) {
        let mut params = network.learnables_mut();
        self.spares.resize_with(params.len(), || None);
        self.sum_packed(&mut params, comm);
        for ((_, p), spare) in params.iter_mut().zip(&mut self.spares) {
            if p.grad.len() >= DIRECT {
                sum_into_spare(&mut p.grad, spare, comm);
            }
        }
    }

    /// For the sharded solver ([`super::sharded_step`]): sums the small
    /// gradients over the ranks as [`GradientSum::sum`] does, and of each
    /// gradient of at least [`DIRECT`] elements only this rank's shard
    /// ([`super::shard_parts`]) in place (reduce-scatter; the rest of it is
    /// then unspecified).
    pub fn sum_shards(&mut self, network: &mut Network, comm: &dyn Communicator) {
        let mut params = network.learnables_mut();
        self.sum_packed(&mut params, comm);
        for (_, p) in params.iter_mut().filter(|(_, p)| p.grad.len() >= DIRECT) {
            if !p.grad.is_standard_layout() {
                p.grad = p.grad.as_standard_layout().into_owned();
            }
            if let Some(g) = p.grad.as_slice_mut() {
                comm.reduce_scatter_f32(g);
            }
        }
    }

    /// Sums the gradients of fewer than [`DIRECT`] elements over the ranks,
    /// packed into one reduction.
    fn sum_packed(&mut self, params: &mut [(&str, &mut Learnable)], comm: &dyn Communicator) {
        self.packed.clear();
        for (_, p) in params.iter().filter(|(_, p)| p.grad.len() < DIRECT) {
            match p.grad.as_slice() {
                Some(g) => self.packed.extend_from_slice(g),
                None => self.packed.extend(p.grad.iter().copied()),
            }
        }
        if !self.packed.is_empty() {
            self.packed_sums.resize(self.packed.len(), 0.0);
            comm.sum_f32_into(&self.packed, &mut self.packed_sums);
        }
        let mut at = 0;
        for (_, p) in params.iter_mut().filter(|(_, p)| p.grad.len() < DIRECT) {
            let n = p.grad.len();
            let sums = &self.packed_sums[at..at + n];
            match p.grad.as_slice_mut() {
                Some(g) => g.copy_from_slice(sums),
                None => p.grad.iter_mut().zip(sums).for_each(|(g, s)| *g = *s),
            }
            at += n;
        }
    }
}

/// Sums `grad` over the ranks into `spare` (made or reshaped to `grad`'s
/// shape when needed) and swaps the two: `grad` holds the sum.
fn sum_into_spare(
    grad: &mut ArrayD<f32>,
    spare: &mut Option<ArrayD<f32>>,
    comm: &dyn Communicator,
) {
    if !grad.is_standard_layout() {
        *grad = grad.as_standard_layout().into_owned();
    }
    let fits = spare
        .as_ref()
        .is_some_and(|s| s.shape() == grad.shape() && s.is_standard_layout());
    if !fits {
        *spare = Some(ArrayD::zeros(grad.raw_dim()));
    }
    let Some(sums) = spare.as_mut() else { return };
    match (grad.as_slice(), sums.as_slice_mut()) {
        (Some(values), Some(out)) => {
            comm.sum_f32_into(values, out);
            std::mem::swap(grad, sums);
        }
        // Not reached (both are in standard layout); the sum still takes
        // part in the reduction, as every rank's does.
        _ => {
            let mut v: Vec<f32> = grad.iter().copied().collect();
            comm.sum_f32(&mut v);
            grad.iter_mut().zip(v).for_each(|(g, s)| *g = s);
        }
    }
}

/// Adds the accuracy and RMSE sums of every rank's share, so that a
/// mini-batch's reported accuracy and RMSE are the global mini-batch's.
/// The extra metrics (`Metrics` option) stay this rank's share's.
pub fn sum_metrics(sums: &mut MetricSums, comm: &dyn Communicator) {
    let mut v = metric_sums_to_values(sums);
    comm.sum_f64(&mut v);
    metric_sums_from_values(sums, v);
}

/// The accuracy and RMSE sums as the numbers a reduction adds.
pub fn metric_sums_to_values(sums: &MetricSums) -> [f64; 4] {
    [
        sums.correct as f64,
        sums.count as f64,
        sums.squared_error,
        sums.elements as f64,
    ]
}

/// Puts back the accuracy and RMSE sums from [`metric_sums_to_values`]'s
/// numbers (summed over ranks).
pub fn metric_sums_from_values(sums: &mut MetricSums, v: [f64; 4]) {
    sums.correct = v[0].round() as usize;
    sums.count = v[1].round() as usize;
    sums.squared_error = v[2];
    sums.elements = v[3].round() as usize;
}
