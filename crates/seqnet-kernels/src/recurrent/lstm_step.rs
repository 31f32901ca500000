//! The LSTM's streaming step (`predict_and_update_state` on one observation):
//! one step of one sequence, `b + [W R]·[x; h]` as a matrix-vector product by
//! cached transposed weights, then the cell update. The weights (`[C + H, 4H]`,
//! 179 KB for 12 inputs and 100 units) stream from L2 at every step, which
//! bounds the step; from `SPLIT_WEIGHTS` (256K) weights on (more than one core's
//! L2 holds), the hidden units are split in two halves, each with its own
//! copy of its units' weights, one for the caller and one for the helper
//! thread, so that each core streams half of them from its own L2.

use crate::act::{with_acts, Act, Acts};
use crate::aligned::AlignedBuf;
use crate::cpu::Isa;
use crate::shared::SharedMut;
use crate::threads::share;
use std::ops::Range;

/// Weights (`(C + H)·4H`) from which a step is split between two threads:
/// when they no longer fit one core's L2 (1 MB here). Measured per step, one
/// thread against two: 12 inputs and 100 units (45K weights) 1.85 against
/// 1.9–3.9 µs, 64 and 128 (98K) 3.6 against 4.1 µs, 128 and 256 (393K)
/// 18.6 against 10.3 µs: below that, meeting the helper costs more than the
/// half product saves.
const SPLIT_WEIGHTS: usize = 256 * 1024;

/// One half's units and weights.
#[derive(Debug, Clone, Default)]
struct Half {
    units: Range<usize>,
    /// `[C + H, ld]` in [`gemv_t`]'s block-major layout, `ld` = `4n` rounded
    /// up to 16 (columns past `4n` zero): column `q·n + j` is gate `q` of
    /// unit `units.start + j`.
    wt: AlignedBuf,
    ld: usize,
    /// Where the half's `ld` gate sums start in the step's gate buffer.
    offset: usize,
    /// `[ld]`, the same columns.
    bias: Vec<f32>,
}

/// The streaming step's weights, packed from the learnables (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct StepWeights {
    halves: Vec<Half>,
    /// Inputs `C`.
    c: usize,
    /// Hidden units `H`.
    h: usize,
}

impl StepWeights {
    /// Packs `w_ih` `[4H, C]`, `w_hh` `[4H, H]` and `bias` `[4H]` (row-major,
    /// gate order `i, f, g, o`), in two halves when `threads` is 2 and the
    /// weights are many enough.
    ///
    /// # Panics
    /// When a slice is shorter than its shape.
    pub fn pack(
        w_ih: &[f32],
        c: usize,
        w_hh: &[f32],
        h: usize,
        bias: &[f32],
        threads: usize,
    ) -> Self {
        assert!(w_ih.len() >= 4 * h * c && w_hh.len() >= 4 * h * h && bias.len() >= 4 * h);
        let k = c + h;
        let parts = if threads >= 2 && k * 4 * h >= SPLIT_WEIGHTS && h >= 32 {
            2
        } else {
            1
        };
        let mut offset = 0;
        let halves = (0..parts)
            .map(|p| {
                let units = p * h / parts..(p + 1) * h / parts;
                let n = units.len();
                let ld = (4 * n).next_multiple_of(16);
                let mut buf = AlignedBuf::default();
                buf.zeroed(k * ld);
                let wt = buf.as_mut_slice();
                let mut b = vec![0f32; 4 * n];
                for q in 0..4 {
                    for (j, u) in units.clone().enumerate() {
                        let (r, col) = (q * h + u, q * n + j);
                        for kk in 0..c {
                            wt[block_index(kk, col, k, ld)] = w_ih[r * c + kk];
                        }
                        for kk in 0..h {
                            wt[block_index(c + kk, col, k, ld)] = w_hh[r * h + kk];
                        }
                        b[col] = bias[r];
                    }
                }
                b.resize(ld, 0.0);
                offset += ld;
                Half {
                    units,
                    wt: buf,
                    ld,
                    offset: offset - ld,
                    bias: b,
                }
            })
            .collect();
        StepWeights { halves, c, h }
    }

    /// Whether the weights were packed (false for the default value).
    pub fn is_packed(&self) -> bool {
        !self.halves.is_empty()
    }

    /// One step with the activations `acts`: `z` holds `[x; h]` (`C + H`);
    /// updates `hidden` and `cell` (`[H]` each) in place. `gates` is scratch
    /// (`4H` and padding, resized here).
    ///
    /// # Panics
    /// When `z` does not hold `C + H` values, or `hidden` or `cell` not `H`.
    pub fn step(
        &self,
        acts: Acts,
        z: &[f32],
        hidden: &mut [f32],
        cell: &mut [f32],
        gates: &mut Vec<f32>,
    ) {
        let isa = Isa::best();
        with_acts!(acts, step_on(self, z, hidden, cell, gates, isa))
    }
}

/// [`StepWeights::step`] with the loops of `isa`.
fn step_on<G: Act, S: Act>(
    w: &StepWeights,
    z: &[f32],
    hidden: &mut [f32],
    cell: &mut [f32],
    gates: &mut Vec<f32>,
    isa: Isa,
) {
    assert_eq!(z.len(), w.c + w.h, "step: z holds [x; h]");
    assert!(
        hidden.len() == w.h && cell.len() == w.h,
        "step: state sizes"
    );
    gates.clear();
    gates.resize(w.halves.iter().map(|p| p.ld).sum(), 0.0);
    let (gp, hp, cp) = (
        SharedMut(gates.as_mut_ptr()),
        SharedMut(hidden.as_mut_ptr()),
        SharedMut(cell.as_mut_ptr()),
    );
    let ptrs = (gp, hp, cp);
    let run = |p: usize| {
        let (gp, hp, cp) = ptrs;
        let half = &w.halves[p];
        let (u0, n) = (half.units.start, half.units.len());
        // SAFETY: the halves' units split `0..H` and their gate sums split
        // `gates` (sized to the sum of their `ld` above), so each half gets
        // its own part of `gates` and its own units of `hidden` and `cell`
        // (both `H` long, checked); `z` is a copy, so nobody reads what is
        // written.
        let (y, hv, cv) = unsafe {
            (
                gp.at_mut(half.offset, half.ld),
                hp.at_mut(u0, n),
                cp.at_mut(u0, n),
            )
        };
        y.copy_from_slice(&half.bias);
        gemv_t(half.wt.as_slice(), z, y, isa);
        cell_step::<G, S>(y, cv, hv, isa);
    };
    share(w.halves.len(), run);
}

/// Columns per register block of [`gemv_t`]: 128 (8 registers), then 16.
const WIDE: usize = 128;

/// The column blocks of a `[K, ld]` matrix (`ld` a multiple of 16): `(first
/// column, width)`, blocks of [`WIDE`] columns, then of 16.
fn blocks(ld: usize) -> impl Iterator<Item = (usize, usize)> {
    let wide = ld / WIDE * WIDE;
    (0..wide)
        .step_by(WIDE)
        .map(|j| (j, WIDE))
        .chain((wide..ld).step_by(16).map(|j| (j, 16)))
}

/// Where element `(k, col)` of a `[K, ld]` matrix sits in [`gemv_t`]'s
/// block-major layout: each block of columns (see [`blocks`]) stored `[K,
/// width]` contiguously, so that a block's product reads its weights in
/// order (the hardware prefetcher's best case; rows `ld` apart were slower).
fn block_index(k: usize, col: usize, rows: usize, ld: usize) -> usize {
    let wide = ld / WIDE * WIDE;
    let (start, width) = if col < wide {
        (col / WIDE * WIDE, WIDE)
    } else {
        (wide + (col - wide) / 16 * 16, 16)
    };
    start * rows + k * width + col - start
}

/// `y += Σ_k z[k]·W[k, :]` for `W` `[K, ld]` in block-major layout
/// ([`block_index`]), `K = z.len()`, `ld = y.len()` (a multiple of 16): each
/// block's sums stay in registers over all of `k`.
#[inline(always)]
fn gemv_t_body(wt: &[f32], z: &[f32], y: &mut [f32]) {
    let k = z.len();
    for (j0, width) in blocks(y.len()) {
        let w = &wt[j0 * k..(j0 + width) * k];
        if width == WIDE {
            let mut acc = [0f32; WIDE];
            acc.copy_from_slice(&y[j0..j0 + WIDE]);
            for (row, &zk) in w.chunks_exact(WIDE).zip(z) {
                for l in 0..WIDE {
                    acc[l] = zk.mul_add(row[l], acc[l]);
                }
            }
            y[j0..j0 + WIDE].copy_from_slice(&acc);
        } else {
            let mut acc = [0f32; 16];
            acc.copy_from_slice(&y[j0..j0 + 16]);
            for (row, &zk) in w.chunks_exact(16).zip(z) {
                for l in 0..16 {
                    acc[l] = zk.mul_add(row[l], acc[l]);
                }
            }
            y[j0..j0 + 16].copy_from_slice(&acc);
        }
    }
}

/// [`gemv_t_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gemv_t_avx512(wt: &[f32], z: &[f32], y: &mut [f32]) {
    gemv_t_body(wt, z, y)
}

/// [`gemv_t_body`], vectorized where `isa` allows.
fn gemv_t(wt: &[f32], z: &[f32], y: &mut [f32], isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F.
        unsafe { gemv_t_avx512(wt, z, y) };
        return;
    }
    let _ = isa;
    gemv_t_body(wt, z, y)
}

/// The cell update of `n` units from their gate sums `y` (`i, f, g, o`, `n`
/// each): `c ← f·c + i·g`, `h ← o·state(c)`.
fn cell_step<G: Act, S: Act>(y: &[f32], c: &mut [f32], h: &mut [f32], isa: Isa) {
    let n = c.len();
    assert!(y.len() >= 4 * n && h.len() >= n, "cell_step: sizes");
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F; the sizes
        // were checked above.
        unsafe { avx512::cell_step::<G, S>(y, c, h) };
        return;
    }
    let _ = isa;
    for j in 0..n {
        let i = G::f(y[j]);
        let f = G::f(y[n + j]);
        let g = S::f(y[2 * n + j]);
        let o = G::f(y[3 * n + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * S::f(c[j]);
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::Act;
    use crate::simd::act512::act;
    use std::arch::x86_64::*;

    /// [`super::cell_step`] 16 units at a time.
    ///
    /// # Safety
    /// The CPU has AVX-512F; `y` holds `4n` values and `h` `n`, for `n = c.len()`.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn cell_step<G: Act, S: Act>(y: &[f32], c: &mut [f32], h: &mut [f32]) {
        let n = c.len();
        let (y, c, h) = (y.as_ptr(), c.as_mut_ptr(), h.as_mut_ptr());
        let mut j = 0;
        while j < n {
            let m: __mmask16 = if n - j >= 16 {
                0xffff
            } else {
                (1u16 << (n - j)) - 1
            };
            // SAFETY: the masks cover units `j..min(j + 16, n)`, inside the
            // `n` units of `c` and `h` and each of `y`'s four gate rows; the
            // CPU has AVX-512F (the contract).
            unsafe {
                let i = act::<G>(_mm512_maskz_loadu_ps(m, y.add(j)));
                let f = act::<G>(_mm512_maskz_loadu_ps(m, y.add(n + j)));
                let g = act::<S>(_mm512_maskz_loadu_ps(m, y.add(2 * n + j)));
                let o = act::<G>(_mm512_maskz_loadu_ps(m, y.add(3 * n + j)));
                let cv =
                    _mm512_fmadd_ps(f, _mm512_maskz_loadu_ps(m, c.add(j)), _mm512_mul_ps(i, g));
                _mm512_mask_storeu_ps(c.add(j), m, cv);
                _mm512_mask_storeu_ps(h.add(j), m, _mm512_mul_ps(o, act::<S>(cv)));
            }
            j += 16;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{SigmoidAct, TanhAct};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// Three steps against the LSTM's equations in f64, whole and split in
    /// halves (above [`SPLIT_WEIGHTS`], with halves whose gate rows are not a
    /// multiple of 128 or 16), with the AVX-512 loops and the portable ones.
    #[test]
    fn steps_match_the_equations() {
        let mut rng = StdRng::seed_from_u64(11);
        for (c, h) in [(12, 100), (40, 300), (3, 5)] {
            let mut random = |n: usize, s: f32| -> Vec<f32> {
                (0..n).map(|_| rng.random_range(-s..s)).collect()
            };
            let w_ih = random(4 * h * c, 0.3);
            let w_hh = random(4 * h * h, 0.3);
            let bias = random(4 * h, 0.3);
            let xs: Vec<Vec<f32>> = (0..3).map(|_| random(c, 1.0)).collect();
            let h0 = random(h, 0.5);
            let c0 = random(h, 0.5);
            // The reference.
            let (mut hr, mut cr): (Vec<f64>, Vec<f64>) = (
                h0.iter().map(|&v| v as f64).collect(),
                c0.iter().map(|&v| v as f64).collect(),
            );
            let mut want = Vec::new();
            for x in &xs {
                let z: Vec<f64> = (0..4 * h)
                    .map(|r| {
                        let mut v = bias[r] as f64;
                        v += (0..c)
                            .map(|k| w_ih[r * c + k] as f64 * x[k] as f64)
                            .sum::<f64>();
                        v + (0..h).map(|k| w_hh[r * h + k] as f64 * hr[k]).sum::<f64>()
                    })
                    .collect();
                for u in 0..h {
                    cr[u] = sig(z[h + u]) * cr[u] + sig(z[u]) * z[2 * h + u].tanh();
                    hr[u] = sig(z[3 * h + u]) * cr[u].tanh();
                }
                want.push(hr.clone());
            }
            for threads in [1, 2] {
                let w = StepWeights::pack(&w_ih, c, &w_hh, h, &bias, threads);
                assert_eq!(w.halves.len(), if threads == 2 && c == 40 { 2 } else { 1 });
                for isa in Isa::all() {
                    let (mut hv, mut cv, mut gates) = (h0.clone(), c0.clone(), Vec::new());
                    for (x, want) in xs.iter().zip(&want) {
                        let z: Vec<f32> = x.iter().chain(&hv).copied().collect();
                        step_on::<SigmoidAct, TanhAct>(&w, &z, &mut hv, &mut cv, &mut gates, isa);
                        for (u, (&got, &want)) in hv.iter().zip(want).enumerate() {
                            assert!(
                                (got as f64 - want).abs() < 2e-5,
                                "c {c} h {h} threads {threads} {} unit {u}: {got} vs {want}",
                                isa.name()
                            );
                        }
                    }
                }
            }
        }
    }
}
