//! The training-progress picture, after MATLAB's training-progress window.

use std::path::Path;

use crate::CliError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};
use seqnet_train::{Metric, MetricValues, TrainingRecord};

use super::{
    anchored, bold, clean, compact, fit_text, nice_step, render, text, text_width, wrap_text,
    DrawResult, Format, Picture, INK, MUTED,
};

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;
/// The height each further metric panel adds.
const EXTRA_PANEL: u32 = 230;
/// Width of the information panel on the right.
const PANEL: u32 = 290;
/// The smoothing factor of the exponential moving average (as MATLAB's plot).
const SMOOTHING: f64 = 0.6;

const METRIC_RAW: RGBColor = RGBColor(158, 199, 235);
const METRIC_SMOOTH: RGBColor = RGBColor(0, 114, 189);
const LOSS_RAW: RGBColor = RGBColor(244, 190, 160);
const LOSS_SMOOTH: RGBColor = RGBColor(217, 83, 25);
const EPOCH_BAND: RGBColor = RGBColor(246, 246, 246);
const EPOCH_LINE: RGBColor = RGBColor(205, 205, 205);
const EPOCH_LINE_DENSE: RGBColor = RGBColor(226, 226, 226);
const GRID: RGBColor = RGBColor(232, 232, 232);

/// Writes the training progress of `record` to `path` as a 1200×800 picture,
/// PNG or SVG by the file's extension.
///
/// Like MATLAB's training-progress window it has two panels sharing the
/// iteration axis: the mini-batch accuracy in percent (classification) or
/// RMSE (regression) on top, and the loss below. Each shows the raw
/// mini-batch values as a light line, their smoothed course (a bias-corrected
/// exponential moving average with smoothing factor 0.6) as a bold line, the
/// validation figures as black dots joined by a dashed line, and the epochs
/// as alternating bands with their boundaries. A panel on the right gives the
/// results, the training time and cycle, and the legend. A record without any
/// accuracy or RMSE has the loss panel only. The other metrics of the record
/// (`--metrics`: precision, recall, F-score, AUC, MAE, MAPE) get a panel each
/// between the two, and the picture grows by 230 pixels for each. Values that
/// are not finite leave gaps in the lines.
///
/// # Errors
/// [`CliError::PictureFormat`] for an extension other than `.png` or `.svg`,
/// [`CliError::NothingToPlot`] for a record without iterations, and
/// [`CliError::Io`] when the file cannot be written; each names the path.
pub fn training_progress(record: &TrainingRecord, path: &Path) -> Result<(), CliError> {
    Format::of(path)?;
    if record.iterations.is_empty() {
        return Err(CliError::NothingToPlot {
            what: "the training progress",
            path: path.display().to_string(),
            reason: "the training record has no iterations".into(),
        });
    }
    render(&Progress::new(record), path)
}

/// Accuracy (in percent) or RMSE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetricKind {
    Accuracy,
    Rmse,
}

impl MetricKind {
    fn axis_label(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "Accuracy (%)",
            MetricKind::Rmse => "RMSE",
        }
    }

    fn name(self) -> &'static str {
        match self {
            MetricKind::Accuracy => "accuracy",
            MetricKind::Rmse => "RMSE",
        }
    }
}

/// One quantity over the iterations; a `NaN` value marks a gap.
struct Series {
    raw: Vec<(f64, f64)>,
    smooth: Vec<(f64, f64)>,
    validation: Vec<(f64, f64)>,
}

impl Series {
    fn new(raw: Vec<(f64, f64)>, validation: Vec<(f64, f64)>) -> Self {
        Series {
            smooth: smooth(&raw, SMOOTHING),
            raw,
            validation,
        }
    }

    /// The smallest and largest finite values of the raw, smoothed and validation lines.
    fn bounds(&self) -> Option<(f64, f64)> {
        let mut lo = f64::INFINITY;
        let mut hi = f64::NEG_INFINITY;
        for &(_, y) in self.raw.iter().chain(&self.validation) {
            if y.is_finite() {
                lo = lo.min(y);
                hi = hi.max(y);
            }
        }
        (lo <= hi).then_some((lo, hi))
    }
}

/// The bias-corrected exponential moving average of `points` (TensorBoard and
/// MATLAB style). Points that are not finite are skipped: the smoothed line
/// bridges them (the raw line shows the gap).
fn smooth(points: &[(f64, f64)], factor: f64) -> Vec<(f64, f64)> {
    let mut avg = 0.0;
    let mut weight = 1.0;
    points
        .iter()
        .filter(|p| p.0.is_finite() && p.1.is_finite())
        .map(|&(x, y)| {
            avg = factor * avg + (1.0 - factor) * y;
            weight *= factor;
            (x, avg / (1.0 - weight))
        })
        .collect()
}

/// The runs of consecutive finite points of `points`.
fn segments(points: &[(f64, f64)]) -> Vec<Vec<(f64, f64)>> {
    let mut out = Vec::new();
    let mut run = Vec::new();
    for &(x, y) in points {
        if x.is_finite() && y.is_finite() {
            run.push((x, y));
        } else if !run.is_empty() {
            out.push(std::mem::take(&mut run));
        }
    }
    if !run.is_empty() {
        out.push(run);
    }
    out
}

/// The prepared figures of a training record.
struct Progress<'a> {
    record: &'a TrainingRecord,
    metric: Option<(MetricKind, Series)>,
    /// The other metrics, in [`Metric::ALL`]'s order.
    extras: Vec<(Metric, Series)>,
    loss: Series,
    x_max: f64,
    /// (epoch, first x, last x) of each epoch's band.
    epochs: Vec<(usize, f64, f64)>,
}

impl<'a> Progress<'a> {
    fn new(record: &'a TrainingRecord) -> Self {
        let its = &record.iterations;
        let x = |i: usize| its[i].iteration as f64;
        let kind = if its.iter().any(|i| i.accuracy.is_some()) {
            Some(MetricKind::Accuracy)
        } else if its.iter().any(|i| i.rmse.is_some()) {
            Some(MetricKind::Rmse)
        } else {
            None
        };
        let value = |a: Option<f32>, r: Option<f32>| match kind {
            Some(MetricKind::Accuracy) => a.map_or(f64::NAN, |a| a as f64 * 100.0),
            Some(MetricKind::Rmse) => r.map_or(f64::NAN, |r| r as f64),
            None => f64::NAN,
        };
        let metric = kind.map(|kind| {
            let raw = (0..its.len())
                .map(|i| (x(i), value(its[i].accuracy, its[i].rmse)))
                .collect();
            let validation = (0..its.len())
                .filter_map(|i| its[i].validation.map(|v| (x(i), value(v.accuracy, v.rmse))))
                .collect();
            (kind, Series::new(raw, validation))
        });
        let extras = extra_metrics(record);
        let loss = Series::new(
            (0..its.len()).map(|i| (x(i), its[i].loss as f64)).collect(),
            (0..its.len())
                .filter_map(|i| its[i].validation.map(|v| (x(i), v.loss as f64)))
                .collect(),
        );
        let last = its.iter().map(|i| i.iteration).max().unwrap_or(1).max(1) as f64;
        let x_max = if its.len() == 1 { last + 1.0 } else { last };

        let mut epochs = Vec::new();
        let mut start = 0.0;
        let mut current = its[0].epoch;
        for pair in its.windows(2) {
            if pair[1].epoch != current {
                let end = pair[0].iteration as f64;
                epochs.push((current, start, end));
                start = end;
                current = pair[1].epoch;
            }
        }
        epochs.push((current, start, x_max));
        Progress {
            record,
            metric,
            extras,
            loss,
            x_max,
            epochs,
        }
    }

    /// Draws one panel: `series` with its y-axis `label` and colours.
    #[allow(clippy::too_many_arguments)]
    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        series: &Series,
        label: &str,
        colors: (RGBColor, RGBColor),
        y_range: (f64, f64),
        is_bottom: bool,
        epoch_labels: bool,
    ) -> DrawResult {
        let mut chart = ChartBuilder::on(area)
            .margin_left(12)
            .margin_right(24)
            .margin_top(if epoch_labels { 30 } else { 14 })
            .margin_bottom(if is_bottom { 10 } else { 4 })
            .x_label_area_size(if is_bottom { 50 } else { 28 })
            .y_label_area_size(74)
            .build_cartesian_2d(0f64..self.x_max, y_range.0..y_range.1)?;

        // Epoch bands and boundaries, under everything else.
        let (left, _) = chart.backend_coord(&(0.0, y_range.1));
        let (right, _) = chart.backend_coord(&(self.x_max, y_range.1));
        let band_px = (right - left) as f64 / self.epochs.len().max(1) as f64;
        let bands = band_px >= 16.0;
        for (k, &(_, a, b)) in self.epochs.iter().enumerate() {
            if bands && k % 2 == 1 {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(a, y_range.0), (b, y_range.1)],
                    EPOCH_BAND.filled(),
                )))?;
            }
        }
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .x_labels((self.x_max as usize + 1).clamp(2, 12))
            .y_labels(7)
            .x_label_formatter(&|v| {
                if (v - v.round()).abs() < 1e-9 {
                    format!("{}", v.round() as i64)
                } else {
                    String::new()
                }
            })
            .y_label_formatter(&|v| compact(*v, 3))
            .label_style(text(15.0, &MUTED))
            .axis_desc_style(text(18.0, &INK))
            .x_desc(if is_bottom { "Iteration" } else { "" })
            .y_desc(label)
            .draw()?;
        let step = if band_px >= 6.0 {
            1
        } else {
            nice_step(6.0 / band_px.max(1e-6)) as usize
        };
        // Narrow epochs get lighter boundaries, so that they do not hide the data.
        let line = if bands { EPOCH_LINE } else { EPOCH_LINE_DENSE };
        for (k, &(epoch, _, b)) in self.epochs.iter().enumerate() {
            if k + 1 < self.epochs.len() && (step == 1 || epoch % step == 0) {
                chart.draw_series(std::iter::once(PathElement::new(
                    vec![(b, y_range.0), (b, y_range.1)],
                    line.stroke_width(1),
                )))?;
            }
        }
        if series.bounds().is_none() {
            let (cx, _) = chart.backend_coord(&(self.x_max / 2.0, y_range.1));
            let (_, cy) = chart.backend_coord(&(0.0, (y_range.0 + y_range.1) / 2.0));
            let (ox, oy) = area.get_base_pixel();
            area.draw_text(
                "No finite values to show",
                &anchored(&text(18.0, &MUTED), HPos::Center, VPos::Center),
                (cx - ox, cy - oy),
            )?;
        }

        let (raw, smooth) = colors;
        for run in segments(&series.raw) {
            if run.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(run[0], 3, raw.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(run, raw.stroke_width(1)))?;
            }
        }
        for run in segments(&series.smooth) {
            if run.len() == 1 {
                chart.draw_series(std::iter::once(Circle::new(run[0], 4, smooth.filled())))?;
            } else {
                chart.draw_series(LineSeries::new(run, smooth.stroke_width(2)))?;
            }
        }
        let validation: Vec<(f64, f64)> = segments(&series.validation).concat();
        if validation.len() > 1 {
            chart.draw_series(DashedLineSeries::new(
                validation.clone(),
                7,
                5,
                BLACK.stroke_width(1),
            ))?;
        }
        chart.draw_series(
            validation
                .iter()
                .map(|&p| Circle::new(p, 4, BLACK.filled())),
        )?;

        if epoch_labels {
            self.epoch_labels(area, &chart, band_px)?;
        }
        Ok(())
    }

    /// Writes "Epoch N" above the bands, skipping labels that would collide.
    fn epoch_labels<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        chart: &ChartContext<
            DB,
            Cartesian2d<
                plotters::coord::types::RangedCoordf64,
                plotters::coord::types::RangedCoordf64,
            >,
        >,
        band_px: f64,
    ) -> DrawResult {
        const SIZE: f64 = 15.0;
        let style = text(SIZE, &MUTED);
        let last_epoch = self.epochs.last().map_or(1, |e| e.0);
        let widest = text_width(&format!("Epoch {last_epoch}"), SIZE) as f64;
        let step = nice_step((widest + 14.0) / band_px.max(1e-6)).max(1.0) as usize;
        let y_top = chart.y_range().end;
        let (plot_left, top) = chart.backend_coord(&(0.0, y_top));
        let (plot_right, _) = chart.backend_coord(&(self.x_max, y_top));
        let (ox, oy) = (area.get_base_pixel().0, area.get_base_pixel().1);
        let mut last_right = i32::MIN;
        for (k, &(epoch, a, b)) in self.epochs.iter().enumerate() {
            if !(k == 0 || epoch % step == 0) {
                continue;
            }
            let label = format!("Epoch {epoch}");
            let w = text_width(&label, SIZE) as i32;
            let (xa, _) = chart.backend_coord(&(a, y_top));
            let (xb, _) = chart.backend_coord(&(b, y_top));
            let centre = ((xa + xb) / 2).clamp(plot_left + w / 2, plot_right - w / 2);
            if centre - w / 2 < last_right + 10 {
                continue;
            }
            last_right = centre + w / 2;
            area.draw_text(
                &label,
                &anchored(&style, HPos::Center, VPos::Bottom),
                (centre - ox, top - oy - 6),
            )?;
        }
        Ok(())
    }

    /// The information panel: results, training time and cycle, legend.
    fn info<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let (w, h) = area.dim_in_pixel();
        area.draw(&PathElement::new(
            vec![(0, 20), (0, h as i32 - 20)],
            GRID.stroke_width(1),
        ))?;
        let head = bold(19.0, &INK);
        let body = text(16.5, &INK);
        let x0 = 22;
        let max_w = w.saturating_sub(x0 as u32 + 24);
        let mut y = 72;
        let line = |s: &str, style: &TextStyle, y: &mut i32, gap: i32| -> DrawResult {
            let mut lines = wrap_text(&clean(s), style.font.get_size(), max_w);
            // At most three lines, the last one ending in an ellipsis when cut.
            if lines.len() > 3 {
                lines.truncate(3);
                lines[2] = fit_text(&format!("{}…", lines[2]), style.font.get_size(), max_w);
            }
            for l in lines {
                area.draw_text(&l, &anchored(style, HPos::Left, VPos::Top), (x0, *y))?;
                *y += 20;
            }
            *y += gap;
            Ok(())
        };
        let record = self.record;
        let last = record.iterations.last();
        let final_validation = record
            .final_validation
            .or_else(|| record.iterations.iter().rev().find_map(|i| i.validation));

        line("Results", &head, &mut y, 4)?;
        if let Some(v) = final_validation {
            match (self.metric.as_ref().map(|m| m.0), v.accuracy, v.rmse) {
                (Some(MetricKind::Accuracy), Some(a), _) => line(
                    &format!("Validation accuracy: {:.2} %", a * 100.0),
                    &body,
                    &mut y,
                    0,
                )?,
                (Some(MetricKind::Rmse), _, Some(r)) => line(
                    &format!("Validation RMSE: {}", compact(r as f64, 4)),
                    &body,
                    &mut y,
                    0,
                )?,
                _ => {}
            }
            for (m, value) in v.metrics.iter().filter(|(m, _)| is_extra(*m)) {
                line(
                    &format!("Validation {}: {}", m.title(), m.format(value)),
                    &body,
                    &mut y,
                    0,
                )?;
            }
            line(
                &format!("Validation loss: {}", compact(v.loss as f64, 4)),
                &body,
                &mut y,
                0,
            )?;
        } else {
            line("No validation data", &body, &mut y, 0)?;
        }
        if let Some(reason) = &record.stop_reason {
            line(&format!("Training finished: {reason}"), &body, &mut y, 0)?;
        }
        y += 14;

        line("Training time", &head, &mut y, 4)?;
        let elapsed = last.map_or(f64::NAN, |i| i.elapsed);
        let elapsed = if elapsed.is_finite() && elapsed >= 0.0 {
            let s = elapsed.round() as u64;
            format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
        } else {
            "unknown".to_string()
        };
        line(&format!("Elapsed: {elapsed}"), &body, &mut y, 14)?;

        line("Training cycle", &head, &mut y, 4)?;
        if let Some(last) = last {
            line(&format!("Epochs: {}", last.epoch), &body, &mut y, 0)?;
            line(&format!("Iterations: {}", last.iteration), &body, &mut y, 0)?;
        }
        if record.iterations_per_epoch > 0 {
            line(
                &format!("Iterations per epoch: {}", record.iterations_per_epoch),
                &body,
                &mut y,
                0,
            )?;
        }
        if let Some(last) = last {
            line(
                &format!("Learning rate: {}", compact(last.learn_rate as f64, 3)),
                &body,
                &mut y,
                0,
            )?;
        }
        y += 14;

        line("Legend", &head, &mut y, 6)?;
        let mut entries: Vec<(Sample, String)> = Vec::new();
        let validating = !self.loss.validation.is_empty();
        if let Some((kind, _)) = &self.metric {
            let name = if self.extras.is_empty() {
                kind.name()
            } else {
                "metrics"
            };
            entries.push((
                Sample::Line(METRIC_SMOOTH, 2),
                format!("Training {name} (smoothed)"),
            ));
            entries.push((Sample::Line(METRIC_RAW, 1), format!("Training {name}")));
            if validating {
                entries.push((Sample::Validation, format!("Validation {name}")));
            }
        }
        entries.push((
            Sample::Line(LOSS_SMOOTH, 2),
            "Training loss (smoothed)".into(),
        ));
        entries.push((Sample::Line(LOSS_RAW, 1), "Training loss".into()));
        if validating {
            entries.push((Sample::Validation, "Validation loss".into()));
        }
        entries.push((Sample::Band, "Epoch".into()));
        for (sample, label) in entries {
            let cy = y + 9;
            match sample {
                Sample::Line(c, width) => {
                    area.draw(&PathElement::new(
                        vec![(x0, cy), (x0 + 30, cy)],
                        c.stroke_width(width),
                    ))?;
                }
                Sample::Validation => {
                    area.draw(&PathElement::new(
                        vec![(x0, cy), (x0 + 8, cy)],
                        BLACK.stroke_width(1),
                    ))?;
                    area.draw(&PathElement::new(
                        vec![(x0 + 22, cy), (x0 + 30, cy)],
                        BLACK.stroke_width(1),
                    ))?;
                    area.draw(&Circle::new((x0 + 15, cy), 4, BLACK.filled()))?;
                }
                Sample::Band => {
                    area.draw(&Rectangle::new(
                        [(x0, cy - 7), (x0 + 30, cy + 7)],
                        EPOCH_BAND.filled(),
                    ))?;
                    area.draw(&PathElement::new(
                        vec![(x0 + 30, cy - 7), (x0 + 30, cy + 7)],
                        EPOCH_LINE.stroke_width(1),
                    ))?;
                }
            }
            area.draw_text(
                &label,
                &anchored(&body, HPos::Left, VPos::Center),
                (x0 + 40, cy),
            )?;
            y += 22;
        }
        Ok(())
    }
}

/// A legend entry's sample.
enum Sample {
    Line(RGBColor, u32),
    Validation,
    Band,
}

/// The y-range of a panel for values within `bounds`.
fn y_range(kind: Option<MetricKind>, bounds: Option<(f64, f64)>) -> (f64, f64) {
    match (kind, bounds) {
        (Some(MetricKind::Accuracy), b) => {
            let hi = b.map_or(100.0, |b| b.1.max(100.0));
            let lo = b.map_or(0.0, |b| b.0.min(0.0));
            (lo, hi)
        }
        (_, None) => (0.0, 1.0),
        (_, Some((lo, hi))) => {
            let lo = lo.min(0.0);
            let hi = if hi > lo { hi } else { lo + 1.0 };
            (lo, hi + (hi - lo) * 0.06)
        }
    }
}

impl Picture for Progress<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEIGHT + EXTRA_PANEL * self.extras.len() as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        let (main, side) = root.split_horizontally(WIDTH - PANEL);
        let (title, plots) = main.split_vertically(58);
        title.draw_text(
            "Training Progress",
            &anchored(&bold(30.0, &INK), HPos::Left, VPos::Center),
            (28, 34),
        )?;
        // The panels from top to bottom: label, series, colours, y-range.
        let mut panels: Vec<PanelSpec> = Vec::new();
        if let Some((kind, series)) = &self.metric {
            panels.push((
                kind.axis_label().to_string(),
                series,
                (METRIC_RAW, METRIC_SMOOTH),
                y_range(Some(*kind), series.bounds()),
            ));
        }
        for (metric, series) in &self.extras {
            panels.push((
                extra_label(*metric),
                series,
                (METRIC_RAW, METRIC_SMOOTH),
                extra_range(*metric, series.bounds()),
            ));
        }
        panels.push((
            "Loss".to_string(),
            &self.loss,
            (LOSS_RAW, LOSS_SMOOTH),
            y_range(None, self.loss.bounds()),
        ));
        let areas = plots.split_evenly((panels.len(), 1));
        let last = panels.len() - 1;
        for (k, ((label, series, colors, range), area)) in panels.iter().zip(&areas).enumerate() {
            self.panel(area, series, label, *colors, *range, k == last, k == 0)?;
        }
        self.info(&side)
    }
}

/// One panel of the picture: y-axis label, series, colours (raw, smoothed), y-range.
type PanelSpec<'s> = (String, &'s Series, (RGBColor, RGBColor), (f64, f64));

/// Whether `metric` gets a panel of its own (accuracy and RMSE share the top one).
fn is_extra(metric: Metric) -> bool {
    !matches!(metric, Metric::Accuracy | Metric::Rmse)
}

/// The series of every metric besides accuracy and RMSE that the record has.
fn extra_metrics(record: &TrainingRecord) -> Vec<(Metric, Series)> {
    let its = &record.iterations;
    let value = |values: &MetricValues, m: Metric| values.get(m).map_or(f64::NAN, |v| v as f64);
    Metric::ALL
        .into_iter()
        .filter(|m| is_extra(*m))
        .filter(|m| {
            its.iter().any(|i| {
                i.metrics.get(*m).is_some()
                    || i.validation.is_some_and(|v| v.metrics.get(*m).is_some())
            })
        })
        .map(|m| {
            let raw = its
                .iter()
                .map(|i| (i.iteration as f64, value(&i.metrics, m)))
                .collect();
            let validation = its
                .iter()
                .filter_map(|i| {
                    i.validation
                        .map(|v| (i.iteration as f64, value(&v.metrics, m)))
                })
                .collect();
            (m, Series::new(raw, validation))
        })
        .collect()
}

/// The y-axis label of a metric panel.
fn extra_label(metric: Metric) -> String {
    if metric.in_percent() {
        format!("{} (%)", metric.title())
    } else {
        metric.title().to_string()
    }
}

/// The y-range of a metric panel: [0, 1] for fractions, else from the values.
fn extra_range(metric: Metric, bounds: Option<(f64, f64)>) -> (f64, f64) {
    match metric {
        Metric::Precision | Metric::Recall | Metric::Fscore | Metric::Auc => (
            bounds.map_or(0.0, |b| b.0.min(0.0)),
            bounds.map_or(1.0, |b| b.1.max(1.0)),
        ),
        _ => y_range(None, bounds),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_bias_corrected_and_skips_gaps() {
        let s = smooth(&[(1.0, 2.0), (2.0, f64::NAN), (3.0, 2.0)], 0.6);
        assert_eq!(s.len(), 2);
        assert!((s[0].1 - 2.0).abs() < 1e-12);
        assert_eq!(s[1].0, 3.0);
        assert!((s[1].1 - 2.0).abs() < 1e-12);
        let s = smooth(&[(1.0, 0.0), (2.0, 1.0)], 0.6);
        // (0.6 * 0.4 * 0 + 0.4 * 1) / (1 - 0.36)
        assert!((s[1].1 - 0.4 / 0.64).abs() < 1e-12);
    }

    #[test]
    fn segments_split_at_gaps() {
        let s = segments(&[(1.0, 1.0), (2.0, f64::NAN), (3.0, 1.0), (4.0, 2.0)]);
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 1.0), (4.0, 2.0)]]);
    }
}
