//! seqnet's training: MATLAB's training options, the solvers, the
//! [`Trainer`] and its events, model files and checkpoints, PyTorch import
//! and the inference helpers.
//!
//! The library never prints: training reports through events
//! ([`TrainingEvent`]) to observers ([`TrainingObserver`]) such as MATLAB's
//! verbose table ([`VerboseTable`]).

#![forbid(unsafe_code)]

pub mod batches;
pub mod checkpoint;
pub mod distributed;
pub mod error;
pub mod events;
pub mod import_torch;
pub mod inference;
pub mod metric;
pub mod metrics;
pub mod model;
pub mod options;
pub mod record;
pub mod schedule;
pub mod solver;
pub mod train;
pub mod trainer;
pub mod training_loop;
pub mod verbose;

pub use batches::{BatchSource, DatastoreBatches, InMemoryBatches};
pub use distributed::{Communicator, SingleProcess, ThreadGroup};
pub use error::{CheckpointProblem, Error, Result};
pub use events::{FnObserver, TrainingEvent, TrainingObserver};
pub use import_torch::{import_torch, import_torch_files, TorchMapping};
pub use inference::{
    activations, classify_and_update_state, forecast, predict, predict_and_update_state,
    predict_sequences, Classification, PredictOptions,
};
pub use metric::{Metric, MetricAccumulator, MetricValues};
pub use metrics::{evaluate, evaluate_with};
pub use model::Model;
pub use options::{
    ExecutionEnvironment, GradientThresholdMethod, LastMiniBatch, OutputNetwork, SequenceLength,
    Shuffle, Solver, TrainingOptions,
};
pub use record::{IterationInfo, Metrics, StopReason, TrainingRecord};
pub use schedule::{FrequencyUnit, LearnRateSchedule};
pub use train::{resume_training, train_network};
pub use trainer::{fit, Trainer};
pub use training_loop::TrainingState;
pub use verbose::VerboseTable;
