//! `c = a·b` in f32 through the `gemm` crate, on ndarray views of any strides
//! (so transposes are free: pass `a.t()`), on rayon's threads for large
//! products; [`matmul_bias`] for `x·w + bias` (and [`matmul_bias_packed`],
//! the weights packed once and the bias added block by block in cache).

use crate::cpu::Isa;
use crate::packed::{gemm_packed, PackedPanels, PANEL};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, Axis, Slice};
use rayon::prelude::*;

/// Products smaller than this many multiply-adds run on one thread.
const PARALLEL_THRESHOLD: usize = 1 << 18;

/// `c = a·b` when `accumulate` is false, `c += a·b` when true, on all of
/// rayon's threads for large products.
///
/// Shapes: `a` `[m, k]`, `b` `[k, n]`, `c` `[m, n]`.
///
/// # Panics
/// On mismatched shapes: callers check sizes first, so that is a bug inside seqnet.
pub fn matmul_into(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    c: ArrayViewMut2<f32>,
    accumulate: bool,
) {
    matmul_into_threads(a, b, c, accumulate, rayon::current_num_threads());
}

/// [`matmul_into`] on at most `threads` threads (1: on the calling thread only,
/// for callers that already run in parallel). Products smaller than
/// `PARALLEL_THRESHOLD` multiply-adds always run on one thread.
pub fn matmul_into_threads(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    mut c: ArrayViewMut2<f32>,
    accumulate: bool,
    threads: usize,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul: inner sizes differ");
    assert_eq!(c.dim(), (m, n), "matmul: output shape");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(0.0);
        }
        return;
    }
    let parallelism = if m * n * k >= PARALLEL_THRESHOLD && threads > 1 {
        ::gemm::Parallelism::Rayon(threads)
    } else {
        ::gemm::Parallelism::None
    };
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    // SAFETY: the views' pointers and strides describe valid memory of the
    // checked shapes; `c` is a unique mutable view, so it aliases neither input.
    unsafe {
        ::gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs,
            c_rs,
            accumulate,
            a.as_ptr(),
            a_cs,
            a_rs,
            b.as_ptr(),
            b_cs,
            b_rs,
            if accumulate { 1.0 } else { 0.0 },
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// Bytes of output per job of [`matmul_bias_packed`]: a block the product writes
/// and the bias epilogue then reads back from the core's cache.
const BIAS_BLOCK_BYTES: usize = 1 << 17;

/// Rows per job of [`matmul_bias_packed`] for `m` rows of `n` columns: about
/// `BIAS_BLOCK_BYTES` of output, a multiple of 16 rows, at least 4 jobs per
/// thread when there are rows enough.
fn bias_block_rows(m: usize, n: usize, threads: usize) -> usize {
    let by_cache = (BIAS_BLOCK_BYTES / (4 * n.max(1))).max(16) / 16 * 16;
    let by_threads = m.div_ceil(4 * threads.max(1)).div_ceil(16) * 16;
    by_cache.min(by_threads).max(16)
}

/// `a·b + bias` (`bias` added to every row) as a new array in `buf`'s
/// allocation (its contents are ignored), on all of rayon's threads for
/// large products: the bias rows written first in one pass, then
/// `matmul_into` accumulating into them (no zeroing pass).
///
/// Shapes: `a` `[m, k]`, `b` `[k, n]`, `bias` `[n]`, result `[m, n]`
/// (standard layout).
///
/// # Panics
/// On mismatched shapes: callers check sizes first, so that is a bug inside seqnet.
pub fn matmul_bias(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    bias: &[f32],
    buf: Vec<f32>,
) -> Array2<f32> {
    let (m, k) = a.dim();
    assert_eq!(k, b.nrows(), "matmul_bias: inner sizes differ");
    assert_eq!(bias.len(), b.ncols(), "matmul_bias: bias length");
    let mut v = buf;
    v.clear();
    v.reserve(m * bias.len());
    for _ in 0..m {
        v.extend_from_slice(bias);
    }
    let mut c = Array2::from_shape_vec((m, bias.len()), v).expect("[m, n]");
    matmul_into(a, b, c.view_mut(), true);
    c
}

/// [`matmul_bias`] with the bias as an epilogue: the same result (up to
/// rounding) as a new array in `buf`'s allocation (its contents, and its
/// length when at least `m·n`, are ignored: pass a recycled output with its
/// values to skip zeroing it). The fully connected and
/// self-attention layers use it (transformer-train-step 0.86-0.93 of the
/// time with [`matmul_bias`], inference 0.99-1.0, interleaved at load 2-3).
///
/// With AVX-512, `a` in rows of unit stride and `n` a
/// multiple of [`PANEL`], `b` is packed once ([`PackedPanels`], so no job
/// repacks it) and the rows are done in blocks of about 128 KB of output,
/// each written by [`gemm_packed`] and given its bias while still in cache:
/// the output goes to memory once (writing the bias rows first and having
/// the product add into them wrote, read and wrote it again). Otherwise as
/// [`matmul_bias`].
///
/// # Panics
/// On mismatched shapes: callers check sizes first, so that is a bug inside seqnet.
pub fn matmul_bias_packed(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    bias: &[f32],
    buf: Vec<f32>,
) -> Array2<f32> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "matmul_bias: inner sizes differ");
    assert_eq!(bias.len(), n, "matmul_bias: bias length");
    let mut v = buf;
    // Rows of `a` as `gemm_packed` reads them: unit column stride, at least
    // `k` apart (any stride for a single row).
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let rows_ok = (k <= 1 || a_cs == 1) && (m <= 1 || a_rs >= k as isize);
    let packed_ok = Isa::best().avx512() && n % PANEL == 0 && k > 0 && rows_ok;
    if m == 0 || n == 0 || !packed_ok {
        return matmul_bias(a, b, bias, v);
    }
    let mut panels = PackedPanels::default();
    panels.pack(k, n, |row, col| b[[row, col]]);
    // Every value is written below: a long enough buffer is only cut to
    // size (zeroing 2-8 MB per product cost ~8 % of transformer-infer).
    if v.len() >= m * n {
        v.truncate(m * n);
    } else {
        v.clear();
        v.resize(m * n, 0.0);
    }
    let threads = rayon::current_num_threads();
    let rows = bias_block_rows(m, n, threads);
    let lda = if m <= 1 { k } else { a_rs as usize };
    let job = |(i, c): (usize, &mut [f32])| {
        let r0 = i * rows;
        let r = c.len() / n;
        let a = a.slice_axis(Axis(0), Slice::from(r0..r0 + r));
        gemm_packed(rows_of(&a, lda), lda, r, &panels, c, n);
        for row in c.chunks_exact_mut(n) {
            for (y, &b) in row.iter_mut().zip(bias) {
                *y += b;
            }
        }
    };
    if m * n * k >= PARALLEL_THRESHOLD && threads > 1 {
        v.par_chunks_mut(rows * n).enumerate().for_each(job);
    } else {
        v.chunks_mut(rows * n).enumerate().for_each(job);
    }
    Array2::from_shape_vec((m, n), v).expect("[m, n]")
}

/// The elements of `a` (`[r, k]`, unit column stride, rows `lda` apart) as
/// one slice from its first element to its last, for [`gemm_packed`].
fn rows_of<'a>(a: &ArrayView2<'a, f32>, lda: usize) -> &'a [f32] {
    let (r, k) = a.dim();
    let len = if r == 0 { 0 } else { (r - 1) * lda + k };
    // SAFETY: `a` is a view with unit column stride (or one column) and
    // row stride `lda ≥ k` (or one row), as the caller checked, so its `r` rows
    // span exactly `(r - 1)·lda + k` elements of one allocation from its
    // first element, all alive for `'a`; the slice is only read.
    unsafe { std::slice::from_raw_parts(a.as_ptr(), len) }
}

/// `a·b` as a new array. Shapes: `a` `[m, k]`, `b` `[k, n]`, result `[m, n]`.
pub fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> ndarray::Array2<f32> {
    let mut c = ndarray::Array2::zeros((a.nrows(), b.ncols()));
    matmul_into(a, b, c.view_mut(), false);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn naive(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
        let mut c = Array2::zeros((a.nrows(), b.ncols()));
        for i in 0..a.nrows() {
            for j in 0..b.ncols() {
                c[[i, j]] = (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_naive_product_with_transposes_and_accumulation() {
        let a = Array2::from_shape_fn((7, 5), |(i, j)| (i * 5 + j) as f32 * 0.1 - 1.0);
        let b = Array2::from_shape_fn((9, 5), |(i, j)| ((i + 2 * j) % 7) as f32 * 0.3 - 0.5);
        let expect = naive(a.view(), b.t());
        let got = matmul(a.view(), b.t());
        assert!((&got - &expect).iter().all(|d| d.abs() < 1e-5));
        let mut acc = expect.clone();
        matmul_into(a.view(), b.t(), acc.view_mut(), true);
        assert!((&acc - &(&expect * 2.0)).iter().all(|d| d.abs() < 1e-4));
        let big_a = Array2::from_shape_fn((64, 128), |(i, j)| ((i * 31 + j * 7) % 13) as f32 - 6.0);
        let big_b = Array2::from_shape_fn((128, 96), |(i, j)| ((i * 3 + j * 11) % 5) as f32 - 2.0);
        assert_eq!(
            matmul(big_a.view(), big_b.view()),
            naive(big_a.view(), big_b.view())
        );
    }

    /// `a·b + bias` in f64, the reference for [`matmul_bias`].
    fn reference_bias(a: ArrayView2<f32>, b: ArrayView2<f32>, bias: &[f32]) -> Array2<f64> {
        Array2::from_shape_fn((a.nrows(), b.ncols()), |(i, j)| {
            bias[j] as f64
                + (0..a.ncols())
                    .map(|p| a[[i, p]] as f64 * b[[p, j]] as f64)
                    .sum::<f64>()
        })
    }

    #[test]
    fn bias_product_matches_f64_reference_for_any_block_split() {
        // Sizes around the block boundaries (16-row tiles, several blocks,
        // a partial last block), transposed `b`, recycled buffers larger
        // and smaller than the output, on one and on several threads.
        let cases = [
            (1, 3, 1),
            (17, 5, 9),
            (100, 33, 7),
            (1000, 64, 130),
            (4096, 128, 512),
        ];
        for (m, k, n) in cases {
            let a = Array2::from_shape_fn((m, k), |(i, j)| {
                ((i * 7 + j * 13) % 17) as f32 * 0.125 - 1.0
            });
            let bt =
                Array2::from_shape_fn((n, k), |(i, j)| ((i * 5 + j * 3) % 11) as f32 * 0.25 - 1.25);
            let bias: Vec<f32> = (0..n).map(|j| j as f32 * 0.5 - 3.0).collect();
            let expect = reference_bias(a.view(), bt.t(), &bias);
            for (buf, packed) in [
                (Vec::new(), false),
                (Vec::new(), true),
                (vec![7.0; 3], true),
                (vec![-1.0; m * n + 100], false),
                (vec![-1.0; m * n + 100], true),
            ] {
                let got = if packed {
                    matmul_bias_packed(a.view(), bt.t(), &bias, buf)
                } else {
                    matmul_bias(a.view(), bt.t(), &bias, buf)
                };
                assert_eq!(got.dim(), (m, n));
                let worst = got
                    .iter()
                    .zip(expect.iter())
                    .map(|(&g, &e)| (g as f64 - e).abs() / (1.0 + e.abs()))
                    .fold(0.0, f64::max);
                assert!(worst < 1e-5, "{m}x{k}x{n}: relative error {worst}");
            }
        }
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let a = Array2::from_shape_fn((300, 40), |(i, j)| (i as f32 - j as f32) * 0.01);
        let b = Array2::from_shape_fn((40, 70), |(i, j)| (i * j % 9) as f32 * 0.1);
        let bias = vec![0.5; 70];
        let expect = reference_bias(a.view(), b.view(), &bias);
        let got = one.install(|| matmul_bias_packed(a.view(), b.view(), &bias, Vec::new()));
        assert!(got
            .iter()
            .zip(expect.iter())
            .all(|(&g, &e)| (g as f64 - e).abs() < 1e-4));
    }

    #[test]
    fn bias_product_on_strided_rows() {
        // `a` as columns 3..43 of a wider array (rows 50 apart), and as a
        // transposed view (rows not of unit stride: the gemm crate's path).
        let wide = Array2::from_shape_fn((200, 50), |(i, j)| {
            ((i * 3 + j * 7) % 19) as f32 * 0.1 - 0.9
        });
        let b = Array2::from_shape_fn((40, 64), |(i, j)| ((i + j * 5) % 7) as f32 * 0.2 - 0.6);
        let bias: Vec<f32> = (0..64).map(|j| 1.0 - j as f32 * 0.03).collect();
        let a = wide.slice_axis(Axis(1), Slice::from(3..43));
        let expect = reference_bias(a, b.view(), &bias);
        let got = matmul_bias_packed(a, b.view(), &bias, Vec::new());
        assert!(got
            .iter()
            .zip(expect.iter())
            .all(|(&g, &e)| (g as f64 - e).abs() < 1e-4));
        let tall = Array2::from_shape_fn((40, 200), |(i, j)| ((i * 11 + j) % 13) as f32 * 0.1);
        let expect = reference_bias(tall.t(), b.view(), &bias);
        let got = matmul_bias_packed(tall.t(), b.view(), &bias, Vec::new());
        assert!(got
            .iter()
            .zip(expect.iter())
            .all(|(&g, &e)| (g as f64 - e).abs() < 1e-4));
    }

    #[test]
    fn bias_product_with_empty_sides() {
        let a = Array2::<f32>::zeros((5, 0));
        let b = Array2::<f32>::zeros((0, 3));
        let got = matmul_bias(a.view(), b.view(), &[1.0, 2.0, 3.0], Vec::new());
        assert_eq!(got, Array2::from_shape_fn((5, 3), |(_, j)| j as f32 + 1.0));
        let got = matmul_bias_packed(a.view(), b.view(), &[1.0, 2.0, 3.0], Vec::new());
        assert_eq!(got, Array2::from_shape_fn((5, 3), |(_, j)| j as f32 + 1.0));
        let a = Array2::<f32>::zeros((0, 4));
        let b = Array2::<f32>::zeros((4, 2));
        assert_eq!(
            matmul_bias(a.view(), b.view(), &[1.0, 2.0], Vec::new()).dim(),
            (0, 2)
        );
    }
}
