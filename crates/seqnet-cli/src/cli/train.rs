//! `seqnet train`: trains a graph JSON on a `.ts` file or a datastore folder
//! and writes the model file.

use super::data::{check_fits, open_data, DataSet};
use super::live_plot::LivePlot;
use super::parallel::Parallel;
use super::progress::{extra_metrics, Progress, Verbosity};
use super::{ensure_parent, flag_error, in_file, load_graph, out, read_text, shown};
use super::{CliError, Result};
use clap::ValueEnum;
use seqnet_core::{LayerGraph, PaddingDirection};
use seqnet_train::checkpoint::read_options;
use seqnet_train::{
    Communicator, ExecutionEnvironment, FrequencyUnit, LastMiniBatch, LearnRateSchedule, Metric,
    Model, SequenceLength, Shuffle, Solver, StopReason, Trainer, TrainingOptions, TrainingRecord,
};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// The solvers, as the command line names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SolverName {
    /// stochastic gradient descent with momentum
    Sgdm,
    /// adaptive moment estimation
    Adam,
    /// root mean square propagation
    Rmsprop,
}

/// When the training data is shuffled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShuffleName {
    /// once, before training
    Once,
    /// never: mini-batches in the data's order
    Never,
    /// before every epoch
    EveryEpoch,
}

/// Where padding goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PaddingName {
    /// real steps first, padding after
    Right,
    /// padding first, real steps last
    Left,
}

/// What happens to the observations that do not fill the last mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LastMiniBatchName {
    /// train on them as a smaller mini-batch
    Keep,
    /// leave them out of the epoch (as MATLAB does)
    Discard,
}

/// Where training runs (MATLAB's `ExecutionEnvironment`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EnvironmentName {
    /// data-parallel when an MPI launcher started seqnet, one process otherwise
    Auto,
    /// this process alone
    Cpu,
    /// data-parallel over the processes of `mpirun -np N` (needs the `mpi` feature)
    Parallel,
}

/// What checkpoint frequencies count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum UnitName {
    Epoch,
    Iteration,
}

/// The training flags shared by `train` and `demo`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OptionFlags {
    /// Training options as JSON (MATLAB's names in camelCase, any subset,
    /// e.g. {"solver": "adam", "maxEpochs": 30}); flags override them.
    #[arg(long, value_name = "FILE")]
    pub options: Option<PathBuf>,
    /// The optimizer [default: adam].
    #[arg(long, value_enum)]
    pub solver: Option<SolverName>,
    /// Maximum number of epochs [default: 30].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub epochs: Option<u64>,
    /// Observations per mini-batch [default: 128].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub mini_batch_size: Option<u64>,
    /// Initial learning rate [default: 0.001 for adam and rmsprop, 0.01 for sgdm].
    #[arg(long, value_name = "RATE", value_parser = positive)]
    pub learn_rate: Option<f32>,
    /// Rescale each learnable's gradient whose L2 norm exceeds this [default: none].
    #[arg(long, value_name = "NORM", value_parser = positive)]
    pub gradient_threshold: Option<f32>,
    /// L2 regularization factor [default: 0.0001].
    #[arg(long, value_name = "FACTOR", value_parser = non_negative)]
    pub l2: Option<f32>,
    /// When to shuffle the training data [default: once].
    #[arg(long, value_enum)]
    pub shuffle: Option<ShuffleName>,
    /// Pad each mini-batch to its longest sequence, truncate to its
    /// shortest, or split it into chunks of N steps [default: longest].
    #[arg(long, value_name = "longest|shortest|N", value_parser = sequence_length)]
    pub sequence_length: Option<SequenceLength>,
    /// Where padding goes [default: right].
    #[arg(long, value_enum)]
    pub padding_direction: Option<PaddingName>,
    /// Seed of initialization, shuffling and dropout [default: 0].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Keep the observations that do not fill the last mini-batch of an
    /// epoch, or discard them as MATLAB does [default: keep].
    #[arg(long, value_enum)]
    pub last_mini_batch: Option<LastMiniBatchName>,
    /// Metrics to compute on every mini-batch and validation, comma-separated:
    /// accuracy, precision, recall, fscore, auc (classification); rmse, mae,
    /// mape (regression).
    #[arg(long, value_name = "NAMES", value_parser = metric_list)]
    pub metrics: Option<MetricList>,
    /// The learning-rate schedule: none, piecewise, warmup, polynomial,
    /// exponential, cosine or cyclical, with MATLAB's properties after a
    /// colon, e.g. cosine:period=20 or warmup:numSteps=50,initialFactor=0.1
    /// [default: none].
    #[arg(long, value_name = "NAME[:PROPERTY=VALUE,...]", value_parser = schedule)]
    pub learn_rate_schedule: Option<LearnRateSchedule>,
    /// Where to train: auto, cpu, or parallel over MPI, launched with
    /// `mpirun -np N seqnet train ...`; --mini-batch-size stays the global
    /// mini-batch, shared among the processes [default: auto].
    #[arg(long, value_enum, value_name = "ENV")]
    pub execution_environment: Option<EnvironmentName>,
    /// Parallel training: sum the gradients over the processes in buckets
    /// of about MB megabytes, each started as soon as backward has
    /// finished its layers, overlapping backward (PyTorch DDP uses 25)
    /// [default: one sum after backward].
    #[arg(long, value_name = "MB")]
    pub gradient_bucket_size: Option<f64>,
    /// Parallel training: shard the solver (ZeRO stage 1): each process
    /// receives the summed gradients of its share of each large learnable,
    /// updates that share of the weights and solver state, and the
    /// processes exchange the weights [default: every process updates all].
    #[arg(long)]
    pub shard_solver: bool,
}

/// `seqnet train`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet train --net net.json --data data/japanese_vowels/JapaneseVowels_TRAIN.ts \\
    --solver adam --epochs 100 --mini-batch-size 27 --gradient-threshold 1 --shuffle never \\
    --sort-by-length --out model.safetensors --plot progress.png"
)]
#[command(allow_negative_numbers = true)]
pub struct Args {
    /// The network: a graph JSON (from `seqnet new` or your own).
    #[arg(long, value_name = "FILE", required_unless_present = "resume")]
    pub net: Option<PathBuf>,
    /// Continue an interrupted training from this checkpoint, with the options
    /// stored in it (give the same --data and --sort-by-length as before);
    /// --epochs, --metrics and the checkpoint flags may change.
    #[arg(long, value_name = "CHECKPOINT", conflicts_with = "net")]
    pub resume: Option<PathBuf>,
    /// Training data: a .ts file or a datastore folder (labels.csv + .npy files).
    #[arg(long, value_name = "DATA")]
    pub data: PathBuf,
    /// Where to write the trained model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub flags: OptionFlags,
    /// Validation data (.ts file or datastore folder).
    #[arg(long, value_name = "DATA")]
    pub validation: Option<PathBuf>,
    /// Iterations between validations [default: 50].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub validation_frequency: Option<u64>,
    /// Stop after this many validations without a lower loss [default: never].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub validation_patience: Option<u64>,
    /// Write checkpoints (every --checkpoint-frequency epochs, and on Ctrl-C)
    /// into this folder [default: next to --out, as <out>.checkpoints].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
    /// Write a checkpoint every N epochs (or iterations) [default: 1].
    #[arg(long, value_name = "N", value_parser = super::count)]
    pub checkpoint_frequency: Option<u64>,
    /// What --checkpoint-frequency counts [default: epoch].
    #[arg(long, value_enum, value_name = "UNIT")]
    pub checkpoint_frequency_unit: Option<UnitName>,
    /// How many of the latest checkpoints to keep, or 'all'; each new one is
    /// written before the oldest is removed [default: 1].
    #[arg(long, value_name = "K|all", value_parser = keep_count)]
    pub checkpoint_keep: Option<Keep>,
    /// Sort the training data by sequence length first (as MATLAB's examples do).
    #[arg(long)]
    pub sort_by_length: bool,
    /// Draw the training progress to this picture (.png or .svg).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,
    /// Show MATLAB's verbose table instead of progress bars.
    #[arg(long, conflicts_with = "quiet")]
    pub verbose: bool,
    /// Show no progress, only the results.
    #[arg(long)]
    pub quiet: bool,
}

fn positive(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a positive number, got '{s}'")),
    }
}

fn non_negative(s: &str) -> std::result::Result<f32, String> {
    match s.parse::<f32>() {
        Ok(v) if v >= 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("expected a number ≥ 0, got '{s}'")),
    }
}

/// How many checkpoints `--checkpoint-keep` keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Latest(usize),
    All,
}

fn keep_count(s: &str) -> std::result::Result<Keep, String> {
    if s.trim() == "all" {
        return Ok(Keep::All);
    }
    super::count(s).map(|n| Keep::Latest(n as usize))
}

/// The metrics `--metrics` names (one value to clap, not many).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricList(pub Vec<Metric>);

fn metric_list(s: &str) -> std::result::Result<MetricList, String> {
    s.split(',')
        .filter(|n| !n.trim().is_empty())
        .map(|n| {
            Metric::parse(n).ok_or_else(|| {
                format!(
                    "unknown metric '{}': expected accuracy, precision, recall, fscore, auc, rmse, mae or mape",
                    n.trim()
                )
            })
        })
        .collect::<std::result::Result<_, _>>()
        .map(MetricList)
}

/// `NAME` or `NAME:property=value,...` as a schedule (MATLAB's property
/// names, in camelCase or MATLAB's own case).
fn schedule(s: &str) -> std::result::Result<LearnRateSchedule, String> {
    let (name, properties) = s.split_once(':').unwrap_or((s, ""));
    let name = name.trim().to_ascii_lowercase();
    const NAMES: &str = "none, piecewise, warmup, polynomial, exponential, cosine or cyclical";
    let Some(default) = LearnRateSchedule::named(&name) else {
        return Err(format!("unknown schedule '{name}': expected {NAMES}"));
    };
    let mut json = serde_json::to_value(default).map_err(|e| e.to_string())?;
    for pair in properties.split(',').filter(|p| !p.trim().is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("expected PROPERTY=VALUE, got '{pair}'"))?;
        let mut key = key.trim().to_string();
        if let Some(first) = key.get(..1) {
            key = first.to_ascii_lowercase() + &key[1..];
        }
        let value = value.trim();
        let value = serde_json::from_str::<serde_json::Value>(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_ascii_lowercase()));
        let object = json.as_object_mut().ok_or("not an object")?;
        if !object.contains_key(&key) {
            let known: Vec<&String> = object.keys().filter(|k| *k != "type").collect();
            return Err(format!(
                "{name} has no property '{key}' (it has {})",
                known
                    .iter()
                    .map(|k| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        object.insert(key, value);
    }
    let schedule: LearnRateSchedule =
        serde_json::from_value(json).map_err(|e| format!("{name}: {e}"))?;
    schedule.validate().map_err(|e| e.to_string())?;
    Ok(schedule)
}

fn sequence_length(s: &str) -> std::result::Result<SequenceLength, String> {
    match s {
        "longest" => Ok(SequenceLength::Longest),
        "shortest" => Ok(SequenceLength::Shortest),
        n => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(SequenceLength::Fixed(n)),
            _ => Err(format!(
                "expected 'longest', 'shortest' or a positive number of steps, got '{s}'"
            )),
        },
    }
}

impl OptionFlags {
    /// The training options: the `--options` file (or adam with MATLAB's
    /// other defaults), then each flag given.
    pub fn training_options(&self) -> Result<TrainingOptions> {
        let mut o = match &self.options {
            Some(path) => TrainingOptions::from_json(&read_text(path)?, &shown(path))
                .map_err(|e| in_file(path, e.into()))?,
            None => TrainingOptions::new(Solver::Adam),
        };
        if let Some(s) = self.solver {
            o.solver = match s {
                SolverName::Sgdm => Solver::Sgdm,
                SolverName::Adam => Solver::Adam,
                SolverName::Rmsprop => Solver::Rmsprop,
            };
        }
        if let Some(n) = self.epochs {
            o.max_epochs = n as usize;
        }
        if let Some(n) = self.mini_batch_size {
            o.mini_batch_size = n as usize;
        }
        if let Some(e) = self.execution_environment {
            o.execution_environment = match e {
                EnvironmentName::Auto => ExecutionEnvironment::Auto,
                EnvironmentName::Cpu => ExecutionEnvironment::Cpu,
                EnvironmentName::Parallel => ExecutionEnvironment::Parallel,
            };
        }
        if let Some(mb) = self.gradient_bucket_size {
            o.gradient_bucket_size = Some(mb);
        }
        if self.shard_solver {
            o.shard_solver = true;
        }
        if let Some(r) = self.learn_rate {
            o.initial_learn_rate = Some(r);
        }
        if let Some(t) = self.gradient_threshold {
            o.gradient_threshold = Some(t);
        }
        if let Some(l) = self.l2 {
            o.l2_regularization = l;
        }
        if let Some(s) = self.shuffle {
            o.shuffle = match s {
                ShuffleName::Once => Shuffle::Once,
                ShuffleName::Never => Shuffle::Never,
                ShuffleName::EveryEpoch => Shuffle::EveryEpoch,
            };
        }
        if let Some(l) = self.sequence_length {
            o.sequence_length = l;
        }
        if let Some(p) = self.padding_direction {
            o.sequence_padding_direction = match p {
                PaddingName::Right => PaddingDirection::Right,
                PaddingName::Left => PaddingDirection::Left,
            };
        }
        if let Some(s) = self.seed {
            o.seed = s;
        }
        if let Some(l) = self.last_mini_batch {
            o.last_mini_batch = match l {
                LastMiniBatchName::Keep => LastMiniBatch::Keep,
                LastMiniBatchName::Discard => LastMiniBatch::Discard,
            };
        }
        if let Some(m) = &self.metrics {
            o.metrics = m.0.clone();
        }
        if let Some(s) = self.learn_rate_schedule {
            o.learn_rate_schedule = s;
        }
        o.validate().map_err(flag_named)?;
        Ok(o)
    }
}

/// An invalid option named by its flag.
fn flag_named(e: seqnet_train::Error) -> CliError {
    match e {
        seqnet_train::Error::InvalidOption { option, message } => {
            let flag = match option {
                "MaxEpochs" => "--epochs",
                "MiniBatchSize" => "--mini-batch-size",
                "InitialLearnRate" => "--learn-rate",
                "GradientThreshold" => "--gradient-threshold",
                "L2Regularization" => "--l2",
                "SequenceLength" => "--sequence-length",
                "ValidationFrequency" => "--validation-frequency",
                "CheckpointFrequency" => "--checkpoint-frequency",
                "CheckpointKeep" => "--checkpoint-keep",
                "GradientBucketSize" => "--gradient-bucket-size",
                "Metrics" => "--metrics",
                other => other,
            };
            flag_error(flag, message)
        }
        other => other.into(),
    }
}

/// What one training run gives.
pub struct Trained {
    /// The trained network with its class names and options.
    pub model: Model,
    /// The training history.
    pub record: TrainingRecord,
    /// Wall-clock seconds of training.
    pub seconds: f64,
}

/// Trains `graph` on `train` (and `validation`) with `options`, showing
/// progress as `display` says.
pub fn train_with_progress(
    graph: &LayerGraph,
    train: &DataSet,
    validation: Option<&DataSet>,
    options: &TrainingOptions,
    display: Verbosity,
) -> Result<Trained> {
    check_fits(graph, train, true)?;
    if let Some(v) = validation {
        check_fits(graph, v, true)?;
    }
    run_with_progress(
        train,
        options.clone(),
        display,
        None,
        None,
        None,
        |trainer| {
            trainer.train(
                graph,
                train.store.clone(),
                validation.map(|v| v.store.clone()),
            )
        },
    )
}

/// Runs `run` (a training call) on a trainer with `options`, the progress
/// display as an observer, `stop` as its stop flag, and the live progress
/// picture at `plot` when given.
fn run_with_progress(
    train: &DataSet,
    options: TrainingOptions,
    display: Verbosity,
    stop: Option<&AtomicBool>,
    plot: Option<&Path>,
    comm: Option<Arc<dyn Communicator>>,
    run: impl FnOnce(Trainer<'_>) -> seqnet_train::Result<(Model, TrainingRecord)>,
) -> Result<Trained> {
    // Rank 0 alone shows progress and draws.
    let root = comm.as_ref().is_none_or(|c| c.is_root());
    let display = if root { display } else { Verbosity::Quiet };
    let mut progress = Progress::new(display, &options, train.store.len());
    let start = Instant::now();
    let mut trainer = Trainer::new(options).observer(&mut progress);
    if let Some(c) = comm {
        trainer = trainer.communicator(c);
    }
    if let Some(path) = plot.filter(|_| root) {
        trainer = trainer.observer(LivePlot::new(path));
    }
    if let Some(stop) = stop {
        trainer = trainer.stop_flag(stop);
    }
    let result = run(trainer);
    progress.clear();
    let (model, record) = result?;
    Ok(Trained {
        model,
        record,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// The flag Ctrl-C sets: training stops after the current mini-batch.
/// A second Ctrl-C ends the program at once. On Unix, SIGUSR1 sets it too:
/// `mpirun` and `srun` forward SIGUSR1 to every rank (while Ctrl-C makes
/// `mpirun` kill the job), so `kill -USR1 <mpirun>`, `scancel
/// --signal=USR1` or `#SBATCH --signal=USR1@120` stop a data-parallel run
/// after the same mini-batch on every rank, with a checkpoint.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    #[cfg(unix)]
    {
        // Fails only for a signal that cannot be caught; SIGUSR1 can.
        let _ = signal_hook::flag::register(signal_hook::consts::SIGUSR1, flag.clone());
    }
    let f = flag.clone();
    // Fails only when a handler is already installed (tests running several commands).
    let _ = ctrlc::set_handler(move || {
        if f.swap(true, Ordering::SeqCst) {
            // The user asks to quit at once, mid-iteration: this runs on the
            // handler's own thread, which has no way back to `main`.
            eprintln!("\nstopped");
            std::process::exit(130);
        }
        eprintln!("\nCtrl-C: finishing the current iteration, then writing a checkpoint (Ctrl-C again to quit at once)");
    });
    flag
}

/// The results of training, for standard output.
pub fn report(r: &TrainingRecord, seconds: f64) -> String {
    let mut s = String::new();
    let epochs = r.iterations.last().map_or(0, |i| i.epoch);
    let reason = r.stop_reason.map(|r| r.to_string()).unwrap_or_default();
    s.push_str(&format!(
        "trained {epochs} epoch{} ({} iterations) in {:.1} s: {reason}\n",
        if epochs == 1 { "" } else { "s" },
        r.iterations.len(),
        seconds,
    ));
    if let Some(last) = r.iterations.last() {
        s.push_str(&format!("final mini-batch loss {:.4}", last.loss));
        if let Some(a) = last.accuracy {
            s.push_str(&format!(", accuracy {:.2}%", a * 100.0));
        }
        if let Some(e) = last.rmse {
            s.push_str(&format!(", rmse {e:.4}"));
        }
        s.push_str(&extra_metrics(&last.metrics, ", "));
        s.push('\n');
    }
    if let Some(v) = &r.final_validation {
        s.push_str(&format!("validation loss {:.4}", v.loss));
        if let Some(a) = v.accuracy {
            s.push_str(&format!(", accuracy {:.2}%", a * 100.0));
        }
        if let Some(e) = v.rmse {
            s.push_str(&format!(", rmse {e:.4}"));
        }
        s.push_str(&extra_metrics(&v.metrics, ", "));
        s.push('\n');
    }
    s
}

/// Writes the model, creating its folder.
pub fn save_model(model: &Model, path: &Path) -> Result<()> {
    ensure_parent(path)?;
    model.save(path).map_err(CliError::from_write)
}

/// Runs `seqnet train`: success, or 130 when Ctrl-C stopped training (a
/// checkpoint was written and the command that resumes is shown).
pub fn run(args: Args) -> Result<ExitCode> {
    seqnet_train::distributed::phases::mark("started");
    let options = options_of(&args)?;
    let display = Verbosity::from_flags(args.quiet, args.verbose);
    if let Some(p) = &args.plot {
        // Refuse a bad picture name before training, not after.
        picture_extension("--plot", p)?;
    }
    // MPI's start-up mostly waits (for the launcher and the other ranks):
    // the data's index is read meanwhile on another thread. MPI starts on
    // this thread, which also ends it (MPI wants both on one thread).
    let (parallel, data) = std::thread::scope(|s| {
        let data = s.spawn(|| open_train_and_validation(&args));
        let parallel = Parallel::start(options.execution_environment);
        seqnet_train::distributed::phases::mark("MPI started");
        (parallel, data.join())
    });
    let data = data.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let (train, validation) = match (
        data,
        parallel.as_ref().ok().and_then(Parallel::communicator),
    ) {
        // Every rank reads the same folders and fails alike, but a rank
        // failing alone would leave the others waiting in a collective.
        (Err(e), Some(c)) => {
            c.abort(&format!("rank {} of {} failed: {e}", c.rank(), c.size()));
            return Err(e);
        }
        (data, _) => data?,
    };
    let parallel = parallel?;
    let comm = parallel.communicator();
    let stop = interrupt_flag();
    let plot = args.plot.as_deref();
    let trained = match (&args.resume, &args.net) {
        (Some(checkpoint), _) => {
            let stored = resume_options(&args, checkpoint, &options)?;
            let comm = comm.clone();
            run_with_progress(
                &train,
                stored,
                display,
                Some(&stop),
                plot,
                comm,
                |trainer| {
                    trainer.resume(
                        checkpoint,
                        train.store.clone(),
                        validation.as_ref().map(|v| v.store.clone()),
                    )
                },
            )?
        }
        (None, Some(net)) => {
            let graph = load_graph(net)?;
            check_fits(&graph, &train, true)?;
            if let Some(v) = &validation {
                check_fits(&graph, v, true)?;
            }
            let comm = comm.clone();
            run_with_progress(
                &train,
                options,
                display,
                Some(&stop),
                plot,
                comm,
                |trainer| {
                    trainer.train(
                        &graph,
                        train.store.clone(),
                        validation.as_ref().map(|v| v.store.clone()),
                    )
                },
            )?
        }
        (None, None) => {
            return Err(flag_error(
                "--net",
                "give the network (--net) or a checkpoint to resume (--resume)",
            ))
        }
    };
    seqnet_train::distributed::phases::mark("trained");
    if !parallel.is_root() {
        // Rank 0 reports and writes the model; the others end quietly.
        return Ok(match trained.record.stop_reason {
            Some(StopReason::Interrupted) => ExitCode::from(130),
            _ => ExitCode::SUCCESS,
        });
    }
    if let (Some(StopReason::Interrupted), Some(checkpoint)) =
        (trained.record.stop_reason, &trained.record.checkpoint)
    {
        eprintln!(
            "training interrupted after iteration {}; checkpoint written to {}\nresume with: {}",
            trained.record.iterations.len(),
            shown(checkpoint),
            resume_command(&args, checkpoint)
        );
        return Ok(ExitCode::from(130));
    }
    save_model(&trained.model, &args.out)?;
    seqnet_train::distributed::phases::mark("model written");
    let mut text = report(&trained.record, trained.seconds);
    text.push_str(&format!("model written to {}\n", shown(&args.out)));
    if let Some(p) = &args.plot {
        ensure_parent(p)?;
        crate::plots::training_progress(&trained.record, p)?;
        text.push_str(&format!("training progress drawn to {}\n", shown(p)));
    }
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The training data (sorted by length with `--sort-by-length`) and the
/// validation data, with the training data's classes.
fn open_train_and_validation(args: &Args) -> Result<(DataSet, Option<DataSet>)> {
    let mut train = open_data(&args.data, None)?;
    if args.sort_by_length {
        train = train.sorted_by_length()?;
    }
    let classes = train.store.classes().map(<[String]>::to_vec);
    let validation = args
        .validation
        .as_ref()
        .map(|v| open_data(v, classes.as_deref()))
        .transpose()?;
    seqnet_train::distributed::phases::mark("data indexed");
    Ok((train, validation))
}

/// The training options of `seqnet train`'s flags.
fn options_of(args: &Args) -> Result<TrainingOptions> {
    let mut options = args.flags.training_options()?;
    if let Some(n) = args.validation_frequency {
        options.validation_frequency = n as usize;
    }
    if let Some(n) = args.validation_patience {
        options.validation_patience = Some(n as usize);
    }
    options.checkpoint_path = Some(args.checkpoint_dir.clone().unwrap_or_else(|| {
        let mut p = args.out.clone().into_os_string();
        p.push(".checkpoints");
        PathBuf::from(p)
    }));
    checkpoint_flags(args, &mut options);
    options.validate().map_err(flag_named)?;
    Ok(options)
}

/// The options to resume from `checkpoint` with: the checkpoint's own, to the
/// same weights as a run never stopped; only those that do not decide the
/// weights (epochs, metrics, checkpoints) may change, from `args` and `given`.
fn resume_options(
    args: &Args,
    checkpoint: &Path,
    given: &TrainingOptions,
) -> Result<TrainingOptions> {
    let mut stored = read_options(checkpoint)?;
    if let Some(n) = args.flags.epochs {
        stored.max_epochs = n as usize;
    }
    if let Some(m) = &args.flags.metrics {
        stored.metrics = m.0.clone();
    }
    stored.checkpoint_path = given.checkpoint_path.clone();
    // Any number of processes resumes to the same weights.
    stored.execution_environment = given.execution_environment;
    stored.gradient_bucket_size = given.gradient_bucket_size;
    stored.shard_solver = given.shard_solver;
    checkpoint_flags(args, &mut stored);
    Ok(stored)
}

/// The checkpoint flags over `options` (keeping the latest checkpoint only
/// unless told otherwise).
fn checkpoint_flags(args: &Args, options: &mut TrainingOptions) {
    if let Some(n) = args.checkpoint_frequency {
        options.checkpoint_frequency = n as usize;
    }
    if let Some(u) = args.checkpoint_frequency_unit {
        options.checkpoint_frequency_unit = match u {
            UnitName::Epoch => FrequencyUnit::Epoch,
            UnitName::Iteration => FrequencyUnit::Iteration,
        };
    }
    options.checkpoint_keep = match args.checkpoint_keep {
        None => Some(options.checkpoint_keep.unwrap_or(1)),
        Some(Keep::Latest(k)) => Some(k),
        Some(Keep::All) => None,
    };
}

/// The command that resumes from `checkpoint` with the same data.
fn resume_command(args: &Args, checkpoint: &Path) -> String {
    let mut command = format!(
        "seqnet train --resume {} --data {} --out {}",
        shown(checkpoint),
        shown(&args.data),
        shown(&args.out)
    );
    if args.sort_by_length {
        command.push_str(" --sort-by-length");
    }
    if let Some(v) = &args.validation {
        command.push_str(&format!(" --validation {}", shown(v)));
    }
    command
}

/// Checks that `path` ends in .png or .svg, naming `flag`.
pub(crate) fn picture_extension(flag: &'static str, path: &Path) -> Result<()> {
    match path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .as_deref()
    {
        Some("png") | Some("svg") => Ok(()),
        _ => Err(flag_error(
            flag,
            format!("'{}' must end in .png or .svg", shown(path)),
        )),
    }
}
