//! The GRU's passes through time with MATLAB's `ResetGateMode`
//! `"before-multiplication"` (the reset gate scales the state before the
//! recurrent product of the candidate; one bias): gate order `r, z, n`,
//!
//! ```text
//! r  = gate(W_r·x + b_r + R_r·h)
//! z  = gate(W_z·x + b_z + R_z·h)
//! n  = state(W_n·x + b_n + R_n·(r ⊙ h))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! Each step takes two products (`[R_r; R_z]·h`, then `R_n·(r ⊙ h)`), so this
//! path is simpler than the after-multiplication one ([`super::gru_forward()`]): one
//! thread, no fused tiles. It reuses [`GruBuffers`] and [`GruTrace`], with
//! `hn` holding `r ⊙ h` (the right-hand side of `R_n`'s gradient).

use super::gru::GruTrace;
use super::gru_forward::GruBuffers;
use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};

/// The forward through time for `h` hidden units with the reset gate before
/// the multiplication. `w_hh` is `R`, `[3H, H]` row-major. On exit
/// `bufs.gates` holds the activated `r, z, n` and `bufs.hn` (`[T·B, H]`)
/// holds `r ⊙ h_{t−1}` of every real step (padded rows untouched).
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn gru_before_forward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    bufs: GruBuffers,
) {
    steps.check();
    let (t, b) = (steps.t, steps.b);
    assert!(w_hh.len() >= 3 * h * h, "gru_before_forward: w_hh");
    assert!(
        bufs.gates.len() >= t * b * 3 * h,
        "gru_before_forward: gates"
    );
    assert!(bufs.hn.len() >= t * b * h, "gru_before_forward: hn");
    assert!(bufs.h.len() >= (t + 2) * b * h, "gru_before_forward: h");
    with_acts!(acts, pass(steps, reverse, w_hh, h, bufs, Isa::best()));
}

fn pass<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    bufs: GruBuffers,
    isa: Isa,
) {
    let (t_len, b) = (steps.t, steps.b);
    let (g3, bh) = (3 * h, b * h);
    // `[R_r; R_z]ᵀ` `[H, 2H]` and `R_nᵀ` `[H, H]`, packed once for the pass.
    let (mut rz, mut rn) = (PackedPanels::default(), PackedPanels::default());
    rz.pack(h, 2 * h, |kk, j| w_hh[j * h + kk]);
    rn.pack(h, h, |kk, j| w_hh[(2 * h + j) * h + kk]);
    let (ld_rz, ld_n) = (rz.padded_cols(), rn.padded_cols());
    let mut p_rz = vec![0.0f32; b * ld_rz];
    let mut p_n = vec![0.0f32; b * ld_n];
    let mut rh = vec![0.0f32; bh];
    let mut h_prev = vec![0.0f32; bh];
    for k in 0..t_len {
        let t = steps.step(k, reverse);
        let (prev, out) = steps.slots(t, reverse);
        h_prev.copy_from_slice(&bufs.h[prev * bh..(prev + 1) * bh]);
        gemm_packed_on(isa, &h_prev, h, b, &rz, &mut p_rz, ld_rz);
        // r, z and r ⊙ h for every real row (padded rows: r ⊙ h = 0, unused).
        for bi in 0..b {
            let rows = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                rh[rows].fill(0.0);
                continue;
            }
            let g = &mut bufs.gates[(t * b + bi) * g3..][..2 * h];
            let p = &p_rz[bi * ld_rz..][..2 * h];
            for (gv, pv) in g.iter_mut().zip(p) {
                *gv = G::f(*gv + pv);
            }
            for j in 0..h {
                rh[bi * h + j] = g[j] * h_prev[bi * h + j];
            }
        }
        gemm_packed_on(isa, &rh, h, b, &rn, &mut p_n, ld_n);
        for bi in 0..b {
            let rows = bi * h..(bi + 1) * h;
            // `h_prev` is a copy, so the output slot is written directly.
            let h_out = &mut bufs.h[out * bh + bi * h..][..h];
            if !steps.real(bi, t) {
                h_out.copy_from_slice(&h_prev[rows]);
                continue;
            }
            let row = t * b + bi;
            bufs.hn[row * h..(row + 1) * h].copy_from_slice(&rh[rows.clone()]);
            let g = &mut bufs.gates[row * g3..(row + 1) * g3];
            let (rz_g, gn) = g.split_at_mut(2 * h);
            let gz = &rz_g[h..];
            let p = &p_n[bi * ld_n..][..h];
            for j in 0..h {
                let nv = S::f(gn[j] + p[j]);
                gn[j] = nv;
                h_out[j] = (1.0 - gz[j]) * nv + gz[j] * h_prev[bi * h + j];
            }
        }
    }
}

/// The backward through time of [`gru_before_forward`] for the output
/// gradient `dy` (`[T·B, H]`); `w_hh` is `R`, `[3H, H]` row-major. Returns
/// the gradients for the pre-activations `W·x + b` and for the recurrent
/// terms (`R_r·h`, `R_z·h`, `R_n·(r ⊙ h)`), both `[T·B, 3H]` (zero at padded
/// steps; here the two are equal). `R_r`, `R_z` take their gradient against
/// `h_{t−1}`, `R_n` against `r ⊙ h_{t−1}` (the trace's `hn`). One thread.
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn gru_before_backward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    trace: GruTrace,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    steps.check();
    assert!(w_hh.len() >= 3 * h * h, "gru_before_backward: w_hh");
    let isa = Isa::best();
    with_acts!(acts, pass_back(steps, reverse, w_hh, h, trace, dy, isa))
}

fn pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    tape: GruTrace,
    dy: &[f32],
    isa: Isa,
) -> (Vec<f32>, Vec<f32>) {
    let (t_len, b) = (steps.t, steps.b);
    let (g3, bh) = (3 * h, b * h);
    let mut dg = vec![0.0f32; t_len * b * g3];
    let mut dh_next = vec![0.0f32; bh];
    let mut dh_carry = vec![0.0f32; bh];
    // `R_n` `[H, H]` (for `d(r ⊙ h) = dn·R_n`) and `[R_r; R_z]` `[2H, H]`.
    let (mut rn, mut rz) = (PackedPanels::default(), PackedPanels::default());
    rn.pack(h, h, |kk, j| w_hh[(2 * h + kk) * h + j]);
    rz.pack(2 * h, h, |kk, j| w_hh[kk * h + j]);
    let (ld_n, ld_rz) = (rn.padded_cols(), rz.padded_cols());
    let mut dn_rows = vec![0.0f32; bh];
    let mut drz_rows = vec![0.0f32; b * 2 * h];
    let mut d_rh = vec![0.0f32; b * ld_n];
    let mut prod = vec![0.0f32; b * ld_rz];
    for k in (0..t_len).rev() {
        let t = steps.step(k, reverse);
        let (prev, _) = steps.slots(t, reverse);
        // dn and dz (and the part of dh_{t−1} through z) for every real row.
        for bi in 0..b {
            let r = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                dn_rows[r.clone()].fill(0.0);
                continue;
            }
            let row = t * b + bi;
            let g = &tape.gates[row * g3..(row + 1) * g3];
            let (gz, gn) = (&g[h..2 * h], &g[2 * h..]);
            let hp = &tape.h[(prev * b + bi) * h..][..h];
            let dyr = &dy[row * h..(row + 1) * h];
            let d = &mut dg[row * g3..(row + 1) * g3];
            for j in 0..h {
                let dh = dh_next[bi * h + j] + dyr[j];
                let dn = dh * (1.0 - gz[j]) * S::df(gn[j]);
                d[h + j] = dh * (hp[j] - gn[j]) * G::df(gz[j]);
                d[2 * h + j] = dn;
                dn_rows[bi * h + j] = dn;
                dh_carry[bi * h + j] = dh * gz[j];
            }
        }
        gemm_packed_on(isa, &dn_rows, h, b, &rn, &mut d_rh, ld_n);
        // dr, and the part of dh_{t−1} through r ⊙ h.
        for bi in 0..b {
            let r = bi * h..(bi + 1) * h;
            if !steps.real(bi, t) {
                dh_carry[r.clone()].copy_from_slice(&dh_next[r]);
                drz_rows[bi * 2 * h..(bi + 1) * 2 * h].fill(0.0);
                continue;
            }
            let row = t * b + bi;
            let gr = &tape.gates[row * g3..row * g3 + h];
            let hp = &tape.h[(prev * b + bi) * h..][..h];
            let drh = &d_rh[bi * ld_n..][..h];
            let d = &mut dg[row * g3..(row + 1) * g3];
            for j in 0..h {
                d[j] = drh[j] * hp[j] * G::df(gr[j]);
                dh_carry[bi * h + j] += drh[j] * gr[j];
            }
            drz_rows[bi * 2 * h..(bi + 1) * 2 * h].copy_from_slice(&d[..2 * h]);
        }
        gemm_packed_on(isa, &drz_rows, 2 * h, b, &rz, &mut prod, ld_rz);
        for (bi, p) in prod.chunks_exact(ld_rz).enumerate() {
            if steps.real(bi, t) {
                let dc = &mut dh_carry[bi * h..(bi + 1) * h];
                dc.iter_mut().zip(p).for_each(|(d, p)| *d += p);
            }
        }
        std::mem::swap(&mut dh_next, &mut dh_carry);
    }
    let dgh = dg.clone();
    (dg, dgh)
}
