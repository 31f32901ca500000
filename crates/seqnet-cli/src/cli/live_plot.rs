//! The live training-progress picture (`seqnet train --plot`): an observer
//! that redraws the picture after every epoch and every validation, as
//! MATLAB's training-progress window follows training. Each picture is
//! written to a temporary file and renamed into place, so a viewer never
//! sees half a picture.

use seqnet_train::{TrainingEvent, TrainingObserver, TrainingRecord};
use std::path::Path;

/// Redraws the progress picture at `path` as training goes.
///
/// Drawing errors do not stop training: the first one is shown as a warning
/// and the picture is not tried again (the command draws the final picture
/// itself and reports its error then).
pub struct LivePlot<'p> {
    path: &'p Path,
    /// The record so far: the state's record after each epoch, plus the
    /// iterations seen since.
    record: TrainingRecord,
    failed: bool,
}

impl<'p> LivePlot<'p> {
    /// A picture at `path` (.png or .svg, checked before training).
    pub fn new(path: &'p Path) -> Self {
        LivePlot {
            path,
            record: TrainingRecord::default(),
            failed: false,
        }
    }

    fn draw(&mut self) {
        if self.failed || self.record.iterations.is_empty() {
            return;
        }
        let drawn = super::ensure_parent(self.path)
            .and_then(|()| crate::plots::training_progress(&self.record, self.path));
        if let Err(e) = drawn {
            eprintln!(
                "warning: the training progress is not drawn during training: {}",
                super::message(&e)
            );
            self.failed = true;
        }
    }
}

impl TrainingObserver for LivePlot<'_> {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        match event {
            TrainingEvent::Iteration(info) => self.record.iterations.push((*info).clone()),
            TrainingEvent::Validated { .. } => self.draw(),
            TrainingEvent::EpochFinished { state, .. } => {
                // The whole record, also what a resumed run trained before.
                self.record = state.record.clone();
                self.draw();
            }
            _ => {}
        }
    }
}
