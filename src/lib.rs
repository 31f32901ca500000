//! seqnet: sequence neural networks (LSTM, BiLSTM, GRU) as graphs of named layers.
//!
//! This facade re-exports the crates; most programs only need the [`prelude`].

pub use seqnet_core as core;
pub use seqnet_core::*;

/// The names most programs use.
pub mod prelude {
    pub use seqnet_core::layers::*;
    pub use seqnet_core::{
        Activation, Error, LayerGraph, Mode, Network, PaddingDirection, Result, SeqLengths,
    };
}
