//! seqnet's training: MATLAB's training options, the solvers, the training loop
//! and the inference helpers.

pub mod options;
pub mod solver;

pub use options::{
    GradientThresholdMethod, LearnRateSchedule, OutputNetwork, SequenceLength, Shuffle, Solver,
    TrainingOptions,
};
