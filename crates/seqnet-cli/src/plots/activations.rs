//! The activations heat map: channels over time steps, in a diverging colour
//! map centred at zero, with a colour bar.

use std::path::Path;

use crate::CliError;
use ndarray::ArrayView2;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{
    anchored, bold, clean, compact, fit_text, integer_ticks, mix, nice_step, render, text,
    text_width, DrawResult, Format, Picture, INK, MUTED,
};

const WIDTH: u32 = 1200;
/// Left edge of the map (room for channel numbers and the axis title).
const LEFT: i32 = 96;
/// Top edge of the map (room for the title and subtitle).
const TOP: i32 = 96;
/// Room right of the map for the colour bar, its labels and title.
const RIGHT: i32 = 170;
/// Room below the map for time steps and the axis title.
const BOTTOM: i32 = 84;
/// The most cells drawn across and down in an SVG (a PNG draws at most one per pixel).
const SVG_CELLS: (usize, usize) = (300, 150);
/// Colour of cells without a finite value.
const NOT_FINITE: RGBColor = RGBColor(150, 150, 150);

/// ColorBrewer's RdBu, from blue (most negative) through white to red (most positive).
const DIVERGING: [RGBColor; 11] = [
    RGBColor(5, 48, 97),
    RGBColor(33, 102, 172),
    RGBColor(67, 147, 195),
    RGBColor(146, 197, 222),
    RGBColor(209, 229, 240),
    RGBColor(247, 247, 247),
    RGBColor(253, 219, 199),
    RGBColor(244, 165, 130),
    RGBColor(214, 96, 77),
    RGBColor(178, 24, 43),
    RGBColor(103, 0, 31),
];

/// The colour of `t` in [0, 1] on the diverging map (0.5 is white).
fn diverging(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.5
    };
    let x = t * (DIVERGING.len() - 1) as f64;
    let i = (x.floor() as usize).min(DIVERGING.len() - 2);
    mix(DIVERGING[i], DIVERGING[i + 1], x - i as f64)
}

/// Writes a heat map of `values`, time steps by channels (`[T, C]`), to `path`,
/// PNG or SVG by the file's extension.
///
/// Channels run down the y-axis (channel 1 at the top) and time steps along
/// the x-axis, both numbered from 1. Colours follow a diverging blue–white–red
/// map centred at zero and symmetric about it (±the largest magnitude), shown
/// by a colour bar on the right. Values that are not finite are drawn grey.
/// The picture is 1200 pixels wide and its height follows the number of
/// channels. Arrays with more steps or channels than there are pixels (or, in
/// SVG, than 300 steps or 150 channels) are averaged into blocks. `title` is
/// written above the map ("Activations" when empty).
///
/// # Errors
/// [`CliError::PictureFormat`] for an extension other than `.png` or `.svg`,
/// [`CliError::NothingToPlot`] for an array without time steps or channels,
/// and [`CliError::Io`] when the file cannot be written; each names the path.
pub fn activations_heatmap(
    values: ArrayView2<f32>,
    title: &str,
    path: &Path,
) -> Result<(), CliError> {
    let format = Format::of(path)?;
    let (t, c) = values.dim();
    if t == 0 || c == 0 {
        return Err(CliError::NothingToPlot {
            what: "the activations",
            path: path.display().to_string(),
            reason: format!("the array has {t} time steps and {c} channels"),
        });
    }
    render(&Heatmap::new(values, title, format), path)
}

/// The block-averaged activations and their layout.
struct Heatmap {
    title: String,
    steps: usize,
    channels: usize,
    /// Block means, `[channel block][time block]`; `NaN` where no value is finite.
    blocks: Vec<Vec<f64>>,
    /// Half the colour range: the largest finite magnitude (1 when none).
    limit: f64,
    min: f64,
    max: f64,
    not_finite: usize,
    plot: (i32, i32),
    size: (u32, u32),
}

impl Heatmap {
    fn new(values: ArrayView2<f32>, title: &str, format: Format) -> Self {
        let (steps, channels) = values.dim();
        let plot_w = WIDTH as i32 - LEFT - RIGHT;
        let plot_h = (channels as i32 * 18).clamp(160, 620);
        let (max_x, max_y) = match format {
            Format::Png => (plot_w as usize, plot_h as usize),
            Format::Svg => SVG_CELLS,
        };
        let nx = steps.min(max_x);
        let ny = channels.min(max_y);
        let mut sums = vec![vec![(0.0f64, 0usize); nx]; ny];
        let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut not_finite = 0;
        for ((s, ch), &v) in values.indexed_iter() {
            let v = v as f64;
            if !v.is_finite() {
                not_finite += 1;
                continue;
            }
            min = min.min(v);
            max = max.max(v);
            let cell = &mut sums[ch * ny / channels][s * nx / steps];
            cell.0 += v;
            cell.1 += 1;
        }
        let blocks = sums
            .into_iter()
            .map(|row| {
                row.into_iter()
                    .map(|(sum, n)| if n == 0 { f64::NAN } else { sum / n as f64 })
                    .collect()
            })
            .collect();
        let limit = min.abs().max(max.abs());
        let limit = if limit.is_finite() && limit > 0.0 {
            limit
        } else {
            1.0
        };
        let title = clean(title);
        let title = title.trim();
        Heatmap {
            title: if title.is_empty() {
                "Activations".to_string()
            } else {
                title.to_string()
            },
            steps,
            channels,
            blocks,
            limit,
            min,
            max,
            not_finite,
            plot: (plot_w, plot_h),
            size: (WIDTH, (TOP + plot_h + BOTTOM) as u32),
        }
    }

    fn subtitle(&self) -> String {
        let plural = |n: usize, one: &str| {
            if n == 1 {
                format!("1 {one}")
            } else {
                format!("{n} {one}s")
            }
        };
        let mut s = format!(
            "{} × {}",
            plural(self.steps, "time step"),
            plural(self.channels, "channel")
        );
        if self.min == self.max {
            s += &format!(" · all values {}", compact(self.min, 3));
        } else if self.min < self.max {
            s += &format!(
                " · values from {} to {}",
                compact(self.min, 3),
                compact(self.max, 3)
            );
        } else {
            return s + " · no finite values (grey)";
        }
        if self.not_finite > 0 {
            s += &format!(" · {} not finite (grey)", self.not_finite);
        }
        s
    }

    fn color(&self, v: f64) -> RGBColor {
        if v.is_finite() {
            diverging(0.5 + 0.5 * v / self.limit)
        } else {
            NOT_FINITE
        }
    }
}

impl Picture for Heatmap {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        let (pw, ph) = self.plot;
        let (x0, y0) = (LEFT, TOP);
        let centre = LEFT + pw / 2;

        root.draw_text(
            &fit_text(&self.title, 28.0, WIDTH - 40),
            &anchored(&bold(28.0, &INK), HPos::Center, VPos::Top),
            (centre, 22),
        )?;
        root.draw_text(
            &fit_text(&self.subtitle(), 17.0, WIDTH - 40),
            &anchored(&text(17.0, &MUTED), HPos::Center, VPos::Top),
            (centre, 62),
        )?;

        // The cells, merging runs of one colour in a row.
        let ny = self.blocks.len();
        let nx = self.blocks.first().map_or(0, |r| r.len());
        let edge = |i: usize, n: usize, len: i32| (i as f64 * len as f64 / n as f64).round() as i32;
        for (j, row) in self.blocks.iter().enumerate() {
            let (top, bottom) = (y0 + edge(j, ny, ph), y0 + edge(j + 1, ny, ph));
            let mut i = 0;
            while i < nx {
                let color = self.color(row[i]);
                let mut k = i + 1;
                while k < nx && self.color(row[k]) == color {
                    k += 1;
                }
                root.draw(&Rectangle::new(
                    [(x0 + edge(i, nx, pw), top), (x0 + edge(k, nx, pw), bottom)],
                    color.filled(),
                ))?;
                i = k;
            }
        }
        root.draw(&Rectangle::new(
            [(x0, y0), (x0 + pw, y0 + ph)],
            MUTED.stroke_width(1),
        ))?;

        // Axes: time steps below, channels on the left, at the cells' centres.
        let label = text(15.0, &MUTED);
        for t in integer_ticks(self.steps, pw as f64, 64.0) {
            let x = x0 + ((t as f64 - 0.5) * pw as f64 / self.steps as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(x, y0 + ph), (x, y0 + ph + 5)],
                MUTED.stroke_width(1),
            ))?;
            root.draw_text(
                &t.to_string(),
                &anchored(&label, HPos::Center, VPos::Top),
                (x, y0 + ph + 9),
            )?;
        }
        for ch in integer_ticks(self.channels, ph as f64, 22.0) {
            let y = y0 + ((ch as f64 - 0.5) * ph as f64 / self.channels as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(x0 - 5, y), (x0, y)],
                MUTED.stroke_width(1),
            ))?;
            root.draw_text(
                &ch.to_string(),
                &anchored(&label, HPos::Right, VPos::Center),
                (x0 - 9, y),
            )?;
        }
        let axis = text(18.0, &INK);
        root.draw_text(
            "Time step",
            &anchored(&axis, HPos::Center, VPos::Top),
            (centre, y0 + ph + 40),
        )?;
        root.draw_text(
            "Channel",
            &anchored(&axis, HPos::Center, VPos::Top).transform(FontTransform::Rotate270),
            (34, y0 + ph / 2),
        )?;

        // The colour bar, with ticks at nice values of the symmetric range.
        let bx = x0 + pw + 28;
        let bw = 22;
        for py in 0..ph {
            let t = 1.0 - (py as f64 + 0.5) / ph as f64;
            root.draw(&Rectangle::new(
                [(bx, y0 + py), (bx + bw, y0 + py + 1)],
                diverging(t).filled(),
            ))?;
        }
        root.draw(&Rectangle::new(
            [(bx, y0), (bx + bw, y0 + ph)],
            MUTED.stroke_width(1),
        ))?;
        let step = nice_step(2.0 * self.limit / 6.0);
        let k = (self.limit / step + 1e-9).floor() as i64;
        let widest = (-k..=k)
            .map(|i| text_width(&compact(i as f64 * step, 3), 15.0))
            .max()
            .unwrap_or(0) as i32;
        for i in -k..=k {
            let v = i as f64 * step;
            let y = y0 + ((0.5 - 0.5 * v / self.limit) * ph as f64).round() as i32;
            root.draw(&PathElement::new(
                vec![(bx + bw, y), (bx + bw + 5, y)],
                MUTED.stroke_width(1),
            ))?;
            root.draw_text(
                &compact(v, 3),
                &anchored(&label, HPos::Left, VPos::Center),
                (bx + bw + 9, y),
            )?;
        }
        root.draw_text(
            "Activation",
            &anchored(&axis, HPos::Center, VPos::Top).transform(FontTransform::Rotate270),
            (bx + bw + 9 + widest + 14, y0 + ph / 2),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diverging_map_is_white_at_zero_and_clamps() {
        assert_eq!(diverging(0.5), RGBColor(247, 247, 247));
        assert_eq!(diverging(0.0), DIVERGING[0]);
        assert_eq!(diverging(1.0), DIVERGING[10]);
        assert_eq!(diverging(-3.0), DIVERGING[0]);
        assert_eq!(diverging(f64::NAN), RGBColor(247, 247, 247));
    }

    #[test]
    fn blocks_average_and_skip_non_finite() {
        let a = ndarray::array![[1.0f32, f32::NAN], [3.0, f32::NAN]];
        let h = Heatmap::new(a.view(), "", Format::Png);
        assert_eq!(h.blocks.len(), 2);
        assert_eq!(h.blocks[0], vec![1.0, 3.0]);
        assert!(h.blocks[1].iter().all(|v| v.is_nan()));
        assert_eq!(
            (h.not_finite, h.limit, h.title.as_str()),
            (2, 3.0, "Activations")
        );
    }
}
