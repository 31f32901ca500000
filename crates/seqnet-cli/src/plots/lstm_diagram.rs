//! Diagrams of the LSTM layer for `docs/LSTM.md`, after MATLAB's "Long
//! Short-Term Memory Neural Networks" page: the unit with its gates
//! ([`LstmCell`]) and the flow of a sequence through time with the
//! 'sequence' and 'last' output modes ([`LstmFlow`]).

use std::path::Path;

use crate::CliError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{anchored, bold, mix, render, text, DrawResult, Picture, INK, MUTED};

const STATE: RGBColor = RGBColor(0, 114, 189);
const HIDDEN: RGBColor = RGBColor(217, 83, 25);
const GATE: RGBColor = RGBColor(237, 177, 32);
const UNIT: RGBColor = RGBColor(242, 246, 250);
const FADED: RGBColor = RGBColor(200, 200, 200);

/// The LSTM unit at one time step: the cell state line with the forget
/// multiplication and the input addition, the four gate blocks fed by the
/// previous hidden state and the input, and the output gate making the new
/// hidden state; with the equations.
pub struct LstmCell;

/// A sequence through the LSTM layer, step by step: the input steps (a real
/// observation's features as small heat columns), the state passed on, and
/// the outputs of `OutputMode` 'sequence' (every step) and 'last' (the last
/// step only).
pub struct LstmFlow {
    /// Features of the steps drawn, `[steps][C]` (the first steps, then the last).
    pub steps: Vec<Vec<f32>>,
    /// The real number of steps of the observation.
    pub length: usize,
    /// The colour scale's ends.
    pub range: (f32, f32),
}

/// Writes the unit diagram to `path`.
pub fn lstm_cell_diagram(path: &Path) -> Result<(), CliError> {
    render(&LstmCell, path)
}

/// Writes the flow diagram to `path`.
pub fn lstm_flow_diagram(flow: &LstmFlow, path: &Path) -> Result<(), CliError> {
    render(flow, path)
}

/// A line with an arrow head at its end.
fn arrow<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    points: &[(i32, i32)],
    color: RGBColor,
    width: u32,
) -> DrawResult {
    area.draw(&PathElement::new(
        points.to_vec(),
        color.stroke_width(width),
    ))?;
    let (x1, y1) = points[points.len() - 1];
    let (x0, y0) = points[points.len() - 2];
    let (dx, dy) = ((x1 - x0) as f64, (y1 - y0) as f64);
    let len = (dx * dx + dy * dy).sqrt().max(1e-9);
    let (ux, uy) = (dx / len, dy / len);
    let size = 5.0 + width as f64 * 2.0;
    let back = (x1 as f64 - ux * size, y1 as f64 - uy * size);
    let left = (
        (back.0 - uy * size * 0.55) as i32,
        (back.1 + ux * size * 0.55) as i32,
    );
    let right = (
        (back.0 + uy * size * 0.55) as i32,
        (back.1 - ux * size * 0.55) as i32,
    );
    area.draw(&Polygon::new(vec![(x1, y1), left, right], color.filled()))?;
    Ok(())
}

/// A circle with an operator (×, +) in it.
fn node<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, at: (i32, i32), op: &str) -> DrawResult {
    area.draw(&Circle::new(at, 15, WHITE.filled()))?;
    area.draw(&Circle::new(at, 15, INK.stroke_width(2)))?;
    area.draw_text(
        op,
        &anchored(&bold(20.0, &INK), HPos::Center, VPos::Center),
        at,
    )?;
    Ok(())
}

/// A gate block: its activation in a box, its name beside it.
fn gate<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    centre: (i32, i32),
    activation: &str,
    name: &str,
) -> DrawResult {
    let (x, y) = centre;
    area.draw(&Rectangle::new(
        [(x - 30, y - 18), (x + 30, y + 18)],
        GATE.filled(),
    ))?;
    area.draw(&Rectangle::new(
        [(x - 30, y - 18), (x + 30, y + 18)],
        INK.stroke_width(1),
    ))?;
    area.draw_text(
        activation,
        &anchored(&bold(17.0, &INK), HPos::Center, VPos::Center),
        centre,
    )?;
    // On a white ground, over the lines that feed the gate.
    let w = super::text_width(name, 14.0) as i32;
    area.draw(&Rectangle::new(
        [(x - w / 2 - 3, y + 21), (x + w / 2 + 3, y + 39)],
        WHITE.filled(),
    ))?;
    area.draw_text(
        name,
        &anchored(&text(14.0, &INK), HPos::Center, VPos::Top),
        (x, y + 22),
    )?;
    Ok(())
}

fn label<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    s: &str,
    at: (i32, i32),
    h: HPos,
    color: &RGBColor,
) -> DrawResult {
    area.draw_text(s, &anchored(&bold(17.0, color), h, VPos::Center), at)?;
    Ok(())
}

impl Picture for LstmCell {
    fn size(&self) -> (u32, u32) {
        (980, 700)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        root.draw_text(
            "The LSTM unit at time step t",
            &anchored(&bold(22.0, &INK), HPos::Left, VPos::Center),
            (30, 30),
        )?;
        // The unit.
        root.draw(&Rectangle::new([(150, 70), (800, 500)], UNIT.filled()))?;
        root.draw(&Rectangle::new(
            [(150, 70), (800, 500)],
            MUTED.stroke_width(1),
        ))?;
        let (cell_y, bus_y, gate_y) = (120, 440, 350);
        let (fx, ix, gx, ox, tx) = (300, 420, 520, 640, 700);
        // Cell state: c(t-1) → × f → + i⊙g → c(t).
        arrow(root, &[(60, cell_y), (fx - 16, cell_y)], STATE, 3)?;
        arrow(root, &[(fx + 16, cell_y), (470 - 16, cell_y)], STATE, 3)?;
        arrow(root, &[(470 + 16, cell_y), (900, cell_y)], STATE, 3)?;
        label(root, "cₜ₋₁", (40, cell_y - 22), HPos::Left, &STATE)?;
        label(root, "cₜ", (910, cell_y), HPos::Left, &STATE)?;
        root.draw_text(
            "cell state",
            &anchored(&text(14.0, &STATE), HPos::Left, VPos::Bottom),
            (170, cell_y - 6),
        )?;
        // Hidden state and input into every gate.
        root.draw(&PathElement::new(
            vec![(60, bus_y), (ox, bus_y)],
            HIDDEN.stroke_width(2),
        ))?;
        label(root, "hₜ₋₁", (40, bus_y + 24), HPos::Left, &HIDDEN)?;
        arrow(root, &[(220, 560), (220, bus_y)], INK, 2)?;
        label(root, "xₜ (input)", (220, 580), HPos::Center, &INK)?;
        for x in [fx, ix, gx, ox] {
            arrow(root, &[(x, bus_y), (x, gate_y + 20)], HIDDEN, 2)?;
        }
        // Forget gate into the cell state.
        arrow(root, &[(fx, gate_y - 18), (fx, cell_y + 16)], INK, 2)?;
        // Input gate × candidate into the addition.
        let (mx, my) = (470, 230);
        arrow(root, &[(ix, gate_y - 18), (ix, my), (mx - 16, my)], INK, 2)?;
        arrow(root, &[(gx, gate_y - 18), (gx, my), (mx + 16, my)], INK, 2)?;
        arrow(root, &[(mx, my - 16), (mx, cell_y + 16)], INK, 2)?;
        output_path(root, (cell_y, gate_y, bus_y), (ox, tx))?;
        node(root, (fx, cell_y), "×")?;
        node(root, (470, cell_y), "+")?;
        node(root, (mx, my), "×")?;
        gate(root, (fx, gate_y), "σ", "forget f")?;
        gate(root, (ix, gate_y), "σ", "input i")?;
        gate(root, (gx, gate_y), "tanh", "candidate g")?;
        gate(root, (ox, gate_y), "σ", "output o")?;
        equations(root)
    }
}

/// The new cell state through tanh, times the output gate, out as `hₜ`
/// (and back to the next step). `ys`: the cell-state line, the gates, the
/// bus; `xs`: the output gate and the tanh block.
fn output_path<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    ys: (i32, i32, i32),
    xs: (i32, i32),
) -> DrawResult {
    let (cell_y, gate_y, bus_y) = ys;
    let (ox, tx) = xs;
    // The new cell state through tanh, times the output gate: hₜ.
    let (hy, ty) = (300, 200);
    arrow(root, &[(tx, cell_y), (tx, ty - 16)], STATE, 2)?;
    root.draw(&Rectangle::new(
        [(tx - 26, ty - 14), (tx + 26, ty + 14)],
        WHITE.filled(),
    ))?;
    root.draw(&Rectangle::new(
        [(tx - 26, ty - 14), (tx + 26, ty + 14)],
        INK.stroke_width(1),
    ))?;
    root.draw_text(
        "tanh",
        &anchored(&text(15.0, &INK), HPos::Center, VPos::Center),
        (tx, ty),
    )?;
    arrow(root, &[(tx, ty + 14), (tx, hy - 16)], INK, 2)?;
    arrow(root, &[(ox, gate_y - 18), (ox, hy), (tx - 16, hy)], INK, 2)?;
    arrow(root, &[(tx + 16, hy), (900, hy)], HIDDEN, 3)?;
    label(root, "hₜ", (910, hy), HPos::Left, &HIDDEN)?;
    root.draw_text(
        "hidden state = output",
        &anchored(&text(14.0, &HIDDEN), HPos::Left, VPos::Bottom),
        (tx + 24, hy - 6),
    )?;
    arrow(
        root,
        &[(860, hy), (860, bus_y + 60), (40, bus_y + 60)],
        FADED,
        1,
    )?;
    root.draw_text(
        "to the next step",
        &anchored(&text(13.0, &MUTED), HPos::Left, VPos::Top),
        (300, bus_y + 64),
    )?;
    node(root, (tx, hy), "×")
}

/// The equations under the unit, two columns.
fn equations<DB: DrawingBackend>(root: &DrawingArea<DB, Shift>) -> DrawResult {
    // The equations.
    let eq = text(15.0, &INK);
    for (k, line) in [
        "f = σ(W_f xₜ + R_f hₜ₋₁ + b_f)      forget gate",
        "i = σ(W_i xₜ + R_i hₜ₋₁ + b_i)       input gate",
        "g = tanh(W_g xₜ + R_g hₜ₋₁ + b_g)   cell candidate",
        "o = σ(W_o xₜ + R_o hₜ₋₁ + b_o)      output gate",
        "cₜ = f ⊙ cₜ₋₁ + i ⊙ g",
        "hₜ = o ⊙ tanh(cₜ)",
    ]
    .iter()
    .enumerate()
    {
        let col = (k % 2) as i32;
        let row = (k / 2) as i32;
        root.draw_text(
            line,
            &anchored(&eq, HPos::Left, VPos::Top),
            (60 + col * 440, 610 + row * 26),
        )?;
    }
    Ok(())
}

impl LstmFlow {
    fn color(&self, v: f32) -> RGBColor {
        let (lo, hi) = self.range;
        let t = if hi > lo {
            ((v - lo) / (hi - lo)).clamp(0.0, 1.0) as f64
        } else {
            0.5
        };
        if t < 0.5 {
            mix(RGBColor(33, 102, 172), RGBColor(247, 247, 247), t * 2.0)
        } else {
            mix(
                RGBColor(247, 247, 247),
                RGBColor(178, 24, 43),
                (t - 0.5) * 2.0,
            )
        }
    }

    /// One row of the flow: the blocks, the state arrows, the inputs and
    /// the outputs (all of them, or the last one only).
    fn row<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        top: i32,
        title: &str,
        all_outputs: bool,
    ) -> DrawResult {
        area.draw_text(
            title,
            &anchored(&bold(17.0, &INK), HPos::Left, VPos::Top),
            (30, top),
        )?;
        let n = self.steps.len();
        let step_names: Vec<String> = (0..n)
            .map(|k| {
                if k + 1 == n {
                    format!("{}", self.length)
                } else {
                    format!("{}", k + 1)
                }
            })
            .collect();
        let x_of = |k: usize| 220 + k as i32 * 150 + if k + 1 == n { 60 } else { 0 };
        let (block_y, in_y, out_y) = (top + 140, top + 250, top + 40);
        label(area, "h₀, c₀ = 0", (30, block_y), HPos::Left, &MUTED)?;
        for (k, name) in step_names.iter().enumerate() {
            let x = x_of(k);
            // State from the previous step (or the initial state).
            let from = if k == 0 { 130 } else { x_of(k - 1) + 45 };
            if k + 1 == n {
                area.draw_text(
                    "…",
                    &anchored(&bold(24.0, &MUTED), HPos::Center, VPos::Center),
                    (x - 75, block_y - 10),
                )?;
            } else {
                arrow(area, &[(from, block_y), (x - 45, block_y)], STATE, 2)?;
            }
            if k == 1 {
                area.draw_text(
                    "h₁, c₁",
                    &anchored(&text(14.0, &STATE), HPos::Center, VPos::Bottom),
                    (x - 75, block_y - 6),
                )?;
            }
            let at = StepAt {
                x,
                block_y,
                in_y,
                out_y,
                shown: all_outputs || k + 1 == n,
            };
            self.step(area, &self.steps[k], name, at)?;
        }
        area.draw_text(
            &format!(
                "the inputs: the {} features of steps of Japanese Vowels observation 1 ({} steps)",
                self.steps.first().map_or(0, Vec::len),
                self.length
            ),
            &anchored(&text(13.0, &MUTED), HPos::Left, VPos::Top),
            (30, in_y + 92),
        )?;
        let note = if all_outputs {
            "OutputMode 'sequence': an output at every step, [H, B, T]; for sequence-to-sequence networks"
        } else {
            "OutputMode 'last': the last step's output only, [H, B]; for sequence-to-label networks"
        };
        area.draw_text(
            note,
            &anchored(&text(14.0, &MUTED), HPos::Left, VPos::Top),
            (30, in_y + 70),
        )?;
        Ok(())
    }
}

/// Where one step of the flow is drawn, and whether its output is shown.
#[derive(Clone, Copy)]
struct StepAt {
    x: i32,
    block_y: i32,
    in_y: i32,
    out_y: i32,
    shown: bool,
}

impl LstmFlow {
    /// One step: the unit's block, the input's features as a heat column
    /// under it, and its output above (faded when not output).
    fn step<DB: DrawingBackend>(
        &self,
        area: &DrawingArea<DB, Shift>,
        features: &[f32],
        name: &str,
        at: StepAt,
    ) -> DrawResult {
        let StepAt {
            x,
            block_y,
            in_y,
            out_y,
            shown,
        } = at;
        let block = [(x - 45, block_y - 30), (x + 45, block_y + 30)];
        area.draw(&Rectangle::new(block, UNIT.filled()))?;
        area.draw(&Rectangle::new(block, INK.stroke_width(1)))?;
        area.draw_text(
            "LSTM",
            &anchored(&bold(15.0, &INK), HPos::Center, VPos::Center),
            (x, block_y),
        )?;
        let cell = (54 / features.len().max(1) as i32).max(2);
        for (j, &v) in features.iter().enumerate() {
            let y0 = in_y + j as i32 * cell;
            area.draw(&Rectangle::new(
                [(x - 9, y0), (x + 9, y0 + cell)],
                self.color(v).filled(),
            ))?;
        }
        arrow(area, &[(x, in_y - 2), (x, block_y + 32)], INK, 1)?;
        area.draw_text(
            &format!("x{}", subscript(name)),
            &anchored(&text(15.0, &INK), HPos::Left, VPos::Center),
            (x + 16, in_y + 24),
        )?;
        let color = if shown { HIDDEN } else { FADED };
        let width = if shown { 2 } else { 1 };
        arrow(area, &[(x, block_y - 32), (x, out_y + 14)], color, width)?;
        area.draw_text(
            &format!("h{}", subscript(name)),
            &anchored(&bold(15.0, &color), HPos::Center, VPos::Bottom),
            (x, out_y + 12),
        )?;
        Ok(())
    }
}

/// `s` in Unicode subscript digits.
fn subscript(s: &str) -> String {
    s.chars()
        .map(|c| match c.to_digit(10) {
            Some(d) => char::from_u32(0x2080 + d).unwrap_or(c),
            None => c,
        })
        .collect()
}

impl Picture for LstmFlow {
    fn size(&self) -> (u32, u32) {
        let w = 220 + self.steps.len() as u32 * 150 + 60;
        (w.max(900), 800)
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        root.draw_text(
            "A sequence through the LSTM layer",
            &anchored(&bold(22.0, &INK), HPos::Left, VPos::Center),
            (30, 30),
        )?;
        self.row(root, 60, "OutputMode 'sequence'", true)?;
        self.row(root, 420, "OutputMode 'last'", false)
    }
}
