//! `c = a·b` in f32 through the `gemm` crate, on ndarray views of any strides
//! (so transposes are free: pass `a.t()`), on rayon's threads for large
//! products.

use ndarray::{ArrayView2, ArrayViewMut2};

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
}
