//! Scaled dot-product attention of one sequence, fused for inference: per
//! head and block of [`QUERY_BLOCK`] queries, the scores `q·kᵀ`, their
//! masked softmax and the product with the values, so no `[L, L]` matrix is
//! written beyond one block of rows (it stays in the core's L1 cache). The
//! two products are small register-blocked kernels over packed keys and
//! values (AVX-512 where the CPU has it; the same loops in plain Rust,
//! compiled for AVX2+FMA or portable, elsewhere).
//!
//! Training keeps the layer's own path, which stores every head's weights
//! for the backward pass.

use crate::cpu::Isa;
use crate::softmax::masked_softmax_row;
use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Axis};
use std::borrow::Cow;

/// Queries per block: the rows of one register block of the products.
pub const QUERY_BLOCK: usize = 8;

/// Lanes of one AVX-512 register of f32; packed rows are padded to it.
const LANES: usize = 16;

/// Reusable buffers of [`attend_heads`] (packed queries, keys, values, one
/// block of scores and outputs); grown as needed, never shrunk.
#[derive(Debug, Default, Clone)]
pub struct AttentionScratch {
    q: Vec<f32>,
    kt: Vec<f32>,
    v: Vec<f32>,
    s: Vec<f32>,
    o: Vec<f32>,
}

/// Multi-head scaled dot-product attention of one sequence of `L` steps:
/// for each head `j` (columns `j·dk..(j+1)·dk` of `q` and `k`, `j·dv..` of
/// `v` and `out`), `out_j = softmax(q_j·k_jᵀ/sqrt(dk))·v_j`, where query `i`
/// sees keys `0..=i` when `causal`, all `L` otherwise.
///
/// Shapes: `q`, `k` `[L, heads·dk]`, `v` `[L, heads·dv]`, `out`
/// `[L, heads·dv]` (any strides; every value of `out` is written).
///
/// # Panics
/// When the shapes disagree or `heads` does not divide the widths (a bug in
/// the caller: the layer checks sizes when it is built).
#[allow(clippy::too_many_arguments)]
pub fn attend_heads(
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    heads: usize,
    causal: bool,
    out: ArrayViewMut2<f32>,
    scratch: &mut AttentionScratch,
) {
    attend_heads_on(Isa::best(), q, k, v, heads, causal, out, scratch);
}

/// [`attend_heads`] with the products of `isa`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_heads_on(
    isa: Isa,
    q: ArrayView2<f32>,
    k: ArrayView2<f32>,
    v: ArrayView2<f32>,
    heads: usize,
    causal: bool,
    mut out: ArrayViewMut2<f32>,
    scratch: &mut AttentionScratch,
) {
    let l = q.nrows();
    assert!(heads > 0, "attention: no heads");
    assert_eq!(q.dim(), k.dim(), "attention: queries and keys differ");
    assert_eq!(v.nrows(), l, "attention: values' length");
    assert_eq!(out.dim(), v.dim(), "attention: output shape");
    assert_eq!(q.ncols() % heads, 0, "attention: key width");
    assert_eq!(v.ncols() % heads, 0, "attention: value width");
    let (dk, dv) = (q.ncols() / heads, v.ncols() / heads);
    if l == 0 || dv == 0 {
        return;
    }
    let lp = l.next_multiple_of(LANES);
    let dvp = dv.next_multiple_of(LANES);
    let scale = 1.0 / (dk as f32).sqrt();
    let AttentionScratch {
        q: qp,
        kt,
        v: vp,
        s,
        o,
    } = scratch;
    fit(qp, l * dk);
    fit(kt, dk * lp);
    fit(vp, l * dvp);
    fit(s, QUERY_BLOCK * lp);
    fit(o, QUERY_BLOCK * dvp);
    // Each step's row once as a slice, for every head's packing.
    let (qr, kr, vr) = (rows_of(q), rows_of(k), rows_of(v));
    for j in 0..heads {
        pack_head((&qr, &kr, &vr), j, (dk, dv), (lp, dvp), qp, kt, vp);
        for i0 in (0..l).step_by(QUERY_BLOCK) {
            let mb = QUERY_BLOCK.min(l - i0);
            // Keys any query of the block sees.
            let keys = if causal { i0 + mb } else { l };
            let key_cols = keys.next_multiple_of(LANES);
            product(isa, &qp[i0 * dk..], dk, mb, dk, kt, lp, key_cols, s, lp);
            for r in 0..mb {
                let visible = if causal { i0 + r + 1 } else { l };
                masked_softmax_row(&mut s[r * lp..r * lp + keys], visible, scale);
            }
            product(isa, s, lp, mb, keys, vp, dvp, dvp, o, dvp);
            for r in 0..mb {
                let mut row = out.row_mut(i0 + r);
                let mut dst = row.slice_axis_mut(Axis(0), (j * dv..(j + 1) * dv).into());
                let src = &o[r * dvp..r * dvp + dv];
                match dst.as_slice_mut() {
                    Some(d) => copy_short(d, src),
                    None => dst.iter_mut().zip(src).for_each(|(d, &x)| *d = x),
                }
            }
        }
    }
}

/// `buf` with at least `len` values (new ones 0; the old ones are
/// overwritten before they are read).
fn fit(buf: &mut Vec<f32>, len: usize) {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
}

/// Head `j`'s queries `[L, dk]` (rows `dk` apart), keys transposed
/// `[dk, lp]` (columns past `L` zero) and values `[L, dvp]` (columns past
/// `dv` zero), copied out of each step's rows of queries, keys and values.
#[allow(clippy::type_complexity)]
fn pack_head(
    (q, k, v): (&[Cow<[f32]>], &[Cow<[f32]>], &[Cow<[f32]>]),
    j: usize,
    (dk, dv): (usize, usize),
    (lp, dvp): (usize, usize),
    qp: &mut [f32],
    kt: &mut [f32],
    vp: &mut [f32],
) {
    let l = q.len();
    for (i, row) in q.iter().enumerate() {
        copy_short(&mut qp[i * dk..(i + 1) * dk], &row[j * dk..(j + 1) * dk]);
    }
    // Keys transposed in 16 × 16 tiles: each cache line of a key row is read
    // once, and the stores go out 16 in a row. (In the layer, a sequence's
    // rows are `B·(K + K + V)` values apart, a multiple of 4 KB: they all
    // fall in the same L1 sets, so going over them column by column missed
    // the L1 cache at every load.)
    for i0 in (0..l).step_by(LANES) {
        let ib = LANES.min(l - i0);
        for d0 in (0..dk).step_by(LANES) {
            let db = LANES.min(dk - d0);
            let mut tile = [[0f32; LANES]; LANES];
            for (ii, row) in k[i0..i0 + ib].iter().enumerate() {
                let at = j * dk + d0;
                for (dd, &x) in row[at..at + db].iter().enumerate() {
                    tile[dd][ii] = x;
                }
            }
            for (dd, t) in tile[..db].iter().enumerate() {
                let at = (d0 + dd) * lp + i0;
                copy_short(&mut kt[at..at + ib], &t[..ib]);
            }
        }
    }
    for d in 0..dk {
        kt[d * lp + l..(d + 1) * lp].fill(0.0);
    }
    for (i, row) in v.iter().enumerate() {
        let dst = &mut vp[i * dvp..(i + 1) * dvp];
        copy_short(&mut dst[..dv], &row[j * dv..(j + 1) * dv]);
        dst[dv..].fill(0.0);
    }
}

/// `dst = src` (equal lengths) for the short rows of one head (a few
/// dozen values, tens of thousands of them per pass): copied in 16-value
/// arrays, so the compiler emits vector moves instead of a `memcpy` call
/// (which cost ~2 % of transformer-infer).
#[inline(always)]
fn copy_short(dst: &mut [f32], src: &[f32]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let mut d = dst.chunks_exact_mut(LANES);
    let mut s = src.chunks_exact(LANES);
    for (a, b) in (&mut d).zip(&mut s) {
        let a: &mut [f32; LANES] = a.try_into().expect("16 values");
        let b: &[f32; LANES] = b.try_into().expect("16 values");
        *a = *b;
    }
    for (a, b) in d.into_remainder().iter_mut().zip(s.remainder()) {
        *a = *b;
    }
}

/// Each row of `a` as one slice.
fn rows_of(a: ArrayView2<'_, f32>) -> Vec<Cow<'_, [f32]>> {
    (0..a.nrows())
        .map(|i| contiguous(a.index_axis_move(Axis(0), i)))
        .collect()
}

/// A row's values as one slice (borrowed when the row has unit stride, as
/// the layer's rows do).
fn contiguous(row: ArrayView1<'_, f32>) -> Cow<'_, [f32]> {
    match row.to_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(row.to_vec()),
    }
}

/// `c = a·b` for `a` `[m, kd]` (rows `lda` apart, `m ≤ QUERY_BLOCK`), `b`
/// `[kd, n]` (rows `ldb` apart), `c` `[m, n]` (rows `ldc` apart), `n` a
/// multiple of 16: the inner loop of both of [`attend_heads`]' products.
#[allow(clippy::too_many_arguments)]
fn product(
    isa: Isa,
    a: &[f32],
    lda: usize,
    m: usize,
    kd: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    assert!(m <= QUERY_BLOCK && n.is_multiple_of(LANES) && n <= ldb && n <= ldc);
    if m == 0 || n == 0 {
        return;
    }
    assert!(a.len() >= (m - 1) * lda + kd && lda >= kd);
    assert!(kd == 0 || b.len() >= (kd - 1) * ldb + n);
    assert!(c.len() >= (m - 1) * ldc + n);
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F; the asserts
        // above keep rows `< m` of `a` (`kd` values) and of `c` (`n`
        // values), and rows `< kd` of `b` (`n` values) inside the slices.
        unsafe {
            avx512::product(
                a.as_ptr(),
                lda,
                m,
                kd,
                b.as_ptr(),
                ldb,
                n,
                c.as_mut_ptr(),
                ldc,
            )
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if crate::cpu::avx2_fma() {
        // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
        unsafe { product_256(a, lda, m, kd, b, ldb, n, c, ldc) };
        return;
    }
    product_body(a, lda, m, kd, b, ldb, n, c, ldc);
}

/// [`product`] in plain Rust: per row, `c` accumulated in 16-lane chunks
/// (which the compiler vectorizes).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn product_body(
    a: &[f32],
    lda: usize,
    m: usize,
    kd: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    for r in 0..m {
        let crow = &mut c[r * ldc..r * ldc + n];
        for (p, cc) in crow.chunks_exact_mut(LANES).enumerate() {
            let mut acc = [0f32; LANES];
            for kk in 0..kd {
                let av = a[r * lda + kk];
                let bv = &b[kk * ldb + p * LANES..kk * ldb + (p + 1) * LANES];
                for x in 0..LANES {
                    acc[x] = av.mul_add(bv[x], acc[x]);
                }
            }
            cc.copy_from_slice(&acc);
        }
    }
}

/// [`product_body`] compiled for AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::too_many_arguments)]
fn product_256(
    a: &[f32],
    lda: usize,
    m: usize,
    kd: usize,
    b: &[f32],
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
) {
    product_body(a, lda, m, kd, b, ldb, n, c, ldc)
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{LANES, QUERY_BLOCK};
    use std::arch::x86_64::*;

    /// `R × NP·16` block: `c[r, ..] = Σ_k a[r, k]·b[k, ..]`.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `a` holds `R` rows of `kd` values `lda` apart,
    /// `b` `kd` rows of `NP·16` values `ldb` apart, `c` `R` rows of `NP·16`
    /// values `ldc` apart.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn block<const R: usize, const NP: usize>(
        a: *const f32,
        lda: usize,
        kd: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: the CPU has AVX-512F and every offset below stays inside
        // the rows the caller vouched for.
        unsafe {
            let mut acc = [[_mm512_setzero_ps(); NP]; R];
            for kk in 0..kd {
                let mut bv = [_mm512_setzero_ps(); NP];
                for (p, x) in bv.iter_mut().enumerate() {
                    *x = _mm512_loadu_ps(b.add(kk * ldb + p * LANES));
                }
                for (r, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*a.add(r * lda + kk));
                    for p in 0..NP {
                        row[p] = _mm512_fmadd_ps(av, bv[p], row[p]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                for (p, x) in row.iter().enumerate() {
                    _mm512_storeu_ps(c.add(r * ldc + p * LANES), *x);
                }
            }
        }
    }

    /// `m` rows (`m ≤ QUERY_BLOCK`) times `NP` panels.
    ///
    /// # Safety
    /// As [`block`], for `m` rows.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    unsafe fn rows<const NP: usize>(
        a: *const f32,
        lda: usize,
        m: usize,
        kd: usize,
        b: *const f32,
        ldb: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        const _: () = assert!(QUERY_BLOCK == 8);
        // SAFETY: `m` rows, as the caller vouched for.
        unsafe {
            match m {
                1 => block::<1, NP>(a, lda, kd, b, ldb, c, ldc),
                2 => block::<2, NP>(a, lda, kd, b, ldb, c, ldc),
                3 => block::<3, NP>(a, lda, kd, b, ldb, c, ldc),
                4 => block::<4, NP>(a, lda, kd, b, ldb, c, ldc),
                5 => block::<5, NP>(a, lda, kd, b, ldb, c, ldc),
                6 => block::<6, NP>(a, lda, kd, b, ldb, c, ldc),
                7 => block::<7, NP>(a, lda, kd, b, ldb, c, ldc),
                _ => block::<8, NP>(a, lda, kd, b, ldb, c, ldc),
            }
        }
    }

    /// See [`super::product`].
    ///
    /// # Safety
    /// The CPU has AVX-512F; `1 ≤ m ≤ QUERY_BLOCK`, `n` a multiple of 16;
    /// `a` holds `m` rows of `kd` values `lda` apart, `b` `kd` rows of `n`
    /// values `ldb` apart, `c` `m` rows of `n` values `ldc` apart.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn product(
        a: *const f32,
        lda: usize,
        m: usize,
        kd: usize,
        b: *const f32,
        ldb: usize,
        n: usize,
        c: *mut f32,
        ldc: usize,
    ) {
        // SAFETY: panel pairs `p, p + 1` (then a last single panel) lie
        // inside the `n` columns of `b` and `c`.
        unsafe {
            let np = n / LANES;
            let mut p = 0;
            while p + 2 <= np {
                rows::<2>(a, lda, m, kd, b.add(p * LANES), ldb, c.add(p * LANES), ldc);
                p += 2;
            }
            if p < np {
                rows::<1>(a, lda, m, kd, b.add(p * LANES), ldb, c.add(p * LANES), ldc);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Slice};

    /// Attention in f64, head by head, straight from the definition.
    fn reference(
        q: &Array2<f32>,
        k: &Array2<f32>,
        v: &Array2<f32>,
        heads: usize,
        causal: bool,
    ) -> Array2<f64> {
        let l = q.nrows();
        let (dk, dv) = (q.ncols() / heads, v.ncols() / heads);
        let mut out = Array2::zeros((l, heads * dv));
        for j in 0..heads {
            for i in 0..l {
                let visible = if causal { i + 1 } else { l };
                let s: Vec<f64> = (0..visible)
                    .map(|t| {
                        (0..dk)
                            .map(|d| q[[i, j * dk + d]] as f64 * k[[t, j * dk + d]] as f64)
                            .sum::<f64>()
                            / (dk as f64).sqrt()
                    })
                    .collect();
                let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                for d in 0..dv {
                    out[[i, j * dv + d]] = (0..visible)
                        .map(|t| e[t] / z * v[[t, j * dv + d]] as f64)
                        .sum();
                }
            }
        }
        out
    }

    fn data(l: usize, c: usize, seed: usize) -> Array2<f32> {
        Array2::from_shape_fn((l, c), |(i, j)| {
            (((i * 31 + j * 17 + seed * 7) % 29) as f32 - 14.0) * 0.13
        })
    }

    /// Every ISA the machine has (without AVX-512, products compiled for
    /// AVX2+FMA when the CPU has them; [`product_body`] itself is checked
    /// in `every_product_version_agrees`).
    fn isas() -> Vec<Isa> {
        Isa::all()
    }

    #[test]
    fn matches_f64_reference_on_every_shape_and_isa() {
        // (L, heads, dk, dv): T not a multiple of the block or of 16, one
        // head, odd head sizes, the workload's 128 × 4 × 32.
        let shapes = [
            (1, 1, 1, 1),
            (7, 1, 5, 3),
            (13, 2, 3, 5),
            (37, 3, 16, 17),
            (40, 4, 8, 8),
            (128, 4, 32, 32),
            (130, 1, 33, 48),
        ];
        for &(l, heads, dk, dv) in &shapes {
            // Strided views: q, k, v side by side in one matrix, as the
            // layer's stacked projection gives them.
            let (kw, vw) = (heads * dk, heads * dv);
            let qkv = data(l, 2 * kw + vw, l + dk);
            let col = |r: std::ops::Range<usize>| qkv.slice_axis(Axis(1), Slice::from(r));
            let (q, k, v) = (col(0..kw), col(kw..2 * kw), col(2 * kw..2 * kw + vw));
            for causal in [false, true] {
                let want = reference(&q.to_owned(), &k.to_owned(), &v.to_owned(), heads, causal);
                for isa in isas() {
                    // An output wider than the heads' columns, pre-filled
                    // with NaN: every value must be written.
                    let mut wide = Array2::from_elem((l, vw + 3), f32::NAN);
                    let out = wide.slice_axis_mut(Axis(1), Slice::from(1..vw + 1));
                    let mut scratch = AttentionScratch::default();
                    attend_heads_on(isa, q, k, v, heads, causal, out, &mut scratch);
                    for i in 0..l {
                        for d in 0..vw {
                            let (g, w) = (wide[[i, d + 1]] as f64, want[[i, d]]);
                            assert!(
                                (g - w).abs() < 1e-5 * (1.0 + w.abs()),
                                "{} L={l} h={heads} dk={dk} dv={dv} causal={causal} [{i},{d}]: {g} vs {w}",
                                isa.name()
                            );
                        }
                        assert!(wide[[i, 0]].is_nan() && wide[[i, vw + 1]].is_nan());
                    }
                }
            }
        }
    }

    #[test]
    fn scratch_reused_across_sizes_gives_the_same_result() {
        let mut scratch = AttentionScratch::default();
        let mut got = Vec::new();
        for &l in &[50usize, 9, 50] {
            let (q, k, v) = (data(l, 8, 1), data(l, 8, 2), data(l, 6, 3));
            let mut out = Array2::zeros((l, 6));
            attend_heads(
                q.view(),
                k.view(),
                v.view(),
                2,
                false,
                out.view_mut(),
                &mut scratch,
            );
            got.push(out);
        }
        assert_eq!(got[0], got[2]);
    }

    #[test]
    fn strided_rows_give_what_unit_stride_rows_give() {
        let l = 19;
        let (q, k, v) = (data(l, 6, 4), data(l, 6, 5), data(l, 4, 6));
        let mut scratch = AttentionScratch::default();
        let mut want = Array2::zeros((l, 4));
        attend_heads(
            q.view(),
            k.view(),
            v.view(),
            2,
            true,
            want.view_mut(),
            &mut scratch,
        );
        // The same values in column-major arrays: rows of stride `l`.
        let cm = |a: &Array2<f32>| a.t().as_standard_layout().into_owned();
        let (qt, kt, vt) = (cm(&q), cm(&k), cm(&v));
        let mut out_t = Array2::zeros((4, l));
        attend_heads(
            qt.t(),
            kt.t(),
            vt.t(),
            2,
            true,
            out_t.view_mut().reversed_axes(),
            &mut scratch,
        );
        assert_eq!(out_t.t(), want);
    }

    #[test]
    fn every_product_version_agrees() {
        // The products alone, m = 1..=8 and n of one to three panels.
        for m in 1..=QUERY_BLOCK {
            for n in [16, 32, 48] {
                let kd = 11;
                let a: Vec<f32> = (0..m * 13).map(|i| ((i * 7) % 5) as f32 - 2.0).collect();
                let b: Vec<f32> = (0..kd * 50).map(|i| ((i * 3) % 7) as f32 - 3.0).collect();
                let mut want = vec![0f64; m * n];
                for r in 0..m {
                    for x in 0..n {
                        want[r * n + x] = (0..kd)
                            .map(|t| a[r * 13 + t] as f64 * b[t * 50 + x] as f64)
                            .sum();
                    }
                }
                let mut got = vec![vec![f32::NAN; m * 50]; 4];
                product(Isa::best(), &a, 13, m, kd, &b, 50, n, &mut got[0], 50);
                product(Isa::PORTABLE, &a, 13, m, kd, &b, 50, n, &mut got[1], 50);
                product_body(&a, 13, m, kd, &b, 50, n, &mut got[2], 50);
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (just checked).
                    unsafe { product_256(&a, 13, m, kd, &b, 50, n, &mut got[3], 50) };
                } else {
                    got[3] = got[2].clone();
                }
                #[cfg(not(target_arch = "x86_64"))]
                {
                    got[3] = got[2].clone();
                }
                for c in &got {
                    for r in 0..m {
                        for x in 0..n {
                            // Small integers: exact in every order.
                            assert_eq!(c[r * 50 + x] as f64, want[r * n + x], "{m} {n}");
                        }
                        assert!(c[r * 50 + n..(r + 1) * 50].iter().all(|x| x.is_nan()));
                    }
                }
            }
        }
    }
}
