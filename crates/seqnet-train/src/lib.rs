//! seqnet's training: MATLAB's training options, the solvers, the training loop
//! and the inference helpers.

#![forbid(unsafe_code)]

pub mod checkpoint;
pub mod import_torch;
pub mod inference;
pub mod model;
pub mod options;
pub mod record;
pub mod solver;
pub mod train;
pub mod trainer;

pub use import_torch::{import_torch, import_torch_files, TorchMapping};
pub use inference::{
    activations, classify_and_update_state, forecast, predict, predict_and_update_state,
    predict_sequences, Classification, PredictOptions,
};
pub use model::Model;
pub use options::{
    GradientThresholdMethod, LearnRateSchedule, OutputNetwork, SequenceLength, Shuffle, Solver,
    TrainingOptions,
};
pub use record::{IterationInfo, Metrics, TrainingEvent, TrainingRecord, VerboseTable};
pub use train::{resume_training, train_network, train_network_with, DatastoreBatches};
pub use trainer::{
    evaluate, fit, fit_with, BatchSource, InMemoryBatches, TrainingControl, TrainingState,
};
