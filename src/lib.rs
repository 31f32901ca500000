//! seqnet: sequence neural networks (LSTM, BiLSTM, GRU) as graphs of named layers,
//! in the manner of MATLAB's Deep Learning Toolbox.
//!
//! This facade re-exports the crates; most programs only need the [`prelude`].

#![forbid(unsafe_code)]

pub use seqnet_core as core;
pub use seqnet_core::*;
pub use seqnet_data as data;
pub use seqnet_train as train;

/// The names most programs use.
pub mod prelude {
    pub use seqnet_core::layers::*;
    pub use seqnet_core::{
        Activation, Error, LayerGraph, Mode, Network, PaddingDirection, Result, SeqLengths,
    };
    pub use seqnet_data::{
        Datastore, FolderDatastore, InMemoryDatastore, Observation, Sequence, SequenceLength,
        Target,
    };
    pub use seqnet_train::{train_network, Model, Solver, TrainingOptions};
}
