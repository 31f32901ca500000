//! The arithmetic that makes `N` ranks' shares add up to the global
//! mini-batch: loss weights, gradient sums and metric sums.

use super::Communicator;
use crate::error::{Error, Result};
use crate::metrics::MetricSums;
use seqnet_core::Network;

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
    let mut v = vec![0f64; 2 * k];
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
/// reduction of all gradients, in network order).
pub fn sum_gradients(network: &mut Network, comm: &dyn Communicator) {
    let mut params = network.learnables_mut();
    let total: usize = params.iter().map(|(_, p)| p.grad.len()).sum();
    let mut flat = Vec::with_capacity(total);
    for (_, p) in &params {
        flat.extend(p.grad.iter().copied());
    }
    comm.sum_f32(&mut flat);
    let mut at = 0;
    for (_, p) in params.iter_mut() {
        for g in p.grad.iter_mut() {
            *g = flat[at];
            at += 1;
        }
    }
}

/// Adds the accuracy and RMSE sums of every rank's share, so that a
/// mini-batch's reported accuracy and RMSE are the global mini-batch's.
/// The extra metrics (`Metrics` option) stay this rank's share's.
pub fn sum_metrics(sums: &mut MetricSums, comm: &dyn Communicator) {
    let mut v = [
        sums.correct as f64,
        sums.count as f64,
        sums.squared_error,
        sums.elements as f64,
    ];
    comm.sum_f64(&mut v);
    sums.correct = v[0].round() as usize;
    sums.count = v[1].round() as usize;
    sums.squared_error = v[2];
    sums.elements = v[3].round() as usize;
}
