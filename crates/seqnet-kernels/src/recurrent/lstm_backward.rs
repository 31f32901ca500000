//! The LSTM's backward pass through time, one direction: from the gates and
//! cell states its forward kept, the gradient for every step's gate
//! pre-activations, walking the steps backwards. Two threads split the hidden
//! units and meet at a barrier once per step (a step's `dh_prev = dG·R`
//! needs every unit's gate gradients); the caller's [`ThreadPolicy`] says
//! whether a team pays.

use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};
use crate::shared::SharedMut;
use crate::threads::{team, ThreadPolicy};

/// What one direction's forward kept for its backward (see the module docs
/// of [`super`] for the slots).
#[derive(Debug, Clone, Copy)]
pub struct LstmTrace<'a> {
    /// Activated gates `i, f, g, o` of every step, `[T·B, 4H]` (unused at
    /// padded steps).
    pub gates: &'a [f32],
    /// Cell states, `T + 2` slots of `[B, H]`.
    pub c: &'a [f32],
    /// `state(c)` after every step, `[T·B, H]`.
    pub tc: &'a [f32],
}

/// The loss gradient for the layer's output, of which one direction owns
/// some columns.
#[derive(Debug, Clone, Copy)]
pub struct OutputGrad<'a> {
    /// `[T·B, S]`.
    pub dy: &'a [f32],
    /// The output's width `S` (`H`, or `2H` for a BiLSTM).
    pub width: usize,
    /// This direction's first column (`0`, or `H` for a BiLSTM's backward direction).
    pub offset: usize,
}

/// One direction's backward through time. Returns the gradient for the gate
/// pre-activations, `[T·B, 4H]` (zero at padded steps), from which the
/// caller makes the weight and input gradients.
///
/// * `steps`, `reverse`: as the forward ran ([`super::lstm_forward()`]).
/// * `w_hh`: the direction's recurrent weights `R`, `[4H, H]` row-major.
/// * `trace`: what the forward kept (`tape` on).
/// * `grad`: the output's gradient and this direction's columns `offset..offset + H`.
/// * `policy`: how many threads run the pass
///   ([`ThreadPolicy::lstm_backward_threads`]); told how the team fared.
///
/// Threads split the hidden units: each computes its units' gate gradients,
/// then (after the step's barrier) its units' share of `dh_prev = dG·R`.
///
/// # Panics
/// When a slice is shorter than the sizes say, `offset + H > S`, or `steps`
/// has not one span per observation (checked before any thread starts).
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    trace: LstmTrace,
    grad: OutputGrad,
    policy: &mut ThreadPolicy,
) -> Vec<f32> {
    steps.check();
    let (t, b) = (steps.t, steps.b);
    assert!(w_hh.len() >= 4 * h * h, "lstm_backward: w_hh");
    assert!(trace.gates.len() >= t * b * 4 * h, "lstm_backward: gates");
    assert!(trace.c.len() >= (t + 2) * b * h, "lstm_backward: c");
    assert!(trace.tc.len() >= t * b * h, "lstm_backward: tc");
    assert!(grad.offset + h <= grad.width, "lstm_backward: columns");
    assert!(grad.dy.len() >= t * b * grad.width, "lstm_backward: dy");
    let threads = policy.lstm_backward_threads(b, h);
    let isa = Isa::best();
    let (dg, report) = with_acts!(
        acts,
        pass_back(steps, reverse, w_hh, h, trace, grad, threads, isa)
    );
    policy.record(report);
    dg
}

/// Whether a pass multiplies by packed weights ([`PackedPanels`]): packing
/// costs about one row's product per weight, so it pays only over enough rows
/// and steps.
fn use_packing(t: usize, b: usize) -> bool {
    t * b >= 8
}

/// The slices one backward cell update reads and writes for `n` hidden units
/// of one observation at one step.
struct CellBack<'a> {
    /// Activated gates `i, f, g, o`.
    gates: [&'a [f32]; 4],
    c_prev: &'a [f32],
    tc: &'a [f32],
    /// Loss gradient of the output at this step.
    dy: &'a [f32],
    /// Gradient for the hidden state after this step, from later steps.
    dh_next: &'a [f32],
    /// Gradient for the cell state after this step (in), before it (out).
    dc: &'a mut [f32],
    /// Gradient for the gate pre-activations (out).
    dg: [&'a mut [f32]; 4],
}

#[inline(always)]
fn cell_back_body<G: Act, S: Act>(x: CellBack) {
    let [gi, gf, gg, go] = x.gates;
    let n = gi.len();
    let (gf, gg, go) = (&gf[..n], &gg[..n], &go[..n]);
    let (cp, tc, dyr, dhn) = (&x.c_prev[..n], &x.tc[..n], &x.dy[..n], &x.dh_next[..n]);
    let dcr = &mut x.dc[..n];
    let [di, df, dgg, d_o] = x.dg;
    let (di, df, dgg, d_o) = (&mut di[..n], &mut df[..n], &mut dgg[..n], &mut d_o[..n]);
    for j in 0..n {
        let dh = dhn[j] + dyr[j];
        let dcv = dcr[j] + dh * go[j] * S::df(tc[j]);
        d_o[j] = dh * tc[j] * G::df(go[j]);
        di[j] = dcv * gg[j] * G::df(gi[j]);
        df[j] = dcv * cp[j] * G::df(gf[j]);
        dgg[j] = dcv * gi[j] * S::df(gg[j]);
        dcr[j] = dcv * gf[j];
    }
}

/// [`cell_back_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn cell_back_avx512<G: Act, S: Act>(x: CellBack) {
    cell_back_body::<G, S>(x)
}

/// [`cell_back_body`], vectorized where `isa` allows.
#[inline]
fn cell_back<G: Act, S: Act>(x: CellBack, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F.
        unsafe { cell_back_avx512::<G, S>(x) };
        return;
    }
    let _ = isa;
    cell_back_body::<G, S>(x)
}

/// [`lstm_backward`] on `threads` threads with the loops of `isa`; also
/// returns how the team fared.
#[allow(clippy::too_many_arguments)]
fn pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    dir: LstmTrace,
    grad: OutputGrad,
    threads: usize,
    isa: Isa,
) -> (Vec<f32>, crate::threads::TeamReport) {
    let (t_len, b) = (steps.t, steps.b);
    let (dy, s, offset) = (grad.dy, grad.width, grad.offset);
    let g4 = 4 * h;
    let mut dg = vec![0.0f32; t_len * b * g4];
    let rows = steps.active_rows();
    let dgp = SharedMut(dg.as_mut_ptr());
    let report = team(threads, |ti, size, barrier| {
        let r = ti * h / size..(ti + 1) * h / size;
        let (u0, n) = (r.start, r.len());
        // Column `j`: unit `u0 + j` of `dh_prev`, a column of `R` `[4H, H]`.
        let packed = use_packing(t_len, b);
        let mut pack = PackedPanels::default();
        if packed {
            pack.pack(g4, n, |kk, j| w_hh[kk * h + u0 + j]);
        }
        let ldc = if packed { pack.padded_cols() } else { n };
        let mut prod = vec![0f32; b * ldc];
        // Gradients for this thread's units of the hidden and cell state after
        // the step being processed, `[B, n]`.
        let mut dh_next = vec![0.0f32; b * n];
        let mut dh_carry = vec![0.0f32; b * n];
        let mut dc = vec![0.0f32; b * n];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let (prev, _) = steps.slots(t, reverse);
            for bi in 0..b {
                let rb = bi * n..(bi + 1) * n;
                if !steps.real(bi, t) {
                    // The state passes through unchanged: so does its gradient.
                    dh_carry[rb.clone()].copy_from_slice(&dh_next[rb]);
                    continue;
                }
                dh_carry[rb.clone()].fill(0.0);
                let row = t * b + bi;
                let g = &dir.gates[row * g4 + u0..];
                let g0 = row * g4 + u0;
                // SAFETY: `dg` holds `[T·B, 4H]` and `row < T·B`, `u0 + n ≤ H`;
                // this thread alone writes units `u0..u0 + n` of row `row`,
                // and nobody reads them before the step's barrier.
                let dgs = unsafe {
                    [
                        dgp.at_mut(g0, n),
                        dgp.at_mut(g0 + h, n),
                        dgp.at_mut(g0 + 2 * h, n),
                        dgp.at_mut(g0 + 3 * h, n),
                    ]
                };
                cell_back::<G, S>(
                    CellBack {
                        gates: [
                            &g[..n],
                            &g[h..h + n],
                            &g[2 * h..2 * h + n],
                            &g[3 * h..3 * h + n],
                        ],
                        c_prev: &dir.c[(prev * b + bi) * h + u0..][..n],
                        tc: &dir.tc[row * h + u0..][..n],
                        dy: &dy[row * s + offset + u0..][..n],
                        dh_next: &dh_next[rb.clone()],
                        dc: &mut dc[rb],
                        dg: dgs,
                    },
                    isa,
                );
            }
            barrier.wait_as(ti);
            // dh_prev = carried part + dG_t·R, for this thread's units.
            let m = rows[t];
            // SAFETY: step `t`'s gate gradients (`B` rows of `4H` from row
            // `t·B`, inside `dg`) are complete (written before the barrier)
            // and nobody writes them again.
            let dg_t = unsafe { dgp.at(t * b * g4, b * g4) };
            if packed {
                gemm_packed_on(isa, dg_t, g4, m, &pack, &mut prod, ldc);
            } else {
                for bi in 0..m {
                    let out = &mut prod[bi * ldc..bi * ldc + n];
                    out.fill(0.0);
                    for (kk, &g) in dg_t[bi * g4..(bi + 1) * g4].iter().enumerate() {
                        let wr = &w_hh[kk * h + u0..kk * h + u0 + n];
                        for (o, &w) in out.iter_mut().zip(wr) {
                            *o = g.mul_add(w, *o);
                        }
                    }
                }
            }
            for bi in 0..b {
                let rb = bi * n..(bi + 1) * n;
                if bi < m {
                    for ((d, c), p) in dh_next[rb.clone()]
                        .iter_mut()
                        .zip(&dh_carry[rb])
                        .zip(&prod[bi * ldc..bi * ldc + n])
                    {
                        *d = c + p;
                    }
                } else {
                    dh_next[rb.clone()].copy_from_slice(&dh_carry[rb]);
                }
            }
        }
    });
    (dg, report)
}
