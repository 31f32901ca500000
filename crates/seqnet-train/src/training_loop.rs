//! The training loop over mini-batches: forward, loss, backward, solver step,
//! validation and early stopping, reporting to the [`crate::Trainer`] around
//! it through [`LoopHooks`].

use crate::batches::BatchSource;
use crate::distributed::{self, Communicator, CommunicatorReducer, StandInReducer};
use crate::error::{Error, Result};
use crate::events::TrainingEvent;
use crate::metric::check_metrics;
use crate::metrics::{evaluate_with, is_classification, run_chunk, MetricSums};
use crate::options::{FrequencyUnit, OutputNetwork, SequenceLength, TrainingOptions};
use crate::record::{IterationInfo, Metrics, StopReason, TrainingRecord};
use crate::solver::{self, SolverState};
use ndarray::ArrayD;
use seqnet_core::{Mode, Network, SharedReducer};
use seqnet_data::{Chunk, MiniBatch};
use std::cell::{Cell, RefCell};
use std::sync::Arc;
use std::time::Instant;

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
    /// The solver's moments and step count.
    pub solver: SolverState,
    /// The record so far (`stop_reason` is `None`: training is under way).
    pub record: TrainingRecord,
    /// The lowest validation loss so far and the network's values then
    /// (learnables, then statistics, in network order).
    pub best: Option<(f32, Vec<ArrayD<f32>>)>,
    /// Validations since the best one.
    pub since_best: usize,
    /// The iteration of the latest validation.
    pub last_validated: Option<usize>,
    /// Seconds spent training before this run.
    pub elapsed: f64,
}

/// What the loop tells, and asks of, the trainer around it.
pub(crate) trait LoopHooks {
    /// Gives an event to the observers.
    fn emit(&mut self, event: &TrainingEvent<'_>);
    /// An epoch ended (`state.epoch` epochs are done): emits
    /// [`TrainingEvent::EpochFinished`] and writes a checkpoint when on.
    fn epoch_finished(&mut self, network: &Network, state: &TrainingState) -> Result<()>;
    /// A mini-batch ended (`state.batches_done` of epoch `state.epoch` are
    /// done): writes a checkpoint when one is due by iterations.
    fn batch_finished(&mut self, network: &Network, state: &TrainingState) -> Result<()>;
    /// Asked between mini-batches: a reason to stop there, if any.
    fn stop(&self) -> Option<StopReason>;
}

/// How a run of the loop ended.
pub(crate) struct Outcome {
    /// The record, with its stop reason and final validation.
    pub record: TrainingRecord,
    /// Where training stood (what an interrupted run's checkpoint holds).
    pub state: TrainingState,
    pub reason: StopReason,
}

/// Trains `network` in place from `resume` (or from the start) until the
/// options, the hooks or an error stop it. Training needs no gradient with
/// respect to the input data, so input gradients are off while it runs
/// ([`Network::set_input_gradients`]) and restored after.
///
/// With a communicator of more than one rank (data-parallel training),
/// `source` gives this rank's share of each mini-batch: the loss gradients
/// are weighted, the gradients and the reported loss, accuracy and RMSE
/// summed across ranks, and a stop on any rank stops every rank (see
/// [`crate::distributed`]). Rank 0 alone validates and gives the others its
/// metrics, so that early stopping and the best network agree.
///
/// On a normal end (not [`StopReason::Interrupted`]) the network is the one
/// `OutputNetwork` asks for and, when validating, the record holds its
/// validation metrics; an interrupted run leaves the network as it is, for
/// its state to resume from.
pub(crate) fn run(
    network: &mut Network,
    source: &mut dyn BatchSource,
    validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    hooks: &mut dyn LoopHooks,
    resume: Option<TrainingState>,
    comm: Option<Arc<dyn Communicator>>,
) -> Result<Outcome> {
    options.validate()?;
    let input_gradients = network.input_gradients_enabled();
    network.set_input_gradients(false);
    let comm = match (comm.filter(|c| c.size() > 1), options.gradient_bucket_size) {
        (Some(c), Some(_)) if !c.threads_allowed() => {
            return Err(Error::InvalidOption {
                option: "GradientBucketSize",
                message: "the MPI library does not allow MPI calls from a communication thread (MPI_THREAD_SERIALIZED): train without buckets".into(),
            })
        }
        // Every collective goes through one communication thread, so the
        // buckets' sums overlap backward in the same order on every rank.
        (Some(c), Some(_)) => Some(Arc::new(distributed::Funnel::new(c)) as Arc<dyn Communicator>),
        (c, _) => c,
    };
    if let Some(c) = &comm {
        network.set_stat_reducer(Some(Arc::new(CommunicatorReducer(c.clone()))));
    }
    let result = run_inner(network, source, validation, options, hooks, resume, comm);
    network.set_stat_reducer(None);
    network.set_input_gradients(input_gradients);
    result
}

fn run_inner(
    network: &mut Network,
    source: &mut dyn BatchSource,
    mut validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    hooks: &mut dyn LoopHooks,
    resume: Option<TrainingState>,
    comm: Option<Arc<dyn Communicator>>,
) -> Result<Outcome> {
    distributed::phases::mark("loop starting");
    let run = Loop {
        options,
        comm: comm.as_deref(),
        reducers: comm.as_ref().map(|c| {
            let normal: SharedReducer = Arc::new(CommunicatorReducer(c.clone()));
            let stand_in: SharedReducer = Arc::new(StandInReducer(c.clone()));
            (normal, stand_in)
        }),
        gradient_sum: RefCell::new(distributed::GradientSum::default()),
        gathered_at: Cell::new(0),
        stale_shards: Cell::new(false),
        stateful_chunks: matches!(options.sequence_length, SequenceLength::Fixed(_)),
        classification: is_classification(network),
        start: Instant::now(),
    };
    check_metrics(&options.metrics, run.classification)?;
    let mut st = resume.unwrap_or_default();
    hooks.emit(&TrainingEvent::Started {
        max_epochs: options.max_epochs,
        validating: validation.is_some(),
        iterations_done: st.iteration,
    });
    run.gathered_at.set(st.iteration);
    let reason = run.epochs(network, source, validation.as_deref_mut(), hooks, &mut st)?;
    distributed::phases::mark("epochs done");
    // The state handed out (an interrupted run's checkpoint) is whole.
    run.gather_solver_state(network, &mut st);
    distributed::phases::mark("solver state gathered");
    st.elapsed += run.start.elapsed().as_secs_f64();
    network.reset_state();
    let mut record = st.record.clone();
    record.stop_reason = Some(reason);
    if reason != StopReason::Interrupted {
        if options.output_network == OutputNetwork::BestValidationLoss {
            if let Some((_, values)) = st.best.clone() {
                restore(network, values);
            }
        }
        if let Some(v) = validation {
            record.final_validation = Some(run.validate(network, v)?);
        }
    }
    Ok(Outcome {
        record,
        state: st,
        reason,
    })
}

/// What every step of one run needs.
struct Loop<'o> {
    options: &'o TrainingOptions,
    /// Data-parallel training: the other ranks (more than one rank in all).
    comm: Option<&'o dyn Communicator>,
    /// With `comm`: batch normalization's reducers for a share and for a stand-in.
    reducers: Option<(SharedReducer, SharedReducer)>,
    /// With `comm`: the gradient sum's buffers, kept from iteration to iteration.
    gradient_sum: RefCell<distributed::GradientSum>,
    /// With `ShardSolver`: the iteration count at the last gathering of
    /// the solver state for a checkpoint by iterations (or at the start).
    gathered_at: Cell<usize>,
    /// With `ShardSolver`: whether sharded steps were taken since the
    /// solver state was last gathered.
    stale_shards: Cell<bool>,
    /// Split sequences carry their state from chunk to chunk.
    stateful_chunks: bool,
    classification: bool,
    start: Instant,
}

impl Loop<'_> {
    /// The epochs from `st` on; returns why they ended.
    fn epochs(
        &self,
        network: &mut Network,
        source: &mut dyn BatchSource,
        mut validation: Option<&mut (dyn BatchSource + '_)>,
        hooks: &mut dyn LoopHooks,
        st: &mut TrainingState,
    ) -> Result<StopReason> {
        let max_epochs = self.options.max_epochs;
        while st.epoch < max_epochs {
            let epoch = st.epoch;
            let mut batches = source.epoch(epoch)?.skip(st.batches_done).peekable();
            while let Some(batch) = batches.next() {
                let batch = batch?;
                let final_batch = batches.peek().is_none() && epoch + 1 == max_epochs;
                let step = Step { epoch, final_batch };
                let patience =
                    self.mini_batch(network, &batch, step, validation.as_deref_mut(), hooks, st)?;
                st.batches_done += 1;
                self.gather_for_checkpoint(network, st);
                hooks.batch_finished(network, st)?;
                if let Some(reason) = patience {
                    return Ok(reason);
                }
                // Stop between mini-batches only, so that split sequences
                // never lose their carried state; not after the very last one,
                // where training ends anyway.
                if let Some(reason) = self.stop(hooks).filter(|_| !final_batch) {
                    return Ok(reason);
                }
            }
            if epoch == 0 {
                st.record.iterations_per_epoch =
                    st.record.iterations.iter().filter(|i| i.epoch == 1).count();
            }
            st.epoch += 1;
            st.batches_done = 0;
            distributed::phases::mark("epoch's mini-batches done");
            self.gather_solver_state(network, st);
            distributed::phases::mark("epoch's solver state gathered");
            hooks.epoch_finished(network, st)?;
            distributed::phases::mark("epoch finished (checkpoint)");
        }
        Ok(StopReason::MaxEpochs)
    }

    /// With `ShardSolver`: gathers the solver state's shards on every rank
    /// ([`distributed::gather_solver_state`]), so that a checkpoint or an
    /// observer sees all of it. Every rank calls it at the same points (and
    /// every rank's state is stale or not alike).
    fn gather_solver_state(&self, network: &Network, st: &mut TrainingState) {
        if let Some(c) = self.comm.filter(|_| self.stale_shards.get()) {
            distributed::gather_solver_state(network, &mut st.solver, self.options.solver, c);
            self.stale_shards.set(false);
        }
    }

    /// [`Loop::gather_solver_state`] after a mini-batch when a checkpoint by
    /// iterations is due there (the trainer's rule, known to every rank).
    fn gather_for_checkpoint(&self, network: &Network, st: &mut TrainingState) {
        let o = self.options;
        let every = o.checkpoint_frequency.max(1);
        let by_iterations = o.checkpoint_frequency_unit == FrequencyUnit::Iteration;
        if o.checkpoint_path.is_some()
            && by_iterations
            && st.iteration / every > self.gathered_at.get() / every
        {
            self.gathered_at.set(st.iteration);
            self.gather_solver_state(network, st);
        }
    }

    /// The metrics of the network on `validation`. With several ranks, rank
    /// 0 alone evaluates and the others receive its metrics (a failure on
    /// rank 0 aborts them all, see `Trainer`).
    fn validate(
        &self,
        network: &mut Network,
        validation: &mut (dyn BatchSource + '_),
    ) -> Result<Metrics> {
        let evaluate = |network: &mut Network, v: &mut (dyn BatchSource + '_)| {
            evaluate_with(network, v, self.stateful_chunks, &self.options.metrics)
        };
        match self.comm {
            Some(c) if c.is_root() => {
                let mine = evaluate(network, validation)?;
                Ok(distributed::share_root_metrics(c, Some(&mine)))
            }
            Some(c) => Ok(distributed::share_root_metrics(c, None)),
            None => evaluate(network, validation),
        }
    }

    /// The hooks' reason to stop; with several ranks, any rank's (an
    /// interruption on one stops all, at the same mini-batch).
    fn stop(&self, hooks: &dyn LoopHooks) -> Option<StopReason> {
        let mine = hooks.stop();
        let Some(c) = self.comm else {
            return mine;
        };
        let mut v = [
            (mine == Some(StopReason::Interrupted)) as u8 as f64,
            (mine.is_some() && mine != Some(StopReason::Interrupted)) as u8 as f64,
        ];
        c.sum_f64(&mut v);
        if v[0] > 0.0 {
            Some(StopReason::Interrupted)
        } else if v[1] > 0.0 {
            Some(mine.unwrap_or(StopReason::StopRequested))
        } else {
            None
        }
    }

    /// The chunks of one mini-batch, validating after the last one when due.
    /// Returns a stop reason when validation patience runs out.
    fn mini_batch(
        &self,
        network: &mut Network,
        batch: &MiniBatch,
        step: Step,
        validation: Option<&mut (dyn BatchSource + '_)>,
        hooks: &mut dyn LoopHooks,
        st: &mut TrainingState,
    ) -> Result<Option<StopReason>> {
        network.reset_state();
        // A rank without observations in a mini-batch smaller than the rank
        // count runs a stand-in that counts for nothing.
        let stand_in = self.comm.is_some() && batch.indices.is_empty();
        if let (true, Some((_, zero))) = (stand_in, &self.reducers) {
            network.set_stat_reducer(Some(zero.clone()));
        }
        let trained = self.train_chunks(network, batch, step, stand_in, validation, hooks, st);
        if let (true, Some((normal, _))) = (stand_in, &self.reducers) {
            network.set_stat_reducer(Some(normal.clone()));
        }
        trained
    }

    /// [`Loop::mini_batch`]'s chunks; `stand_in`: this rank's chunks count for nothing.
    #[allow(clippy::too_many_arguments)]
    fn train_chunks(
        &self,
        network: &mut Network,
        batch: &MiniBatch,
        step: Step,
        stand_in: bool,
        mut validation: Option<&mut (dyn BatchSource + '_)>,
        hooks: &mut dyn LoopHooks,
        st: &mut TrainingState,
    ) -> Result<Option<StopReason>> {
        for (c, chunk) in batch.chunks.iter().enumerate() {
            let mut info = self.train_chunk(network, chunk, step, stand_in, st)?;
            let iteration = info.iteration;
            // Validate between mini-batches only, so that split sequences keep their state.
            let last_chunk = c + 1 == batch.chunks.len();
            let frequency = self.options.validation_frequency;
            let due = st
                .last_validated
                .is_none_or(|at| iteration / frequency > at / frequency)
                || (step.final_batch && last_chunk);
            info.validation = match validation.as_deref_mut() {
                Some(v) if last_chunk && due => {
                    st.last_validated = Some(iteration);
                    Some(self.validate(network, v)?)
                }
                _ => None,
            };
            info.elapsed = st.elapsed + self.start.elapsed().as_secs_f64();
            hooks.emit(&TrainingEvent::Iteration(&info));
            if let Some(metrics) = &info.validation {
                hooks.emit(&TrainingEvent::Validated {
                    epoch: info.epoch,
                    iteration,
                    metrics,
                });
            }
            let validated = info.validation;
            st.record.iterations.push(info);
            if let Some(reason) = validated.and_then(|m| self.track_best(network, m, st)) {
                return Ok(Some(reason));
            }
        }
        Ok(None)
    }

    /// One iteration: forward, loss, backward and solver step on `chunk`.
    /// The returned figures have no validation and no elapsed time yet.
    fn train_chunk(
        &self,
        network: &mut Network,
        chunk: &Chunk,
        step: Step,
        stand_in: bool,
        st: &mut TrainingState,
    ) -> Result<IterationInfo> {
        let lr = self.options.learn_rate_at(step.epoch, st.iteration);
        st.iteration += 1;
        let iteration = st.iteration;
        network.reseed(iteration_seed(self.options.seed, iteration));
        let Some(target) = &chunk.targets else {
            return Err(Error::NoTargets { data: "training" });
        };
        let preds = run_chunk(network, chunk, Mode::Training, self.stateful_chunks)?;
        let mut sums = MetricSums::new(&self.options.metrics);
        for p in preds.iter().filter(|_| !stand_in) {
            sums.add(p, target, self.classification);
        }
        let loss = match self.comm {
            // The global mini-batch's loss, accuracy and RMSE sums, the same
            // on every rank, in one reduction.
            Some(c) => {
                let mut v = distributed::metric_sums_to_values(&sums);
                let loss = distributed::weigh_shares_with(network, c, stand_in, &mut v)?.loss;
                distributed::metric_sums_from_values(&mut sums, v);
                loss
            }
            None => network.loss().unwrap_or(f32::NAN),
        };
        if !loss.is_finite() {
            return Err(Error::NonFiniteLoss { iteration, loss });
        }
        let sharded = self.comm.filter(|_| self.options.shard_solver);
        match (self.comm, self.options.gradient_bucket_size) {
            (Some(c), Some(mb)) => {
                let elements = (mb * 1e6 / 4.0).ceil().max(1.0) as usize;
                distributed::backward_bucketed(network, c, elements)?;
            }
            // The sharded step sums the gradients it needs itself.
            (Some(_), None) if sharded.is_some() => network.backward()?,
            (Some(c), None) => {
                network.backward()?;
                self.gradient_sum.borrow_mut().sum(network, c);
            }
            (None, _) => network.backward()?,
        }
        if let Some(c) = sharded {
            let mut sums = self.gradient_sum.borrow_mut();
            let unsummed = self.options.gradient_bucket_size.is_none();
            let sums = Some(&mut *sums).filter(|_| unsummed);
            distributed::sharded_step(network, &mut st.solver, self.options, lr, c, sums);
            self.stale_shards.set(true);
        } else {
            let mut params: Vec<_> = network
                .learnables_mut()
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            solver::step(&mut params, &mut st.solver, self.options, lr);
        }
        Ok(IterationInfo {
            epoch: step.epoch + 1,
            iteration,
            loss,
            accuracy: if self.classification {
                sums.accuracy()
            } else {
                None
            },
            rmse: if self.classification {
                None
            } else {
                sums.rmse()
            },
            learn_rate: lr,
            elapsed: 0.0,
            validation: None,
            metrics: sums.values(),
        })
    }

    /// Keeps the best validation so far; returns a stop reason when the
    /// loss has not decreased for `ValidationPatience` validations.
    fn track_best(
        &self,
        network: &Network,
        metrics: Metrics,
        st: &mut TrainingState,
    ) -> Option<StopReason> {
        if st.best.as_ref().is_none_or(|(l, _)| metrics.loss < *l) {
            st.best = Some((metrics.loss, snapshot(network)));
            st.since_best = 0;
            return None;
        }
        st.since_best += 1;
        self.options
            .validation_patience
            .filter(|p| st.since_best >= *p)
            .map(|_| StopReason::ValidationPatience {
                validations: st.since_best,
            })
    }
}

/// Where a mini-batch stands in the run.
#[derive(Debug, Clone, Copy)]
struct Step {
    /// 0-based epoch.
    epoch: usize,
    /// The last mini-batch of the last epoch.
    final_batch: bool,
}

/// The dropout randomness of one iteration, derived from the seed, so that a
/// resumed run draws exactly what an uninterrupted one would.
fn iteration_seed(seed: u64, iteration: usize) -> u64 {
    let mut z = seed ^ (iteration as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The network's learnables, then its statistics, in network order.
fn snapshot(network: &Network) -> Vec<ArrayD<f32>> {
    network
        .learnables()
        .iter()
        .map(|(_, p)| p.value.to_owned())
        .chain(network.states().iter().map(|(_, s)| s.value.to_owned()))
        .collect()
}

/// Puts back the values [`snapshot`] took.
fn restore(network: &mut Network, values: Vec<ArrayD<f32>>) {
    let mut it = values.into_iter();
    for (_, p) in network.learnables_mut() {
        if let Some(v) = it.next() {
            p.value = v.into_shared();
        }
    }
    let states: Vec<(String, String)> = network
        .states()
        .iter()
        .map(|(l, s)| (l.to_string(), s.name.to_string()))
        .collect();
    for ((layer, name), v) in states.into_iter().zip(it) {
        // The values were taken from this network: they fit.
        let _ = network.set_state(&layer, &name, v);
    }
}
