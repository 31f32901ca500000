//! `seqnet generate-waveforms` and `seqnet generate-series`: synthetic
//! sequence-to-sequence and forecasting data as datastore folders with
//! per-step targets (`labels.csv` rows `file,target`).

use super::{out, shown, Result};
use clap::ValueEnum;
use seqnet_data::series::SineSeries;
use seqnet_data::waveforms::{WaveformTask, Waveforms};
use seqnet_data::writer::{write_folder, SequenceFormat};
use std::path::PathBuf;

/// What the waveform data asks at each step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TaskName {
    /// the waveform (sine, square, sawtooth): sequence-to-sequence classification
    Classification,
    /// the segment's amplitude: sequence-to-sequence regression
    Regression,
}

/// How sequences are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatName {
    /// float32 .npy files
    Npy,
    /// .csv files (a header of feature names, one row per step)
    Csv,
}

impl From<FormatName> for SequenceFormat {
    fn from(f: FormatName) -> Self {
        match f {
            FormatName::Npy => SequenceFormat::Npy,
            FormatName::Csv => SequenceFormat::Csv,
        }
    }
}

/// `seqnet generate-waveforms`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet generate-waveforms --out waves/train --count 400 --seed 1\n\n\
Each signal (1 feature) is a run of sine, square and sawtooth segments of random\n\
period, amplitude and length, plus noise. The folder holds sequences/*.npy,\n\
targets/*.npy (int64 waveform per step, or float32 amplitude per step),\n\
labels.csv (file,target) and, for classification, classes.txt."
)]
pub struct WaveformArgs {
    /// The folder to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of signals.
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = super::count)]
    pub count: u64,
    /// What the targets are.
    #[arg(long, value_enum, default_value = "classification")]
    pub task: TaskName,
    /// Fewest steps per signal.
    #[arg(long, value_name = "N", default_value_t = 60, value_parser = super::count)]
    pub min_steps: u64,
    /// Most steps per signal.
    #[arg(long, value_name = "N", default_value_t = 139, value_parser = super::count)]
    pub max_steps: u64,
    /// How the sequences are stored.
    #[arg(long, value_enum, default_value = "npy")]
    pub format: FormatName,
    /// Seed of the generator.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

/// `seqnet generate-series`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet generate-series --out series/train --count 100 --steps 200 --seed 1\n\n\
Each channel is a sum of two sine waves (periods 25 and 9 steps) with random\n\
amplitudes and phases, plus noise. Series x of T steps are written as the\n\
sequence x[1..T-1] with per-step targets x[2..T] (the next value): what a\n\
forecasting network trains on, and what 'seqnet forecast' primes on."
)]
pub struct SeriesArgs {
    /// The folder to write.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of series.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = super::count)]
    pub count: u64,
    /// Steps per series (the sequences written have one step fewer).
    #[arg(long, value_name = "N", default_value_t = 200, value_parser = super::count)]
    pub steps: u64,
    /// Channels per step.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = super::count)]
    pub channels: u64,
    /// Half-width of the uniform noise.
    #[arg(long, value_name = "X", default_value_t = 0.03)]
    pub noise: f32,
    /// How the sequences are stored.
    #[arg(long, value_enum, default_value = "npy")]
    pub format: FormatName,
    /// Seed of the generator.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub seed: u64,
}

/// Runs `seqnet generate-waveforms`.
pub fn run_waveforms(args: WaveformArgs) -> Result<()> {
    let set = Waveforms {
        count: args.count as usize,
        min_steps: args.min_steps as usize,
        max_steps: args.max_steps as usize,
        seed: args.seed,
    };
    let task = match args.task {
        TaskName::Classification => WaveformTask::Classification,
        TaskName::Regression => WaveformTask::Regression,
    };
    let (observations, classes) = set.observations(task)?;
    write_folder(
        &args.out,
        &observations,
        classes.as_deref(),
        args.format.into(),
    )?;
    let steps: usize = observations.iter().map(|o| o.len()).sum();
    let what = match &classes {
        Some(c) => format!("the waveform per step ({})", c.join(", ")),
        None => "the amplitude per step".to_string(),
    };
    out(&format!(
        "wrote {} signals ({steps} steps) with {what} to {}\n",
        observations.len(),
        shown(&args.out)
    ))
}

/// Runs `seqnet generate-series`.
pub fn run_series(args: SeriesArgs) -> Result<()> {
    let set = SineSeries {
        count: args.count as usize,
        steps: args.steps as usize,
        channels: args.channels as usize,
        noise: args.noise,
        seed: args.seed,
    };
    let observations = set.observations()?;
    write_folder(&args.out, &observations, None, args.format.into())?;
    out(&format!(
        "wrote {} series of {} steps and {} channel{} (targets: the next step) to {}\n",
        observations.len(),
        args.steps - 1,
        args.channels,
        if args.channels == 1 { "" } else { "s" },
        shown(&args.out)
    ))
}
