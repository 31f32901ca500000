//! What training reports: per-iteration figures, events for progress displays,
//! and MATLAB's verbose table.

use serde::{Deserialize, Serialize};

/// The figures of one training iteration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IterationInfo {
    /// 1-based epoch.
    pub epoch: usize,
    /// 1-based iteration, counted over the whole training.
    pub iteration: usize,
    /// The mini-batch loss (with the loss layers' normalization).
    pub loss: f32,
    /// Mini-batch accuracy in [0, 1] (classification).
    pub accuracy: Option<f32>,
    /// Mini-batch root mean squared error (regression).
    pub rmse: Option<f32>,
    pub learn_rate: f32,
    /// Seconds since training started.
    pub elapsed: f64,
    pub validation: Option<Metrics>,
}

/// Loss and metric of a data set or mini-batch.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub loss: f32,
    pub accuracy: Option<f32>,
    pub rmse: Option<f32>,
}

/// The whole training history (MATLAB's `info` output of `trainNetwork`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingRecord {
    pub iterations: Vec<IterationInfo>,
    /// Iterations per epoch.
    pub iterations_per_epoch: usize,
    /// Why training ended.
    pub stop_reason: String,
    /// The checkpoint written when training was interrupted, if any.
    #[serde(default)]
    pub checkpoint: Option<std::path::PathBuf>,
    /// The validation loss of the returned network, when validating.
    pub final_validation: Option<Metrics>,
}

/// Something that happened during training, for progress bars and plots.
#[derive(Debug, Clone)]
pub enum TrainingEvent<'a> {
    Started {
        max_epochs: usize,
    },
    Iteration(&'a IterationInfo),
    /// An epoch ended; `network` and `state` are as they are now (for checkpoints).
    EpochFinished {
        epoch: usize,
        network: &'a seqnet_core::Network,
        state: &'a crate::trainer::TrainingState,
    },
    Finished {
        reason: &'a str,
    },
}

/// Prints MATLAB's verbose training table, one row every `frequency` iterations,
/// at the first iteration, at validations and at the end.
#[derive(Debug)]
pub struct VerboseTable {
    pub frequency: usize,
    pub validating: bool,
    header_done: bool,
    classification: bool,
    last: Option<IterationInfo>,
}

impl VerboseTable {
    pub fn new(frequency: usize, validating: bool) -> Self {
        VerboseTable {
            frequency: frequency.max(1),
            validating,
            header_done: false,
            classification: true,
            last: None,
        }
    }

    fn columns(&self, classification: bool) -> Vec<(&'static str, &'static str, usize)> {
        let metric = if classification { "Accuracy" } else { "RMSE" };
        let mut c = vec![
            ("Epoch", "", 7),
            ("Iteration", "", 11),
            ("Time Elapsed", "(hh:mm:ss)", 14),
            ("Mini-batch", metric, 10),
            ("Mini-batch", "Loss", 12),
        ];
        if self.validating {
            c.push(("Validation", metric, 10));
            c.push(("Validation", "Loss", 10));
        }
        c.push(("Base Learning", "Rate", 15));
        c
    }

    fn header(&self, classification: bool) -> String {
        let cols = self.columns(classification);
        let rule = self.rule(classification);
        let line = |top: bool| {
            format!(
                "|{}|",
                cols.iter()
                    .map(|c| format!(" {:^w$} ", if top { c.0 } else { c.1 }, w = c.2))
                    .collect::<Vec<_>>()
                    .join("|")
            )
        };
        format!("{rule}\n{}\n{}\n{rule}", line(true), line(false))
    }

    fn row(&self, info: &IterationInfo) -> String {
        let secs = info.elapsed as u64;
        let time = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
        let metric = |a: Option<f32>, r: Option<f32>| match (a, r) {
            (Some(a), _) => format!("{:.2}%", a * 100.0),
            (_, Some(r)) => format!("{r:.4}"),
            _ => String::new(),
        };
        let mut cells = vec![
            info.epoch.to_string(),
            info.iteration.to_string(),
            time,
            metric(info.accuracy, info.rmse),
            format!("{:.4}", info.loss),
        ];
        if self.validating {
            match &info.validation {
                Some(v) => {
                    cells.push(metric(v.accuracy, v.rmse));
                    cells.push(format!("{:.4}", v.loss));
                }
                None => cells.extend([String::new(), String::new()]),
            }
        }
        cells.push(format!("{:.4e}", info.learn_rate));
        let cols = self.columns(info.accuracy.is_some());
        format!(
            "|{}|",
            cells
                .iter()
                .zip(&cols)
                .map(|(c, col)| format!(" {c:>w$} ", w = col.2))
                .collect::<Vec<_>>()
                .join("|")
        )
    }

    fn rule(&self, classification: bool) -> String {
        format!(
            "|{}|",
            self.columns(classification)
                .iter()
                .map(|c| "=".repeat(c.2 + 2))
                .collect::<Vec<_>>()
                .join("=")
        )
    }

    /// Handles one event, returning the lines to print (if any).
    pub fn lines(&mut self, event: &TrainingEvent) -> Vec<String> {
        let mut out = Vec::new();
        match event {
            TrainingEvent::Iteration(info) => {
                if !self.header_done {
                    out.push(self.header(info.accuracy.is_some()));
                    self.header_done = true;
                }
                if info.iteration == 1
                    || info.iteration.is_multiple_of(self.frequency)
                    || info.validation.is_some()
                {
                    out.push(self.row(info));
                    self.last = None;
                } else {
                    self.last = Some((*info).clone());
                }
                self.classification = info.accuracy.is_some();
            }
            TrainingEvent::Finished { reason } => {
                if let Some(info) = self.last.take() {
                    out.push(self.row(&info));
                }
                if self.header_done {
                    out.push(self.rule(self.classification));
                }
                out.push(format!("Training finished: {reason}."));
            }
            _ => {}
        }
        out
    }
}
