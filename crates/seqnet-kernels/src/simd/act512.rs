//! AVX-512 versions of the recurrent layers' gate and state activations, 16
//! lanes at once, in few instructions because they share the FMA ports with
//! the recurrent product (session 8: the five activations per unit were 11 %
//! of the fused LSTM pass; now 15 and 16 instructions instead of 19 and 30).
//! Both go through one `2^t`:
//! - `σ(x) = 1 / (1 + 2^t)` with `t = −x·log2 e`,
//! - `tanh(x) = 2σ(2x) − 1 = 2 / (1 + 2^t) − 1` with `t = −2x·log2 e`,
//!
//! `2^t = 2^n · 2^f` with `n = ⌊t⌋` (`vscalefps`) and `2^f`, `f ∈ [0, 1]`, a
//! degree-5 minimax polynomial (relative error 8.2e-8). The division is a
//! `vrcp14ps` refined by one Newton step. `x` is clamped first to where
//! `2^t` is a normal float (the sigmoid is then within 2e-35 of 0 or 1,
//! `tanh` ±1). NaN stays NaN.
//!
//! Accuracy (checked against f64 by `vector_activations_match_f64`; the
//! measured worst in brackets): absolute error below 1.2e-7 for the sigmoid
//! (9.1e-8) and 2e-7 for `tanh` (1.5e-7), i.e. 1.5–2.5 ulp of values in
//! `[0.5, 1)`, the rounding of the cell update's own sums; the sigmoid's
//! relative error is below 4e-7 (2.9e-7) where it is at least 1e-3.
//! `tanh` has no relative accuracy near 0 (no separate series: `tanh(1e-6)`
//! may be off by 1e-7); the layers use it on gate sums and cell states,
//! where only the absolute error reaches the outputs.
//!
//! Every function here must be inlined into a function compiled with
//! `#[target_feature(enable = "avx512f")]`, called only on CPUs that have it:
//! that is each one's safety contract, and all its intrinsics need.

use crate::act::{Act, ActKind};
use std::arch::x86_64::*;

#[inline(always)]
unsafe fn splat(v: f32) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe { _mm512_set1_ps(v) }
}

/// `2^f ≈ 1 + f·(c1 + f·(c2 + …))` on `[0, 1]`, highest coefficient first:
/// minimax for the relative error with `p(0) = 1` exactly (Remez in 40-digit
/// arithmetic, the coefficients rounded to f32).
const EXP2_POLY: [f32; 5] = [
    1.867_13e-3,
    9.017_031e-3,
    5.579_991_3e-2,
    2.401_644_5e-1,
    6.931_513e-1,
];

/// `2^(s·x·log2 e) = e^(s·x)` for `s` = −1 (the sigmoid) or −2 (`tanh`), `x`
/// already clamped so that the result is a normal float. Relative error
/// below `2e-7 + 1.4e-8·|s·x|` (`log2 e` in f32 is off by 1.3e-8 of it; the
/// activations need relative accuracy only where `|s·x|` is small).
#[inline(always)]
unsafe fn exp_scaled(x: __m512, s: f32) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        let l = splat(s * std::f32::consts::LOG2_E);
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, l),
        );
        // `f = x·l − n` with the product exact inside the FMA (so `f` is right
        // to f32 rounding however large `x·l`), in `[0, 1]` up to rounding.
        let f = _mm512_fmsub_ps(x, l, n);
        let mut p = splat(EXP2_POLY[0]);
        for c in &EXP2_POLY[1..] {
            p = _mm512_fmadd_ps(p, f, splat(*c));
        }
        _mm512_scalef_ps(_mm512_fmadd_ps(p, f, splat(1.0)), n)
    }
}

/// `x` clamped to `[lo, hi]`; NaN passes (`max`/`min` return their second
/// operand when either is NaN).
#[inline(always)]
unsafe fn clamp(x: __m512, lo: f32, hi: f32) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe { _mm512_min_ps(splat(hi), _mm512_max_ps(splat(lo), x)) }
}

/// `1 / (1 + e^-x)`. Beyond `x ∈ [-80, 86]` the result is within 2e-35 of
/// 0 or 1.
#[inline(always)]
pub(crate) unsafe fn sigmoid(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        let d = _mm512_add_ps(splat(1.0), exp_scaled(clamp(x, -80.0, 86.0), -1.0));
        // `1/d` from `vrcp14ps` and one Newton step.
        let r = _mm512_rcp14_ps(d);
        _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, splat(1.0)), r)
    }
}

/// `tanh(x) = 2 / (1 + e^-2x) − 1`. Beyond `x ∈ [-40, 43]` the result is ±1
/// in f32.
#[inline(always)]
pub(crate) unsafe fn tanh(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        // `d = (1 + e^-2x)/2`, `r ≈ 1/d` refined by one Newton step whose last
        // multiply-add also subtracts the 1 (no rounding of `r` in between).
        let d = _mm512_fmadd_ps(
            exp_scaled(clamp(x, -40.0, 43.0), -2.0),
            splat(0.5),
            splat(0.5),
        );
        let r = _mm512_rcp14_ps(d);
        let u = _mm512_fnmadd_ps(d, r, splat(1.0));
        _mm512_fmadd_ps(r, u, _mm512_sub_ps(r, splat(1.0)))
    }
}

/// `A::f` on 16 lanes: the functions above for the sigmoid and `tanh`, the
/// scalar formula lane by lane for the others (cheap already).
#[inline(always)]
pub(crate) unsafe fn act<A: Act>(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        match A::KIND {
            ActKind::Sigmoid => sigmoid(x),
            ActKind::Tanh => tanh(x),
            ActKind::HardSigmoid | ActKind::Softsign => {
                let mut v = [0f32; 16];
                _mm512_storeu_ps(v.as_mut_ptr(), x);
                _mm512_loadu_ps(v.map(A::f).as_ptr())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{SigmoidAct, TanhAct};

    /// `f` on the 16 lanes of `x`.
    ///
    /// # Safety
    /// The CPU has AVX-512F.
    #[target_feature(enable = "avx512f")]
    unsafe fn on16(f: unsafe fn(__m512) -> __m512, x: &[f32; 16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        // SAFETY: the CPU has AVX-512F (the contract); `x` and `out` hold 16 values.
        unsafe { _mm512_storeu_ps(out.as_mut_ptr(), f(_mm512_loadu_ps(x.as_ptr()))) };
        out
    }

    /// `f` on every value of `xs`, 16 at a time.
    fn on_all(f: unsafe fn(__m512) -> __m512, xs: &[f32]) -> Vec<f32> {
        xs.chunks(16)
            .flat_map(|c| {
                let mut x = [0f32; 16];
                x[..c.len()].copy_from_slice(c);
                // SAFETY: the callers run only where the CPU has AVX-512F.
                let y = unsafe { on16(f, &x) };
                y[..c.len()].to_vec()
            })
            .collect()
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: compiled for AVX-512F, called only where the CPU has it.
        unsafe { exp_scaled(x, -1.0) }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn sigmoid16(x: __m512) -> __m512 {
        // SAFETY: as `exp16`.
        unsafe { act::<SigmoidAct>(x) }
    }
    #[target_feature(enable = "avx512f")]
    unsafe fn tanh16(x: __m512) -> __m512 {
        // SAFETY: as `exp16`.
        unsafe { act::<TanhAct>(x) }
    }

    /// The f32 values in `[-r, r]`: every one near 0 and near the ends of the
    /// polynomial's interval (`2^t` for `t` near integers), a dense grid
    /// elsewhere.
    fn sweep(r: f32) -> Vec<f32> {
        let mut xs: Vec<f32> = (-2_000_000..=2_000_000)
            .map(|i| i as f32 * (r / 2e6))
            .collect();
        xs.extend((-100_000..=100_000).map(|i| i as f32 * 1e-7));
        for k in -60..=60 {
            // `x` where `−x·log2 e` (sigmoid) or `−2x·log2 e` (tanh) crosses `k`.
            for at in [
                k as f32 / std::f32::consts::LOG2_E,
                k as f32 / (2.0 * std::f32::consts::LOG2_E),
            ] {
                let mut v = at;
                for _ in 0..64 {
                    xs.push(v);
                    xs.push(-v);
                    v = f32::from_bits(v.to_bits() + 1);
                }
                let mut v = at;
                for _ in 0..64 {
                    v = f32::from_bits(v.to_bits().wrapping_sub(1));
                    xs.push(v);
                }
            }
        }
        xs.extend([1e-30, -1e-30, 0.0, -0.0, f32::MIN_POSITIVE, 1e-7, -1e-7]);
        // (The walk down from 0 wraps to NaN.)
        xs.retain(|x| x.is_finite());
        xs
    }

    /// `e^-x` against f64 within the sigmoid's clamp range: relative error
    /// within the bound of `exp_scaled`'s doc.
    #[test]
    fn exp_matches_f64() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let xs = sweep(80.0);
        let ys = on_all(exp16, &xs);
        let worst = xs
            .iter()
            .zip(&ys)
            .map(|(&x, &y)| {
                let e = (-(x as f64)).exp();
                (y as f64 - e).abs() / e / (2e-7 + 1.4e-8 * x.abs() as f64)
            })
            .fold(0f64, f64::max);
        assert!(worst < 1.0, "exp: {worst} of the bound");
    }

    /// The bounds of the module's doc against f64 over `[-100, 100]` and the
    /// special values: ±∞ give the limits, NaN stays NaN, 0 gives 0.5 and 0.
    #[test]
    fn vector_activations_match_f64() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let xs = sweep(100.0);
        let (sg, th) = (on_all(sigmoid16, &xs), on_all(tanh16, &xs));
        let (mut sig_abs, mut sig_rel, mut tanh_abs) = (0f64, 0f64, 0f64);
        for ((&x, &s), &t) in xs.iter().zip(&sg).zip(&th) {
            let v = x as f64;
            let want = 1.0 / (1.0 + (-v).exp());
            sig_abs = sig_abs.max((s as f64 - want).abs());
            if want >= 1e-3 {
                sig_rel = sig_rel.max((s as f64 - want).abs() / want);
            }
            tanh_abs = tanh_abs.max((t as f64 - v.tanh()).abs());
            assert!(
                (0.0..=1.0).contains(&s) && (-1.0..=1.0).contains(&t),
                "{x}: {s} {t}"
            );
        }
        println!("sigmoid abs {sig_abs:e} rel {sig_rel:e}, tanh abs {tanh_abs:e}");
        assert!(sig_abs < 1.2e-7, "sigmoid: absolute {sig_abs:e}");
        assert!(sig_rel < 4e-7, "sigmoid: relative {sig_rel:e}");
        assert!(tanh_abs < 2e-7, "tanh: absolute {tanh_abs:e}");
        let special = [f32::INFINITY, f32::NEG_INFINITY, f32::NAN, 0.0, 1e30, -1e30];
        let (s, t) = (on_all(sigmoid16, &special), on_all(tanh16, &special));
        assert_eq!([s[0], s[3], s[4]], [1.0, 0.5, 1.0]);
        assert!((0.0..2e-35).contains(&s[1]) && s[1] == s[5], "{s:?}");
        assert_eq!([t[0], t[1], t[3], t[4], t[5]], [1.0, -1.0, 0.0, 1.0, -1.0]);
        assert!(s[2].is_nan() && t[2].is_nan());
    }
}
