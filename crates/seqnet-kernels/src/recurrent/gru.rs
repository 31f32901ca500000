//! The GRU's passes through time, with PyTorch's semantics (reset gate after
//! the recurrent multiplication, separate recurrent bias): gate order `r, z, n`,
//!
//! ```text
//! r  = gate(W_r·x + b_r + R_r·h + rb_r)
//! z  = gate(W_z·x + b_z + R_z·h + rb_z)
//! n  = state(W_n·x + b_n + r ⊙ (R_n·h + rb_n))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! This file holds the backward pass ([`gru_backward_into`]); the forward is
//! [`super::gru_forward()`] (fused, as the LSTM's).

use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};
use crate::shared::SharedMut;
use crate::threads::{row_threads, share};

/// What the GRU's forward kept for its backward (the [`super::GruBuffers`] after
/// the forward, with the tape).
#[derive(Debug, Clone, Copy)]
pub struct GruTrace<'a> {
    /// Activated `r, z, n` of every step, `[T·B, 3H]`.
    pub gates: &'a [f32],
    /// `R_n·h + rb_n` of every step, `[T·B, H]`.
    pub hn: &'a [f32],
    /// Hidden states, `T + 2` slots of `[B, H]`.
    pub h: &'a [f32],
}

/// What [`gru_backward_into`] writes: the gate gradients into buffers the
/// caller keeps, and their column sums.
#[derive(Debug)]
pub struct GruGrads<'a> {
    /// Gradient for `W·x + b`, resized to `[T·B, 3H]`.
    pub dgi: &'a mut Vec<f32>,
    /// Gradient for `R·h + rb`, resized to `[T·B, 3H]`.
    pub dgh: &'a mut Vec<f32>,
    /// The bias gradient, `[3H]`: the column sums of `dgi`.
    pub db: &'a mut [f32],
    /// The recurrent bias gradient, `[3H]`: the column sums of `dgh`.
    pub drb: &'a mut [f32],
}

/// The backward through time for the output gradient `dy` (`[T·B, H]`), from
/// what the forward kept; `w_hh` is `R`, `[3H, H]` row-major. Writes the
/// gradients for `W·x + b` and for `R·h + rb` into `dgi` and `dgh`, buffers
/// kept by the caller, resized to `[T·B, 3H]` and every value overwritten
/// (zero at padded steps), so buffers reused between backwards are neither
/// cleared nor faulted in anew (2 × 4.8 MB for the `gru-train-step` workload). Also
/// writes `db` and `drb`, the column sums of `dgi` and `dgh`, summed by the
/// threads as they go (each observation's steps in the pass's order, then
/// the observations in order: the same bits on one thread or two), so that
/// no pass over the gradients follows on one thread. The observations are
/// shared between two threads as in [`super::gru_forward()`] when a step's
/// product is large enough.
///
/// # Panics
/// When a slice is shorter than the sizes say, `steps` has not one span per
/// observation, or `db` or `drb` does not hold `3H` values.
#[allow(clippy::too_many_arguments)]
pub fn gru_backward_into(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    trace: GruTrace,
    dy: &[f32],
    out: GruGrads,
) {
    steps.check();
    assert!(w_hh.len() >= 3 * h * h, "gru_backward: w_hh");
    assert!(
        out.db.len() == 3 * h && out.drb.len() == 3 * h,
        "gru_backward: db"
    );
    // A step's product `dG_h·R`: `[B, 3H]·[3H, H]`.
    let threads = row_threads(steps.b, steps.b * h * 3 * h);
    let isa = Isa::best();
    with_acts!(
        acts,
        pass_back(steps, reverse, w_hh, h, trace, dy, out, threads, isa)
    )
}

/// [`gru_backward_into`] on `threads` threads (at most one a row) with the
/// products of `isa`.
#[allow(clippy::too_many_arguments)]
fn pass_back<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    tape: GruTrace,
    dy: &[f32],
    out: GruGrads,
    threads: usize,
    isa: Isa,
) {
    let (t_len, b) = (steps.t, steps.b);
    let g3 = 3 * h;
    // Every value is written below: no clearing of reused buffers.
    out.dgi.resize(t_len * b * g3, 0.0);
    out.dgh.resize(t_len * b * g3, 0.0);
    // Each observation's sums of `dgi` and `dgh` over its steps, `[B, 6H]`.
    let mut row_sums = vec![0f32; b * 2 * g3];
    // `R` packed once for the pass, read by both threads.
    let mut pack = PackedPanels::default();
    pack.pack_row_major(w_hh, g3, h);
    let ld = pack.padded_cols();
    // Each observation's backward needs only its own rows (`dh_{t−1}` of
    // row `b` is row `b` of `dG_h·R`): two threads take every other
    // observation and never meet before the pass ends, as in the forward.
    let parts = threads.clamp(1, b.max(1));
    let ptrs = (
        SharedMut(out.dgi.as_mut_ptr()),
        SharedMut(out.dgh.as_mut_ptr()),
        SharedMut(row_sums.as_mut_ptr()),
    );
    let pack = &pack;
    share(parts, |part| {
        let (ip, hp, sp) = ptrs;
        let rows: Vec<usize> = (part..b).step_by(parts).collect();
        let m = rows.len();
        // This part's `dh` carried to the previous step (`[m, H]`), its
        // step's `dG_h` rows (`[m, 3H]`, zero at padded steps) and `dG_h·R`.
        let mut dh_next = vec![0.0f32; m * h];
        let mut a = vec![0.0f32; m * g3];
        let mut prod = vec![0.0f32; m * ld];
        // Each row's running sums of `dgi` then `dgh`, `[m, 6H]`.
        let mut sums = vec![0.0f32; m * 2 * g3];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let (prev, _) = steps.slots(t, reverse);
            for (i, &bi) in rows.iter().enumerate() {
                let ai = &mut a[i * g3..(i + 1) * g3];
                let row = t * b + bi;
                // SAFETY: `row < T·B`, so both `[3H]` rows are inside their
                // buffers (`T·B·3H` values); row `row` belongs to observation
                // `bi`, which only this thread handles.
                let (di, dh_row) = unsafe { (ip.at_mut(row * g3, g3), hp.at_mut(row * g3, g3)) };
                if !steps.real(bi, t) {
                    // The state carries over a padded step: so does `dh`.
                    ai.fill(0.0);
                    di.fill(0.0);
                    dh_row.fill(0.0);
                    continue;
                }
                let g = &tape.gates[row * g3..(row + 1) * g3];
                let (gr, gz, gn) = (&g[..h], &g[h..2 * h], &g[2 * h..]);
                let hn = &tape.hn[row * h..(row + 1) * h];
                let hp_row = &tape.h[(prev * b + bi) * h..][..h];
                let dyr = &dy[row * h..(row + 1) * h];
                let dhn = &mut dh_next[i * h..(i + 1) * h];
                let (si, sh) = sums[i * 2 * g3..(i + 1) * 2 * g3].split_at_mut(g3);
                // Each gate's `H` values as a slice of its own, so the loop
                // below indexes no slice past a length it cannot see.
                let [di_r, di_z, di_n] = split3(&mut *di, h);
                let [dh_r, dh_z, dh_n] = split3(&mut *dh_row, h);
                let [si_r, si_z, si_n] = split3(si, h);
                let [sh_r, sh_z, sh_n] = split3(sh, h);
                let (gz, gn, gr, hn, hp_row, dyr) = (
                    &gz[..h],
                    &gn[..h],
                    &gr[..h],
                    &hn[..h],
                    &hp_row[..h],
                    &dyr[..h],
                );
                for j in 0..h {
                    let dh = dhn[j] + dyr[j];
                    let dn = dh * (1.0 - gz[j]) * S::df(gn[j]);
                    let dz = dh * (hp_row[j] - gn[j]) * G::df(gz[j]);
                    let dr = dn * hn[j] * G::df(gr[j]);
                    let dnh = dn * gr[j];
                    di_r[j] = dr;
                    di_z[j] = dz;
                    di_n[j] = dn;
                    dh_r[j] = dr;
                    dh_z[j] = dz;
                    dh_n[j] = dnh;
                    si_r[j] += dr;
                    si_z[j] += dz;
                    si_n[j] += dn;
                    sh_r[j] += dr;
                    sh_z[j] += dz;
                    sh_n[j] += dnh;
                    dhn[j] = dh * gz[j];
                }
                ai.copy_from_slice(dh_row);
            }
            gemm_packed_on(isa, &a, g3, m, pack, &mut prod, ld);
            for (d, p) in dh_next.chunks_exact_mut(h).zip(prod.chunks_exact(ld)) {
                d.iter_mut().zip(p).for_each(|(d, p)| *d += p);
            }
        }
        for (i, &bi) in rows.iter().enumerate() {
            // SAFETY: `row_sums` holds `[B, 6H]` and `bi < B`; row `bi` is this
            // thread's alone, read only after the pass ends.
            unsafe { sp.at_mut(bi * 2 * g3, 2 * g3) }
                .copy_from_slice(&sums[i * 2 * g3..(i + 1) * 2 * g3]);
        }
    });
    out.db.fill(0.0);
    out.drb.fill(0.0);
    for r in row_sums.chunks_exact(2 * g3) {
        let (ri, rh) = r.split_at(g3);
        out.db.iter_mut().zip(ri).for_each(|(d, v)| *d += v);
        out.drb.iter_mut().zip(rh).for_each(|(d, v)| *d += v);
    }
}

/// `v`'s first `3h` values as the three gates' `[h]` slices.
fn split3(v: &mut [f32], h: usize) -> [&mut [f32]; 3] {
    let (r, rest) = v.split_at_mut(h);
    let (z, n) = rest.split_at_mut(h);
    [r, z, &mut n[..h]]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{SigmoidAct, TanhAct};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn random(n: usize, scale: f32, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    fn sig(x: f64) -> f64 {
        1.0 / (1.0 + (-x).exp())
    }

    /// A forward trace (`r, z, n`, `R_n·h + rb_n`, the states in their
    /// slots) from the GRU's equations in f64, rounded to f32 as the forward
    /// keeps it; the input projection `W·x + b` is random (the backward does
    /// not see `W`).
    fn trace(
        steps: &Steps,
        reverse: bool,
        w_hh: &[f32],
        h: usize,
        rng: &mut StdRng,
    ) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
        let (t_len, b, g3) = (steps.t, steps.b, 3 * h);
        let wx = random(t_len * b * g3, 1.0, rng);
        let rb = random(g3, 0.3, rng);
        let mut hs = vec![0f32; (t_len + 2) * b * h];
        let init = steps.initial_slot(reverse) * b * h;
        hs[init..init + b * h].copy_from_slice(&random(b * h, 0.5, rng));
        let mut gates = vec![0f32; t_len * b * g3];
        let mut hn = vec![0f32; t_len * b * h];
        for k in 0..t_len {
            let t = steps.step(k, reverse);
            let (prev, out) = steps.slots(t, reverse);
            for bi in 0..b {
                let (po, oo) = ((prev * b + bi) * h, (out * b + bi) * h);
                let row = t * b + bi;
                for u in 0..h {
                    if !steps.real(bi, t) {
                        hs[oo + u] = hs[po + u];
                        continue;
                    }
                    let rh = |q: usize| -> f64 {
                        let r = q * h + u;
                        let mut v = rb[r] as f64;
                        for kk in 0..h {
                            v += w_hh[r * h + kk] as f64 * hs[po + kk] as f64;
                        }
                        v
                    };
                    let x = |q: usize| wx[row * g3 + q * h + u] as f64;
                    let r = sig(x(0) + rh(0));
                    let z = sig(x(1) + rh(1));
                    let n = (x(2) + r * rh(2)).tanh();
                    let g = &mut gates[row * g3..];
                    (g[u], g[h + u], g[2 * h + u]) = (r as f32, z as f32, n as f32);
                    hn[row * h + u] = rh(2) as f32;
                    hs[oo + u] = ((1.0 - z) * n + z * hs[po + u] as f64) as f32;
                }
            }
        }
        (gates, hn, hs)
    }

    /// The gradients for `W·x + b` and `R·h + rb` (`[T·B, 3H]` each), in
    /// f64 from the chain rule through the equations, for sigmoid gates and
    /// tanh state: `dh = dh_next + dy`, `dn = dh·(1 − z)·(1 − n²)`, `dz =
    /// dh·(h_prev − n)·z·(1 − z)`, `dr = dn·hn·r·(1 − r)`; `dh_prev = dh·z +
    /// [dr, dz, dn·r]·R`, carried unchanged over padded steps.
    fn reference(
        steps: &Steps,
        reverse: bool,
        w_hh: &[f32],
        h: usize,
        tr: &GruTrace,
        dy: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let (t_len, b, g3) = (steps.t, steps.b, 3 * h);
        let mut dgi = vec![0f64; t_len * b * g3];
        let mut dgh = vec![0f64; t_len * b * g3];
        let mut dh_next = vec![0f64; b * h];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let (prev, _) = steps.slots(t, reverse);
            for bi in (0..b).filter(|&bi| steps.real(bi, t)) {
                let row = t * b + bi;
                let g = |q: usize, u: usize| tr.gates[row * g3 + q * h + u] as f64;
                let mut dh_prev = vec![0f64; h];
                for u in 0..h {
                    let dh = dh_next[bi * h + u] + dy[row * h + u] as f64;
                    let (r, z, n) = (g(0, u), g(1, u), g(2, u));
                    let hp = tr.h[(prev * b + bi) * h + u] as f64;
                    let dn = dh * (1.0 - z) * (1.0 - n * n);
                    let dz = dh * (hp - n) * z * (1.0 - z);
                    let dr = dn * tr.hn[row * h + u] as f64 * r * (1.0 - r);
                    let (di, dhr) = (&mut dgi[row * g3..], &mut dgh[row * g3..]);
                    (di[u], di[h + u], di[2 * h + u]) = (dr, dz, dn);
                    (dhr[u], dhr[h + u], dhr[2 * h + u]) = (dr, dz, dn * r);
                    dh_prev[u] += dh * z;
                }
                for (j, d) in dh_prev.iter_mut().enumerate() {
                    for q in 0..g3 {
                        *d += dgh[row * g3 + q] * w_hh[q * h + j] as f64;
                    }
                }
                dh_next[bi * h..(bi + 1) * h].copy_from_slice(&dh_prev);
            }
        }
        (dgi, dgh)
    }

    /// The backward against the chain rule in f64, for both ISAs' products,
    /// one or two threads (the same bits), forward or reverse, padding at
    /// both ends and hidden sizes that are not multiples of the panels'.
    #[test]
    fn backward_matches_the_equations() {
        let mut rng = StdRng::seed_from_u64(17);
        for (t_len, b, h) in [(6, 11, 21), (4, 9, 5), (3, 8, 16)] {
            let spans: Vec<std::ops::Range<usize>> = (0..b)
                .map(|i| match i % 4 {
                    0 => 0..t_len,
                    1 => 0..2,
                    2 => 1..t_len,
                    _ => 1..2,
                })
                .collect();
            let steps = Steps { t: t_len, b, spans };
            let w_hh = random(3 * h * h, 0.5, &mut rng);
            let dy = random(t_len * b * h, 1.0, &mut rng);
            for reverse in [false, true] {
                let (gates, hn, hs) = trace(&steps, reverse, &w_hh, h, &mut rng);
                let tr = GruTrace {
                    gates: &gates,
                    hn: &hn,
                    h: &hs,
                };
                let (want_i, want_h) = reference(&steps, reverse, &w_hh, h, &tr, &dy);
                // The bias gradients: the reference's column sums.
                let col = |v: &[f64]| -> Vec<f64> {
                    (0..3 * h)
                        .map(|j| v.chunks_exact(3 * h).map(|r| r[j]).sum())
                        .collect()
                };
                let (want_db, want_drb) = (col(&want_i), col(&want_h));
                for isa in Isa::all() {
                    type Got = (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>);
                    let mut first: Option<Got> = None;
                    for threads in [1, 2] {
                        // Reused buffers hold garbage (and one is too long):
                        // every value must be written.
                        let garbage = if threads == 1 { f32::NAN } else { 7.0 };
                        let mut dgi = vec![garbage; t_len * b * 3 * h];
                        let mut dgh = vec![garbage; t_len * b * 3 * h + 5];
                        let (mut db, mut drb) = (vec![garbage; 3 * h], vec![garbage; 3 * h]);
                        let out = GruGrads {
                            dgi: &mut dgi,
                            dgh: &mut dgh,
                            db: &mut db,
                            drb: &mut drb,
                        };
                        pass_back::<SigmoidAct, TanhAct>(
                            &steps, reverse, &w_hh, h, tr, &dy, out, threads, isa,
                        );
                        dgh.truncate(t_len * b * 3 * h);
                        let got = (dgi, dgh, db, drb);
                        let case = format!(
                            "H {h}, reverse {reverse}, {}, {threads} threads",
                            isa.name()
                        );
                        for (what, g, w) in [
                            ("dgi", &got.0, &want_i),
                            ("dgh", &got.1, &want_h),
                            ("db", &got.2, &want_db),
                            ("drb", &got.3, &want_drb),
                        ] {
                            assert_eq!(g.len(), w.len());
                            for (i, (&g, &w)) in g.iter().zip(w.iter()).enumerate() {
                                assert!(
                                    (g as f64 - w).abs() <= 1e-5 * (1.0 + w.abs()),
                                    "{what}[{i}] {g} vs {w} ({case})"
                                );
                            }
                        }
                        match &first {
                            None => first = Some(got),
                            Some(one) => assert_eq!(one, &got, "threads change bits ({case})"),
                        }
                    }
                }
            }
        }
    }
}
