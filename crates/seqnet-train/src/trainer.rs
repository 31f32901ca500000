//! [`Trainer`]: one builder for every way of training — a graph on
//! datastores (MATLAB's `trainNetwork`), resuming from a checkpoint, or a
//! network in place on any [`BatchSource`] — with observers, checkpoints and
//! a stop flag.

use crate::batches::{BatchSource, DatastoreBatches};
use crate::checkpoint::{load_checkpoint, save_checkpoint};
use crate::distributed::Communicator;
use crate::error::{CheckpointProblem, Error, Result};
use crate::events::{FnObserver, Observers, TrainingEvent, TrainingObserver};
use crate::model::Model;
use crate::options::{ExecutionEnvironment, TrainingOptions};
use crate::record::{StopReason, TrainingRecord};
use crate::schedule::FrequencyUnit;
use crate::train::{classes_of, set_normalization, with_classes};
use crate::training_loop::{self, LoopHooks, TrainingState};
use crate::verbose::VerboseTable;
use seqnet_core::{LayerGraph, Network};
use seqnet_data::Datastore;
use std::collections::VecDeque;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Trains networks: options, observers and a stop flag, then one of
/// [`Trainer::train`], [`Trainer::resume`] or [`Trainer::fit`].
///
/// ```no_run
/// # use seqnet_train::{Trainer, TrainingOptions, Solver, VerboseTable};
/// # fn demo(graph: &seqnet_core::LayerGraph, data: std::sync::Arc<dyn seqnet_data::Datastore>) -> seqnet_train::Result<()> {
/// let options = TrainingOptions::new(Solver::Adam).max_epochs(10);
/// let (model, record) = Trainer::new(options)
///     .observer(VerboseTable::new(std::io::stdout(), 50))
///     .on_event(|e| if let seqnet_train::TrainingEvent::Stopped { reason, .. } = e {
///         eprintln!("stopped: {reason}");
///     })
///     .train(graph, data, None)?;
/// # Ok(()) }
/// ```
///
/// When `options.checkpoint_path` is set, every run writes
/// `checkpoint_epochNNNN.safetensors` there every `CheckpointFrequency`
/// epochs (or `checkpoint_iterationNNNNNN.safetensors` after the mini-batch
/// that passes a multiple of `CheckpointFrequency` iterations, with
/// `CheckpointFrequencyUnit` iteration), failing at once if it cannot. With
/// `CheckpointKeep` K, only the K latest of these stay: each new one is
/// written before the oldest is removed, and checkpoint files already in the
/// folder count as older. An interrupted run writes
/// `checkpoint_iterationNNNNNN.safetensors` too, named in
/// [`TrainingRecord::checkpoint`], which no rotation removes during that run.
pub struct Trainer<'a> {
    options: TrainingOptions,
    observers: Vec<Box<dyn TrainingObserver + 'a>>,
    stop: Option<&'a AtomicBool>,
    comm: Option<Arc<dyn Communicator>>,
}

impl<'a> Trainer<'a> {
    /// A trainer with `options`, no observer and no stop flag.
    pub fn new(options: TrainingOptions) -> Self {
        Trainer {
            options,
            observers: Vec::new(),
            stop: None,
            comm: None,
        }
    }

    /// Trains data-parallel over `comm`'s ranks (unless `ExecutionEnvironment`
    /// is `"cpu"`): run the same trainer, with the same options and data, on
    /// every rank. Each rank reads and computes its share of every
    /// mini-batch ([`crate::distributed`]); they end with the same weights.
    /// Only rank 0 tells its observers and writes checkpoints (attach them
    /// on every rank alike: the others' stay silent). A failure on one rank
    /// stops all ([`Communicator::abort`]).
    pub fn communicator(mut self, comm: Arc<dyn Communicator>) -> Self {
        self.comm = Some(comm);
        self
    }

    /// The communicator training runs over: `None` for one process.
    fn parallel(&self) -> Result<Option<Arc<dyn Communicator>>> {
        let comm = self.comm.clone().filter(|c| c.size() > 1);
        match (self.options.execution_environment, comm) {
            (ExecutionEnvironment::Cpu, _) => Ok(None),
            (ExecutionEnvironment::Auto, comm) => Ok(comm),
            (ExecutionEnvironment::Parallel, Some(comm)) => Ok(Some(comm)),
            (ExecutionEnvironment::Parallel, None) if self.comm.is_some() => Ok(None),
            (ExecutionEnvironment::Parallel, None) => Err(Error::InvalidOption {
                option: "ExecutionEnvironment",
                message: "\"parallel\" needs a communicator (Trainer::communicator; with the `mpi` feature, launch with mpirun)".into(),
            }),
        }
    }

    /// The options training runs with.
    pub fn options(&self) -> &TrainingOptions {
        &self.options
    }

    /// Attaches an observer; observers see each event in the order they were
    /// attached. Pass `&mut observer` to keep it after training.
    pub fn observer(mut self, observer: impl TrainingObserver + 'a) -> Self {
        self.observers.push(Box::new(observer));
        self
    }

    /// Attaches a closure that sees every event.
    pub fn on_event(self, f: impl FnMut(&TrainingEvent<'_>) + 'a) -> Self {
        self.observer(FnObserver(f))
    }

    /// Attaches MATLAB's verbose table writing to `out` when
    /// `options.verbose` is set (a row every `options.verbose_frequency`
    /// iterations); nothing otherwise.
    pub fn verbose_output(self, out: impl io::Write + 'a) -> Self {
        match VerboseTable::for_options(out, &self.options) {
            Some(table) => self.observer(table),
            None => self,
        }
    }

    /// A flag checked after every mini-batch (set it from a Ctrl-C handler):
    /// once set, training stops there with [`StopReason::Interrupted`],
    /// leaves the network as it is and writes a checkpoint to resume from,
    /// so `options.checkpoint_path` must be set.
    pub fn stop_flag(mut self, flag: &'a AtomicBool) -> Self {
        self.stop = Some(flag);
        self
    }

    /// Trains `graph` on `train` (MATLAB's `trainNetwork`), validating on
    /// `validation` when given: the classification layer gets the data's
    /// class names, input layers their normalization statistics from `train`.
    /// Returns the model (with these options) and the record.
    pub fn train(
        self,
        graph: &LayerGraph,
        train: Arc<dyn Datastore>,
        validation: Option<Arc<dyn Datastore>>,
    ) -> Result<(Model, TrainingRecord)> {
        self.options.validate()?;
        let graph = with_classes(graph, train.classes())?;
        let mut network = Network::new(&graph, self.options.seed)?;
        crate::distributed::phases::mark("network built");
        set_normalization(&mut network, &train)?;
        self.run_datastores(network, train, validation, None)
    }

    /// Continues training from `checkpoint` on the same data, to the same
    /// final weights as an uninterrupted run. The checkpoint must have been
    /// trained with this trainer's options, except for `MaxEpochs`,
    /// `Verbose`, `VerboseFrequency`, `Metrics` and the checkpoint options
    /// ([`crate::checkpoint::read_options`] reads its options).
    pub fn resume(
        self,
        checkpoint: &Path,
        train: Arc<dyn Datastore>,
        validation: Option<Arc<dyn Datastore>>,
    ) -> Result<(Model, TrainingRecord)> {
        let (model, state) = load_checkpoint(checkpoint)?;
        let problem = |problem| Error::Checkpoint {
            file: checkpoint.display().to_string(),
            problem,
        };
        let stored = model
            .options
            .as_ref()
            .ok_or_else(|| problem(CheckpointProblem::NoOptions))?;
        if let Some(option) = differing_option(stored, &self.options) {
            return Err(problem(CheckpointProblem::OptionsDiffer { option }));
        }
        if let Some(data) = train.classes() {
            if !model.classes.is_empty() && model.classes != data {
                return Err(problem(CheckpointProblem::ClassesDiffer {
                    checkpoint: model.classes.clone(),
                    data: data.to_vec(),
                }));
            }
        }
        self.run_datastores(model.network, train, validation, Some(state))
    }

    /// Trains `network` in place on the mini-batches of `source`, validating
    /// on `validation` when given. With `OutputNetwork::BestValidationLoss`
    /// the network ends at its best validation.
    pub fn fit(
        self,
        network: &mut Network,
        source: &mut dyn BatchSource,
        validation: Option<&mut dyn BatchSource>,
    ) -> Result<TrainingRecord> {
        self.run(network, source, validation, None)
    }

    fn run_datastores(
        self,
        mut network: Network,
        train: Arc<dyn Datastore>,
        validation: Option<Arc<dyn Datastore>>,
        resume: Option<TrainingState>,
    ) -> Result<(Model, TrainingRecord)> {
        let options = self.options.clone();
        let mut source = DatastoreBatches::training(train, &options)?;
        if let Some(comm) = self.parallel()? {
            source = fail_all(Some(comm.as_ref()), source.shared(comm.share()))?;
        }
        let mut val = validation
            .map(|v| DatastoreBatches::in_order(v, &options))
            .transpose()?;
        let val = val.as_mut().map(|v| v as &mut dyn BatchSource);
        let record = self.run(&mut network, &mut source, val, resume)?;
        let classes = classes_of(network.graph());
        let model = Model {
            network,
            classes,
            options: Some(options),
        };
        Ok((model, record))
    }

    fn run(
        self,
        network: &mut Network,
        source: &mut dyn BatchSource,
        validation: Option<&mut dyn BatchSource>,
        resume: Option<TrainingState>,
    ) -> Result<TrainingRecord> {
        let comm = self.parallel()?;
        let result = self.run_ranks(comm.clone(), network, source, validation, resume);
        fail_all(comm.as_deref(), result)
    }

    /// [`Trainer::run`] on this rank of `comm` (`None`: one process).
    fn run_ranks(
        mut self,
        comm: Option<Arc<dyn Communicator>>,
        network: &mut Network,
        source: &mut dyn BatchSource,
        validation: Option<&mut dyn BatchSource>,
        resume: Option<TrainingState>,
    ) -> Result<TrainingRecord> {
        if comm.as_ref().is_some_and(|c| !c.is_root()) {
            // Rank 0 alone reports and writes.
            self.observers.clear();
        }
        let dir = self
            .options
            .checkpoint_path
            .clone()
            .filter(|_| comm.as_ref().is_none_or(|c| c.is_root()));
        if self.stop.is_some() && self.options.checkpoint_path.is_none() {
            return Err(Error::InvalidOption {
                option: "CheckpointPath",
                message: "interruptible training needs a checkpoint folder".into(),
            });
        }
        if let Some(dir) = &dir {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let classes = classes_of(network.graph());
        let options = &self.options;
        let mut hooks = RunHooks {
            observers: Observers {
                list: &mut self.observers,
            },
            stop: self.stop,
            checkpoints: dir
                .as_deref()
                .map(|dir| Checkpoints::new(dir, &classes, options))
                .transpose()?,
        };
        let outcome = training_loop::run(
            network,
            source,
            validation,
            options,
            &mut hooks,
            resume,
            comm.clone(),
        )?;
        let mut record = outcome.record;
        if let (StopReason::Interrupted, Some(c)) = (outcome.reason, &hooks.checkpoints) {
            let name = format!(
                "checkpoint_iteration{:06}.safetensors",
                outcome.state.iteration
            );
            let path = c.write(&name, network, &outcome.state)?;
            hooks.observers.emit(&TrainingEvent::CheckpointWritten {
                path: &path,
                iteration: outcome.state.iteration,
            });
            record.checkpoint = Some(path);
        }
        hooks.observers.emit(&TrainingEvent::Stopped {
            reason: &outcome.reason,
            record: &record,
        });
        Ok(record)
    }
}

/// Data-parallel training: on an error, stops every rank (the others wait in
/// a collective this rank will never reach), then returns the error.
fn fail_all<T>(comm: Option<&dyn Communicator>, result: Result<T>) -> Result<T> {
    if let (Err(e), Some(c)) = (&result, comm) {
        c.abort(&format!("rank {} of {} failed: {e}", c.rank(), c.size()));
    }
    result
}

/// Trains `network` in place on `source` (see [`Trainer::fit`]), giving every
/// event to `on_event`. The same as
/// `Trainer::new(options.clone()).on_event(on_event).fit(network, source, validation)`.
pub fn fit(
    network: &mut Network,
    source: &mut dyn BatchSource,
    validation: Option<&mut dyn BatchSource>,
    options: &TrainingOptions,
    on_event: &mut dyn FnMut(&TrainingEvent),
) -> Result<TrainingRecord> {
    Trainer::new(options.clone())
        .on_event(on_event)
        .fit(network, source, validation)
}

/// Where and how a run writes checkpoints, and which it keeps.
struct Checkpoints<'r> {
    dir: &'r Path,
    classes: &'r [String],
    options: &'r TrainingOptions,
    /// The checkpoints that count against `CheckpointKeep`, oldest first:
    /// those found in the folder when the run started, then those it wrote.
    kept: VecDeque<PathBuf>,
    /// The iteration count at the latest checkpoint by iterations (or at the start).
    last_iteration: usize,
}

impl<'r> Checkpoints<'r> {
    fn new(dir: &'r Path, classes: &'r [String], options: &'r TrainingOptions) -> Result<Self> {
        Ok(Checkpoints {
            dir,
            classes,
            options,
            kept: existing_checkpoints(dir)?.into(),
            last_iteration: 0,
        })
    }

    /// Writes checkpoint file `name` into the folder; returns its path.
    fn write(&self, name: &str, network: &Network, state: &TrainingState) -> Result<PathBuf> {
        let path = self.dir.join(name);
        save_checkpoint(&path, network, self.classes, self.options, state)?;
        Ok(path)
    }

    /// Writes a scheduled checkpoint, then removes the oldest ones beyond
    /// `CheckpointKeep` (so that a failed write never leaves none).
    fn write_kept(
        &mut self,
        name: &str,
        network: &Network,
        state: &TrainingState,
    ) -> Result<PathBuf> {
        let path = self.write(name, network, state)?;
        self.kept.retain(|p| *p != path);
        self.kept.push_back(path.clone());
        let keep = self.options.checkpoint_keep.unwrap_or(usize::MAX);
        while self.kept.len() > keep {
            if let Some(old) = self.kept.pop_front() {
                match std::fs::remove_file(&old) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(&old, e)),
                }
            }
        }
        Ok(path)
    }
}

/// The checkpoint files (`checkpoint_*.safetensors`) already in `dir`,
/// oldest first (by modification time, then name).
fn existing_checkpoints(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))? {
        let entry = entry.map_err(|e| Error::io(dir, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("checkpoint_") && name.ends_with(".safetensors") {
            let modified = entry.metadata().and_then(|m| m.modified()).ok();
            found.push((modified, entry.path()));
        }
    }
    found.sort();
    Ok(found.into_iter().map(|(_, p)| p).collect())
}

/// The trainer's side of the loop: observers, stop flag, checkpoints.
struct RunHooks<'r, 'a> {
    observers: Observers<'r, 'a>,
    stop: Option<&'a AtomicBool>,
    checkpoints: Option<Checkpoints<'r>>,
}

impl RunHooks<'_, '_> {
    /// Writes a scheduled checkpoint and tells the observers.
    fn checkpoint(&mut self, name: String, network: &Network, state: &TrainingState) -> Result<()> {
        if let Some(c) = &mut self.checkpoints {
            let path = c.write_kept(&name, network, state)?;
            self.observers.emit(&TrainingEvent::CheckpointWritten {
                path: &path,
                iteration: state.iteration,
            });
        }
        Ok(())
    }
}

impl LoopHooks for RunHooks<'_, '_> {
    fn emit(&mut self, event: &TrainingEvent<'_>) {
        if let (
            TrainingEvent::Started {
                iterations_done, ..
            },
            Some(c),
        ) = (event, &mut self.checkpoints)
        {
            c.last_iteration = *iterations_done;
        }
        self.observers.emit(event);
    }

    fn epoch_finished(&mut self, network: &Network, state: &TrainingState) -> Result<()> {
        self.observers.emit(&TrainingEvent::EpochFinished {
            epoch: state.epoch,
            network,
            state,
        });
        let options = self.checkpoints.as_ref().map(|c| c.options);
        if let Some(o) = options {
            if o.checkpoint_frequency_unit == FrequencyUnit::Epoch
                && state.epoch.is_multiple_of(o.checkpoint_frequency)
            {
                let name = format!("checkpoint_epoch{:04}.safetensors", state.epoch);
                self.checkpoint(name, network, state)?;
            }
        }
        Ok(())
    }

    fn batch_finished(&mut self, network: &Network, state: &TrainingState) -> Result<()> {
        let Some(c) = &mut self.checkpoints else {
            return Ok(());
        };
        let (unit, every) = (
            c.options.checkpoint_frequency_unit,
            c.options.checkpoint_frequency,
        );
        if unit == FrequencyUnit::Iteration && state.iteration / every > c.last_iteration / every {
            c.last_iteration = state.iteration;
            let name = format!("checkpoint_iteration{:06}.safetensors", state.iteration);
            self.checkpoint(name, network, state)?;
        }
        Ok(())
    }

    fn stop(&self) -> Option<StopReason> {
        if self.stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            Some(StopReason::Interrupted)
        } else if self.observers.want_stop() {
            Some(StopReason::StopRequested)
        } else {
            None
        }
    }
}

/// The first option (camelCase) in which `stored` and `given` differ, among
/// those that decide the weights (all but `maxEpochs`, `verbose`,
/// `verboseFrequency`, `metrics`, the checkpoint options, and the
/// execution environment and `shardSolver`, which change them only within
/// rounding).
fn differing_option(stored: &TrainingOptions, given: &TrainingOptions) -> Option<String> {
    const FREE: [&str; 10] = [
        "executionEnvironment",
        "shardSolver",
        "maxEpochs",
        "verbose",
        "verboseFrequency",
        "metrics",
        "checkpointPath",
        "checkpointFrequency",
        "checkpointFrequencyUnit",
        "checkpointKeep",
    ];
    let stored = serde_json::to_value(stored).ok()?;
    let given = serde_json::to_value(given).ok()?;
    let (Some(stored), Some(given)) = (stored.as_object(), given.as_object()) else {
        return None;
    };
    stored
        .iter()
        .find(|(k, v)| !FREE.contains(&k.as_str()) && given.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Solver;

    #[test]
    fn options_that_decide_the_weights_must_agree_to_resume() {
        let a = TrainingOptions::new(Solver::Adam).seed(3);
        let free = a
            .clone()
            .max_epochs(99)
            .verbose(false)
            .verbose_frequency(7)
            .checkpoint_path("elsewhere");
        assert_eq!(differing_option(&a, &free), None);
        assert_eq!(
            differing_option(&a, &a.clone().seed(4)),
            Some("seed".to_string())
        );
        assert_eq!(
            differing_option(&a, &a.clone().mini_batch_size(5)),
            Some("miniBatchSize".to_string())
        );
    }
}
