//! Loss and metrics: accuracy and RMSE (and the metrics the options ask
//! for) over the real steps of predictions, and the evaluation of a network
//! on a batch source.

use crate::batches::BatchSource;
use crate::error::{Error, Result};
use crate::metric::{Metric, MetricAccumulator, MetricValues};
use crate::record::Metrics;
use ndarray::Axis;
use seqnet_core::{Activation, Format, Mode, Network};
use seqnet_data::Chunk;

/// Sums for accuracy and RMSE over the real steps of a prediction, and the
/// accumulation of any other metrics asked for.
#[derive(Debug, Clone, Default)]
pub struct MetricSums {
    /// Steps (or observations) whose largest score is the target's class.
    pub correct: usize,
    /// Steps (or observations) compared by class.
    pub count: usize,
    /// Σ (prediction − target)² over compared responses.
    pub squared_error: f64,
    /// Responses compared.
    pub elements: usize,
    /// The metrics asked for.
    pub extra: MetricAccumulator,
}

impl MetricSums {
    /// Sums that also accumulate `metrics`.
    pub fn new(metrics: &[Metric]) -> Self {
        MetricSums {
            extra: MetricAccumulator::new(metrics),
            ..Default::default()
        }
    }

    /// The values of the metrics asked for.
    pub fn values(&self) -> MetricValues {
        self.extra.values()
    }

    /// Adds one prediction (`C×B` or `C×B×T`) against its targets.
    pub fn add(&mut self, pred: &Activation, target: &Activation, classification: bool) {
        let k = *pred.data.shape().last().unwrap_or(&1);
        let (t, b) = if pred.format == Format::CBT {
            (pred.time(), pred.batch())
        } else {
            (1, pred.batch())
        };
        let lengths = pred.seq_lengths();
        let p = pred.data.view().into_shape_with_order((t, b, k)).ok();
        let y = target.data.view().into_shape_with_order((t, b, k)).ok();
        let (Some(p), Some(y)) = (p, y) else { return };
        for j in 0..b {
            let steps = if pred.format == Format::CBT {
                lengths.span(j)
            } else {
                0..1
            };
            for s in steps {
                let (pr, yr) = (p.index_axis(Axis(0), s), y.index_axis(Axis(0), s));
                let (pr, yr) = (pr.index_axis(Axis(0), j), yr.index_axis(Axis(0), j));
                if classification {
                    let truth = argmax(yr.iter());
                    self.correct += (argmax(pr.iter()) == truth) as usize;
                    self.count += 1;
                    if self.extra.is_active() {
                        self.extra.add_class(&pr.to_vec(), truth);
                    }
                } else {
                    if self.extra.is_active() {
                        self.extra.add_responses(&pr.to_vec(), &yr.to_vec());
                    }
                    self.squared_error += pr
                        .iter()
                        .zip(yr.iter())
                        .map(|(a, b)| ((a - b) as f64).powi(2))
                        .sum::<f64>();
                    self.elements += k;
                }
            }
        }
    }

    /// The fraction of correct classes, when any class was counted.
    pub fn accuracy(&self) -> Option<f32> {
        (self.count > 0).then(|| self.correct as f32 / self.count as f32)
    }

    /// The root mean squared error, when any response was counted.
    pub fn rmse(&self) -> Option<f32> {
        (self.elements > 0).then(|| (self.squared_error / self.elements as f64).sqrt() as f32)
    }
}

/// Index of the largest value (the first of equals).
pub fn argmax<'a>(values: impl Iterator<Item = &'a f32>) -> usize {
    let mut best = (0, f32::NEG_INFINITY);
    for (i, &v) in values.enumerate() {
        if v > best.1 {
            best = (i, v);
        }
    }
    best.0
}

/// Whether the network's (first) output layer is a classification layer.
pub fn is_classification(network: &Network) -> bool {
    network
        .output_names()
        .first()
        .and_then(|n| network.graph().layer(n))
        .is_some_and(|l| l.is::<seqnet_core::layers::ClassificationOutput>())
}

/// Runs one chunk: forward (with targets when it has them).
pub(crate) fn run_chunk(
    network: &mut Network,
    chunk: &Chunk,
    mode: Mode,
    stateful: bool,
) -> Result<Vec<Activation>> {
    let targets = chunk.targets.as_ref().map(std::slice::from_ref);
    Ok(network.forward(std::slice::from_ref(&chunk.inputs), targets, mode, stateful)?)
}

/// The loss and metric of `network` on the mini-batches of `source`'s first
/// epoch, in inference mode. The loss is averaged over observations.
pub fn evaluate(
    network: &mut Network,
    source: &mut dyn BatchSource,
    stateful_chunks: bool,
) -> Result<Metrics> {
    evaluate_with(network, source, stateful_chunks, &[])
}

/// [`evaluate`], also computing `metrics`.
pub fn evaluate_with(
    network: &mut Network,
    source: &mut dyn BatchSource,
    stateful_chunks: bool,
    metrics: &[Metric],
) -> Result<Metrics> {
    let classification = is_classification(network);
    let mut sums = MetricSums::new(metrics);
    let (mut loss, mut weight) = (0.0f64, 0usize);
    for batch in source.epoch(0)? {
        let batch = batch?;
        network.reset_state();
        for chunk in &batch.chunks {
            let preds = run_chunk(network, chunk, Mode::Inference, stateful_chunks)?;
            let Some(target) = &chunk.targets else {
                return Err(Error::NoTargets { data: "validation" });
            };
            let active = chunk.active().iter().filter(|a| **a).count();
            loss += network.loss().unwrap_or(0.0) as f64 * active as f64;
            weight += active;
            for p in &preds {
                sums.add(p, target, classification);
            }
        }
    }
    network.reset_state();
    Ok(Metrics {
        loss: (loss / weight.max(1) as f64) as f32,
        accuracy: sums.accuracy(),
        rmse: sums.rmse(),
        metrics: sums.values(),
    })
}
