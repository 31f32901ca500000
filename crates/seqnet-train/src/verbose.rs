//! MATLAB's verbose training table, as an observer of training events
//! writing to any [`io::Write`] (standard output, standard error, a log
//! file, a buffer).

use crate::events::{TrainingEvent, TrainingObserver};
use crate::metric::Metric;
use crate::options::TrainingOptions;
use crate::record::IterationInfo;
use std::io;

/// Writes MATLAB's verbose table: a header at the first iteration, a row at
/// the first iteration, every `frequency` iterations and at validations, the
/// last row and a closing rule at the end, then `Training finished: <reason>.`
///
/// The validation columns appear when the run validates (from
/// [`TrainingEvent::Started`]); each metric of [`VerboseTable::with_metrics`]
/// other than the one always shown (accuracy or RMSE) gets a mini-batch
/// column and, when validating, a validation column, before the learning rate. Write errors do not stop training: the first
/// one is kept ([`VerboseTable::finish`]) and the table writes nothing more.
#[derive(Debug)]
pub struct VerboseTable<W: io::Write> {
    out: W,
    frequency: usize,
    validating: bool,
    header_done: bool,
    classification: bool,
    metrics: Vec<Metric>,
    /// The latest iteration not yet shown (shown at the end).
    pending: Option<IterationInfo>,
    error: Option<io::Error>,
}

impl<W: io::Write> VerboseTable<W> {
    /// A table writing to `out`, a row every `frequency` iterations.
    pub fn new(out: W, frequency: usize) -> Self {
        VerboseTable {
            out,
            frequency: frequency.max(1),
            validating: false,
            header_done: false,
            classification: true,
            metrics: Vec::new(),
            pending: None,
            error: None,
        }
    }

    /// A table writing to `out` as `options` say (`VerboseFrequency`,
    /// `Metrics`), or `None` when `options.verbose` is off.
    pub fn for_options(out: W, options: &TrainingOptions) -> Option<Self> {
        options.verbose.then(|| {
            VerboseTable::new(out, options.verbose_frequency).with_metrics(&options.metrics)
        })
    }

    /// Shows columns for `metrics` too.
    pub fn with_metrics(mut self, metrics: &[Metric]) -> Self {
        self.metrics = metrics.to_vec();
        self
    }

    /// The metrics with columns of their own: all but the one always shown.
    fn extra_metrics(&self, classification: bool) -> Vec<Metric> {
        let shown = if classification {
            Metric::Accuracy
        } else {
            Metric::Rmse
        };
        self.metrics
            .iter()
            .copied()
            .filter(|m| *m != shown)
            .collect()
    }

    /// The writer back, or the first write error.
    pub fn finish(self) -> io::Result<W> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(self.out),
        }
    }

    fn write_line(&mut self, line: &str) {
        if self.error.is_none() {
            if let Err(e) = writeln!(self.out, "{line}").and_then(|_| self.out.flush()) {
                self.error = Some(e);
            }
        }
    }

    fn on_iteration(&mut self, info: &IterationInfo) {
        if !self.header_done {
            let header = self.header(info.accuracy.is_some());
            self.write_line(&header);
            self.header_done = true;
        }
        if info.iteration == 1
            || info.iteration.is_multiple_of(self.frequency)
            || info.validation.is_some()
        {
            let row = self.row(info);
            self.write_line(&row);
            self.pending = None;
        } else {
            self.pending = Some(info.clone());
        }
        self.classification = info.accuracy.is_some();
    }

    fn on_stopped(&mut self, reason: &dyn std::fmt::Display) {
        if let Some(info) = self.pending.take() {
            let row = self.row(&info);
            self.write_line(&row);
        }
        if self.header_done {
            let rule = self.rule(self.classification);
            self.write_line(&rule);
        }
        self.write_line(&format!("Training finished: {reason}."));
    }

    /// The columns: title, subtitle, width.
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
        for m in self.extra_metrics(classification) {
            c.push(("Mini-batch", m.title(), 10));
            if self.validating {
                c.push(("Validation", m.title(), 10));
            }
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
        let value = |v: Option<f32>, m: Metric| v.map(|v| m.format(v)).unwrap_or_default();
        for m in self.extra_metrics(info.accuracy.is_some()) {
            cells.push(value(info.metrics.get(m), m));
            if self.validating {
                cells.push(value(info.validation.and_then(|v| v.metrics.get(m)), m));
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
}

impl<W: io::Write> TrainingObserver for VerboseTable<W> {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        match event {
            TrainingEvent::Started { validating, .. } => self.validating = *validating,
            TrainingEvent::Iteration(info) => self.on_iteration(info),
            TrainingEvent::Stopped { reason, .. } => self.on_stopped(reason),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Metrics, StopReason, TrainingRecord};

    fn info(iteration: usize, validation: Option<Metrics>) -> IterationInfo {
        IterationInfo {
            epoch: 1 + (iteration - 1) / 3,
            iteration,
            loss: 0.5 / iteration as f32,
            accuracy: Some(0.25 * iteration as f32),
            rmse: None,
            learn_rate: 0.001,
            elapsed: 3661.0 + iteration as f64,
            validation,
            metrics: Default::default(),
        }
    }

    /// The whole table of a short classification run with validation at
    /// iteration 3, written by hand from MATLAB's layout.
    #[test]
    fn writes_matlab_s_table_with_validation_columns() {
        let mut table = VerboseTable::new(Vec::new(), 2);
        let validation = Metrics {
            loss: 0.75,
            accuracy: Some(0.5),
            rmse: None,
            metrics: Default::default(),
        };
        table.on_event(&TrainingEvent::Started {
            max_epochs: 2,
            validating: true,
            iterations_done: 0,
        });
        let infos: Vec<IterationInfo> = (1..=5)
            .map(|i| info(i, (i == 3).then_some(validation)))
            .collect();
        for i in &infos {
            table.on_event(&TrainingEvent::Iteration(i));
        }
        let record = TrainingRecord::default();
        table.on_event(&TrainingEvent::Stopped {
            reason: &StopReason::MaxEpochs,
            record: &record,
        });
        let text = String::from_utf8(table.finish().unwrap()).unwrap();
        // 8 columns of widths 7, 11, 14, 10, 12, 10, 10, 15, each with a space
        // either side, joined by '=': 89 + 16 + 7 = 112.
        let rule = format!("|{}|", "=".repeat(112));
        let rule = rule.as_str();
        let want = [
            rule,
            "|  Epoch  |  Iteration  |  Time Elapsed  | Mini-batch |  Mini-batch  | Validation | Validation |  Base Learning  |",
            "|         |             |   (hh:mm:ss)   |  Accuracy  |     Loss     |  Accuracy  |    Loss    |      Rate       |",
            rule,
            "|       1 |           1 |       01:01:02 |     25.00% |       0.5000 |            |            |       1.0000e-3 |",
            "|       1 |           2 |       01:01:03 |     50.00% |       0.2500 |            |            |       1.0000e-3 |",
            "|       1 |           3 |       01:01:04 |     75.00% |       0.1667 |     50.00% |     0.7500 |       1.0000e-3 |",
            "|       2 |           4 |       01:01:05 |    100.00% |       0.1250 |            |            |       1.0000e-3 |",
            "|       2 |           5 |       01:01:06 |    125.00% |       0.1000 |            |            |       1.0000e-3 |",
            rule,
            "Training finished: max epochs completed.",
        ];
        assert_eq!(text.lines().collect::<Vec<_>>(), want, "\n{text}");
    }

    /// Metric columns: F-score with its validation column, accuracy not
    /// twice; values as MATLAB writes fractions.
    #[test]
    fn metric_columns_follow_the_options() {
        let options = TrainingOptions::default()
            .verbose_frequency(1)
            .metrics(vec![Metric::Accuracy, Metric::Fscore]);
        let mut table = VerboseTable::for_options(Vec::new(), &options).unwrap();
        table.on_event(&TrainingEvent::Started {
            max_epochs: 1,
            validating: true,
            iterations_done: 0,
        });
        let mut values = crate::metric::MetricValues::default();
        values.set(Metric::Fscore, 0.75);
        let mut validation_values = values;
        validation_values.set(Metric::Fscore, 0.5);
        let mut first = info(1, None);
        first.metrics = values;
        let mut second = info(
            2,
            Some(Metrics {
                loss: 0.75,
                accuracy: Some(0.5),
                rmse: None,
                metrics: validation_values,
            }),
        );
        second.metrics = values;
        table.on_event(&TrainingEvent::Iteration(&first));
        table.on_event(&TrainingEvent::Iteration(&second));
        let text = String::from_utf8(table.finish().unwrap()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].ends_with("| Validation | Mini-batch | Validation |  Base Learning  |"),
            "{text}"
        );
        assert!(
            lines[2].ends_with("|    Loss    |  F-Score   |  F-Score   |      Rate       |"),
            "{text}"
        );
        assert!(
            lines[4].ends_with(
                "|            |            |     0.7500 |            |       1.0000e-3 |"
            ),
            "{text}"
        );
        assert!(
            lines[5].ends_with("|     0.7500 |     0.7500 |     0.5000 |       1.0000e-3 |"),
            "{text}"
        );
    }
}
