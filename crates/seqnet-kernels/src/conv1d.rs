//! The 1-D convolution (stride 1, no dilation) without an im2col matrix.
//!
//! The sequences of a time-major mini-batch (`[T, B, width]`, row `t·B + b`)
//! are copied into *slots*: a sequence-major buffer `[B, S, width]` whose
//! slot `b` holds sequence `b`'s rows in order, surrounded by a fill value
//! ([`gather_slots`]). In that buffer the window of `K` consecutive rows
//! starting at row `i` is the `K·width` contiguous values from `i·width`, so
//! the im2col matrix is a view of overlapping rows (row stride `width`, row
//! length `K·width`) and the convolution is one product on it
//! ([`windows_product`], [`windows_t_product`]); [`scatter_slots`] puts the
//! result rows back in time-major order. Rows whose window runs past the end
//! of a slot are computed and never read (`K − 1` rows per slot).

use crate::fresh::fresh_rows;
use crate::gemm::matmul_into;
use ndarray::{ArrayView2, ArrayViewMut2, ShapeBuilder};
use rayon::prelude::*;

/// Where one sequence's rows are in a time-major buffer and in its slot:
/// slot row `slot_start + i` is time row `time_start + i`, for `i < len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    /// First time step of the sequence's rows in the time-major buffer.
    pub time_start: usize,
    /// Its first row in the slot.
    pub slot_start: usize,
    /// Rows.
    pub len: usize,
}

/// Copies the sequences of `src` (`[T, B, width]`, `B = spans.len()`) into
/// slots of `slot_rows` rows: `dst` becomes `[B, slot_rows, width]`, slot `b`
/// holding `fill` except rows `spans[b].slot_start..+len`, which hold time
/// rows `spans[b].time_start..+len` of sequence `b`. `dst`'s allocation is
/// reused; every element is written.
///
/// # Panics
/// When a span does not fit in `src` or in its slot (a bug in the caller).
pub fn gather_slots(
    src: &[f32],
    width: usize,
    spans: &[Span],
    slot_rows: usize,
    fill: f32,
    dst: &mut Vec<f32>,
) {
    let batch = spans.len();
    dst.resize(batch * slot_rows * width, 0.0);
    if width == 0 || slot_rows == 0 {
        return;
    }
    dst.par_chunks_mut(slot_rows * width)
        .zip(spans)
        .enumerate()
        .for_each(|(b, (slot, sp))| {
            assert!(sp.slot_start + sp.len <= slot_rows, "span outside its slot");
            let (head, rest) = slot.split_at_mut(sp.slot_start * width);
            let (body, tail) = rest.split_at_mut(sp.len * width);
            head.fill(fill);
            tail.fill(fill);
            for (i, row) in body.chunks_exact_mut(width).enumerate() {
                let at = ((sp.time_start + i) * batch + b) * width;
                row.copy_from_slice(&src[at..at + width]);
            }
        });
}

/// The time-major `[time, B, width]` array (`B = spans.len()`) whose row
/// `(spans[b].time_start + i, b)` is slot row `spans[b].slot_start + i` of
/// `src` (slots of `slot_rows` rows, `[B·slot_rows, width]` or shorter: only
/// the spans' rows are read) plus `bias` when given, for `i < spans[b].len`;
/// every other row is 0.
///
/// # Panics
/// When a span does not fit in `src` or in `time` (a bug in the caller), or
/// `bias` is not `width` long.
pub fn scatter_slots(
    src: &[f32],
    width: usize,
    spans: &[Span],
    slot_rows: usize,
    bias: Option<&[f32]>,
    time: usize,
) -> Vec<f32> {
    let batch = spans.len();
    if let Some(bias) = bias {
        assert_eq!(bias.len(), width, "scatter_slots: bias length");
    }
    if width == 0 || batch == 0 {
        return vec![0.0; time * batch * width];
    }
    fresh_rows(time, batch * width, 1, |t, rows| {
        for (b, (row, sp)) in rows.chunks_exact_mut(width).zip(spans).enumerate() {
            let Some(i) = t.checked_sub(sp.time_start).filter(|&i| i < sp.len) else {
                row.fill(0.0);
                continue;
            };
            let at = (b * slot_rows + sp.slot_start + i) * width;
            let s = &src[at..at + width];
            match bias {
                Some(bias) => row
                    .iter_mut()
                    .zip(s.iter().zip(bias))
                    .for_each(|(d, (v, c))| *d = v + c),
                None => row.copy_from_slice(s),
            }
        }
    })
}

/// `dst` `[cols, rows]`: `src` `[rows, cols]` transposed, in tiles of
/// `16 × 16` so that both sides stay in cache.
///
/// # Panics
/// When a slice is shorter than `rows·cols`.
pub fn transpose(src: &[f32], rows: usize, cols: usize, dst: &mut [f32]) {
    const TILE: usize = 16;
    assert!(
        src.len() >= rows * cols && dst.len() >= rows * cols,
        "transpose: sizes"
    );
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    dst[c * rows + r] = src[r * cols + c];
                }
            }
        }
    }
}

/// The view of `rows` overlapping rows of `width` values, row `i` starting
/// at `src[i·step]`.
fn windows_view(src: &[f32], step: usize, rows: usize, width: usize) -> ArrayView2<'_, f32> {
    let len = if rows == 0 {
        0
    } else {
        (rows - 1) * step + width
    };
    assert!(src.len() >= len, "windows: source too short");
    ArrayView2::from_shape((rows, width).strides((step, 1)), &src[..len])
        .expect("read-only view of overlapping rows inside the slice")
}

/// `out[i, j] = Σ_p src[i·step + p] · w[p, j]` for `i < rows`, `j < n`,
/// `p < width`: the windows of `width` values `step` apart times `w`
/// `[width, n]`, into `out` `[rows, n]` (overwritten), on rayon's threads.
///
/// # Panics
/// When a slice is too short for the sizes (a bug in the caller).
pub fn windows_product(
    src: &[f32],
    step: usize,
    rows: usize,
    width: usize,
    w: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let a = windows_view(src, step, rows, width);
    let b = ArrayView2::from_shape((width, n), &w[..width * n]).expect("[width, n]");
    let c = ArrayViewMut2::from_shape((rows, n), &mut out[..rows * n]).expect("[rows, n]");
    matmul_into(a, b, c, false);
}

/// `out[p, j] = Σ_i src[i·step + p] · g[i, j]` for `i < rows`: the transposed
/// windows (as in [`windows_product`]) times `g` `[rows, n]`, into `out`
/// `[width, n]` (overwritten), on rayon's threads.
///
/// # Panics
/// When a slice is too short for the sizes (a bug in the caller).
pub fn windows_t_product(
    src: &[f32],
    step: usize,
    rows: usize,
    width: usize,
    g: &[f32],
    n: usize,
    out: &mut [f32],
) {
    let a = windows_view(src, step, rows, width);
    let b = ArrayView2::from_shape((rows, n), &g[..rows * n]).expect("[rows, n]");
    let c = ArrayViewMut2::from_shape((width, n), &mut out[..width * n]).expect("[width, n]");
    matmul_into(a.t(), b, c, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 7 + seed * 13) % 23) as f32 * 0.125 - 1.375)
            .collect()
    }

    #[test]
    fn windows_products_match_naive_sums() {
        // Windows overlapping (step < width), touching and apart; one row;
        // sizes past the threaded threshold.
        for &(step, rows, width, n) in &[
            (3, 10, 12, 5),
            (4, 7, 4, 9),
            (5, 6, 2, 3),
            (2, 1, 6, 4),
            (128, 600, 640, 256),
        ] {
            let src = values((rows - 1) * step + width, 1);
            let w = values(width * n, 2);
            let g = values(rows * n, 3);
            let mut out = vec![f32::NAN; rows * n];
            windows_product(&src, step, rows, width, &w, n, &mut out);
            let mut out_t = vec![f32::NAN; width * n];
            windows_t_product(&src, step, rows, width, &g, n, &mut out_t);
            for i in 0..rows {
                for j in 0..n {
                    let want: f64 = (0..width)
                        .map(|p| src[i * step + p] as f64 * w[p * n + j] as f64)
                        .sum();
                    let got = out[i * n + j] as f64;
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{i},{j}");
                }
            }
            for p in 0..width {
                for j in 0..n {
                    let want: f64 = (0..rows)
                        .map(|i| src[i * step + p] as f64 * g[i * n + j] as f64)
                        .sum();
                    let got = out_t[p * n + j] as f64;
                    assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{p},{j}");
                }
            }
        }
    }

    #[test]
    fn transpose_moves_every_element() {
        for (rows, cols) in [(1, 1), (3, 40), (17, 16), (33, 5)] {
            let src = values(rows * cols, 5);
            let mut dst = vec![f32::NAN; rows * cols];
            transpose(&src, rows, cols, &mut dst);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(dst[c * rows + r], src[r * cols + c]);
                }
            }
        }
    }

    #[test]
    fn gather_then_scatter_moves_each_sequence_and_zeroes_the_rest() {
        // [T = 5, B = 3, width 2]; sequence 1 left-padded, sequence 2 empty.
        let (time, width) = (5, 2);
        let spans = [
            Span {
                time_start: 0,
                slot_start: 2,
                len: 5,
            },
            Span {
                time_start: 3,
                slot_start: 1,
                len: 2,
            },
            Span {
                time_start: 5,
                slot_start: 0,
                len: 0,
            },
        ];
        let src = values(time * 3 * width, 4);
        let mut slots = vec![9.0; 3];
        gather_slots(&src, width, &spans, 8, -0.5, &mut slots);
        assert_eq!(slots.len(), 3 * 8 * width);
        for (b, sp) in spans.iter().enumerate() {
            for r in 0..8 {
                for c in 0..width {
                    let got = slots[(b * 8 + r) * width + c];
                    let want = match r.checked_sub(sp.slot_start).filter(|&i| i < sp.len) {
                        Some(i) => src[((sp.time_start + i) * 3 + b) * width + c],
                        None => -0.5,
                    };
                    assert_eq!(got, want, "slot {b} row {r}");
                }
            }
        }
        let bias = [0.25, -1.0];
        let back = scatter_slots(&slots, width, &spans, 8, Some(&bias), time);
        let plain = scatter_slots(&slots, width, &spans, 8, None, time);
        for t in 0..time {
            for (b, sp) in spans.iter().enumerate() {
                for (c, &bc) in bias.iter().enumerate() {
                    let at = (t * 3 + b) * width + c;
                    let real = (sp.time_start..sp.time_start + sp.len).contains(&t);
                    let want = if real { src[at] } else { 0.0 };
                    assert_eq!(plain[at], want, "t {t} b {b}");
                    let want = if real { src[at] + bc } else { 0.0 };
                    assert_eq!(back[at], want, "t {t} b {b}");
                }
            }
        }
    }
}
