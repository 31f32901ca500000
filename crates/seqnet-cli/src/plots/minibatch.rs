//! Pictures of mini-batches as the batcher builds them: one row per
//! observation, one cell per time step, coloured by the value of one
//! feature; padded steps grey, steps cut by truncation outlined, chunks of a
//! split mini-batch apart. Used by `seqnet docs-figures` for `docs/LSTM.md`.

use std::path::Path;

use crate::CliError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{anchored, bold, mix, render, text, DrawResult, Picture, INK, MUTED};

/// What one cell of a mini-batch holds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell {
    /// A real step with this feature value.
    Real(f32),
    /// A padded step.
    Padding,
    /// A step of the sequence that truncation left out of the mini-batch.
    Cut,
}

/// One mini-batch: its rows (observations) of cells over the global steps,
/// and where its chunks start (one chunk: `[0]`).
#[derive(Debug, Clone)]
pub struct BatchView {
    /// A label for the mini-batch ("mini-batch 1").
    pub label: String,
    /// `rows[b][t]`: observation `b` at step `t`.
    pub rows: Vec<Vec<Cell>>,
    /// The first step of each chunk, ascending, starting at 0.
    pub chunk_starts: Vec<usize>,
}

/// A panel of mini-batches drawn one under the other.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    /// A line under the title (e.g. how much is padding).
    pub subtitle: String,
    pub batches: Vec<BatchView>,
}

/// A figure of panels side by side, with a title and a colour legend.
#[derive(Debug, Clone)]
pub struct MiniBatchFigure {
    pub title: String,
    /// A line under the title (which data, which mini-batches).
    pub subtitle: String,
    pub panels: Vec<Panel>,
    /// The feature the colours show ("feature 1 (LPC coefficient 1)").
    pub feature: String,
    /// The colour scale's ends.
    pub range: (f32, f32),
}

const CELL_H: i32 = 16;
const ROW_GAP: i32 = 2;
const BATCH_GAP: i32 = 26;
const CHUNK_GAP: i32 = 10;
const PANEL_W: i32 = 560;
const MARGIN: i32 = 30;
const HEAD: i32 = 90;
const PANEL_HEAD: i32 = 54;
const LEGEND: i32 = 70;

const LOW: RGBColor = RGBColor(33, 102, 172);
const MID: RGBColor = RGBColor(247, 247, 247);
const HIGH: RGBColor = RGBColor(178, 24, 43);
const PAD: RGBColor = RGBColor(205, 205, 205);
const CUT_LINE: RGBColor = RGBColor(150, 150, 150);

/// Writes `figure` to `path` (PNG or SVG by the extension).
pub fn minibatch_figure(figure: &MiniBatchFigure, path: &Path) -> Result<(), CliError> {
    render(figure, path)
}

impl MiniBatchFigure {
    /// The largest number of steps of any mini-batch (the column count).
    fn steps(&self) -> usize {
        self.panels
            .iter()
            .flat_map(|p| &p.batches)
            .flat_map(|b| &b.rows)
            .map(Vec::len)
            .max()
            .unwrap_or(1)
            .max(1)
    }

    /// The largest number of chunk gaps of any mini-batch.
    fn gaps(&self) -> usize {
        self.panels
            .iter()
            .flat_map(|p| &p.batches)
            .map(|b| b.chunk_starts.len().saturating_sub(1))
            .max()
            .unwrap_or(0)
    }

    fn panel_height(panel: &Panel) -> i32 {
        PANEL_HEAD
            + panel
                .batches
                .iter()
                .map(|b| b.rows.len() as i32 * (CELL_H + ROW_GAP) + BATCH_GAP)
                .sum::<i32>()
    }

    /// The colour of a value on the diverging scale.
    fn color(&self, v: f32) -> RGBColor {
        let (lo, hi) = self.range;
        let t = if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0) as f64
        } else {
            0.5
        };
        if t < 0.5 {
            mix(LOW, MID, t * 2.0)
        } else {
            mix(MID, HIGH, (t - 0.5) * 2.0)
        }
    }

    fn draw_panel<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        panel: &Panel,
    ) -> DrawResult {
        area.draw_text(
            &panel.title,
            &anchored(&bold(17.0, &INK), HPos::Left, VPos::Top),
            (0, 0),
        )?;
        area.draw_text(
            &panel.subtitle,
            &anchored(&text(14.0, &MUTED), HPos::Left, VPos::Top),
            (0, 24),
        )?;
        let label_w = 96;
        let steps = self.steps() as i32;
        let gaps = self.gaps() as i32;
        let cell_w = ((PANEL_W - label_w - gaps * CHUNK_GAP) / steps).max(1);
        let mut y = PANEL_HEAD;
        for batch in &panel.batches {
            area.draw_text(
                &batch.label,
                &anchored(&text(13.0, &MUTED), HPos::Left, VPos::Center),
                (0, y + (batch.rows.len() as i32 * (CELL_H + ROW_GAP)) / 2),
            )?;
            // The x of step t: chunks after the first are moved right by a gap each.
            let x_of = |t: usize| {
                let chunk = batch.chunk_starts.iter().filter(|&&s| s <= t).count() as i32 - 1;
                label_w + t as i32 * cell_w + chunk.max(0) * CHUNK_GAP
            };
            for row in &batch.rows {
                for (t, cell) in row.iter().enumerate() {
                    let (x0, x1) = (x_of(t), x_of(t) + cell_w - 1);
                    let rect = [(x0, y), (x1, y + CELL_H)];
                    match cell {
                        Cell::Real(v) => {
                            area.draw(&Rectangle::new(rect, self.color(*v).filled()))?
                        }
                        Cell::Padding => area.draw(&Rectangle::new(rect, PAD.filled()))?,
                        Cell::Cut => area.draw(&Rectangle::new(rect, CUT_LINE.stroke_width(1)))?,
                    }
                }
                y += CELL_H + ROW_GAP;
            }
            for (c, &start) in batch.chunk_starts.iter().enumerate() {
                if batch.chunk_starts.len() > 1 {
                    area.draw_text(
                        &format!("chunk {}", c + 1),
                        &anchored(&text(12.0, &MUTED), HPos::Left, VPos::Top),
                        (x_of(start), y + 2),
                    )?;
                }
            }
            y += BATCH_GAP;
        }
        Ok(())
    }

    fn draw_legend<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult {
        let small = text(14.0, &INK);
        let mut x = 0;
        // The colour scale.
        for i in 0..120 {
            let v = self.range.0 + (self.range.1 - self.range.0) * i as f32 / 119.0;
            area.draw(&Rectangle::new(
                [(x + i, 8), (x + i + 1, 26)],
                self.color(v).filled(),
            ))?;
        }
        area.draw_text(
            &format!("{:.1}", self.range.0),
            &anchored(&small, HPos::Left, VPos::Top),
            (x, 30),
        )?;
        area.draw_text(
            &format!("{:.1}", self.range.1),
            &anchored(&small, HPos::Right, VPos::Top),
            (x + 120, 30),
        )?;
        area.draw_text(
            &format!("real step: {}", self.feature),
            &anchored(&small, HPos::Left, VPos::Center),
            (x + 132, 17),
        )?;
        x += 132 + super::text_width(&format!("real step: {}", self.feature), 14.0) as i32 + 30;
        area.draw(&Rectangle::new([(x, 8), (x + 24, 26)], PAD.filled()))?;
        area.draw_text(
            "padding",
            &anchored(&small, HPos::Left, VPos::Center),
            (x + 32, 17),
        )?;
        x += 110;
        area.draw(&Rectangle::new(
            [(x, 8), (x + 24, 26)],
            CUT_LINE.stroke_width(1),
        ))?;
        area.draw_text(
            "left out by truncation",
            &anchored(&small, HPos::Left, VPos::Center),
            (x + 32, 17),
        )?;
        Ok(())
    }
}

impl Picture for MiniBatchFigure {
    fn size(&self) -> (u32, u32) {
        let panels = self.panels.len().max(1) as i32;
        let w = MARGIN * 2 + panels * PANEL_W + (panels - 1) * MARGIN;
        let h = HEAD
            + self
                .panels
                .iter()
                .map(Self::panel_height)
                .max()
                .unwrap_or(0)
            + LEGEND;
        (w.max(760) as u32, h as u32)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        root.draw_text(
            &self.title,
            &anchored(&bold(22.0, &INK), HPos::Left, VPos::Center),
            (MARGIN, 30),
        )?;
        root.draw_text(
            &self.subtitle,
            &anchored(&text(15.0, &MUTED), HPos::Left, VPos::Center),
            (MARGIN, 58),
        )?;
        let (w, h) = self.size();
        for (i, panel) in self.panels.iter().enumerate() {
            let x = MARGIN + i as i32 * (PANEL_W + MARGIN);
            let area = root
                .clone()
                .shrink((x, HEAD), (PANEL_W as u32, h - HEAD as u32));
            self.draw_panel(&area, panel)?;
        }
        let legend = root.clone().shrink(
            (MARGIN, h as i32 - LEGEND + 14),
            (w - 2 * MARGIN as u32, LEGEND as u32),
        );
        self.draw_legend(&legend)
    }
}
