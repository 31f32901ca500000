//! The training loop over mini-batches: forward, loss, backward, solver step,
//! validation, early stopping and events.

use crate::options::{OutputNetwork, SequenceLength, TrainingOptions};
use crate::record::{IterationInfo, Metrics, TrainingEvent, TrainingRecord};
use crate::solver::{self, SolverState};
use ndarray::{ArrayD, Axis};
use seqnet_core::{Activation, Error, Format, Mode, Network, Result};
use seqnet_data::{Chunk, MiniBatch};
use std::time::Instant;

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

/// Runs one chunk: forward (with targets when it has them).
fn run_chunk(
    network: &mut Network,
    chunk: &Chunk,
    mode: Mode,
    stateful: bool,
) -> Result<Vec<Activation>> {
    let targets = chunk.targets.as_ref().map(std::slice::from_ref);
    network.forward(std::slice::from_ref(&chunk.inputs), targets, mode, stateful)
}

/// The loss and metric of `network` on the mini-batches of `source`'s first
/// epoch, in inference mode. The loss is averaged over observations.
pub fn evaluate(
    network: &mut Network,
    source: &mut dyn BatchSource,
    stateful_chunks: bool,
) -> Result<Metrics> {
    let classification = is_classification(network);
    let mut sums = MetricSums::default();
    let (mut loss, mut weight) = (0.0f64, 0usize);
    for batch in source.epoch(0)? {
        let batch = batch?;
        network.reset_state();
        for chunk in &batch.chunks {
            let preds = run_chunk(network, chunk, Mode::Inference, stateful_chunks)?;
            let Some(target) = &chunk.targets else {
                return Err(Error::InvalidInput("validation data has no targets".into()));
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

/// Trains `network` in place. `on_event` sees every event (progress bars, plots,
/// the verbose table). Returns the training record; with
/// `OutputNetwork::BestValidationLoss` the network ends at its best validation.
///
/// Training needs no gradient with respect to the input data, so input
/// gradients are off while it runs ([`Network::set_input_gradients`]) and
/// restored after.
pub fn fit(
    network: &mut Network,
    source: &mut dyn BatchSource,
    validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
) -> Result<TrainingRecord> {
    let input_gradients = network.input_gradients_enabled();
    network.set_input_gradients(false);
    let result = fit_inner(network, source, validation, options, on_event);
    network.set_input_gradients(input_gradients);
    result
}

fn fit_inner(
    network: &mut Network,
    source: &mut dyn BatchSource,
    mut validation: Option<&mut dyn BatchSource>,
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
    let mut last_validated: Option<usize> = None;
    let mut reason = "max epochs completed".to_string();

    on_event(&TrainingEvent::Started {
        max_epochs: options.max_epochs,
    });
    'epochs: for epoch in 0..options.max_epochs {
        let lr = options.learn_rate_at(epoch);
        let mut batches = source.epoch(epoch)?.peekable();
        let mut in_epoch = 0usize;
        while let Some(batch) = batches.next() {
            let batch = batch?;
            let last_batch = batches.peek().is_none();
            network.reset_state();
            for (c, chunk) in batch.chunks.iter().enumerate() {
                iteration += 1;
                in_epoch += 1;
                let Some(target) = &chunk.targets else {
                    return Err(Error::InvalidInput("training data has no targets".into()));
                };
                let preds = run_chunk(network, chunk, Mode::Training, stateful_chunks)?;
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
                for p in &preds {
                    sums.add(p, target, classification);
                }
                let is_last =
                    epoch + 1 == options.max_epochs && last_batch && c + 1 == batch.chunks.len();
                // Validate between mini-batches only, so that split sequences keep their state.
                let last_chunk = c + 1 == batch.chunks.len();
                let due = last_validated.is_none_or(|at| {
                    iteration / options.validation_frequency > at / options.validation_frequency
                }) || is_last;
                let validation_metrics = match validation.as_deref_mut() {
                    Some(v) if last_chunk && due => {
                        last_validated = Some(iteration);
                        Some(evaluate(network, v, stateful_chunks)?)
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
        }
        if epoch == 0 {
            record.iterations_per_epoch = in_epoch;
        }
        on_event(&TrainingEvent::EpochFinished {
            epoch: epoch + 1,
            network,
        });
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
