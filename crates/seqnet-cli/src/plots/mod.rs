//! seqnet's pictures: the training progress, the confusion matrix,
//! activation heat maps and forecasts, written as PNG or SVG by the file's
//! extension.
//!
//! Every picture is drawn in memory and then written to a temporary file in
//! the destination's folder and renamed into place, so a failed run never
//! leaves a half-written picture behind. The text is drawn with the embedded
//! DejaVu Sans font, so no system font is needed.

mod activations;
mod confusion;
mod fonts;
mod forecast;
mod lstm_diagram;
mod minibatch;
mod progress;

pub use activations::activations_heatmap;
pub use confusion::confusion_matrix;
pub use forecast::{forecast_plot, ForecastFigure};
pub use lstm_diagram::{lstm_cell_diagram, lstm_flow_diagram, LstmFlow};
pub use minibatch::{minibatch_figure, BatchView, Cell, MiniBatchFigure, Panel};
pub use progress::training_progress;

use std::fmt;
use std::path::Path;

use crate::CliError;
use image::ImageEncoder as _;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use fonts::{ensure_font, TextFix, FONT};

/// The picture formats, chosen by the file extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Format {
    Png,
    Svg,
}

impl Format {
    /// The format of `path` by its extension (case-insensitive).
    pub(crate) fn of(path: &Path) -> Result<Format, CliError> {
        let ext = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match ext.as_deref() {
            Some("png") => Ok(Format::Png),
            Some("svg") => Ok(Format::Svg),
            other => Err(CliError::PictureFormat {
                path: path.display().to_string(),
                problem: match other {
                    Some(e) => format!("unknown extension '.{e}'"),
                    None => "the file name has no extension".to_string(),
                },
            }),
        }
    }
}

/// A failure while drawing, turned into [`CliError::Drawing`] naming the path.
#[derive(Debug)]
pub(crate) struct DrawError(pub(crate) String);

impl fmt::Display for DrawError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error + Send + Sync> From<DrawingAreaErrorKind<E>> for DrawError {
    fn from(e: DrawingAreaErrorKind<E>) -> Self {
        DrawError(e.to_string())
    }
}

/// What drawing functions return.
pub(crate) type DrawResult = Result<(), DrawError>;

/// A picture that can be drawn on any plotters backend.
pub(crate) trait Picture {
    /// The picture's size in pixels.
    fn size(&self) -> (u32, u32);
    /// Draws the picture on `root`, which covers [`Picture::size`].
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult;
}

/// Draws `picture` and writes it atomically to `path` as PNG or SVG.
pub(crate) fn render<P: Picture>(picture: &P, path: &Path) -> Result<(), CliError> {
    let format = Format::of(path)?;
    ensure_font();
    let drawing_error = |message: String| CliError::Drawing {
        path: path.display().to_string(),
        message,
    };
    // A bug in the drawing must not take the caller down: it becomes an error.
    let drawn =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw_bytes(picture, format)));
    let bytes = match drawn {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(e)) => return Err(drawing_error(e.0)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "the drawing failed".to_string());
            return Err(drawing_error(message));
        }
    };
    seqnet_train::model::write_atomically(path, &bytes).map_err(CliError::from_write)
}

/// The picture's file contents in `format`.
fn draw_bytes<P: Picture>(picture: &P, format: Format) -> Result<Vec<u8>, DrawError> {
    let (w, h) = picture.size();
    if w == 0 || h == 0 || w > 16_384 || h > 16_384 {
        return Err(DrawError(format!(
            "a picture of {w}x{h} pixels is too large or empty"
        )));
    }
    match format {
        Format::Png => {
            let mut rgb = vec![0u8; w as usize * h as usize * 3];
            {
                let root = TextFix::raster(BitMapBackend::with_buffer(&mut rgb, (w, h)))
                    .into_drawing_area();
                picture.draw(&root)?;
                root.present()?;
            }
            let mut png = Vec::new();
            image::codecs::png::PngEncoder::new(&mut png)
                .write_image(&rgb, w, h, image::ColorType::Rgb8)
                .map_err(|e| DrawError(format!("PNG encoding failed: {e}")))?;
            Ok(png)
        }
        Format::Svg => {
            let mut svg = String::new();
            {
                let root =
                    TextFix::vector(SVGBackend::with_string(&mut svg, (w, h))).into_drawing_area();
                picture.draw(&root)?;
                root.present()?;
            }
            Ok(svg.into_bytes())
        }
    }
}

// ---------------------------------------------------------------------------
// Shared drawing helpers.
// ---------------------------------------------------------------------------

/// A text style of the embedded font at `size` pixels in `color`.
pub(crate) fn text(size: f64, color: &RGBColor) -> TextStyle<'_> {
    TextStyle::from((FONT, size).into_font()).color(color)
}

/// A bold text style of the embedded font at `size` pixels in `color`.
pub(crate) fn bold(size: f64, color: &RGBColor) -> TextStyle<'_> {
    TextStyle::from((FONT, size, FontStyle::Bold).into_font()).color(color)
}

/// `style` anchored at `h`, `v`.
pub(crate) fn anchored<'a>(style: &TextStyle<'a>, h: HPos, v: VPos) -> TextStyle<'a> {
    style.pos(Pos::new(h, v))
}

/// The width of `s` in pixels when drawn at plotters text size `size`.
pub(crate) fn text_width(s: &str, size: f64) -> u32 {
    fonts::measure(s, size)
}

/// `s` with control characters (which SVG cannot hold) made spaces.
pub(crate) fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut with an ellipsis so that it is at most `max` pixels wide at `size`.
pub(crate) fn fit_text(s: &str, size: f64, max: u32) -> String {
    if text_width(s, size) <= max {
        return s.to_string();
    }
    // No glyph is narrower than a pixel: longer text cannot fit anyway.
    let chars: Vec<char> = s.chars().take(max as usize + 1).collect();
    let mut n = chars.len();
    while n > 0 {
        n -= 1;
        let candidate: String = chars[..n].iter().collect::<String>().trim_end().to_string() + "…";
        if text_width(&candidate, size) <= max {
            return candidate;
        }
    }
    "…".to_string()
}

/// Splits `s` into lines at most `max` pixels wide at `size`, breaking at
/// spaces (and cutting words that are longer than a line).
pub(crate) fn wrap_text(s: &str, size: f64, max: u32) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        let candidate = if line.is_empty() {
            word.to_string()
        } else {
            format!("{line} {word}")
        };
        if text_width(&candidate, size) <= max || line.is_empty() {
            line = candidate;
        } else {
            lines.push(std::mem::take(&mut line));
            line = word.to_string();
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines.into_iter().map(|l| fit_text(&l, size, max)).collect()
}

/// A "nice" step (1, 2 or 5 times a power of ten) at least `raw`.
pub(crate) fn nice_step(raw: f64) -> f64 {
    if !raw.is_finite() || raw <= 0.0 {
        return 1.0;
    }
    let p = 10f64.powf(raw.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= raw * (1.0 - 1e-9) {
            return m * p;
        }
    }
    10.0 * p
}

/// Integer tick positions in `1..=n`, at least `min_gap` pixels apart when
/// `n` units take `length` pixels: 1, the multiples of a nice step, and `n`.
pub(crate) fn integer_ticks(n: usize, length: f64, min_gap: f64) -> Vec<usize> {
    if n == 0 {
        return Vec::new();
    }
    let per_unit = length / n as f64;
    let step = nice_step(min_gap / per_unit.max(1e-9)).max(1.0) as usize;
    let mut ticks = vec![1];
    let mut t = step;
    while t <= n {
        if t > 1 && (t - 1) as f64 * per_unit >= min_gap {
            ticks.push(t);
        }
        t += step;
    }
    // The last one too, when there is room for it.
    let last = *ticks.last().unwrap_or(&1);
    if last != n && (n - last) as f64 * per_unit >= min_gap {
        ticks.push(n);
    }
    ticks
}

/// A number in a compact form with about `digits` significant digits.
pub(crate) fn compact(v: f64, digits: usize) -> String {
    if v == 0.0 {
        return "0".to_string();
    }
    if !v.is_finite() {
        return format!("{v}");
    }
    let mag = v.abs().log10().floor() as i32;
    if !(-3..6).contains(&mag) {
        return format!("{:.*e}", digits.saturating_sub(1), v);
    }
    let decimals = (digits as i32 - 1 - mag).max(0) as usize;
    let s = format!("{v:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

/// Linear mix of two colours: `t` = 0 gives `a`, 1 gives `b`.
pub(crate) fn mix(a: RGBColor, b: RGBColor, t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    };
    let c = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * t).round() as u8;
    RGBColor(c(a.0, b.0), c(a.1, b.1), c(a.2, b.2))
}

/// Relative luminance of a colour, 0 (black) to 1 (white).
pub(crate) fn luminance(c: RGBColor) -> f64 {
    (0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64) / 255.0
}

/// Dark grey used for text.
pub(crate) const INK: RGBColor = RGBColor(33, 33, 33);
/// Mid grey used for secondary text.
pub(crate) const MUTED: RGBColor = RGBColor(100, 100, 100);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.0), 1.0);
        assert_eq!(nice_step(1.2), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(0.0), 1.0);
        assert_eq!(nice_step(f64::NAN), 1.0);
    }

    #[test]
    fn ticks() {
        assert_eq!(integer_ticks(0, 100.0, 10.0), Vec::<usize>::new());
        assert_eq!(integer_ticks(1, 100.0, 10.0), vec![1]);
        assert_eq!(integer_ticks(5, 500.0, 40.0), vec![1, 2, 3, 4, 5]);
        assert_eq!(
            integer_ticks(100, 500.0, 40.0),
            vec![1, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
        );
        // 1 and 2 would be too close; 64 is far enough from 60.
        assert_eq!(integer_ticks(8, 144.0, 22.0), vec![1, 4, 6, 8]);
        assert_eq!(
            integer_ticks(64, 620.0, 22.0),
            vec![1, 5, 10, 15, 20, 25, 30, 35, 40, 45, 50, 55, 60, 64]
        );
    }

    #[test]
    fn compact_numbers() {
        assert_eq!(compact(0.0, 3), "0");
        assert_eq!(compact(1.5, 3), "1.5");
        assert_eq!(compact(0.12345, 3), "0.123");
        assert_eq!(compact(1234.0, 3), "1234");
        assert_eq!(compact(1.0e-5, 2), "1.0e-5");
    }
}
