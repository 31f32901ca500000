//! The embedded font and the text drawing of the pictures.
//!
//! plotters' own glyph drawing drops each glyph's side bearing (so "Training"
//! comes out as "T raining") and sizes text differently from its SVG backend.
//! [`TextFix`] wraps a backend: on bitmaps it draws the text itself with
//! correct glyph placement, and on every backend it measures text the way the
//! SVG backend renders it (em = size / 1.24), so PNG and SVG agree.

use std::sync::{Once, OnceLock};

use ab_glyph::{point, Font, FontRef, PxScale, ScaleFont};
use plotters::prelude::*;
use plotters_backend::text_anchor::{HPos, VPos};
use plotters_backend::{
    BackendColor, BackendCoord, BackendStyle, BackendTextStyle, DrawingErrorKind, FontTransform,
};

/// The font family every picture uses; the embedded DejaVu Sans is registered
/// under this name.
pub(crate) const FONT: &str = "sans-serif";

/// DejaVu Sans (Bitstream Vera license, see `assets/LICENSE-DejaVuSans.txt`).
pub(crate) static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Registers the embedded font with plotters, once per process.
pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The font is a fixed asset that a test parses; were it to fail, the
        // pictures would lose their text, not crash.
        for style in [FontStyle::Normal, FontStyle::Bold] {
            let _ = plotters::style::register_font(FONT, style, DEJAVU_SANS);
        }
    });
}

/// The parsed embedded font.
fn font() -> Option<&'static FontRef<'static>> {
    static FONT_REF: OnceLock<Option<FontRef<'static>>> = OnceLock::new();
    FONT_REF
        .get_or_init(|| FontRef::try_from_slice(DEJAVU_SANS).ok())
        .as_ref()
}

/// The font size in CSS pixels (em) of a plotters text size, as the SVG
/// backend writes it.
fn em(size: f64) -> f32 {
    (size / 1.24) as f32
}

/// The width in pixels of `text` at plotters text size `size`, as drawn (and
/// as the SVG backend's font-size gives it).
pub(crate) fn measure(text: &str, size: f64) -> u32 {
    match font() {
        Some(f) => layout(f, text, size).width.ceil() as u32,
        // Without the font, a rough average glyph width.
        None => (text.chars().count() as f64 * size * 0.45).ceil() as u32,
    }
}

/// Text laid out along a baseline at y = 0, starting at x = 0.
struct Layout {
    scale: PxScale,
    /// Glyphs with their pen positions.
    glyphs: Vec<(ab_glyph::GlyphId, f32)>,
    width: f32,
    /// Height of the lower-case x (CSS `ex`).
    ex: f32,
}

fn layout(font: &FontRef<'static>, text: &str, size: f64) -> Layout {
    let em = em(size);
    let upm = font.units_per_em().unwrap_or(2048.0);
    let scale = PxScale::from(em * font.height_unscaled() / upm);
    let scaled = font.as_scaled(scale);
    let mut glyphs = Vec::with_capacity(text.len());
    let mut x = 0.0;
    let mut prev = None;
    for c in text.chars() {
        let id = scaled.glyph_id(c);
        if let Some(p) = prev {
            x += scaled.kern(p, id);
        }
        glyphs.push((id, x));
        x += scaled.h_advance(id);
        prev = Some(id);
    }
    let ex = scaled
        .outline_glyph(scaled.scaled_glyph('x'))
        .map_or(em * 0.55, |g| -g.px_bounds().min.y);
    Layout {
        scale,
        glyphs,
        width: x,
        ex,
    }
}

/// A drawing backend whose text is measured like the SVG backend renders it
/// and, on bitmaps, drawn with correctly placed glyphs.
pub(crate) struct TextFix<B> {
    inner: B,
    /// Draw text as pixels (bitmaps) rather than delegating (SVG).
    raster: bool,
}

impl<B: DrawingBackend> TextFix<B> {
    /// Wraps a bitmap backend: text is drawn here.
    pub(crate) fn raster(inner: B) -> Self {
        TextFix {
            inner,
            raster: true,
        }
    }

    /// Wraps a vector backend: text is drawn by it, measured here.
    pub(crate) fn vector(inner: B) -> Self {
        TextFix {
            inner,
            raster: false,
        }
    }
}

impl<B: DrawingBackend> DrawingBackend for TextFix<B> {
    type ErrorType = B::ErrorType;

    fn get_size(&self) -> (u32, u32) {
        self.inner.get_size()
    }

    fn ensure_prepared(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.ensure_prepared()
    }

    fn present(&mut self) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.present()
    }

    fn draw_pixel(
        &mut self,
        point: BackendCoord,
        color: BackendColor,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_pixel(point, color)
    }

    fn draw_line<S: BackendStyle>(
        &mut self,
        from: BackendCoord,
        to: BackendCoord,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_line(from, to, style)
    }

    fn draw_rect<S: BackendStyle>(
        &mut self,
        upper_left: BackendCoord,
        bottom_right: BackendCoord,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_rect(upper_left, bottom_right, style, fill)
    }

    fn draw_path<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        path: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_path(path, style)
    }

    fn draw_circle<S: BackendStyle>(
        &mut self,
        center: BackendCoord,
        radius: u32,
        style: &S,
        fill: bool,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.draw_circle(center, radius, style, fill)
    }

    fn fill_polygon<S: BackendStyle, I: IntoIterator<Item = BackendCoord>>(
        &mut self,
        vert: I,
        style: &S,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.fill_polygon(vert, style)
    }

    fn blit_bitmap(
        &mut self,
        pos: BackendCoord,
        size: (u32, u32),
        src: &[u8],
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        self.inner.blit_bitmap(pos, size, src)
    }

    fn estimate_text_size<TStyle: BackendTextStyle>(
        &self,
        text: &str,
        style: &TStyle,
    ) -> Result<(u32, u32), DrawingErrorKind<Self::ErrorType>> {
        match font() {
            Some(f) => {
                let l = layout(f, text, style.size());
                Ok((l.width.ceil() as u32, em(style.size()).ceil() as u32))
            }
            None => self.inner.estimate_text_size(text, style),
        }
    }

    fn draw_text<TStyle: BackendTextStyle>(
        &mut self,
        text: &str,
        style: &TStyle,
        pos: BackendCoord,
    ) -> Result<(), DrawingErrorKind<Self::ErrorType>> {
        let font = match font() {
            Some(f) if self.raster => f,
            _ => return self.inner.draw_text(text, style, pos),
        };
        let color = style.color();
        if color.alpha == 0.0 || text.is_empty() {
            return Ok(());
        }
        let em = em(style.size());
        let l = layout(font, text, style.size());
        // Where the text starts and where its baseline is, relative to `pos`,
        // as the SVG backend places them (text-anchor and dy).
        let x0 = match style.anchor().h_pos {
            HPos::Left => 0.0,
            HPos::Center => -l.width / 2.0,
            HPos::Right => -l.width,
        };
        let baseline = match style.anchor().v_pos {
            VPos::Top => 0.76 * em,
            VPos::Center => 0.5 * l.ex,
            VPos::Bottom => -0.5 * l.ex,
        };
        // Coverage of the unrotated text, one value per pixel.
        let mut coverage: std::collections::HashMap<(i32, i32), f32> =
            std::collections::HashMap::new();
        for &(id, x) in &l.glyphs {
            let glyph = id.with_scale_and_position(l.scale, point(x0 + x, baseline));
            if let Some(outline) = font.outline_glyph(glyph) {
                let b = outline.px_bounds();
                outline.draw(|gx, gy, c| {
                    if c > 0.0 {
                        let key = (b.min.x as i32 + gx as i32, b.min.y as i32 + gy as i32);
                        let v = coverage.entry(key).or_insert(0.0);
                        *v = (*v + c).min(1.0);
                    }
                });
            }
        }
        if matches!(style.style(), FontStyle::Bold) {
            // A faux bold: widen every stroke by one pixel.
            let spread: Vec<((i32, i32), f32)> = coverage
                .iter()
                .map(|(&(x, y), &c)| ((x + 1, y), c))
                .collect();
            for (k, c) in spread {
                let v = coverage.entry(k).or_insert(0.0);
                *v = v.max(c);
            }
        }
        let trans: FontTransform = style.transform();
        let (w, h) = self.inner.get_size();
        let mut pixels: Vec<_> = coverage.into_iter().collect();
        pixels.sort_by_key(|&((x, y), _)| (y, x));
        for ((x, y), c) in pixels {
            let (dx, dy) = trans.transform(x, y);
            let (px, py) = (pos.0 + dx, pos.1 + dy);
            if px >= 0 && py >= 0 && px < w as i32 && py < h as i32 {
                self.inner.draw_pixel(
                    (px, py),
                    BackendColor {
                        alpha: color.alpha * c as f64,
                        rgb: color.rgb,
                    },
                )?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_font_parses() {
        assert!(font().is_some());
        assert!(
            plotters::style::register_font("seqnet-test", FontStyle::Normal, DEJAVU_SANS).is_ok()
        );
    }

    #[test]
    fn text_width_grows_with_size_and_length() {
        let f = font().unwrap();
        let a = layout(f, "Training", 20.0).width;
        let b = layout(f, "Training", 40.0).width;
        let c = layout(f, "Training progress", 20.0).width;
        assert!(a > 40.0 && (b / a - 2.0).abs() < 0.01 && c > a);
        assert_eq!(layout(f, "", 20.0).width, 0.0);
    }
}
