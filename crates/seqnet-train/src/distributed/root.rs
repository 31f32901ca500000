//! What rank 0 computes alone and the other ranks receive: the validation
//! metrics (rank 0 alone validates; early stopping and the best network
//! then agree on every rank without the others reading the validation data).

use super::Communicator;
use crate::metric::{Metric, MetricValues};
use crate::record::Metrics;

/// Numbers per [`Metrics`] in a reduction: the loss, then a (present,
/// value) pair for the accuracy, the RMSE and each of [`Metric::ALL`].
const LEN: usize = 1 + 2 * (2 + Metric::ALL.len());

/// Rank 0's `metrics` on every rank, in one reduction to which the other
/// ranks add zeros (exact: `x + 0 = x`). `mine` is rank 0's metrics, `None`
/// on the others.
pub fn share_root_metrics(comm: &dyn Communicator, mine: Option<&Metrics>) -> Metrics {
    let mut v = [0f64; LEN];
    if let Some(m) = mine {
        v[0] = m.loss as f64;
        put(&mut v, 1, m.accuracy);
        put(&mut v, 3, m.rmse);
        for (i, metric) in Metric::ALL.into_iter().enumerate() {
            put(&mut v, 5 + 2 * i, m.metrics.get(metric));
        }
    }
    comm.sum_f64(&mut v);
    let mut metrics = MetricValues::default();
    for (i, metric) in Metric::ALL.into_iter().enumerate() {
        if let Some(x) = get(&v, 5 + 2 * i) {
            metrics.set(metric, x);
        }
    }
    Metrics {
        loss: v[0] as f32,
        accuracy: get(&v, 1),
        rmse: get(&v, 3),
        metrics,
    }
}

fn put(v: &mut [f64], at: usize, x: Option<f32>) {
    if let Some(x) = x {
        v[at] = 1.0;
        v[at + 1] = x as f64;
    }
}

fn get(v: &[f64], at: usize) -> Option<f32> {
    (v[at] > 0.0).then(|| v[at + 1] as f32)
}
