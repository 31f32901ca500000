//! The confusion-matrix picture, after MATLAB's `confusionchart` with a row
//! summary (recall) and a column summary (precision).

use std::path::Path;

use crate::CliError;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, VPos};

use super::{
    anchored, bold, clean, fit_text, luminance, mix, render, text, text_width, DrawResult, Format,
    Picture, INK, MUTED,
};

/// The most classes a confusion matrix can show.
const MAX_CLASSES: usize = 500;

const DIAGONAL: RGBColor = RGBColor(0, 114, 189);
const OFF_DIAGONAL: RGBColor = RGBColor(217, 83, 25);
/// Summary bars: the share right, the share wrong, and no observations.
const SUMMARY_RIGHT: RGBColor = RGBColor(160, 203, 235);
const SUMMARY_WRONG: RGBColor = RGBColor(247, 211, 192);
const UNDEFINED: RGBColor = RGBColor(242, 242, 242);
const GRID: RGBColor = RGBColor(215, 215, 215);
const ZERO_TEXT: RGBColor = RGBColor(185, 185, 185);

/// Writes the confusion matrix `counts` to `path` as a heat map, PNG or SVG
/// by the file's extension.
///
/// `counts[t][p]` is the number of observations of true class `t` predicted
/// as class `p`: true classes are the rows, predicted classes the columns,
/// both in the order of `class_names`. Each cell shows its count; correct
/// predictions (the diagonal) are shaded blue and errors orange, darker for
/// larger counts, with white text on dark cells. As MATLAB's `confusionchart`
/// with `RowSummary` and `ColumnSummary`, the column on the right gives each
/// true class's recall and the row below gives each predicted class's
/// precision; the corner cell and the title give the overall accuracy. The
/// picture's size follows the number of classes; long class names are cut
/// with an ellipsis and column names turn vertical when they do not fit.
///
/// # Errors
/// [`CliError::PictureFormat`] for an extension other than `.png` or `.svg`,
/// [`CliError::NothingToPlot`] for no classes, more than 500 classes, or counts
/// that are not a square matrix matching `class_names`, and [`CliError::Io`]
/// when the file cannot be written; each names the path.
pub fn confusion_matrix(
    counts: &[Vec<usize>],
    class_names: &[String],
    path: &Path,
) -> Result<(), CliError> {
    Format::of(path)?;
    let invalid = |reason: String| CliError::NothingToPlot {
        what: "the confusion matrix",
        path: path.display().to_string(),
        reason,
    };
    let n = class_names.len();
    if n == 0 {
        return Err(invalid("there are no classes".into()));
    }
    if n > MAX_CLASSES {
        return Err(invalid(format!(
            "{n} classes are too many to draw (at most {MAX_CLASSES})"
        )));
    }
    if counts.len() != n {
        return Err(invalid(format!(
            "the counts have {} rows but there are {n} class names",
            counts.len()
        )));
    }
    if let Some((r, row)) = counts.iter().enumerate().find(|(_, row)| row.len() != n) {
        return Err(invalid(format!(
            "row {} ('{}') of the counts has {} columns, not {n}",
            r + 1,
            class_names[r],
            row.len()
        )));
    }
    render(&Confusion::new(counts, class_names), path)
}

/// A share in percent with one decimal, or a dash when undefined.
fn percent(part: u128, whole: u128) -> (String, Option<f64>) {
    if whole == 0 {
        ("–".to_string(), None)
    } else {
        let v = part as f64 / whole as f64;
        (format!("{:.1}%", v * 100.0), Some(v))
    }
}

/// The laid-out confusion matrix.
struct Confusion<'a> {
    counts: &'a [Vec<usize>],
    names: Vec<String>,
    /// Class-name columns turned vertical.
    vertical: bool,
    cell: i32,
    summary_w: i32,
    /// Height of the precision row.
    summary_h: i32,
    summary_size: f64,
    /// The precision values are written vertically (narrow cells).
    narrow: bool,
    count_size: f64,
    label_size: f64,
    label_w: i32,
    col_label_h: i32,
    /// Top-left corner of the matrix.
    origin: (i32, i32),
    size: (u32, u32),
    row_sums: Vec<u128>,
    col_sums: Vec<u128>,
    total: u128,
    correct: u128,
}

const TITLE_SIZE: f64 = 28.0;
const AXIS_SIZE: f64 = 19.0;
const MARGIN: i32 = 24;

impl<'a> Confusion<'a> {
    fn new(counts: &'a [Vec<usize>], class_names: &[String]) -> Self {
        let n = class_names.len();
        let cell = (720 / n as i32).clamp(12, 112);
        let label_size = if n <= 12 {
            18.0
        } else if n <= 30 {
            16.0
        } else {
            14.0
        };
        let names: Vec<String> = class_names
            .iter()
            .map(|s| {
                let s = clean(s);
                let s = s.trim();
                fit_text(if s.is_empty() { "(unnamed)" } else { s }, label_size, 220)
            })
            .collect();
        let widest = names
            .iter()
            .map(|s| text_width(s, label_size))
            .max()
            .unwrap_or(0) as i32;
        let vertical = widest > cell - 10;
        let label_w = widest.max(text_width("Precision", label_size) as i32);
        let col_label_h = if vertical { widest } else { 24 };

        let row_sums: Vec<u128> = counts
            .iter()
            .map(|r| r.iter().map(|&c| c as u128).sum())
            .collect();
        let col_sums: Vec<u128> = (0..n)
            .map(|c| counts.iter().map(|r| r[c] as u128).sum())
            .collect();
        let total = row_sums.iter().sum();
        let correct = (0..n).map(|i| counts[i][i] as u128).sum();

        // The counts' font: as large as the cell allows, the widest count fitting.
        let widest_count = counts
            .iter()
            .flatten()
            .map(|c| c.to_string())
            .max_by_key(|s| s.len())
            .unwrap_or_default();
        let mut count_size = (cell as f64 * 0.42).clamp(9.0, 26.0);
        while count_size > 9.0 && text_width(&widest_count, count_size) as i32 > cell - 6 {
            count_size -= 1.0;
        }
        let summary_size = count_size.clamp(13.0, 18.0);
        let summary_w = (text_width("100.0%", summary_size) as i32 + 16).max(cell.min(90));
        let narrow = text_width("100.0%", summary_size) as i32 > cell - 6;
        let summary_h = if narrow {
            text_width("100.0%", summary_size) as i32 + 14
        } else {
            cell.clamp(30, 60)
        };

        let title = Self::title_text(total, correct);
        let title_w = text_width(&title, TITLE_SIZE) as i32;
        let axis_h = 34;
        let left = MARGIN + axis_h + label_w + 10;
        let top = MARGIN + 78 + 28;
        let matrix = cell * n as i32;
        let right = left + matrix + 10 + summary_w + MARGIN + 8;
        let bottom = top + matrix + 10 + summary_h + 10 + col_label_h + 8 + axis_h + MARGIN;
        let width = right.max(title_w + 2 * MARGIN).max(420);
        // Centre the matrix when the title is the widest part.
        let shift = (width - right) / 2;
        Confusion {
            counts,
            names,
            vertical,
            cell,
            summary_w,
            summary_h,
            summary_size,
            narrow,
            count_size,
            label_size,
            label_w,
            col_label_h,
            origin: (left + shift, top),
            size: (width as u32, bottom as u32),
            row_sums,
            col_sums,
            total,
            correct,
        }
    }

    fn title_text(total: u128, correct: u128) -> String {
        match percent(correct, total) {
            (p, Some(_)) => format!("Confusion Matrix — Accuracy {p}"),
            _ => "Confusion Matrix — no observations".to_string(),
        }
    }

    /// A summary cell: the share `v` in light blue, the rest in light orange
    /// (grey when undefined), filling from the left or, `upwards`, from the bottom.
    fn summary<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        (w, h): (i32, i32),
        v: Option<f64>,
        upwards: bool,
    ) -> DrawResult {
        let Some(v) = v else {
            root.draw(&Rectangle::new(
                [(x, y), (x + w, y + h)],
                UNDEFINED.filled(),
            ))?;
            return self.border(root, (x, y), (w, h));
        };
        root.draw(&Rectangle::new(
            [(x, y), (x + w, y + h)],
            SUMMARY_WRONG.filled(),
        ))?;
        let bar = if upwards {
            let top = y + h - (h as f64 * v).round() as i32;
            [(x, top), (x + w, y + h)]
        } else {
            [(x, y), (x + (w as f64 * v).round() as i32, y + h)]
        };
        root.draw(&Rectangle::new(bar, SUMMARY_RIGHT.filled()))?;
        self.border(root, (x, y), (w, h))
    }

    fn border<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        (w, h): (i32, i32),
    ) -> DrawResult {
        root.draw(&Rectangle::new(
            [(x, y), (x + w, y + h)],
            GRID.stroke_width(1),
        ))?;
        Ok(())
    }

    /// A filled cell with centred `label`, its text colour following the fill.
    #[allow(clippy::too_many_arguments)]
    fn cell<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        (x, y): (i32, i32),
        (w, h): (i32, i32),
        fill: RGBColor,
        label: &str,
        size: f64,
        label_color: Option<RGBColor>,
    ) -> DrawResult {
        root.draw(&Rectangle::new([(x, y), (x + w, y + h)], fill.filled()))?;
        root.draw(&Rectangle::new(
            [(x, y), (x + w, y + h)],
            GRID.stroke_width(1),
        ))?;
        if label.is_empty() || size < 9.0 {
            return Ok(());
        }
        let color = label_color.unwrap_or(if luminance(fill) < 0.56 { WHITE } else { INK });
        root.draw_text(
            label,
            &anchored(&text(size, &color), HPos::Center, VPos::Center),
            (x + w / 2, y + h / 2),
        )?;
        Ok(())
    }
}

impl Picture for Confusion<'_> {
    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult {
        root.fill(&WHITE)?;
        let n = self.names.len();
        let (w, _) = self.size;
        let (x0, y0) = self.origin;
        let cell = self.cell;
        let matrix = cell * n as i32;

        // Title and subtitle.
        root.draw_text(
            &Self::title_text(self.total, self.correct),
            &anchored(&bold(TITLE_SIZE, &INK), HPos::Center, VPos::Top),
            (w as i32 / 2, MARGIN),
        )?;
        let classes = if n == 1 {
            "1 class".to_string()
        } else {
            format!("{n} classes")
        };
        let subtitle = match self.total {
            0 => classes,
            1 => format!(
                "{} of 1 observation classified correctly · {classes}",
                self.correct
            ),
            total => format!(
                "{} of {total} observations classified correctly · {classes}",
                self.correct
            ),
        };
        root.draw_text(
            &subtitle,
            &anchored(&text(17.0, &MUTED), HPos::Center, VPos::Top),
            (w as i32 / 2, MARGIN + 42),
        )?;

        // The matrix.
        let max_diag = (0..n).map(|i| self.counts[i][i]).max().unwrap_or(0).max(1) as f64;
        let max_off = (0..n)
            .flat_map(|r| (0..n).filter(move |&c| c != r).map(move |c| (r, c)))
            .map(|(r, c)| self.counts[r][c])
            .max()
            .unwrap_or(0)
            .max(1) as f64;
        for r in 0..n {
            for c in 0..n {
                let v = self.counts[r][c];
                let (base, max) = if r == c {
                    (DIAGONAL, max_diag)
                } else {
                    (OFF_DIAGONAL, max_off)
                };
                let (fill, color) = if v == 0 {
                    (WHITE, Some(ZERO_TEXT))
                } else {
                    (mix(WHITE, base, 0.12 + 0.88 * v as f64 / max), None)
                };
                // Zeros are written only in small matrices, where they do not clutter.
                let label = if v == 0 && n > 8 {
                    String::new()
                } else {
                    v.to_string()
                };
                self.cell(
                    root,
                    (x0 + c as i32 * cell, y0 + r as i32 * cell),
                    (cell, cell),
                    fill,
                    &label,
                    self.count_size,
                    color,
                )?;
            }
        }

        // Row summary: recall of each true class, as a bar filling from the left.
        let summary_size = self.summary_size;
        let sx = x0 + matrix + 10;
        root.draw_text(
            "Recall",
            &anchored(&bold(self.label_size, &INK), HPos::Center, VPos::Bottom),
            (sx + self.summary_w / 2, y0 - 8),
        )?;
        for r in 0..n {
            let (label, v) = percent(self.counts[r][r] as u128, self.row_sums[r]);
            let at = (sx, y0 + r as i32 * cell);
            self.summary(root, at, (self.summary_w, cell), v, false)?;
            let size = summary_size.min(cell as f64 * 0.55);
            if size >= 9.0 {
                root.draw_text(
                    &label,
                    &anchored(&text(size, &INK), HPos::Center, VPos::Center),
                    (at.0 + self.summary_w / 2, at.1 + cell / 2),
                )?;
            }
        }

        // Column summary: precision of each predicted class, as a bar filling
        // from the bottom; vertical text when the cells are narrow.
        let sy = y0 + matrix + 10;
        let summary_h = self.summary_h;
        root.draw_text(
            "Precision",
            &anchored(&bold(self.label_size, &INK), HPos::Right, VPos::Center),
            (x0 - 10, sy + summary_h / 2),
        )?;
        for c in 0..n {
            let (label, v) = percent(self.counts[c][c] as u128, self.col_sums[c]);
            let x = x0 + c as i32 * cell;
            self.summary(root, (x, sy), (cell, summary_h), v, true)?;
            let style = anchored(&text(summary_size, &INK), HPos::Center, VPos::Center);
            let style = if self.narrow {
                if cell < 14 {
                    continue;
                }
                style.transform(FontTransform::Rotate270)
            } else {
                style
            };
            root.draw_text(&label, &style, (x + cell / 2, sy + summary_h / 2))?;
        }
        // Corner: overall accuracy.
        let (label, v) = percent(self.correct, self.total);
        self.summary(root, (sx, sy), (self.summary_w, summary_h), v, false)?;
        root.draw_text(
            &label,
            &anchored(&bold(summary_size, &INK), HPos::Center, VPos::Center),
            (sx + self.summary_w / 2, sy + summary_h / 2),
        )?;

        // Class names: rows on the left, columns below the precision row.
        let label_style = text(self.label_size, &INK);
        let row_step = (14.0 / cell as f64).ceil().max(1.0) as usize;
        for (r, name) in self.names.iter().enumerate() {
            if r % row_step == 0 {
                root.draw_text(
                    name,
                    &anchored(&label_style, HPos::Right, VPos::Center),
                    (x0 - 10, y0 + r as i32 * cell + cell / 2),
                )?;
            }
        }
        let ly = sy + summary_h + 10;
        for (c, name) in self.names.iter().enumerate() {
            if c % row_step != 0 {
                continue;
            }
            let x = x0 + c as i32 * cell + cell / 2;
            if self.vertical {
                root.draw_text(
                    name,
                    &anchored(&label_style, HPos::Right, VPos::Center)
                        .transform(FontTransform::Rotate270),
                    (x, ly),
                )?;
            } else {
                root.draw_text(
                    name,
                    &anchored(&label_style, HPos::Center, VPos::Top),
                    (x, ly),
                )?;
            }
        }

        // Axis titles.
        let axis = text(AXIS_SIZE, &INK);
        root.draw_text(
            "Predicted class",
            &anchored(&axis, HPos::Center, VPos::Top),
            (x0 + matrix / 2, ly + self.col_label_h + 12),
        )?;
        root.draw_text(
            "True class",
            &anchored(&axis, HPos::Center, VPos::Top).transform(FontTransform::Rotate270),
            (x0 - 10 - self.label_w - 32, y0 + matrix / 2),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages() {
        assert_eq!(percent(1, 3).0, "33.3%");
        assert_eq!(percent(0, 0), ("–".to_string(), None));
        assert_eq!(percent(5, 5).1, Some(1.0));
    }
}
