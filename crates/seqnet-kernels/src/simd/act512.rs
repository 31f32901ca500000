//! AVX-512 versions of the recurrent layers' gate and state activations, 16
//! lanes at once: the formulas of [`Act::f`] (Cephes' `exp`, `tanh` with a
//! short series near 0) with fused multiply-adds, `vscalefps` for the power
//! of two and a refined `vrcp14ps` for the division, in a third of the
//! instructions the compiler makes of the scalar formulas. NaN stays NaN.
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

/// `e^x`, as [`crate::act::fast_exp`] (clamped to `[-87.3, 88.37]`).
#[inline(always)]
pub(crate) unsafe fn exp(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        // `max`/`min` return their second operand when either is NaN: NaN passes.
        let x = _mm512_min_ps(splat(88.37), _mm512_max_ps(splat(-87.3), x));
        let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
            _mm512_mul_ps(x, splat(std::f32::consts::LOG2_E)),
        );
        let r = _mm512_fnmadd_ps(n, splat(0.693_359_4), x);
        let r = _mm512_fnmadd_ps(n, splat(-2.121_944_4e-4), r);
        let mut p = splat(1.987_569_1e-4);
        for c in [
            1.398_2e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            1.666_666_5e-1,
            0.5,
        ] {
            p = _mm512_fmadd_ps(p, r, splat(c));
        }
        let y = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, splat(1.0)));
        _mm512_scalef_ps(y, n)
    }
}

/// `1 / d` from `vrcp14ps` and one Newton step (relative error below 1e-7).
#[inline(always)]
unsafe fn recip(d: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        let r = _mm512_rcp14_ps(d);
        _mm512_fmadd_ps(r, _mm512_fnmadd_ps(d, r, splat(1.0)), r)
    }
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub(crate) unsafe fn sigmoid(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        let e = exp(_mm512_sub_ps(_mm512_setzero_ps(), x));
        recip(_mm512_add_ps(splat(1.0), e))
    }
}

/// `tanh(x)`: `(1 - e)/(1 + e)` with `e = e^{-2|x|}`, signed as `x`; for
/// `|x| < 1/16` the odd series to `x⁷` (relative accuracy near 0).
#[inline(always)]
pub(crate) unsafe fn tanh(x: __m512) -> __m512 {
    // SAFETY: the CPU has AVX-512F (this function's contract).
    unsafe {
        let a = _mm512_abs_ps(x);
        let e = exp(_mm512_mul_ps(a, splat(-2.0)));
        let big = _mm512_mul_ps(
            _mm512_sub_ps(splat(1.0), e),
            recip(_mm512_add_ps(splat(1.0), e)),
        );
        let sign = _mm512_and_epi32(_mm512_castps_si512(x), _mm512_set1_epi32(i32::MIN));
        let big = _mm512_castsi512_ps(_mm512_or_epi32(_mm512_castps_si512(big), sign));
        let x2 = _mm512_mul_ps(x, x);
        let q = _mm512_fmadd_ps(x2, splat(-17.0 / 315.0), splat(2.0 / 15.0));
        let q = _mm512_fmadd_ps(x2, q, splat(-1.0 / 3.0));
        let q = _mm512_fmadd_ps(x2, q, splat(1.0));
        let small = _mm512_mul_ps(x, q);
        let near0 = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, splat(0.0625));
        _mm512_mask_blend_ps(near0, big, small)
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

    #[target_feature(enable = "avx512f")]
    unsafe fn exp16(x: __m512) -> __m512 {
        // SAFETY: compiled for AVX-512F, called only where the CPU has it.
        unsafe { exp(x) }
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

    /// Against f64 over `[-100, 100]` (dense near 0, where `tanh` switches
    /// formulas): relative error (absolute below 1e-3 for the sigmoid and
    /// `tanh`); NaN stays NaN.
    #[test]
    fn vector_activations_match_f64() {
        if !std::arch::is_x86_feature_detected!("avx512f") {
            return;
        }
        let mut xs: Vec<f32> = (-20_000..=20_000).map(|i| i as f32 * 0.005).collect();
        xs.extend((-1000..=1000).map(|i| i as f32 * 1e-4));
        xs.extend([-87.0, 88.0, 1e-30, -1e-30, 0.0, -0.0, 0.0625, -0.0625]);
        while !xs.len().is_multiple_of(16) {
            xs.push(0.5);
        }
        let (mut e_exp, mut e_sig, mut e_tanh) = (0f64, 0f64, 0f64);
        for chunk in xs.chunks(16) {
            let x: [f32; 16] = chunk.try_into().unwrap();
            // SAFETY: the CPU has AVX-512F (checked above).
            let (ex, sg, th) = unsafe { (on16(exp16, &x), on16(sigmoid16, &x), on16(tanh16, &x)) };
            for l in 0..16 {
                let v = x[l] as f64;
                if v.abs() <= 80.0 {
                    e_exp = e_exp.max((ex[l] as f64 - v.exp()).abs() / v.exp());
                }
                let s = 1.0 / (1.0 + (-v).exp());
                e_sig = e_sig.max((sg[l] as f64 - s).abs() / s.max(1e-3));
                let t = v.tanh();
                e_tanh = e_tanh.max((th[l] as f64 - t).abs() / t.abs().max(1e-3));
            }
        }
        assert!(e_exp < 4e-7, "exp: {e_exp}");
        assert!(e_sig < 4e-7, "sigmoid: {e_sig}");
        // As the scalar `tanh`: `1 - e` loses some relative accuracy just above
        // the series' range (at |x| = 1/16, e ≈ 0.88).
        assert!(e_tanh < 1e-6, "tanh: {e_tanh}");
        let nan = [f32::NAN; 16];
        // SAFETY: as above.
        let (a, b, c) = unsafe { (on16(exp16, &nan), on16(sigmoid16, &nan), on16(tanh16, &nan)) };
        assert!(a.iter().chain(&b).chain(&c).all(|v| v.is_nan()));
    }
}
