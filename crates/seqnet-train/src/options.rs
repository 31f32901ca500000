//! `TrainingOptions`: MATLAB's `trainingOptions`, with its names and defaults.

use crate::error::{Error, Result};
pub use crate::metric::Metric;
pub use crate::schedule::{FrequencyUnit, LearnRateSchedule};
use seqnet_core::PaddingDirection;
pub use seqnet_data::SequenceLength;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The optimizer (MATLAB's `solverName`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Solver {
    /// Stochastic gradient descent with momentum.
    Sgdm,
    Adam,
    Rmsprop,
}

/// When the training data is shuffled (MATLAB's `Shuffle`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Shuffle {
    Once,
    Never,
    EveryEpoch,
}

/// How gradients are clipped when they exceed `GradientThreshold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GradientThresholdMethod {
    /// Rescale each learnable's gradient whose L2 norm exceeds the threshold.
    L2norm,
    /// Rescale all gradients when their joint L2 norm exceeds the threshold.
    GlobalL2norm,
    /// Clamp each element to `±threshold`.
    AbsoluteValue,
}

/// What happens to the observations that do not fill the last mini-batch of
/// an epoch (MATLAB discards them; PyTorch and Keras keep them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LastMiniBatch {
    /// Train on them as a smaller mini-batch (seqnet's default).
    #[default]
    Keep,
    /// Leave them out of the epoch (MATLAB's behaviour), unless the data is
    /// smaller than one mini-batch.
    Discard,
}

/// Which network training returns (MATLAB's `OutputNetwork`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutputNetwork {
    LastIteration,
    BestValidationLoss,
}

/// Training options, MATLAB's names in Rust case, MATLAB's defaults
/// (`InitialLearnRate` 0.01 for sgdm, 0.001 otherwise; `MaxEpochs` 30;
/// `MiniBatchSize` 128; `L2Regularization` 1e-4; `Shuffle` once; …).
/// Where training runs (MATLAB's `ExecutionEnvironment`); in JSON `"auto"`,
/// `"cpu"` or `"parallel"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ExecutionEnvironment {
    /// Data-parallel over the trainer's communicator when it has several
    /// ranks, one process otherwise.
    #[default]
    Auto,
    /// This process alone, whatever communicator the trainer has.
    Cpu,
    /// Data-parallel over the trainer's communicator (for example
    /// `mpirun -np N`); an error without one (see [`crate::distributed`]).
    Parallel,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TrainingOptions {
    pub solver: Solver,
    /// `None`: the solver's default.
    pub initial_learn_rate: Option<f32>,
    pub learn_rate_schedule: LearnRateSchedule,
    pub max_epochs: usize,
    pub mini_batch_size: usize,
    pub shuffle: Shuffle,
    pub momentum: f32,
    pub gradient_decay_factor: f32,
    /// `None`: 0.999 for adam, 0.9 for rmsprop.
    pub squared_gradient_decay_factor: Option<f32>,
    pub epsilon: f32,
    /// `None`: no clipping (MATLAB's `Inf`).
    pub gradient_threshold: Option<f32>,
    pub gradient_threshold_method: GradientThresholdMethod,
    pub l2_regularization: f32,
    /// Iterations between validations.
    pub validation_frequency: usize,
    /// Stop after this many validations without a lower loss; `None`: never.
    pub validation_patience: Option<usize>,
    pub output_network: OutputNetwork,
    pub sequence_length: SequenceLength,
    pub sequence_padding_direction: PaddingDirection,
    pub sequence_padding_value: f32,
    /// Whether MATLAB's verbose table is shown. The library never prints:
    /// this is read by whoever attaches the table
    /// ([`crate::Trainer::verbose_output`], [`crate::VerboseTable::for_options`]).
    pub verbose: bool,
    /// Iterations between rows of the verbose table.
    pub verbose_frequency: usize,
    pub checkpoint_path: Option<PathBuf>,
    /// Checkpoints are written every this many `checkpoint_frequency_unit`s
    /// (MATLAB's `CheckpointFrequency`).
    pub checkpoint_frequency: usize,
    /// Epochs or iterations (MATLAB's `CheckpointFrequencyUnit`); with
    /// iterations, a checkpoint is written after the mini-batch in which the
    /// count passes a multiple of the frequency.
    pub checkpoint_frequency_unit: FrequencyUnit,
    /// How many of the checkpoints a run writes are kept (the latest ones);
    /// `None`: all of them. A new checkpoint is written before the oldest is
    /// removed. seqnet's own option; MATLAB keeps them all.
    pub checkpoint_keep: Option<usize>,
    /// The observations that do not fill the last mini-batch of an epoch.
    pub last_mini_batch: LastMiniBatch,
    /// Metrics computed on each mini-batch and validation, besides the loss
    /// (MATLAB's `Metrics`). Accuracy (classification) and RMSE (regression)
    /// are always computed.
    pub metrics: Vec<Metric>,
    /// Seeds initialization, shuffling and dropout.
    pub seed: u64,
    /// One process or data-parallel (MATLAB's `ExecutionEnvironment`). A
    /// data-parallel run trains the weights one process would on the same
    /// global mini-batches (`mini_batch_size`), so a checkpoint resumes with
    /// any number of processes.
    pub execution_environment: ExecutionEnvironment,
    /// Data-parallel training: reduce the gradients over the ranks in
    /// buckets of about this many megabytes (10^6 bytes), each started as
    /// soon as backward has finished its layers and summed while backward
    /// goes on (PyTorch DDP's `bucket_cap_mb`, default 25 there). `None`
    /// (the default): one reduction of all gradients after backward. The
    /// trained weights are the same either way. seqnet's own option.
    pub gradient_bucket_size: Option<f64>,
    /// Data-parallel training: shard the solver (ZeRO stage 1). Each rank
    /// receives the summed gradient of its shard of each large learnable
    /// only (reduce-scatter), updates that shard of the weights and of the
    /// solver state, and the ranks exchange the updated weights
    /// (all-gather): the solver step's work is divided by the rank count.
    /// The weights are those of the unsharded solver within rounding (the
    /// clipping norms add the shards' partial sums); checkpoints hold the
    /// whole solver state, so they resume with any number of ranks, sharded
    /// or not. seqnet's own option; off by default.
    pub shard_solver: bool,
}

impl Default for TrainingOptions {
    fn default() -> Self {
        TrainingOptions {
            solver: Solver::Sgdm,
            initial_learn_rate: None,
            learn_rate_schedule: LearnRateSchedule::None,
            max_epochs: 30,
            mini_batch_size: 128,
            shuffle: Shuffle::Once,
            momentum: 0.9,
            gradient_decay_factor: 0.9,
            squared_gradient_decay_factor: None,
            epsilon: 1e-8,
            gradient_threshold: None,
            gradient_threshold_method: GradientThresholdMethod::L2norm,
            l2_regularization: 1e-4,
            validation_frequency: 50,
            validation_patience: None,
            output_network: OutputNetwork::LastIteration,
            sequence_length: SequenceLength::Longest,
            sequence_padding_direction: PaddingDirection::Right,
            sequence_padding_value: 0.0,
            verbose: true,
            verbose_frequency: 50,
            checkpoint_path: None,
            checkpoint_frequency: 1,
            checkpoint_frequency_unit: FrequencyUnit::Epoch,
            checkpoint_keep: None,
            last_mini_batch: LastMiniBatch::Keep,
            metrics: Vec::new(),
            seed: 0,
            execution_environment: ExecutionEnvironment::Auto,
            gradient_bucket_size: None,
            shard_solver: false,
        }
    }
}

macro_rules! setter {
    ($($name:ident: $ty:ty),* $(,)?) => {
        $(
            #[doc = concat!("Sets `", stringify!($name), "`.")]
            pub fn $name(mut self, v: $ty) -> Self {
                self.$name = v;
                self
            }
        )*
    };
}

impl TrainingOptions {
    /// MATLAB's `trainingOptions(solverName)`.
    pub fn new(solver: Solver) -> Self {
        TrainingOptions {
            solver,
            ..Default::default()
        }
    }

    setter! {
        learn_rate_schedule: LearnRateSchedule,
        max_epochs: usize,
        mini_batch_size: usize,
        shuffle: Shuffle,
        momentum: f32,
        gradient_decay_factor: f32,
        epsilon: f32,
        gradient_threshold_method: GradientThresholdMethod,
        l2_regularization: f32,
        validation_frequency: usize,
        output_network: OutputNetwork,
        sequence_length: SequenceLength,
        sequence_padding_direction: PaddingDirection,
        sequence_padding_value: f32,
        verbose: bool,
        verbose_frequency: usize,
        checkpoint_frequency: usize,
        checkpoint_frequency_unit: FrequencyUnit,
        last_mini_batch: LastMiniBatch,
        metrics: Vec<Metric>,
        seed: u64,
        execution_environment: ExecutionEnvironment,
        shard_solver: bool,
    }

    pub fn gradient_bucket_size(mut self, megabytes: f64) -> Self {
        self.gradient_bucket_size = Some(megabytes);
        self
    }

    pub fn checkpoint_keep(mut self, v: usize) -> Self {
        self.checkpoint_keep = Some(v);
        self
    }

    pub fn initial_learn_rate(mut self, v: f32) -> Self {
        self.initial_learn_rate = Some(v);
        self
    }
    pub fn squared_gradient_decay_factor(mut self, v: f32) -> Self {
        self.squared_gradient_decay_factor = Some(v);
        self
    }
    pub fn gradient_threshold(mut self, v: f32) -> Self {
        self.gradient_threshold = Some(v);
        self
    }
    pub fn validation_patience(mut self, v: usize) -> Self {
        self.validation_patience = Some(v);
        self
    }
    pub fn checkpoint_path(mut self, v: impl Into<PathBuf>) -> Self {
        self.checkpoint_path = Some(v.into());
        self
    }

    /// The initial learning rate in force (the solver's default when unset).
    pub fn learn_rate(&self) -> f32 {
        self.initial_learn_rate.unwrap_or(match self.solver {
            Solver::Sgdm => 0.01,
            Solver::Adam | Solver::Rmsprop => 0.001,
        })
    }

    /// The squared-gradient decay in force.
    pub fn squared_decay(&self) -> f32 {
        self.squared_gradient_decay_factor
            .unwrap_or(match self.solver {
                Solver::Rmsprop => 0.9,
                _ => 0.999,
            })
    }

    /// The learning rate of the iteration after `iteration` iterations, in
    /// 0-based `epoch`, after the schedule.
    pub fn learn_rate_at(&self, epoch: usize, iteration: usize) -> f32 {
        self.learn_rate()
            * self
                .learn_rate_schedule
                .factor(epoch, iteration, self.max_epochs)
    }

    /// Checks every option, naming the first one out of range.
    pub fn validate(&self) -> Result<()> {
        let bad =
            |option: &'static str, message: String| Err(Error::InvalidOption { option, message });
        if !(self.learn_rate() > 0.0 && self.learn_rate().is_finite()) {
            return bad(
                "InitialLearnRate",
                format!("must be positive and finite, got {}", self.learn_rate()),
            );
        }
        if let Some(b) = self.gradient_bucket_size {
            if !(b > 0.0 && b.is_finite()) {
                return bad(
                    "GradientBucketSize",
                    format!("must be positive and finite, got {b}"),
                );
            }
        }
        if self.max_epochs == 0 {
            return bad("MaxEpochs", "must be at least 1".into());
        }
        if self.mini_batch_size == 0 {
            return bad("MiniBatchSize", "must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "Momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if !(0.0..1.0).contains(&self.gradient_decay_factor) {
            return bad(
                "GradientDecayFactor",
                format!("must be in [0, 1), got {}", self.gradient_decay_factor),
            );
        }
        if !(0.0..1.0).contains(&self.squared_decay()) {
            return bad(
                "SquaredGradientDecayFactor",
                format!("must be in [0, 1), got {}", self.squared_decay()),
            );
        }
        if self.epsilon.is_nan() || self.epsilon <= 0.0 {
            return bad("Epsilon", format!("must be positive, got {}", self.epsilon));
        }
        if let Some(t) = self.gradient_threshold {
            if t.is_nan() || t <= 0.0 {
                return bad("GradientThreshold", format!("must be positive, got {t}"));
            }
        }
        if !(self.l2_regularization >= 0.0 && self.l2_regularization.is_finite()) {
            return bad(
                "L2Regularization",
                format!("must be non-negative, got {}", self.l2_regularization),
            );
        }
        self.learn_rate_schedule.validate()?;
        if self.checkpoint_frequency == 0 {
            return bad("CheckpointFrequency", "must be at least 1".into());
        }
        if self.checkpoint_keep == Some(0) {
            return bad("CheckpointKeep", "must be at least 1".into());
        }
        if self.sequence_length == SequenceLength::Fixed(0) {
            return bad("SequenceLength", "must be at least 1".into());
        }
        if self.validation_frequency == 0 {
            return bad("ValidationFrequency", "must be at least 1".into());
        }
        if self.verbose_frequency == 0 {
            return bad("VerboseFrequency", "must be at least 1".into());
        }
        Ok(())
    }

    /// Options as a model file or checkpoint stores them. Files written
    /// before `LastMiniBatch` existed were trained with MATLAB's discarding
    /// of the last partial mini-batch, so options without it read as
    /// `discard` (and resume to the same weights).
    pub fn from_stored_json(json: &str) -> serde_json::Result<Self> {
        let mut value: serde_json::Value = serde_json::from_str(json)?;
        if let Some(object) = value.as_object_mut() {
            object
                .entry("lastMiniBatch")
                .or_insert_with(|| serde_json::Value::String("discard".into()));
        }
        serde_json::from_value(value)
    }

    /// Options from JSON (camelCase keys, any subset); `origin` names the file in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        let o: TrainingOptions =
            serde_json::from_str(json).map_err(|source| Error::OptionsJson {
                file: origin.into(),
                line: source.line(),
                source,
            })?;
        o.validate()?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_matlab() {
        assert_eq!(TrainingOptions::new(Solver::Sgdm).learn_rate(), 0.01);
        assert_eq!(TrainingOptions::new(Solver::Adam).learn_rate(), 0.001);
        assert_eq!(TrainingOptions::new(Solver::Adam).squared_decay(), 0.999);
        assert_eq!(TrainingOptions::new(Solver::Rmsprop).squared_decay(), 0.9);
        let o = TrainingOptions::default();
        assert_eq!(
            (o.max_epochs, o.mini_batch_size, o.l2_regularization),
            (30, 128, 1e-4)
        );
    }

    #[test]
    fn piecewise_schedule_drops_every_period() {
        let o =
            TrainingOptions::new(Solver::Sgdm).learn_rate_schedule(LearnRateSchedule::Piecewise {
                drop_factor: 0.5,
                drop_period: 2,
            });
        let rates: Vec<f32> = (0..5).map(|e| o.learn_rate_at(e, 7 * e)).collect();
        assert_eq!(rates, [0.01, 0.01, 0.005, 0.005, 0.0025]);
    }

    #[test]
    fn stored_options_without_last_mini_batch_discard_it() {
        let old = TrainingOptions::from_stored_json(r#"{"maxEpochs": 3}"#).unwrap();
        assert_eq!(old.last_mini_batch, LastMiniBatch::Discard);
        let json = serde_json::to_string(&TrainingOptions::default()).unwrap();
        let now = TrainingOptions::from_stored_json(&json).unwrap();
        assert_eq!(now, TrainingOptions::default());
        assert_eq!(now.last_mini_batch, LastMiniBatch::Keep);
    }

    #[test]
    fn json_subset_and_errors_name_the_option_or_line() {
        let o = TrainingOptions::from_json(r#"{"solver": "adam", "maxEpochs": 5, "sequenceLength": 20, "sequencePaddingDirection": "left"}"#, "o.json").unwrap();
        assert_eq!(
            (
                o.solver,
                o.max_epochs,
                o.sequence_length,
                o.sequence_padding_direction
            ),
            (
                Solver::Adam,
                5,
                SequenceLength::Fixed(20),
                PaddingDirection::Left
            )
        );
        let e = TrainingOptions::from_json("{\n \"maxEpochs\": 0\n}", "o.json").unwrap_err();
        assert!(e.to_string().contains("MaxEpochs"), "{e}");
        let e = TrainingOptions::from_json("{\n \"solver\": \"nadam\"\n}", "o.json").unwrap_err();
        assert!(e.to_string().starts_with("o.json:2:"), "{e}");
    }
}
