//! The training loop over mini-batches: forward, loss, backward, solver step,
//! validation, early stopping and events.

use crate::options::{OutputNetwork, SequenceLength, TrainingOptions};
use crate::record::{IterationInfo, Metrics, TrainingEvent, TrainingRecord};
use crate::solver::{self, SolverState};
use ndarray::{ArrayD, Axis};
use seqnet_core::{Activation, Error, Format, Mode, Network, Result};
use std::time::Instant;

/// One mini-batch as the network takes it.
#[derive(Debug, Clone)]
pub struct MiniBatch {
    /// One activation per input layer.
    pub inputs: Vec<Activation>,
    /// One per output layer, laid out like its prediction (one-hot classes or responses).
    pub targets: Vec<Activation>,
    /// Whether this starts new sequences: recurrent state is reset before it.
    /// Later chunks of split sequences (`SequenceLength::Fixed`) carry the state.
    pub first_chunk: bool,
}

/// Sums for accuracy and RMSE over the real steps of a prediction.
#[derive(Debug, Clone, Copy, Default)]
pub struct MetricSums {
    pub correct: usize,
    pub count: usize,
    pub squared_error: f64,
    pub elements: usize,
}

impl MetricSums {
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
                    self.correct += (argmax(pr.iter()) == argmax(yr.iter())) as usize;
                    self.count += 1;
                } else {
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

    pub fn accuracy(&self) -> Option<f32> {
        (self.count > 0).then(|| self.correct as f32 / self.count as f32)
    }

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
        .is_some_and(|l| matches!(l, seqnet_core::Layer::ClassificationOutput(_)))
}

/// The loss and metric of `network` on `batches`, in inference mode.
pub fn evaluate(
    network: &mut Network,
    batches: &[MiniBatch],
    stateful_chunks: bool,
) -> Result<Metrics> {
    let classification = is_classification(network);
    let mut sums = MetricSums::default();
    let (mut loss, mut weight) = (0.0f64, 0usize);
    for batch in batches {
        if batch.first_chunk {
            network.reset_state();
        }
        let preds = network.forward(
            &batch.inputs,
            Some(&batch.targets),
            Mode::Inference,
            stateful_chunks,
        )?;
        let b = batch.inputs.first().map(|a| a.batch()).unwrap_or(0);
        loss += network.loss().unwrap_or(0.0) as f64 * b as f64;
        weight += b;
        for (p, t) in preds.iter().zip(&batch.targets) {
            sums.add(p, t, classification);
        }
    }
    network.reset_state();
    Ok(Metrics {
        loss: (loss / weight.max(1) as f64) as f32,
        accuracy: sums.accuracy(),
        rmse: sums.rmse(),
    })
}

fn snapshot(network: &Network) -> Vec<ArrayD<f32>> {
    network
        .learnables()
        .iter()
        .map(|(_, p)| p.value.clone())
        .chain(network.states().iter().map(|(_, s)| s.value.clone()))
        .collect()
}

fn restore(network: &mut Network, values: Vec<ArrayD<f32>>) {
    let mut it = values.into_iter();
    for (_, p) in network.learnables_mut() {
        if let Some(v) = it.next() {
            p.value = v;
        }
    }
    let states: Vec<(String, String)> = network
        .states()
        .iter()
        .map(|(l, s)| (l.to_string(), s.name.to_string()))
        .collect();
    for ((layer, name), v) in states.into_iter().zip(it) {
        let _ = network.set_state(&layer, &name, v);
    }
}

/// What the loop needs from a data source: the mini-batches of each epoch.
pub trait BatchSource {
    /// The mini-batches of 0-based `epoch`, in order.
    fn epoch(&mut self, epoch: usize) -> Result<Vec<MiniBatch>>;
}

impl<F: FnMut(usize) -> Result<Vec<MiniBatch>>> BatchSource for F {
    fn epoch(&mut self, epoch: usize) -> Result<Vec<MiniBatch>> {
        self(epoch)
    }
}

/// Trains `network` in place. `on_event` sees every event (progress bars, plots,
/// the verbose table). Returns the training record; with
/// `OutputNetwork::BestValidationLoss` the network ends at its best validation.
pub fn fit(
    network: &mut Network,
    source: &mut dyn BatchSource,
    validation: Option<&[MiniBatch]>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
) -> Result<TrainingRecord> {
    options.validate()?;
    network.reseed(
        options
            .seed
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .wrapping_add(1),
    );
    let stateful_chunks = matches!(options.sequence_length, SequenceLength::Fixed(_));
    let classification = is_classification(network);
    let start = Instant::now();
    let mut record = TrainingRecord::default();
    let mut state = SolverState::default();
    let mut iteration = 0usize;
    let mut best: Option<(f32, Vec<ArrayD<f32>>)> = None;
    let mut since_best = 0usize;
    let mut reason = "max epochs completed".to_string();

    'epochs: for epoch in 0..options.max_epochs {
        let batches = source.epoch(epoch)?;
        if epoch == 0 {
            record.iterations_per_epoch = batches.len();
            on_event(&TrainingEvent::Started {
                max_epochs: options.max_epochs,
                iterations_per_epoch: batches.len(),
            });
        }
        let lr = options.learn_rate_at(epoch);
        for batch in &batches {
            iteration += 1;
            if batch.first_chunk {
                network.reset_state();
            }
            let preds = network.forward(
                &batch.inputs,
                Some(&batch.targets),
                Mode::Training,
                stateful_chunks,
            )?;
            let loss = network.loss().unwrap_or(f32::NAN);
            if !loss.is_finite() {
                return Err(Error::Training { iteration, message: format!("the loss became {loss} (try a lower learning rate or a gradient threshold)") });
            }
            network.backward()?;
            {
                let mut params: Vec<_> = network
                    .learnables_mut()
                    .into_iter()
                    .map(|(_, p)| p)
                    .collect();
                solver::step(&mut params, &mut state, options, lr);
            }
            let mut sums = MetricSums::default();
            for (p, t) in preds.iter().zip(&batch.targets) {
                sums.add(p, t, classification);
            }
            let is_last = epoch + 1 == options.max_epochs
                && std::ptr::eq(batch, batches.last().expect("non-empty"));
            let validation_metrics = match validation {
                Some(v)
                    if iteration.is_multiple_of(options.validation_frequency)
                        || iteration == 1
                        || is_last =>
                {
                    let m = evaluate(network, v, stateful_chunks)?;
                    Some(m)
                }
                _ => None,
            };
            let info = IterationInfo {
                epoch: epoch + 1,
                iteration,
                loss,
                accuracy: if classification {
                    sums.accuracy()
                } else {
                    None
                },
                rmse: if classification { None } else { sums.rmse() },
                learn_rate: lr,
                elapsed: start.elapsed().as_secs_f64(),
                validation: validation_metrics,
            };
            on_event(&TrainingEvent::Iteration(&info));
            record.iterations.push(info);
            if let Some(m) = validation_metrics {
                if best.as_ref().is_none_or(|(l, _)| m.loss < *l) {
                    best = Some((m.loss, snapshot(network)));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if options.validation_patience.is_some_and(|p| since_best >= p) {
                        reason = format!(
                            "validation loss did not decrease for {since_best} validations"
                        );
                        break 'epochs;
                    }
                }
            }
        }
        on_event(&TrainingEvent::EpochFinished { epoch: epoch + 1 });
    }
    network.reset_state();
    if options.output_network == OutputNetwork::BestValidationLoss {
        if let Some((_, values)) = best.take() {
            restore(network, values);
        }
    }
    if let Some(v) = validation {
        record.final_validation = Some(evaluate(network, v, stateful_chunks)?);
    }
    record.stop_reason = reason.clone();
    on_event(&TrainingEvent::Finished { reason: &reason });
    Ok(record)
}
