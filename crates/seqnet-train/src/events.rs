//! Training events and their observers. The library never prints: the
//! verbose table ([`crate::VerboseTable`]), a progress bar or a plot watch
//! the events a [`crate::Trainer`] emits.
//!
//! # Order
//!
//! One `Started`; then per iteration an `Iteration`, followed by a
//! `Validated` when the network was validated at that iteration; at the end
//! of each epoch an `EpochFinished`, followed by a `CheckpointWritten` when
//! checkpoints are on; when an interrupted run writes its checkpoint, a
//! `CheckpointWritten`; last, one `Stopped` with the reason and the record.
//! A run that fails (a non-finite loss, unreadable data) ends without
//! `Stopped`: the error is the run's result.

use crate::record::{IterationInfo, Metrics, StopReason, TrainingRecord};
use crate::training_loop::TrainingState;
use seqnet_core::Network;
use std::path::Path;

/// Something that happened during training.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum TrainingEvent<'a> {
    /// Training starts, or resumes after `iterations_done` iterations.
    Started {
        max_epochs: usize,
        /// Whether validation data was given.
        validating: bool,
        /// Iterations trained before this run (0 unless resuming).
        iterations_done: usize,
    },
    /// An iteration (one chunk of a mini-batch) was trained on.
    Iteration(&'a IterationInfo),
    /// The network was validated after iteration `iteration` (1-based) of
    /// epoch `epoch` (1-based); `metrics` are also in that iteration's
    /// [`IterationInfo::validation`].
    Validated {
        epoch: usize,
        iteration: usize,
        metrics: &'a Metrics,
    },
    /// Epoch `epoch` (1-based) ended; `network` and `state` are as they are
    /// now (what a checkpoint holds).
    EpochFinished {
        epoch: usize,
        network: &'a Network,
        state: &'a TrainingState,
    },
    /// A checkpoint was written to `path` after `iteration` iterations.
    CheckpointWritten { path: &'a Path, iteration: usize },
    /// Training ended: why, and the whole record.
    Stopped {
        reason: &'a StopReason,
        record: &'a TrainingRecord,
    },
}

/// Watches a training run. Attach observers with [`crate::Trainer::observer`]
/// (or a closure with [`crate::Trainer::on_event`]).
pub trait TrainingObserver {
    /// Called with every event, in the order the [module](self) describes.
    fn on_event(&mut self, event: &TrainingEvent<'_>);

    /// Asked between mini-batches: `true` ends training there with
    /// [`StopReason::StopRequested`] (as a MATLAB output function returning
    /// true does). Never, by default.
    fn wants_stop(&self) -> bool {
        false
    }
}

impl<T: TrainingObserver + ?Sized> TrainingObserver for &mut T {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        (**self).on_event(event)
    }
    fn wants_stop(&self) -> bool {
        (**self).wants_stop()
    }
}

impl<T: TrainingObserver + ?Sized> TrainingObserver for Box<T> {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        (**self).on_event(event)
    }
    fn wants_stop(&self) -> bool {
        (**self).wants_stop()
    }
}

/// A closure as an observer (see [`crate::Trainer::on_event`]).
pub struct FnObserver<F>(pub F);

impl<F: FnMut(&TrainingEvent<'_>)> TrainingObserver for FnObserver<F> {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        (self.0)(event)
    }
}

/// The observers of one run, in the order they were attached.
pub(crate) struct Observers<'o, 'a> {
    pub list: &'o mut [Box<dyn TrainingObserver + 'a>],
}

impl Observers<'_, '_> {
    /// Gives `event` to every observer.
    pub fn emit(&mut self, event: &TrainingEvent<'_>) {
        for o in self.list.iter_mut() {
            o.on_event(event);
        }
    }

    /// Whether any observer asks to stop.
    pub fn want_stop(&self) -> bool {
        self.list.iter().any(|o| o.wants_stop())
    }
}
