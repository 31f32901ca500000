//! Training progress on standard error: indicatif bars (the default),
//! MATLAB's verbose table (`--verbose`) or nothing (`--quiet`).
//!
//! The default shows two bars while a terminal is attached: the epochs, and
//! the iterations of the current epoch with the latest mini-batch loss and
//! accuracy (or RMSE). Without a terminal (a log file, CI) it prints a plain
//! line about every tenth of the training instead.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use seqnet_train::{
    IterationInfo, LastMiniBatch, Metric, MetricValues, TrainingEvent, TrainingObserver,
    TrainingOptions, VerboseTable,
};
use std::io::{self, IsTerminal};
use std::time::Duration;

/// How training progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verbosity {
    /// Progress bars (plain lines without a terminal).
    Bars,
    /// MATLAB's verbose table.
    Table,
    /// Nothing.
    Quiet,
}

impl Verbosity {
    /// The display `--quiet` and `--verbose` ask for.
    pub fn from_flags(quiet: bool, verbose: bool) -> Self {
        match (quiet, verbose) {
            (true, _) => Verbosity::Quiet,
            (false, true) => Verbosity::Table,
            _ => Verbosity::Bars,
        }
    }
}

/// Shows training events as [`Verbosity`] says: an observer of training.
pub struct Progress {
    display: Verbosity,
    table: VerboseTable<io::Stderr>,
    bars: Option<Bars>,
    max_epochs: usize,
    per_epoch: usize,
    in_epoch: usize,
    last: Option<IterationInfo>,
    line_every: usize,
}

struct Bars {
    _multi: MultiProgress,
    epochs: ProgressBar,
    epoch: ProgressBar,
}

impl Progress {
    /// A display for training `observations` with `options` (`MaxEpochs`,
    /// the mini-batches, and for the table `VerboseFrequency` and `Metrics`).
    pub fn new(display: Verbosity, options: &TrainingOptions, observations: usize) -> Self {
        let max_epochs = options.max_epochs;
        let per_epoch = iterations_per_epoch(
            observations,
            options.mini_batch_size,
            options.last_mini_batch,
        );
        let bars = (display == Verbosity::Bars && std::io::stderr().is_terminal()).then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(12));
            let epochs = multi.add(ProgressBar::new(max_epochs as u64));
            epochs.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:32.green/dim}] {pos}/{len} epochs  {elapsed_precise} (eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            epochs.set_prefix("training");
            let epoch = multi.add(ProgressBar::new(per_epoch.max(1) as u64));
            epoch.set_style(
                ProgressStyle::with_template(
                    "{prefix:>10} [{bar:32.cyan/dim}] {pos}/{len} iterations  {msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            epoch.set_prefix("epoch 1");
            epochs.enable_steady_tick(Duration::from_millis(250));
            Bars {
                _multi: multi,
                epochs,
                epoch,
            }
        });
        Progress {
            display,
            table: VerboseTable::new(io::stderr(), options.verbose_frequency)
                .with_metrics(&options.metrics),
            bars,
            max_epochs,
            per_epoch: per_epoch.max(1),
            in_epoch: 0,
            last: None,
            line_every: (max_epochs / 10).max(1),
        }
    }

    fn bar_event(&mut self, event: &TrainingEvent) {
        match event {
            TrainingEvent::Iteration(info) => {
                self.in_epoch += 1;
                if let Some(b) = &self.bars {
                    if self.in_epoch as u64 > b.epoch.length().unwrap_or(0) {
                        b.epoch.set_length(self.in_epoch as u64);
                    }
                    b.epoch.set_position(self.in_epoch as u64);
                    b.epoch.set_message(figures(info));
                }
                self.last = Some((*info).clone());
            }
            TrainingEvent::EpochFinished { epoch, .. } => {
                if *epoch == 1 {
                    self.per_epoch = self.in_epoch.max(1);
                }
                self.in_epoch = 0;
                match &self.bars {
                    Some(b) => {
                        b.epochs.set_position(*epoch as u64);
                        b.epoch.set_length(self.per_epoch as u64);
                        b.epoch.set_position(0);
                        b.epoch.set_prefix(format!("epoch {}", epoch + 1));
                    }
                    None => {
                        if epoch % self.line_every == 0 || *epoch == self.max_epochs {
                            if let Some(info) = &self.last {
                                eprintln!(
                                    "epoch {epoch}/{}  iteration {}  {}  ({:.1} s)",
                                    self.max_epochs,
                                    info.iteration,
                                    figures(info),
                                    info.elapsed
                                );
                            }
                        }
                    }
                }
            }
            TrainingEvent::Stopped { reason, .. } => {
                if let Some(b) = self.bars.take() {
                    b.epoch.finish_and_clear();
                    b.epochs.finish_and_clear();
                }
                eprintln!("training finished: {reason}");
            }
            _ => {}
        }
    }

    /// Clears the bars (after an error).
    pub fn clear(&mut self) {
        if let Some(b) = self.bars.take() {
            b.epoch.finish_and_clear();
            b.epochs.finish_and_clear();
        }
    }
}

impl TrainingObserver for Progress {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        match self.display {
            Verbosity::Quiet => {}
            Verbosity::Table => self.table.on_event(event),
            Verbosity::Bars => self.bar_event(event),
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.clear();
    }
}

/// `loss 0.1234  accuracy 95.0%  fscore 0.9412` (and the validation
/// figures) of one iteration.
pub(crate) fn figures(info: &IterationInfo) -> String {
    let mut s = format!("loss {:.4}", info.loss);
    if let Some(a) = info.accuracy {
        s.push_str(&format!("  accuracy {:.1}%", a * 100.0));
    }
    if let Some(r) = info.rmse {
        s.push_str(&format!("  rmse {r:.4}"));
    }
    s.push_str(&extra_metrics(&info.metrics, "  "));
    if let Some(v) = &info.validation {
        s.push_str(&format!("  validation loss {:.4}", v.loss));
        if let Some(a) = v.accuracy {
            s.push_str(&format!(" accuracy {:.1}%", a * 100.0));
        }
        if let Some(r) = v.rmse {
            s.push_str(&format!(" rmse {r:.4}"));
        }
        s.push_str(&extra_metrics(&v.metrics, " "));
    }
    s
}

/// The metrics besides accuracy and RMSE (shown anyway), each after `gap`:
/// `  fscore 0.9412  auc 0.9901`.
pub(crate) fn extra_metrics(values: &MetricValues, gap: &str) -> String {
    values
        .iter()
        .filter(|(m, _)| !matches!(m, Metric::Accuracy | Metric::Rmse))
        .map(|(m, v)| format!("{gap}{m} {}", m.format(v)))
        .collect()
}

/// How many iterations one epoch has: the mini-batches, the last partial
/// one included when kept (and always when the data is smaller than a
/// mini-batch).
pub fn iterations_per_epoch(
    observations: usize,
    mini_batch_size: usize,
    last: LastMiniBatch,
) -> usize {
    let size = mini_batch_size.max(1);
    if observations < size {
        1
    } else if last == LastMiniBatch::Keep {
        observations.div_ceil(size)
    } else {
        observations / size
    }
}
