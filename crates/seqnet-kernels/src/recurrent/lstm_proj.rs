//! The passes through time of an LSTM with an output projection (PyTorch's
//! `proj_size` `P`): gate order `i, f, g, o`, `H` cells, a `P`-wide hidden
//! state,
//!
//! ```text
//! i, f, o = gate(W·x + b + R·h)        (R is [4H, P])
//! g       = state(W_g·x + b_g + R_g·h)
//! c'      = f ⊙ c + i ⊙ g
//! m       = o ⊙ state(c')               ([H])
//! h'      = Q·m                         (Q, the projector, is [P, H])
//! ```
//!
//! A simpler path than the fused LSTM's ([`super::lstm_forward()`]), which it
//! leaves untouched: one thread, two packed products per step (`h·Rᵀ`, then
//! `m·Qᵀ`). The input projection `W·x + b` of every step is the caller's.

use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};

/// The buffers the projected LSTM's forward reads and writes.
pub struct ProjBuffers<'a> {
    /// `[T·B, 4H]`: `W·x + b` of every step on entry, the activated
    /// `i, f, g, o` on exit (untouched at padded steps).
    pub gates: &'a mut [f32],
    /// Hidden states, `T + 2` slots of `[B, P]` (see [`super`]): the initial
    /// state in its slot on entry, every slot filled on exit.
    pub h: &'a mut [f32],
    /// Cell states, `T + 2` slots of `[B, H]`, as `h`.
    pub c: &'a mut [f32],
    /// `state(c)` of every step, `[T·B, H]` (out).
    pub tc: &'a mut [f32],
    /// `m = o ⊙ state(c)` of every step, `[T·B, H]` (out; zero at padded steps).
    pub m: &'a mut [f32],
}

/// What the projected forward kept for its backward ([`ProjBuffers`] after it).
#[derive(Debug, Clone, Copy)]
pub struct ProjTrace<'a> {
    /// Activated `i, f, g, o`, `[T·B, 4H]`.
    pub gates: &'a [f32],
    /// Cell states, `T + 2` slots of `[B, H]`.
    pub c: &'a [f32],
    /// `state(c)`, `[T·B, H]`.
    pub tc: &'a [f32],
}

/// The weights and sizes of one direction's projected pass: `H` cells, `P`
/// projected units.
#[derive(Debug, Clone, Copy)]
pub struct ProjWeights<'a> {
    /// `R`, `[4H, P]` row-major.
    pub recurrent: &'a [f32],
    /// The projector `Q`, `[P, H]` row-major.
    pub projector: &'a [f32],
    /// `H`.
    pub hidden: usize,
    /// `P`.
    pub projected: usize,
}

/// The forward through time with the weights `w`.
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn lstm_proj_forward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w: ProjWeights,
    bufs: ProjBuffers,
) {
    steps.check();
    let (t, b) = (steps.t, steps.b);
    let (h, p) = (w.hidden, w.projected);
    let (w_hh, w_hr) = (w.recurrent, w.projector);
    assert!(w_hh.len() >= 4 * h * p, "lstm_proj_forward: w_hh");
    assert!(w_hr.len() >= p * h, "lstm_proj_forward: w_hr");
    assert!(
        bufs.gates.len() >= t * b * 4 * h,
        "lstm_proj_forward: gates"
    );
    assert!(bufs.h.len() >= (t + 2) * b * p, "lstm_proj_forward: h");
    assert!(bufs.c.len() >= (t + 2) * b * h, "lstm_proj_forward: c");
    assert!(bufs.tc.len() >= t * b * h, "lstm_proj_forward: tc");
    assert!(bufs.m.len() >= t * b * h, "lstm_proj_forward: m");
    with_acts!(acts, pass(steps, reverse, w, bufs, Isa::best()));
}

fn pass<G: Act, S: Act>(steps: &Steps, reverse: bool, w: ProjWeights, bufs: ProjBuffers, isa: Isa) {
    let (t_len, b) = (steps.t, steps.b);
    let (h, p) = (w.hidden, w.projected);
    let (w_hh, w_hr) = (w.recurrent, w.projector);
    let g4 = 4 * h;
    // `Rᵀ` `[P, 4H]` and `Qᵀ` `[H, P]`, packed once for the pass.
    let (mut rt, mut qt) = (PackedPanels::default(), PackedPanels::default());
    rt.pack(p, g4, |kk, j| w_hh[j * p + kk]);
    qt.pack(h, p, |kk, j| w_hr[j * h + kk]);
    let (ld_r, ld_q) = (rt.padded_cols(), qt.padded_cols());
    let mut h_prev = vec![0.0f32; b * p];
    let mut rec = vec![0.0f32; b * ld_r];
    let mut m_rows = vec![0.0f32; b * h];
    let mut proj = vec![0.0f32; b * ld_q];
    for k in 0..t_len {
        let t = steps.step(k, reverse);
        let (prev, out) = steps.slots(t, reverse);
        h_prev.copy_from_slice(&bufs.h[prev * b * p..(prev + 1) * b * p]);
        gemm_packed_on(isa, &h_prev, p, b, &rt, &mut rec, ld_r);
        for bi in 0..b {
            let mr = &mut m_rows[bi * h..(bi + 1) * h];
            let (c_prev, c_out) = (prev * b + bi, out * b + bi);
            if !steps.real(bi, t) {
                bufs.c.copy_within(c_prev * h..(c_prev + 1) * h, c_out * h);
                mr.fill(0.0);
                continue;
            }
            let row = t * b + bi;
            let g = &mut bufs.gates[row * g4..(row + 1) * g4];
            let r = &rec[bi * ld_r..][..g4];
            for j in 0..g4 {
                let v = g[j] + r[j];
                g[j] = if (2 * h..3 * h).contains(&j) {
                    S::f(v)
                } else {
                    G::f(v)
                };
            }
            let tc = &mut bufs.tc[row * h..(row + 1) * h];
            for j in 0..h {
                let cp = bufs.c[c_prev * h + j];
                let cv = g[h + j] * cp + g[j] * g[2 * h + j];
                bufs.c[c_out * h + j] = cv;
                tc[j] = S::f(cv);
                mr[j] = g[3 * h + j] * tc[j];
            }
            bufs.m[row * h..(row + 1) * h].copy_from_slice(mr);
        }
        gemm_packed_on(isa, &m_rows, h, b, &qt, &mut proj, ld_q);
        for bi in 0..b {
            let dst = &mut bufs.h[(out * b + bi) * p..][..p];
            if steps.real(bi, t) {
                dst.copy_from_slice(&proj[bi * ld_q..][..p]);
            } else {
                dst.copy_from_slice(&h_prev[bi * p..(bi + 1) * p]);
            }
        }
    }
}

/// The backward through time for the output gradient `dy` (`[T·B, P]`).
/// Returns the gradients for the gate pre-activations, `[T·B, 4H]`, and for
/// the hidden state after every step, `[T·B, P]` (the projector's gradient
/// is its transpose times `m`); both zero at padded steps. One thread.
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn lstm_proj_backward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w: ProjWeights,
    trace: ProjTrace,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    steps.check();
    let (h, p) = (w.hidden, w.projected);
    let (w_hh, w_hr) = (w.recurrent, w.projector);
    assert!(w_hh.len() >= 4 * h * p, "lstm_proj_backward: w_hh");
    assert!(w_hr.len() >= p * h, "lstm_proj_backward: w_hr");
    assert!(dy.len() >= steps.t * steps.b * p, "lstm_proj_backward: dy");
    let isa = Isa::best();
    with_acts!(acts, pass_back(steps, reverse, w, trace, dy, isa))
}

fn pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w: ProjWeights,
    tape: ProjTrace,
    dy: &[f32],
    isa: Isa,
) -> (Vec<f32>, Vec<f32>) {
    let (t_len, b) = (steps.t, steps.b);
    let (h, p) = (w.hidden, w.projected);
    let (w_hh, w_hr) = (w.recurrent, w.projector);
    let g4 = 4 * h;
    let mut dg = vec![0.0f32; t_len * b * g4];
    let mut dhs = vec![0.0f32; t_len * b * p];
    let mut dh_next = vec![0.0f32; b * p];
    let mut dc_next = vec![0.0f32; b * h];
    // `Q` `[P, H]` (for `dm = dh·Q`) and `R` `[4H, P]` (for `dh_{t−1} = dG·R`).
    let (mut q, mut r) = (PackedPanels::default(), PackedPanels::default());
    q.pack(p, h, |kk, j| w_hr[kk * h + j]);
    r.pack(g4, p, |kk, j| w_hh[kk * p + j]);
    let (ld_q, ld_r) = (q.padded_cols(), r.padded_cols());
    let mut dh_rows = vec![0.0f32; b * p];
    let mut dm = vec![0.0f32; b * ld_q];
    let mut dg_rows = vec![0.0f32; b * g4];
    let mut prod = vec![0.0f32; b * ld_r];
    for k in (0..t_len).rev() {
        let t = steps.step(k, reverse);
        let (prev, _) = steps.slots(t, reverse);
        for bi in 0..b {
            let row = t * b + bi;
            let d = &mut dh_rows[bi * p..(bi + 1) * p];
            if steps.real(bi, t) {
                for j in 0..p {
                    d[j] = dh_next[bi * p + j] + dy[row * p + j];
                }
                dhs[row * p..(row + 1) * p].copy_from_slice(d);
            } else {
                d.fill(0.0);
            }
        }
        gemm_packed_on(isa, &dh_rows, p, b, &q, &mut dm, ld_q);
        for bi in 0..b {
            let dgr = &mut dg_rows[bi * g4..(bi + 1) * g4];
            if !steps.real(bi, t) {
                // The state carries over a padded step unchanged.
                dgr.fill(0.0);
                continue;
            }
            let row = t * b + bi;
            let g = &tape.gates[row * g4..(row + 1) * g4];
            let tc = &tape.tc[row * h..(row + 1) * h];
            let cp = &tape.c[(prev * b + bi) * h..][..h];
            let dmr = &dm[bi * ld_q..][..h];
            let dcn = &mut dc_next[bi * h..(bi + 1) * h];
            for j in 0..h {
                let (i, f, gg, o) = (g[j], g[h + j], g[2 * h + j], g[3 * h + j]);
                let d_o = dmr[j] * tc[j] * G::df(o);
                let dc = dcn[j] + dmr[j] * o * S::df(tc[j]);
                dgr[j] = dc * gg * G::df(i);
                dgr[h + j] = dc * cp[j] * G::df(f);
                dgr[2 * h + j] = dc * i * S::df(gg);
                dgr[3 * h + j] = d_o;
                dcn[j] = dc * f;
            }
            dg[row * g4..(row + 1) * g4].copy_from_slice(dgr);
        }
        gemm_packed_on(isa, &dg_rows, g4, b, &r, &mut prod, ld_r);
        for bi in 0..b {
            if steps.real(bi, t) {
                let src = &prod[bi * ld_r..][..p];
                dh_next[bi * p..(bi + 1) * p].copy_from_slice(src);
            }
        }
    }
    (dg, dhs)
}
