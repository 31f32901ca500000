//! `seqnet train`: trains a graph JSON on a `.ts` file or a datastore folder
//! and writes the model file.

use super::data::{check_fits, open_data, DataSet};
use super::progress::{iterations_per_epoch, Progress, Verbosity};
use super::{ensure_parent, flag_error, in_file, load_graph, out, read_text, shown};
use super::{CliError, Result};
use clap::ValueEnum;
use seqnet_core::{LayerGraph, PaddingDirection};
use seqnet_train::checkpoint::read_options;
use seqnet_train::{
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
    /// stored in it (give the same --data and --sort-by-length as before).
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
    /// Write a checkpoint after every epoch (and on Ctrl-C) into this folder
    /// [default: next to --out, as <out>.checkpoints].
    #[arg(long, value_name = "DIR")]
    pub checkpoint_dir: Option<PathBuf>,
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
    run_with_progress(train, options.clone(), display, None, |trainer| {
        trainer.train(
            graph,
            train.store.clone(),
            validation.map(|v| v.store.clone()),
        )
    })
}

/// Runs `run` (a training call) on a trainer with `options`, the progress
/// display as an observer, and `stop` as its stop flag.
fn run_with_progress(
    train: &DataSet,
    options: TrainingOptions,
    display: Verbosity,
    stop: Option<&AtomicBool>,
    run: impl FnOnce(Trainer<'_>) -> seqnet_train::Result<(Model, TrainingRecord)>,
) -> Result<Trained> {
    let per_epoch = iterations_per_epoch(train.store.len(), options.mini_batch_size);
    let mut progress = Progress::new(
        display,
        options.max_epochs,
        per_epoch,
        options.verbose_frequency,
    );
    let start = Instant::now();
    let mut trainer = Trainer::new(options).observer(&mut progress);
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
/// A second Ctrl-C ends the program at once.
fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
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
    let display = Verbosity::from_flags(args.quiet, args.verbose);
    if let Some(p) = &args.plot {
        // Refuse a bad picture name before training, not after.
        picture_extension("--plot", p)?;
    }
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
    let stop = interrupt_flag();
    let trained = match (&args.resume, &args.net) {
        (Some(checkpoint), _) => {
            // The checkpoint's own options, to the same weights as a run never stopped.
            let stored = read_options(checkpoint)?;
            run_with_progress(&train, stored, display, Some(&stop), |trainer| {
                trainer.resume(
                    checkpoint,
                    train.store.clone(),
                    validation.as_ref().map(|v| v.store.clone()),
                )
            })?
        }
        (None, Some(net)) => {
            let graph = load_graph(net)?;
            check_fits(&graph, &train, true)?;
            if let Some(v) = &validation {
                check_fits(&graph, v, true)?;
            }
            run_with_progress(&train, options, display, Some(&stop), |trainer| {
                trainer.train(
                    &graph,
                    train.store.clone(),
                    validation.as_ref().map(|v| v.store.clone()),
                )
            })?
        }
        (None, None) => {
            return Err(flag_error(
                "--net",
                "give the network (--net) or a checkpoint to resume (--resume)",
            ))
        }
    };
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
