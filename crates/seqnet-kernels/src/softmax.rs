//! Softmax over the leading part of a row, the rest masked: attention scores
//! over the keys a query may see. The exponentials are
//! [`crate::act::fast_exp`] in 16 lanes, compiled for AVX-512 or AVX2 where
//! the CPU has them (the library's `expf`, one call per score, took half of
//! the softmax's time).

use crate::act::fast_exp;
use crate::cpu::Isa;

/// Softmax of `scale·row[..visible]` in place; `row[visible..]` is set to 0
/// (masked keys: padded steps, or future steps of a causal mask). `visible`
/// 0 gives an all-zero row (a query with nothing to attend to attends to
/// nothing). `scale` must be positive (attention's `1/sqrt(d)`).
///
/// The maximum is subtracted first, so large scores do not overflow.
///
/// # Panics
/// When `visible > row.len()` (a bug in the caller).
pub fn masked_softmax_row(row: &mut [f32], visible: usize, scale: f32) {
    #[cfg(target_arch = "x86_64")]
    {
        if Isa::best().avx512() {
            // SAFETY: `Isa::best` allows AVX-512 only when the CPU has AVX-512F.
            return unsafe { softmax_512(row, visible, scale) };
        }
        if crate::cpu::avx2_fma() {
            // SAFETY: `avx2_fma` is true only when the CPU has AVX2 and FMA.
            return unsafe { softmax_256(row, visible, scale) };
        }
    }
    softmax_body(row, visible, scale)
}

/// [`masked_softmax_row`]'s loops with [`fast_exp`], written in 16 lanes so
/// that they vectorize (the portable version: `mul_add` without FMA
/// hardware is a library call).
#[inline(always)]
fn softmax_body(row: &mut [f32], visible: usize, scale: f32) {
    softmax_with(row, visible, scale, fast_exp)
}

/// [`softmax_body`] with [`fast_exp_fma`], for the versions compiled with FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn softmax_body_fma(row: &mut [f32], visible: usize, scale: f32) {
    softmax_with(row, visible, scale, fast_exp_fma)
}

/// [`fast_exp`] with fused multiply-adds (the exponentials were most of the
/// softmax's time). Only for code compiled with FMA.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn fast_exp_fma(x: f32) -> f32 {
    crate::act::fast_exp_with::<true>(x)
}

/// The softmax loops with the exponential `exp`.
#[inline(always)]
fn softmax_with(row: &mut [f32], visible: usize, scale: f32, exp: impl Fn(f32) -> f32) {
    let (seen, masked) = row.split_at_mut(visible);
    masked.fill(0.0);
    if seen.is_empty() {
        return;
    }
    let mut lanes = [f32::NEG_INFINITY; 16];
    let chunks = seen.chunks_exact(16);
    let mut max = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..16 {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    max = lanes.iter().copied().fold(max, f32::max);
    let shift = max * scale;
    let mut sums = [0f32; 16];
    let mut chunks = seen.chunks_exact_mut(16);
    for c in &mut chunks {
        for l in 0..16 {
            c[l] = exp(c[l] * scale - shift);
            sums[l] += c[l];
        }
    }
    let mut sum = 0f32;
    for v in chunks.into_remainder() {
        *v = exp(*v * scale - shift);
        sum += *v;
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + sum);
    seen.iter_mut().for_each(|v| *v *= inv);
}

/// [`softmax_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn softmax_512(row: &mut [f32], visible: usize, scale: f32) {
    softmax_body_fma(row, visible, scale)
}

/// [`softmax_body`] compiled for AVX2 with FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn softmax_256(row: &mut [f32], visible: usize, scale: f32) {
    softmax_body_fma(row, visible, scale)
}

/// The backward of a scaled softmax row: from the probabilities `p` `[n]` and
/// their gradient `dp` `[n]`, the raw scores' gradient
/// `ds = scale·p ⊙ (dp − Σ p ⊙ dp)`, written over `dp`. Masked keys have
/// `p = 0`, so they get 0.
///
/// # Panics
/// When the lengths differ (a bug in the caller).
pub fn softmax_row_backward(p: &[f32], dp: &mut [f32], scale: f32) {
    assert_eq!(p.len(), dp.len(), "softmax backward: lengths differ");
    let dot = crate::dot::dot(p, dp);
    for (d, &pv) in dp.iter_mut().zip(p) {
        *d = pv * (*d - dot) * scale;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(s: &[f32], visible: usize, scale: f32) -> Vec<f64> {
        let m = s[..visible]
            .iter()
            .map(|&x| x as f64 * scale as f64)
            .fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s[..visible]
            .iter()
            .map(|&x| (x as f64 * scale as f64 - m).exp())
            .collect();
        let sum: f64 = e.iter().sum();
        let mut out: Vec<f64> = e.iter().map(|v| v / sum).collect();
        out.resize(s.len(), 0.0);
        out
    }

    #[test]
    fn masked_row_sums_to_one_over_visible_keys() {
        let mut r = [1.0f32, 2.0, 3.0, 100.0];
        masked_softmax_row(&mut r, 3, 1.0);
        let e = [1f32.exp(), 2f32.exp(), 3f32.exp()];
        let s: f32 = e.iter().sum();
        for i in 0..3 {
            assert!((r[i] - e[i] / s).abs() < 1e-6);
        }
        assert_eq!(r[3], 0.0);
        let mut z = [5.0f32, 6.0];
        masked_softmax_row(&mut z, 0, 1.0);
        assert_eq!(z, [0.0, 0.0]);
    }

    #[test]
    fn every_version_matches_f64_on_long_scaled_rows() {
        for n in [1usize, 15, 16, 17, 40, 128, 133] {
            let s: Vec<f32> = (0..n).map(|i| ((i * 37) % 23) as f32 * 0.9 - 9.0).collect();
            for visible in [0, n / 2, n] {
                let want = reference(&s, visible, 0.17);
                let mut got = vec![s.clone(), s.clone(), s.clone()];
                masked_softmax_row(&mut got[0], visible, 0.17);
                softmax_body(&mut got[1], visible, 0.17);
                #[cfg(target_arch = "x86_64")]
                if crate::cpu::avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (just checked).
                    unsafe { softmax_256(&mut got[2], visible, 0.17) };
                } else {
                    softmax_body(&mut got[2], visible, 0.17);
                }
                #[cfg(not(target_arch = "x86_64"))]
                softmax_body(&mut got[2], visible, 0.17);
                for g in &got {
                    for (a, b) in g.iter().zip(&want) {
                        assert!((*a as f64 - b).abs() < 1e-6, "{n} {visible}: {a} vs {b}");
                    }
                }
            }
        }
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn fma_exponential_is_within_two_ulp_of_f64() {
        if !crate::cpu::avx2_fma() {
            return;
        }
        #[target_feature(enable = "avx2,fma")]
        fn with_fma(x: f32) -> f32 {
            fast_exp_fma(x)
        }
        let mut x = -87.0f32;
        while x < 88.0 {
            // SAFETY: the CPU has AVX2 and FMA (checked above).
            let got = unsafe { with_fma(x) };
            let want = (x as f64).exp();
            let ulp = (want as f32).to_bits().abs_diff(got.to_bits());
            assert!(ulp <= 2, "{x}: {got} vs {want} ({ulp} ulp)");
            x += 0.0137;
        }
    }

    #[test]
    fn backward_matches_finite_differences() {
        let s = [0.3f32, -1.2, 0.7];
        let dp = [0.5f32, -0.25, 2.0];
        let scale = 0.5;
        let loss = |s: &[f32]| {
            let mut p = s.to_vec();
            masked_softmax_row(&mut p, 3, scale);
            p.iter().zip(&dp).map(|(a, b)| a * b).sum::<f32>()
        };
        let mut p = s.to_vec();
        masked_softmax_row(&mut p, 3, scale);
        let mut g = dp;
        softmax_row_backward(&p, &mut g, scale);
        for i in 0..3 {
            let (mut a, mut b) = (s, s);
            a[i] += 1e-3;
            b[i] -= 1e-3;
            let num = (loss(&a) - loss(&b)) / 2e-3;
            assert!((num - g[i]).abs() < 1e-3, "{i}: {num} vs {}", g[i]);
        }
    }
}
