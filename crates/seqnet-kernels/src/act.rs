//! The recurrent layers' gate and state activations, scalar ([`Act`]), and
//! the run-time choice of them ([`Acts`]) that the recurrent kernels take.

/// The gate activation (MATLAB's `GateActivationFunction`): the LSTM's
/// `i, f, o` and the GRU's `r, z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateAct {
    /// `σ(x) = 1 / (1 + e^(−x))`.
    Sigmoid,
    /// `clamp(0.2·x + 0.5, 0, 1)`.
    HardSigmoid,
}

/// The state activation (MATLAB's `StateActivationFunction`): the LSTM's
/// cell candidate and cell output, the GRU's candidate state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateAct {
    /// `tanh(x)`.
    Tanh,
    /// `x / (1 + |x|)`.
    Softsign,
}

/// The activations of a recurrent layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Acts {
    /// The gates' activation.
    pub gate: GateAct,
    /// The state's activation.
    pub state: StateAct,
}

impl Default for Acts {
    /// The sigmoid and `tanh` (MATLAB's and PyTorch's defaults).
    fn default() -> Self {
        Acts {
            gate: GateAct::Sigmoid,
            state: StateAct::Tanh,
        }
    }
}

/// Calls `$f::<Gate, State>($args)` with the [`Act`] types that `$acts`
/// (an [`Acts`]) names, so each combination is compiled on its own.
macro_rules! with_acts {
    ($acts:expr, $f:ident($($arg:expr),* $(,)?)) => {{
        use $crate::act::{GateAct as GA, StateAct as SA};
        use $crate::act::{HardSigmoidAct, SigmoidAct, SoftsignAct, TanhAct};
        let acts: $crate::act::Acts = $acts;
        match (acts.gate, acts.state) {
            (GA::Sigmoid, SA::Tanh) => $f::<SigmoidAct, TanhAct>($($arg),*),
            (GA::Sigmoid, SA::Softsign) => $f::<SigmoidAct, SoftsignAct>($($arg),*),
            (GA::HardSigmoid, SA::Tanh) => $f::<HardSigmoidAct, TanhAct>($($arg),*),
            (GA::HardSigmoid, SA::Softsign) => $f::<HardSigmoidAct, SoftsignAct>($($arg),*),
        }
    }};
}
pub(crate) use with_acts;

/// An elementwise activation with its derivative written in terms of its output.
pub trait Act {
    /// Which function this is (for the AVX-512 versions).
    const KIND: ActKind;
    fn f(x: f32) -> f32;
    /// `f'(x)` where `y = f(x)`.
    fn df(y: f32) -> f32;
}

/// The functions [`Act`] stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ActKind {
    Sigmoid,
    HardSigmoid,
    Tanh,
    Softsign,
}

/// [`GateAct::Sigmoid`].
pub struct SigmoidAct;
/// [`GateAct::HardSigmoid`].
pub struct HardSigmoidAct;
/// [`StateAct::Tanh`].
pub struct TanhAct;
/// [`StateAct::Softsign`].
pub struct SoftsignAct;

/// `e^x` without branches, so that loops over it vectorize: Cephes' `expf`
/// (range reduction by `ln 2` in two parts, a degree-6 polynomial, the
/// exponent put in by bits), within 2 ulp of the library's over the clamped
/// range `[-87.3, 88.37]`; NaN stays NaN.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    fast_exp_with::<false>(x)
}

/// `a·b + c`: fused (one rounding) when `FUSED`, else a product then a sum.
#[inline(always)]
fn madd<const FUSED: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FUSED {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// [`fast_exp`]'s algorithm, its multiply-adds fused when `FUSED` (7
/// operations fewer per value, within 1 ulp of the unfused result; only for
/// code compiled with FMA, else `mul_add` is a library call). Unfused it is
/// [`fast_exp`], bit for bit.
#[inline(always)]
pub fn fast_exp_with<const FUSED: bool>(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    let x = x.clamp(-87.3, 88.37);
    let n = madd::<FUSED>(x, LOG2E, 0.5).floor();
    // `x − n·ln 2` with `ln 2` in two parts (the first exact in few bits).
    let r = madd::<FUSED>(n, 2.121_944_4e-4, madd::<FUSED>(n, -0.693_359_4, x));
    let p = 1.987_569_1e-4;
    let p = madd::<FUSED>(p, r, 1.398_2e-3);
    let p = madd::<FUSED>(p, r, 8.333_452e-3);
    let p = madd::<FUSED>(p, r, 4.166_579_6e-2);
    let p = madd::<FUSED>(p, r, 1.666_666_5e-1);
    let p = madd::<FUSED>(p, r, 0.5);
    // `p·r² + r + 1`: fused, `(p·r)·r + (r + 1)` in one rounding; unfused in
    // the order the recurrent kernels' exact tests were written against.
    let y = if FUSED {
        (p * r).mul_add(r, r + 1.0)
    } else {
        p * r * r + r + 1.0
    };
    // 2^n by bits, without a float-to-int conversion (Rust's `as i32`
    // saturates and maps NaN to 0, which does not vectorize): adding 1.5·2^23
    // puts the integer `n ∈ [-126, 127]` in the low mantissa bits.
    let n_bits = (n + 12_582_912.0).to_bits().wrapping_sub(0x4B40_0000);
    y * f32::from_bits(n_bits.wrapping_add(127) << 23)
}

impl Act for SigmoidAct {
    const KIND: ActKind = ActKind::Sigmoid;
    #[inline(always)]
    fn f(x: f32) -> f32 {
        1.0 / (1.0 + fast_exp(-x))
    }
    #[inline(always)]
    fn df(y: f32) -> f32 {
        y * (1.0 - y)
    }
}

impl Act for HardSigmoidAct {
    const KIND: ActKind = ActKind::HardSigmoid;
    #[inline(always)]
    fn f(x: f32) -> f32 {
        (0.2 * x + 0.5).clamp(0.0, 1.0)
    }
    #[inline(always)]
    fn df(y: f32) -> f32 {
        if y > 0.0 && y < 1.0 {
            0.2
        } else {
            0.0
        }
    }
}

impl Act for TanhAct {
    const KIND: ActKind = ActKind::Tanh;
    /// `tanh` through [`fast_exp`], several times faster than libm's `tanhf`
    /// (which goes through `expm1f`); within 2 ulp-ish of it: absolute error below
    /// `2e-7`, relative error below `1e-6` (a short odd series near zero keeps it
    /// relative). Both branches are computed and one selected, so that loops vectorize.
    #[inline(always)]
    fn f(x: f32) -> f32 {
        let a = x.abs();
        let x2 = x * x;
        let small = x * (1.0 + x2 * (-1.0 / 3.0 + x2 * (2.0 / 15.0 - x2 * (17.0 / 315.0))));
        let e = fast_exp(-2.0 * a);
        let big = ((1.0 - e) / (1.0 + e)).copysign(x);
        if a < 0.0625 {
            small
        } else {
            big
        }
    }
    #[inline(always)]
    fn df(y: f32) -> f32 {
        1.0 - y * y
    }
}

impl Act for SoftsignAct {
    const KIND: ActKind = ActKind::Softsign;
    #[inline(always)]
    fn f(x: f32) -> f32 {
        x / (1.0 + x.abs())
    }
    #[inline(always)]
    fn df(y: f32) -> f32 {
        let d = 1.0 - y.abs();
        d * d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activation_derivatives_match_differences() {
        fn check<A: Act>() {
            for &x in &[-3.0f32, -1.2, -0.3, 0.0, 0.4, 1.7, 2.9] {
                let h = 1e-3;
                let num = (A::f(x + h) - A::f(x - h)) / (2.0 * h);
                assert!(
                    (A::df(A::f(x)) - num).abs() < 2e-3,
                    "x = {x}: {} vs {num}",
                    A::df(A::f(x))
                );
            }
        }
        check::<SigmoidAct>();
        check::<HardSigmoidAct>();
        check::<TanhAct>();
        check::<SoftsignAct>();
    }

    #[test]
    fn fast_exp_matches_the_library_one() {
        let mut worst = 0.0f64;
        for i in -870_000..=883_000 {
            let x = i as f32 * 1e-4;
            let (a, b) = (fast_exp(x) as f64, (x as f64).exp());
            worst = worst.max((a - b).abs() / b);
        }
        assert!(worst < 2.5e-7, "relative error {worst:e}");
        assert!(fast_exp(f32::NAN).is_nan());
        assert_eq!(fast_exp(0.0), 1.0);
    }

    #[test]
    fn fast_tanh_matches_the_library_one() {
        let mut worst = (0.0f32, 0.0f32);
        for i in -200_000..=200_000 {
            let x = i as f32 * 1e-4;
            let (a, b) = (TanhAct::f(x), (x as f64).tanh() as f32);
            let err = (a - b).abs();
            worst = (
                worst.0.max(err),
                worst.1.max(err / b.abs().max(f32::MIN_POSITIVE)),
            );
        }
        assert!(
            worst.0 < 2e-7 && worst.1 < 1e-6,
            "abs {:e}, rel {:e}",
            worst.0,
            worst.1
        );
        assert_eq!(TanhAct::f(0.0), 0.0);
        assert_eq!(TanhAct::f(100.0), 1.0);
        assert_eq!(TanhAct::f(-100.0), -1.0);
        assert!(TanhAct::f(f32::NAN).is_nan());
    }
}
