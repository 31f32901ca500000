//! seqnet's command-line tool: the library part.
//!
//! [`plots`] draws the pictures the tool writes: the training progress
//! ([`plots::training_progress`]), the confusion matrix
//! ([`plots::confusion_matrix`]) and activation heat maps
//! ([`plots::activations_heatmap`]), as PNG or SVG files.

pub mod plots;

/// The benchmark workloads (`seqnet bench`): see `bench/WORKLOADS.md`.
pub mod bench;
