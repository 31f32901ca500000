//! The training loop over mini-batches: forward, loss, backward, solver step,
//! validation, early stopping and events.

use crate::options::{OutputNetwork, SequenceLength, TrainingOptions};
use crate::record::{IterationInfo, Metrics, TrainingEvent, TrainingRecord};
use crate::solver::{self, SolverState};
use ndarray::{ArrayD, Axis};
use seqnet_core::{Activation, Error, Format, Mode, Network, Result};
use seqnet_data::{Chunk, MiniBatch};
use std::sync::atomic::{AtomicBool, Ordering};
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
        .is_some_and(|l| l.is::<seqnet_core::layers::ClassificationOutput>())
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

/// Where training stands: everything a checkpoint needs so that resuming gives
/// the same final weights as an uninterrupted run with the same seed.
#[derive(Debug, Clone, Default)]
pub struct TrainingState {
    /// The 0-based epoch in progress.
    pub epoch: usize,
    /// Mini-batches of that epoch already trained on.
    pub batches_done: usize,
    /// Iterations (chunks) trained so far.
    pub iteration: usize,
    pub solver: SolverState,
    pub record: TrainingRecord,
    /// The lowest validation loss so far and the network's values then
    /// (learnables, then statistics, in network order).
    pub best: Option<(f32, Vec<ArrayD<f32>>)>,
    pub since_best: usize,
    pub last_validated: Option<usize>,
    /// Seconds spent training before this run.
    pub elapsed: f64,
}

/// Optional controls of a training run.
#[derive(Default)]
pub struct TrainingControl<'a> {
    /// Continue from this state (the network must hold the matching weights).
    pub resume: Option<TrainingState>,
    /// Checked after every mini-batch: when set, training stops there and
    /// returns its state with `stop_reason` "interrupted".
    pub stop: Option<&'a AtomicBool>,
}

/// The dropout randomness of one iteration, derived from the seed, so that a
/// resumed run draws exactly what an uninterrupted one would.
fn iteration_seed(seed: u64, iteration: usize) -> u64 {
    let mut z = seed ^ (iteration as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
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
    fit_with(
        network,
        source,
        validation,
        options,
        on_event,
        TrainingControl::default(),
    )
    .map(|(r, _)| r)
}

/// [`fit`] that can resume from a [`TrainingState`] and stop when asked;
/// returns the record and the state where training ended.
pub fn fit_with(
    network: &mut Network,
    source: &mut dyn BatchSource,
    validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
    control: TrainingControl,
) -> Result<(TrainingRecord, TrainingState)> {
    let input_gradients = network.input_gradients_enabled();
    network.set_input_gradients(false);
    let result = fit_inner(network, source, validation, options, on_event, control);
    network.set_input_gradients(input_gradients);
    result
}

fn fit_inner(
    network: &mut Network,
    source: &mut dyn BatchSource,
    mut validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
    control: TrainingControl,
) -> Result<(TrainingRecord, TrainingState)> {
    options.validate()?;
    let stateful_chunks = matches!(options.sequence_length, SequenceLength::Fixed(_));
    let classification = is_classification(network);
    let start = Instant::now();
    let mut st = control.resume.unwrap_or_default();
    let mut reason = "max epochs completed".to_string();
    let mut interrupted = false;

    on_event(&TrainingEvent::Started {
        max_epochs: options.max_epochs,
    });
    'epochs: while st.epoch < options.max_epochs {
        let epoch = st.epoch;
        let lr = options.learn_rate_at(epoch);
        let mut batches = source.epoch(epoch)?.skip(st.batches_done).peekable();
        while let Some(batch) = batches.next() {
            let batch = batch?;
            let last_batch = batches.peek().is_none();
            network.reset_state();
            for (c, chunk) in batch.chunks.iter().enumerate() {
                st.iteration += 1;
                let iteration = st.iteration;
                network.reseed(iteration_seed(options.seed, iteration));
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
                    solver::step(&mut params, &mut st.solver, options, lr);
                }
                let mut sums = MetricSums::default();
                for p in &preds {
                    sums.add(p, target, classification);
                }
                let is_last =
                    epoch + 1 == options.max_epochs && last_batch && c + 1 == batch.chunks.len();
                // Validate between mini-batches only, so that split sequences keep their state.
                let last_chunk = c + 1 == batch.chunks.len();
                let due = st.last_validated.is_none_or(|at| {
                    iteration / options.validation_frequency > at / options.validation_frequency
                }) || is_last;
                let validation_metrics = match validation.as_deref_mut() {
                    Some(v) if last_chunk && due => {
                        st.last_validated = Some(iteration);
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
                    elapsed: st.elapsed + start.elapsed().as_secs_f64(),
                    validation: validation_metrics,
                };
                on_event(&TrainingEvent::Iteration(&info));
                st.record.iterations.push(info);
                if let Some(m) = validation_metrics {
                    if st.best.as_ref().is_none_or(|(l, _)| m.loss < *l) {
                        st.best = Some((m.loss, snapshot(network)));
                        st.since_best = 0;
                    } else {
                        st.since_best += 1;
                        if options
                            .validation_patience
                            .is_some_and(|p| st.since_best >= p)
                        {
                            reason = format!(
                                "validation loss did not decrease for {} validations",
                                st.since_best
                            );
                            st.batches_done += 1;
                            break 'epochs;
                        }
                    }
                }
            }
            st.batches_done += 1;
            if control.stop.is_some_and(|s| s.load(Ordering::SeqCst))
                && !(last_batch && epoch + 1 == options.max_epochs)
            {
                interrupted = true;
                reason = "interrupted".to_string();
                break 'epochs;
            }
        }
        if epoch == 0 {
            st.record.iterations_per_epoch =
                st.record.iterations.iter().filter(|i| i.epoch == 1).count();
        }
        st.epoch += 1;
        st.batches_done = 0;
        on_event(&TrainingEvent::EpochFinished {
            epoch: epoch + 1,
            network,
            state: &st,
        });
    }
    st.elapsed += start.elapsed().as_secs_f64();
    network.reset_state();
    st.record.stop_reason = reason.clone();
    if interrupted {
        // Leave the network as it is: the state resumes from these weights.
        on_event(&TrainingEvent::Finished { reason: &reason });
        return Ok((st.record.clone(), st));
    }
    if options.output_network == OutputNetwork::BestValidationLoss {
        if let Some((_, values)) = st.best.clone() {
            restore(network, values);
        }
    }
    if let Some(v) = validation {
        st.record.final_validation = Some(evaluate(network, v, stateful_chunks)?);
    }
    on_event(&TrainingEvent::Finished { reason: &reason });
    Ok((st.record.clone(), st))
}
