//! Right-hand matrices packed once for many products ([`PackedPanels`],
//! [`gemm_packed`]): the recurrent passes multiply by the same weights at
//! every time step, so no step pays for packing (the `gemm` crate packs its
//! right-hand side anew in every call).

use crate::cpu::Isa;

/// Columns per panel of a [`PackedPanels`] matrix: one AVX-512 register of f32.
pub const PANEL: usize = 16;

/// A right-hand matrix `[k, n]` packed once for many products with
/// [`gemm_packed`]: panels of [`PANEL`] columns, each stored `[k, PANEL]`
/// contiguously (columns past `n` are zero).
#[derive(Debug, Clone, Default)]
pub struct PackedPanels {
    k: usize,
    n: usize,
    /// `[⌈n / PANEL⌉, k, PANEL]`.
    data: Vec<f32>,
}

impl PackedPanels {
    /// Packs `[k, n]` with `value(row, col)` giving each element, reusing the
    /// allocation. `value` is called once per element, column by column.
    pub fn pack(&mut self, k: usize, n: usize, mut value: impl FnMut(usize, usize) -> f32) {
        let panels = n.div_ceil(PANEL);
        self.k = k;
        self.n = n;
        self.data.clear();
        self.data.resize(panels * k * PANEL, 0.0);
        for col in 0..n {
            let (p, l) = (col / PANEL, col % PANEL);
            let base = p * k * PANEL + l;
            for row in 0..k {
                self.data[base + row * PANEL] = value(row, col);
            }
        }
    }

    /// Packs the row-major `b` `[k, n]` (row `r` at `b[r·n..]`), reusing the
    /// allocation: the same panels as [`PackedPanels::pack`] with `value(r, c)
    /// = b[r·n + c]`, copied a panel row (16 values) at a time instead of
    /// element by element down the columns, and every value written once (no
    /// clearing first).
    ///
    /// # Panics
    /// When `b` holds fewer than `k·n` values.
    pub fn pack_row_major(&mut self, b: &[f32], k: usize, n: usize) {
        assert!(
            b.len() >= k * n,
            "pack_row_major: b holds fewer than k·n values"
        );
        let panels = n.div_ceil(PANEL);
        self.k = k;
        self.n = n;
        self.data.resize(panels * k * PANEL, 0.0);
        if k == 0 {
            return;
        }
        for (p, panel) in self.data.chunks_exact_mut(k * PANEL).enumerate() {
            let (c0, w) = (p * PANEL, (n - p * PANEL).min(PANEL));
            for (row, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                let src = &b[row * n + c0..][..w];
                if let (Ok(d), Ok(s)) = (
                    <&mut [f32; PANEL]>::try_from(&mut *dst),
                    <&[f32; PANEL]>::try_from(src),
                ) {
                    // A whole panel row: a copy of constant size, not a call.
                    *d = *s;
                } else {
                    dst[..w].copy_from_slice(src);
                    dst[w..].fill(0.0);
                }
            }
        }
    }

    /// Rows `k`.
    pub fn rows(&self) -> usize {
        self.k
    }

    /// Columns `n`.
    pub fn cols(&self) -> usize {
        self.n
    }

    /// Columns rounded up to whole panels: the row length [`gemm_packed`] writes.
    pub fn padded_cols(&self) -> usize {
        self.n.div_ceil(PANEL) * PANEL
    }
}

/// `c = a·b` for `a` `[m, k]` (row `i` at `a[i·lda..]`) and a packed `b`
/// `[k, n]`; writes `c[i·ldc + j]` for `j < b.padded_cols()` (the padding
/// columns get 0). Single-threaded: callers split the rows or columns between
/// threads. AVX-512 where the CPU has it ([`Isa::best`]).
///
/// Each row's result depends only on that row (the sum runs over `k` in order),
/// so a row gives the same bits whichever other rows come with it.
///
/// # Panics
/// When a slice is too short for the sizes, or `ldc < b.padded_cols()`.
#[inline]
pub fn gemm_packed(a: &[f32], lda: usize, m: usize, b: &PackedPanels, c: &mut [f32], ldc: usize) {
    gemm_packed_on(Isa::best(), a, lda, m, b, c, ldc);
}

/// [`gemm_packed`] with the loops of `isa`.
pub(crate) fn gemm_packed_on(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    b: &PackedPanels,
    c: &mut [f32],
    ldc: usize,
) {
    let (k, np) = (b.k, b.n.div_ceil(PANEL));
    if m == 0 || np == 0 {
        return;
    }
    assert!(ldc >= np * PANEL, "gemm_packed: ldc too small");
    assert!(
        c.len() >= (m - 1) * ldc + np * PANEL,
        "gemm_packed: c too short"
    );
    if k == 0 {
        for i in 0..m {
            c[i * ldc..i * ldc + np * PANEL].fill(0.0);
        }
        return;
    }
    assert!(a.len() >= (m - 1) * lda + k, "gemm_packed: a too short");
    assert!(lda >= k, "gemm_packed: lda too small");
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F; the asserts
        // above keep every row `i < m` of `a` (`k` values from `i·lda`) and
        // of `c` (`np·PANEL` values from `i·ldc`) inside the slices, and
        // `b.data` holds `np` panels of `k·PANEL` values.
        unsafe { avx512::gemm(a.as_ptr(), lda, m, k, &b.data, np, c.as_mut_ptr(), ldc) };
        return;
    }
    let _ = isa;
    portable_gemm(a, lda, m, k, &b.data, np, c, ldc);
}

/// The reference path of [`gemm_packed`] for CPUs without AVX-512.
#[allow(clippy::too_many_arguments)]
fn portable_gemm(
    a: &[f32],
    lda: usize,
    m: usize,
    k: usize,
    b: &[f32],
    np: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for p in 0..np {
        let panel = &b[p * k * PANEL..(p + 1) * k * PANEL];
        for i in 0..m {
            let mut acc = [0f32; PANEL];
            let row = &a[i * lda..i * lda + k];
            for (kk, &av) in row.iter().enumerate() {
                let bv = &panel[kk * PANEL..(kk + 1) * PANEL];
                for l in 0..PANEL {
                    acc[l] = av.mul_add(bv[l], acc[l]);
                }
            }
            c[i * ldc + p * PANEL..i * ldc + (p + 1) * PANEL].copy_from_slice(&acc);
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::PANEL;
    use std::arch::x86_64::*;

    /// Rows per register block.
    const MR: usize = 8;

    /// `MR_ × NP·16` block: `c[r, ..] = Σ_k a[r, k]·b[k, ..]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `MR_` rows of `k` values `lda` apart,
    /// `b` `NP` panels of `k·PANEL` values, `c` `MR_` rows of `NP·PANEL`
    /// values `ldc` apart.
    #[inline(always)]
    unsafe fn block<const MR_: usize, const NP: usize>(
        a: *const f32,
        lda: usize,
        k: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the CPU has AVX-512F and every pointer offset below stays
        // inside the rows and panels the caller vouched for.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NP]; MR_];
            let bstride = k * PANEL;
            for kk in 0..k {
                let mut bv = [_mm512_setzero_ps(); NP];
                for (p, v) in bv.iter_mut().enumerate() {
                    *v = _mm512_loadu_ps(b.add(p * bstride + kk * PANEL));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * lda + kk));
                    for p in 0..NP {
                        row[p] = _mm512_fmadd_ps(av, bv[p], row[p]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (p, v) in row.iter().enumerate() {
                    _mm512_storeu_ps(c.add(r * ldc + p * PANEL), *v);
                }
            }
        }
    }

    /// Every row of `a` (`m`) times `NP` panels.
    ///
    /// # Safety
    /// As [`block`], for `m` rows.
    #[inline(always)]
    unsafe fn rows<const NP: usize>(
        a: *const f32,
        lda: usize,
        m: usize,
        k: usize,
        b: *const f32,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the blocks cover rows `0..m` exactly, each inside the
        // caller's rows.
        unsafe {
            let mut i = 0;
            while i + MR <= m {
                block::<MR, NP>(a.add(i * lda), lda, k, b, c.add(i * ldc), ldc);
                i += MR;
            }
            let (a, c) = (a.add(i * lda), c.add(i * ldc));
            match m - i {
                0 => {}
                1 => block::<1, NP>(a, lda, k, b, c, ldc),
                2 => block::<2, NP>(a, lda, k, b, c, ldc),
                3 => block::<3, NP>(a, lda, k, b, c, ldc),
                4 => block::<4, NP>(a, lda, k, b, c, ldc),
                5 => block::<5, NP>(a, lda, k, b, c, ldc),
                6 => block::<6, NP>(a, lda, k, b, c, ldc),
                _ => block::<7, NP>(a, lda, k, b, c, ldc),
            }
        }
    }

    /// See [`super::gemm_packed`]; `np` panels of `b`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `m` rows of `k` values `lda` apart,
    /// `b` `np` panels of `k·PANEL` values, `c` `m` rows of `np·PANEL`
    /// values `ldc` apart.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn gemm(
        a: *const f32,
        lda: usize,
        m: usize,
        k: usize,
        b: &[f32],
        np: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        let b = b.as_ptr();
        // SAFETY: panel pairs `p, p + 1` (then a last single panel) lie
        // inside `b`'s `np` panels and write columns `p·PANEL..` of `c`'s rows.
        unsafe {
            let mut p = 0;
            while p + 2 <= np {
                rows::<2>(a, lda, m, k, b.add(p * k * PANEL), c.add(p * PANEL), ldc);
                p += 2;
            }
            if p < np {
                rows::<1>(a, lda, m, k, b.add(p * k * PANEL), c.add(p * PANEL), ldc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gemm::matmul;
    use ndarray::Array2;

    #[test]
    fn row_major_packing_matches_packing_by_element() {
        // One buffer for every size, so that each packing starts from the
        // previous one's values (a reused buffer must be overwritten).
        let mut got = PackedPanels::default();
        got.pack(40, 70, |_, _| f32::NAN);
        for &(k, n) in &[
            (3, 17),
            (1, 1),
            (40, 70),
            (7, 16),
            (5, 33),
            (0, 4),
            (4, 0),
            (2, 9),
        ] {
            let b: Vec<f32> = (0..k * n).map(|i| (i % 13) as f32 - 6.0).collect();
            let mut want = PackedPanels::default();
            want.pack(k, n, |r, c| b[r * n + c]);
            got.pack_row_major(&b, k, n);
            assert_eq!((got.rows(), got.cols()), (k, n));
            assert_eq!(got.data, want.data, "{k}x{n}");
        }
    }

    #[test]
    fn packed_product_matches_gemm_on_ragged_sizes() {
        for &(m, k, n) in &[
            (1, 1, 1),
            (3, 7, 17),
            (9, 33, 40),
            (32, 64, 100),
            (17, 5, 48),
        ] {
            let a = Array2::from_shape_fn((m, k), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
            let b = Array2::from_shape_fn((k, n), |(i, j)| ((i * 5 + j) % 7) as f32 - 3.0);
            let mut p = PackedPanels::default();
            p.pack(k, n, |r, c| b[[r, c]]);
            let ldc = p.padded_cols() + 3;
            let mut c = vec![f32::NAN; m * ldc];
            gemm_packed(a.as_slice().unwrap(), k, m, &p, &mut c, ldc);
            let want = matmul(a.view(), b.view());
            let mut c2 = vec![f32::NAN; m * ldc];
            portable_gemm(
                a.as_slice().unwrap(),
                k,
                m,
                k,
                &p.data,
                n.div_ceil(PANEL),
                &mut c2,
                ldc,
            );
            for i in 0..m {
                for j in 0..n {
                    assert_eq!(c[i * ldc + j], want[[i, j]], "{m}x{k}x{n} at {i},{j}");
                    assert_eq!(c2[i * ldc + j], want[[i, j]]);
                }
                for j in n..p.padded_cols() {
                    assert_eq!(c[i * ldc + j], 0.0);
                }
            }
        }
    }
}
