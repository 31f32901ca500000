//! seqnet's command-line tool: the library part.
//!
//! [`cli`] is the `seqnet` program itself (its arguments, one module per
//! command, and one-line errors); the binary only calls [`cli::main`].
//!
//! [`plots`] draws the pictures the tool writes: the training progress
//! ([`plots::training_progress`]), the confusion matrix
//! ([`plots::confusion_matrix`]) and activation heat maps
//! ([`plots::activations_heatmap`]), as PNG or SVG files.

#![forbid(unsafe_code)]

pub mod cli;
pub mod error;
pub mod plots;

pub use error::{CliError, Result};

/// The benchmark workloads (`seqnet bench`): see `bench/WORKLOADS.md`.
pub mod bench;
