//! The forecast picture, after MATLAB's "Time Series Forecasting Using Deep
//! Learning": per channel, the observed steps, the forecast after them and,
//! where the data has them, the true values.

use std::path::Path;

use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use crate::CliError;

use super::{
    anchored, bold, compact, fit_text, render, text, DrawResult, Format, Picture, INK, MUTED,
};

const WIDTH: u32 = 1200;
/// Room above the panels for the title and the legend.
const HEADER: u32 = 110;
/// Height of one channel's panel.
const PANEL: u32 = 250;
/// The most channels drawn (one panel each).
pub const MAX_CHANNELS: usize = 4;

const OBSERVED: RGBColor = RGBColor(0, 114, 189);
const FORECAST: RGBColor = RGBColor(217, 83, 25);
const TRUTH: RGBColor = RGBColor(60, 60, 60);
const GRID: RGBColor = RGBColor(232, 232, 232);
const START: RGBColor = RGBColor(190, 190, 190);

/// One observation's forecast, as drawn by [`forecast_plot`].
#[derive(Debug, Clone, Copy)]
pub struct ForecastFigure<'a> {
    /// The title (e.g. the observation and the mode).
    pub title: &'a str,
    /// What the forecast line is called in the legend (e.g. "Forecast (closed loop)").
    pub forecast_label: &'a str,
    /// The observed steps the state was primed on, `[K, C]` (steps 1 to `K`).
    pub observed: ArrayView2<'a, f32>,
    /// The forecast, `[N, C]` (steps `K + 1` to `K + N`).
    pub forecast: ArrayView2<'a, f32>,
    /// The true values of the first `M ≤ N` forecast steps, `[M, C]` (`M = 0`: none known).
    pub truth: ArrayView2<'a, f32>,
}

/// Writes `figure` to `path`, PNG or SVG by the file's extension: one panel
/// per channel (the first [`MAX_CHANNELS`]), the time step along the x-axis.
/// The observed steps are a solid blue line, the forecast a dashed orange
/// line, the true values a thin dark
/// line, both continuing from the last observed step; a grey vertical line
/// marks where the forecast starts. Values that
/// are not finite leave gaps.
///
/// # Errors
/// [`CliError::PictureFormat`] for an extension other than `.png` or `.svg`,
/// [`CliError::NothingToPlot`] when nothing was observed or forecast or the
/// channel counts differ, [`CliError::Io`] when the file cannot be written.
pub fn forecast_plot(figure: &ForecastFigure, path: &Path) -> Result<(), CliError> {
    Format::of(path)?;
    let c = figure.observed.ncols();
    let bad = |reason: String| {
        Err(CliError::NothingToPlot {
            what: "the forecast",
            path: path.display().to_string(),
            reason,
        })
    };
    if figure.observed.nrows() == 0 || figure.forecast.nrows() == 0 || c == 0 {
        return bad("nothing observed or nothing forecast".into());
    }
    if figure.forecast.ncols() != c || figure.truth.ncols() != c {
        return bad(format!(
            "{c} observed channels, {} forecast, {} true",
            figure.forecast.ncols(),
            figure.truth.ncols()
        ));
    }
    render(&Figure(*figure), path)
}

struct Figure<'a>(ForecastFigure<'a>);

/// The finite points of `values` as runs between gaps: `(step, value)`,
/// the first row being step `first`.
fn runs(values: impl Iterator<Item = f32>, first: usize) -> Vec<Vec<(f64, f64)>> {
    let mut out = vec![Vec::new()];
    for (i, v) in values.enumerate() {
        if v.is_finite() {
            out.last_mut()
                .expect("one run")
                .push(((first + i) as f64, v as f64));
        } else if !out.last().expect("one run").is_empty() {
            out.push(Vec::new());
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

impl Figure<'_> {
    fn channels(&self) -> usize {
        self.0.observed.ncols().min(MAX_CHANNELS)
    }

    /// The y range of channel `c`: every finite value, with a margin.
    fn y_range(&self, c: usize) -> (f64, f64) {
        let f = &self.0;
        let all = f
            .observed
            .column(c)
            .into_iter()
            .chain(f.forecast.column(c))
            .chain(f.truth.column(c))
            .copied()
            .filter(|v| v.is_finite());
        let (lo, hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v as f64), hi.max(v as f64))
        });
        if lo > hi {
            return (-1.0, 1.0);
        }
        let pad = ((hi - lo) * 0.08).max(1e-3);
        (lo - pad, hi + pad)
    }

    fn panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        c: usize,
        bottom: bool,
    ) -> DrawResult {
        let f = &self.0;
        let k = f.observed.nrows();
        let end = (k + f.forecast.nrows()) as f64;
        let (lo, hi) = self.y_range(c);
        let mut chart = ChartBuilder::on(area)
            .margin_left(12)
            .margin_right(28)
            .margin_top(10)
            .x_label_area_size(if bottom { 50 } else { 30 })
            .y_label_area_size(74)
            .build_cartesian_2d(0.5f64..end + 0.5, lo..hi)?;
        chart
            .configure_mesh()
            .light_line_style(TRANSPARENT)
            .bold_line_style(GRID)
            .axis_style(MUTED)
            .x_labels(12)
            .y_labels(6)
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
            .x_desc(if bottom { "Time step" } else { "" })
            .y_desc(format!("Channel {}", c + 1))
            .draw()?;
        let start = k as f64 + 0.5;
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(start, lo), (start, hi)],
            START.stroke_width(1),
        )))?;
        // The true values and the forecast continue from the last observed step.
        let last = f.observed[[k - 1, c]];
        let truth = f.truth.column(c);
        let joined = std::iter::once(last).chain(truth.iter().copied());
        for run in runs(joined, k).into_iter().filter(|r| r.len() > 1) {
            chart.draw_series(LineSeries::new(run, TRUTH.stroke_width(1)))?;
        }
        for run in runs(f.observed.column(c).iter().copied(), 1) {
            chart.draw_series(LineSeries::new(run, OBSERVED.stroke_width(2)))?;
        }
        let forecast = f.forecast.column(c);
        let joined = std::iter::once(last).chain(forecast.iter().copied());
        for run in runs(joined, k) {
            chart.draw_series(DashedLineSeries::new(run, 8, 5, FORECAST.stroke_width(2)))?;
        }
        Ok(())
    }

    fn legend<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        let f = &self.0;
        let mut items = vec![
            ("Observed", OBSERVED, false),
            (f.forecast_label, FORECAST, true),
        ];
        if f.truth.nrows() > 0 {
            items.push(("True values", TRUTH, false));
        }
        let style = text(16.0, &INK);
        let mut x = 100;
        for (label, color, dashed) in items {
            let y = 84;
            let line: Vec<(i32, i32)> = vec![(x, y), (x + 36, y)];
            if dashed {
                root.draw(&PathElement::new(
                    vec![(x, y), (x + 14, y)],
                    color.stroke_width(2),
                ))?;
                root.draw(&PathElement::new(
                    vec![(x + 20, y), (x + 36, y)],
                    color.stroke_width(2),
                ))?;
            } else {
                root.draw(&PathElement::new(line, color.stroke_width(2)))?;
            }
            root.draw_text(
                label,
                &anchored(&style, HPos::Left, VPos::Center),
                (x + 44, y),
            )?;
            x += 44 + super::text_width(label, 16.0) as i32 + 40;
        }
        Ok(())
    }
}

impl Picture for Figure<'_> {
    fn size(&self) -> (u32, u32) {
        (WIDTH, HEADER + PANEL * self.channels() as u32 + 20)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        root.draw_text(
            &fit_text(self.0.title, 26.0, WIDTH - 40),
            &anchored(&bold(26.0, &INK), HPos::Center, VPos::Top),
            (WIDTH as i32 / 2, 18),
        )?;
        let more = self.0.observed.ncols() - self.channels();
        if more > 0 {
            root.draw_text(
                &format!(
                    "(the first {MAX_CHANNELS} channels of {})",
                    self.0.observed.ncols()
                ),
                &anchored(&text(15.0, &MUTED), HPos::Center, VPos::Top),
                (WIDTH as i32 / 2, 52),
            )?;
        }
        self.legend(root)?;
        let body = root.margin(HEADER, 20, 0, 0);
        let n = self.channels();
        for (c, area) in body.split_evenly((n, 1)).iter().enumerate() {
            self.panel(area, c, c + 1 == n)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_split_at_gaps_and_count_steps_from_first() {
        let r = runs([1.0, f32::NAN, 2.0, 3.0].into_iter(), 5);
        assert_eq!(r, vec![vec![(5.0, 1.0)], vec![(7.0, 2.0), (8.0, 3.0)]]);
        assert!(runs([f32::NAN].into_iter(), 1).is_empty());
    }
}
