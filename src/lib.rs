//! seqnet: sequence neural networks (LSTM, BiLSTM, GRU) as graphs of named layers,
//! in the manner of MATLAB's Deep Learning Toolbox.
//!
//! This facade re-exports the crates; most programs only need the [`prelude`].
//!
//! [`Error`] and [`Result`] are seqnet-train's: every other crate's error
//! converts into it (`?` works on any seqnet call), as [`Error::Core`] for the
//! core's. The core's own error is [`core::Error`].

#![forbid(unsafe_code)]

pub use seqnet_core as core;
pub use seqnet_core::*;
pub use seqnet_data as data;
pub use seqnet_train as train;
// Shadows the core's `Error` and `Result` from the glob above.
pub use seqnet_train::{Error, Result};

/// The names most programs use.
pub mod prelude {
    pub use seqnet_core::layers::*;
    pub use seqnet_core::{Activation, LayerGraph, Mode, Network, PaddingDirection, SeqLengths};
    pub use seqnet_data::{
        Datastore, FolderDatastore, InMemoryDatastore, Observation, Sequence, SequenceLength,
        Target,
    };
    pub use seqnet_train::{
        train_network, Error, Model, Result, Solver, StopReason, Trainer, TrainingEvent,
        TrainingObserver, TrainingOptions, VerboseTable,
    };
}
