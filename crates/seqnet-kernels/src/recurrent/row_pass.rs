//! The row scheduling that the fused recurrent forwards ([`super::lstm_forward()`],
//! [`super::gru_forward()`]) share: each thread owns interleaved observations
//! (rows) for the whole pass, and at each step copies its real rows'
//! `[x_t, h_{t-1}]` side by side, cuts them into register tiles of at most
//! [`MAX_ROWS`] rows and sends every tile through every unit group of 16
//! hidden units. What a tile computes (the gate sums and the cell update) is
//! the layer's [`Cell`].
//!
//! Each row's result is a sum over `k` in a fixed order whichever rows come
//! with it and whichever thread computes it: a sequence gets the same bits in
//! any batch, padded or not, on one thread or two.

use super::Steps;
use crate::act::Act;
use crate::cpu::Isa;
use crate::shared::SharedMut;
use crate::threads::share;

/// Hidden units per group: one 16-lane vector per gate sum.
pub(super) const LANES: usize = 16;
/// Rows per register tile at most: 6 rows × 4 sums = 24 accumulators.
pub(super) const MAX_ROWS: usize = 6;

/// What the row pass needs of one direction's pass through time. The buffers'
/// lengths are checked by the caller: `x` `[T·B, kx]`, the hidden states
/// `hp` `[(T+2)·B, H]`.
pub(super) struct RowPass<'a> {
    pub steps: &'a Steps,
    /// From the last step to the first.
    pub reverse: bool,
    /// The input `[T·B, kx]` (empty when `kx` is 0).
    pub x: &'a [f32],
    /// Input features folded into each step's product (0: projected beforehand).
    pub kx: usize,
    /// Hidden units `H`.
    pub h: usize,
    /// The hidden states, `T + 2` slots of `[B, H]`.
    pub hp: SharedMut,
    /// Whether every recurrent weight is finite: then a zero state's product
    /// is exactly zero and can be skipped.
    pub recurrent_finite: bool,
    pub isa: Isa,
}

/// The step a tile belongs to: time `t`, state slots before and after, and
/// the panel rows to multiply (`K`, or only the input's from a zero state).
pub(super) struct Step {
    pub t: usize,
    pub prev: usize,
    pub out: usize,
    pub k_end: usize,
}

/// A recurrent layer's arithmetic for the row pass: its register tiles (the
/// gate sums of up to [`MAX_ROWS`] rows for one unit group, then the cell
/// update of each row) and what a padded step carries over besides `h`.
pub(super) trait Cell: Sync {
    /// Carries a row's state other than `h` over a padded step: from offset
    /// `prev` to offset `out` (offsets of the row's `[H]` in the `[(T+2)·B, H]`
    /// state buffers).
    ///
    /// # Safety
    /// The offsets are a row's in two different slots of the checked buffers;
    /// the row is the calling thread's.
    unsafe fn carry(&self, prev: usize, out: usize);

    /// The AVX-512 tile of `R` rows `rows` of unit group `g` at step `st`;
    /// `a` holds the rows' `[x_t, h_{t-1}]`, `[R, K]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; the rows are real at the step, inside the batch
    /// and owned by the calling thread; `g` is inside the unit groups; `a`
    /// holds `R` rows of `K`.
    #[cfg(target_arch = "x86_64")]
    unsafe fn avx512_tile<const R: usize, G: Act, S: Act>(
        &self,
        st: &Step,
        g: usize,
        rows: &[usize],
        a: *const f32,
    );

    /// The portable tile: the same sums in the same order as the AVX-512 one.
    ///
    /// # Safety
    /// As [`Cell::avx512_tile`], on any CPU.
    unsafe fn portable_tile<G: Act, S: Act>(&self, st: &Step, g: usize, rows: &[usize], a: &[f32]);
}

/// The pass on `threads` threads (at most one a row): each runs [`run_rows`]
/// for its share of the rows; they meet only when the pass ends.
pub(super) fn run<G: Act, S: Act, C: Cell>(rp: &RowPass, cell: &C, threads: usize) {
    let parts = threads.clamp(1, rp.steps.b.max(1));
    if parts == 1 {
        run_rows::<G, S, C>(rp, cell, 0, 1);
    } else {
        share(parts, |part| run_rows::<G, S, C>(rp, cell, part, parts));
    }
}

/// The pass for rows `part, part + parts, …` (interleaved, so that a batch
/// sorted by length shares its long sequences between the threads).
///
/// At each step the thread's real rows are cut into tiles of at most
/// [`MAX_ROWS`], each row's `[x_t, h_{t-1}]` is copied into `a` (`[rows, K]`,
/// so that a tile's rows are `K` apart), and each tile goes through every
/// unit group. (Blocking `K`, so that a group's panels stay in L1 while every
/// tile uses them, measured slower: the panels stream from L2 fast enough.)
fn run_rows<G: Act, S: Act, C: Cell>(rp: &RowPass, cell: &C, part: usize, parts: usize) {
    let (b, h, kx) = (rp.steps.b, rp.h, rp.kx);
    let k = kx + h;
    let bh = b * h;
    let mine = b.saturating_sub(part).div_ceil(parts);
    let mut real = Vec::with_capacity(mine);
    let mut a = vec![0f32; mine * k];
    for kt in 0..rp.steps.t {
        let t = rp.steps.step(kt, rp.reverse);
        let (prev, out) = rp.steps.slots(t, rp.reverse);
        real.clear();
        // From a zero state (every forward's first step, unless a state was
        // given or kept), the recurrent part of the product is exactly zero.
        let mut zero_state = kt == 0 && rp.recurrent_finite;
        for bi in (part..b).step_by(parts) {
            let (po, oo) = (prev * bh + bi * h, out * bh + bi * h);
            // SAFETY: `t < T` and `bi < B`, so both state rows are inside the
            // checked buffer; row `bi` of both slots is this thread's; the
            // slots differ; slot `prev` is complete and only read in this step.
            unsafe {
                if rp.steps.real(bi, t) {
                    let ar = &mut a[real.len() * k..][..k];
                    ar[..kx].copy_from_slice(&rp.x[(t * b + bi) * kx..][..kx]);
                    let hr = std::slice::from_raw_parts(rp.hp.0.add(po), h);
                    ar[kx..].copy_from_slice(hr);
                    zero_state = zero_state && hr.iter().all(|&v| v == 0.0);
                    real.push(bi);
                } else {
                    std::ptr::copy_nonoverlapping(rp.hp.0.add(po), rp.hp.0.add(oo), h);
                    cell.carry(po, oo);
                }
            }
        }
        let step = Step {
            t,
            prev,
            out,
            k_end: if zero_state { kx } else { k },
        };
        for g in 0..h.div_ceil(LANES) {
            let mut r0 = 0;
            for rows in tiles(&real) {
                let ar = &a[r0 * k..(r0 + rows.len()) * k];
                // SAFETY: `rows` are this thread's real rows at step `t`.
                unsafe { tile::<G, S, C>(rp, cell, &step, g, rows, ar) };
                r0 += rows.len();
            }
        }
    }
}

/// `rows` in consecutive tiles of at most [`MAX_ROWS`], as even as possible.
fn tiles(rows: &[usize]) -> impl Iterator<Item = &[usize]> {
    let n = rows.len();
    let count = n.div_ceil(MAX_ROWS);
    let (base, extra) = (n / count.max(1), n % count.max(1));
    let mut start = 0;
    (0..count).map(move |i| {
        let len = base + usize::from(i < extra);
        let r = &rows[start..start + len];
        start += len;
        r
    })
}

/// One tile: rows `rows` (≤ [`MAX_ROWS`]) of unit group `g` at one step,
/// with the tiles of the pass's instruction set; `a` holds the rows'
/// `[x_t, h_{t-1}]`, `[R, K]`.
///
/// # Safety
/// The rows are real at the step, inside the batch and owned by the calling
/// thread; `g` is inside the unit groups.
unsafe fn tile<G: Act, S: Act, C: Cell>(
    rp: &RowPass,
    cell: &C,
    st: &Step,
    g: usize,
    rows: &[usize],
    a: &[f32],
) {
    assert!(a.len() >= (rp.kx + rp.h) * rows.len());
    #[cfg(target_arch = "x86_64")]
    if rp.isa.avx512() {
        let a = a.as_ptr();
        // SAFETY: `rp.isa` allows AVX-512 (the CPU has AVX-512F); `a` holds
        // the tile's rows; the rest is this function's contract.
        unsafe {
            match rows.len() {
                1 => cell.avx512_tile::<1, G, S>(st, g, rows, a),
                2 => cell.avx512_tile::<2, G, S>(st, g, rows, a),
                3 => cell.avx512_tile::<3, G, S>(st, g, rows, a),
                4 => cell.avx512_tile::<4, G, S>(st, g, rows, a),
                5 => cell.avx512_tile::<5, G, S>(st, g, rows, a),
                _ => cell.avx512_tile::<6, G, S>(st, g, rows, a),
            }
        }
        return;
    }
    // SAFETY: this function's contract.
    unsafe { cell.portable_tile::<G, S>(st, g, rows, a) };
}

/// Units of group `g` (16, or fewer in the last group).
#[inline(always)]
pub(super) fn units(h: usize, g: usize) -> usize {
    (h - g * LANES).min(LANES)
}

/// One gate panel's rows from a row-major weight matrix: `panel[kk·16 + l] =
/// src[(r0 + l)·ld + kk]` for the group's `n ≤ 16` units `l` and the `cols`
/// columns `kk`, zero for lanes `l ≥ n`. In blocks of 16 columns transposed
/// through a 1 KB block on the stack, so `src` is read 16 values at a time
/// and every panel row is written whole (the column-by-column copy wrote
/// each value 64 bytes from the last).
///
/// Shapes: `src` holds rows `r0..r0 + n` of `ld ≥ cols` values, `panel`
/// holds `cols` rows of 16.
///
/// # Panics
/// When `src` or `panel` is shorter than that (a bug of the caller).
pub(super) fn pack_units(
    src: &[f32],
    ld: usize,
    r0: usize,
    n: usize,
    cols: usize,
    panel: &mut [f32],
) {
    assert!(
        n <= LANES && panel.len() >= cols * LANES,
        "pack_units: sizes"
    );
    if cols == 0 {
        return;
    }
    assert!(src.len() >= (r0 + n - 1) * ld + cols, "pack_units: source");
    #[cfg(target_arch = "x86_64")]
    if n == LANES && ld <= (i32::MAX as usize) / LANES && Isa::best().avx512() {
        // SAFETY: the CPU has AVX-512F; the asserts above bound every read
        // (rows `r0..r0 + 16`, columns `< cols ≤ ld`) and write.
        unsafe { avx512_pack::gather(src, ld, r0, cols, panel) };
        return;
    }
    for k0 in (0..cols).step_by(LANES) {
        let m = (cols - k0).min(LANES);
        let mut block = [[0f32; LANES]; LANES];
        for l in 0..n {
            let row = &src[(r0 + l) * ld + k0..][..m];
            for (b, &v) in block.iter_mut().zip(row) {
                b[l] = v;
            }
        }
        for (dst, b) in panel[k0 * LANES..(k0 + m) * LANES]
            .chunks_exact_mut(LANES)
            .zip(&block)
        {
            dst.copy_from_slice(b);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512_pack {
    use super::LANES;
    use std::arch::x86_64::*;

    /// [`super::pack_units`] for a full group: each panel row one gather of
    /// the 16 rows' column `kk`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `src` holds rows `r0..r0 + 16` of `ld ≥ cols`
    /// values (`16·ld` fits an `i32`), `panel` `cols` rows of 16.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn gather(src: &[f32], ld: usize, r0: usize, cols: usize, panel: &mut [f32]) {
        // SAFETY: this function's contract.
        unsafe {
            let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            let idx = _mm512_mullo_epi32(lanes, _mm512_set1_epi32(ld as i32));
            let base = src.as_ptr().add(r0 * ld);
            let out = panel.as_mut_ptr();
            for kk in 0..cols {
                let v = _mm512_i32gather_ps::<4>(idx, base.add(kk));
                _mm512_storeu_ps(out.add(kk * LANES), v);
            }
        }
    }
}

/// `n ≤ 16` values from `p`, zeros after.
///
/// # Safety
/// `p` holds `n` values.
#[inline(always)]
pub(super) unsafe fn load(p: *const f32, n: usize) -> [f32; LANES] {
    let mut v = [0f32; LANES];
    // SAFETY: this function's contract; `v` holds 16 values. (The full group
    // is a copy of constant size.)
    unsafe {
        if n == LANES {
            std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), LANES);
        } else {
            std::ptr::copy_nonoverlapping(p, v.as_mut_ptr(), n.min(LANES));
        }
    }
    v
}

/// The first `n ≤ 16` values of `v` to `p`.
///
/// # Safety
/// `p` has room for `n` values.
#[inline(always)]
pub(super) unsafe fn store(p: *mut f32, v: &[f32; LANES], n: usize) {
    // SAFETY: this function's contract.
    unsafe {
        if n == LANES {
            std::ptr::copy_nonoverlapping(v.as_ptr(), p, LANES);
        } else {
            std::ptr::copy_nonoverlapping(v.as_ptr(), p, n.min(LANES));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every panel value at `kk·16 + l` is the matrix's `[r0 + l, kk]`, zero
    /// past `n`, for column counts around the 16-column blocks, over a
    /// panel full of garbage.
    #[test]
    fn pack_units_puts_each_weight_where_the_tiles_read_it() {
        let ld = 45;
        let src: Vec<f32> = (0..40 * ld).map(|i| i as f32 + 0.5).collect();
        for (r0, n, cols) in [
            (0, 16, 45),
            (3, 5, 17),
            (20, 16, 16),
            (24, 1, 1),
            (7, 9, 0),
            (1, 16, 33),
        ] {
            let mut panel = vec![f32::NAN; cols * LANES + 3];
            pack_units(&src, ld, r0, n, cols, &mut panel);
            for kk in 0..cols {
                for l in 0..LANES {
                    let want = if l < n { src[(r0 + l) * ld + kk] } else { 0.0 };
                    assert_eq!(
                        panel[kk * LANES + l],
                        want,
                        "r0 {r0} n {n} cols {cols}: [{kk}, {l}]"
                    );
                }
            }
            assert!(
                panel[cols * LANES..].iter().all(|v| v.is_nan()),
                "wrote past the panel"
            );
        }
    }

    #[test]
    fn tiles_are_even_and_cover_the_rows() {
        for n in 0..20 {
            let rows: Vec<usize> = (0..n).collect();
            let got: Vec<&[usize]> = tiles(&rows).collect();
            assert_eq!(got.concat(), rows);
            assert!(got.iter().all(|t| !t.is_empty() && t.len() <= MAX_ROWS));
            let (lo, hi) = (
                got.iter().map(|t| t.len()).min().unwrap_or(0),
                got.iter().map(|t| t.len()).max().unwrap_or(0),
            );
            assert!(hi - lo <= 1, "{n} rows: tiles {lo}..{hi}");
            assert_eq!(got.len(), n.div_ceil(MAX_ROWS));
        }
    }
}
