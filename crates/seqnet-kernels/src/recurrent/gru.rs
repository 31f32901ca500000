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
//! The input projection `W·x + b` of every step is the caller's (one product
//! over all steps); each step here multiplies `h` by the packed `Rᵀ` and
//! applies the cell update.

use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};
use crate::shared::SharedMut;
use crate::threads::{row_threads, share};

/// The buffers the GRU's forward reads and writes.
pub struct GruBuffers<'a> {
    /// `[T·B, 3H]`: `W·x + b` of every step on entry, the activated `r, z, n`
    /// on exit (untouched at padded steps).
    pub gates: &'a mut [f32],
    /// `[T·B, H]`: `R_n·h + rb_n` of every step on exit, for the backward.
    pub hn: &'a mut [f32],
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super`]): the initial
    /// state in its slot on entry, every slot filled on exit.
    pub h: &'a mut [f32],
}

/// What the GRU's forward kept for its backward (the [`GruBuffers`] after
/// the forward).
#[derive(Debug, Clone, Copy)]
pub struct GruTrace<'a> {
    /// Activated `r, z, n` of every step, `[T·B, 3H]`.
    pub gates: &'a [f32],
    /// `R_n·h + rb_n` of every step, `[T·B, H]`.
    pub hn: &'a [f32],
    /// Hidden states, `T + 2` slots of `[B, H]`.
    pub h: &'a [f32],
}

/// The forward through time for `h` hidden units. `w_hh` is `R`, `[3H, H]`
/// row-major; `rb` the recurrent bias, `3H` values. The observations
/// (rows) are shared between two threads when a step's product is large
/// enough ([`row_threads`]); they never meet before the pass ends.
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn gru_forward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    rb: &[f32],
    bufs: GruBuffers,
) {
    steps.check();
    let (t, b) = (steps.t, steps.b);
    assert!(w_hh.len() >= 3 * h * h, "gru_forward: w_hh");
    assert!(rb.len() >= 3 * h, "gru_forward: recurrent bias");
    assert!(bufs.gates.len() >= t * b * 3 * h, "gru_forward: gates");
    assert!(bufs.hn.len() >= t * b * h, "gru_forward: hn");
    assert!(bufs.h.len() >= (t + 2) * b * h, "gru_forward: h");
    let isa = Isa::best();
    with_acts!(acts, pass(steps, reverse, w_hh, h, rb, bufs, isa));
}

fn pass<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    rb: &[f32],
    bufs: GruBuffers,
    isa: Isa,
) {
    let (t_len, b) = (steps.t, steps.b);
    let (g3, bh) = (3 * h, b * h);
    // `Rᵀ` packed once for the pass ([`PackedPanels`]: no step pays for
    // packing, as the `gemm` crate's would).
    let mut pack = PackedPanels::default();
    pack.pack(h, g3, |kk, j| w_hh[j * h + kk]);
    let ld = pack.padded_cols();
    // The observations are independent: two threads take every other one
    // and never meet before the pass ends (as the LSTM's fused pass).
    let parts = row_threads(b, b * h * g3);
    let (gp, hp, np) = (
        SharedMut(bufs.gates.as_mut_ptr()),
        SharedMut(bufs.h.as_mut_ptr()),
        SharedMut(bufs.hn.as_mut_ptr()),
    );
    let ptrs = (gp, hp, np);
    share(parts, |part| {
        let (gp, hp, np) = ptrs;
        let rows: Vec<usize> = (part..b).step_by(parts).collect();
        let m = rows.len();
        // This part's `h_{t-1}` rows (`[m, H]`) and `R·h` (`[m, ld]`).
        let mut a = vec![0.0f32; m * h];
        let mut hw = vec![0.0f32; m * ld];
        for k in 0..t_len {
            let t = steps.step(k, reverse);
            let (prev, out) = steps.slots(t, reverse);
            // SAFETY: slots are `< T + 2` and `bi < B`, so the row is inside
            // the state buffer (checked length); rows `rows` are written by
            // this thread only, and the slots `prev` and `out` differ.
            let row_of = |slot: usize, bi: usize| unsafe { hp.at_mut(slot * bh + bi * h, h) };
            for (i, &bi) in rows.iter().enumerate() {
                a[i * h..(i + 1) * h].copy_from_slice(row_of(prev, bi));
            }
            gemm_packed_on(isa, &a, h, m, &pack, &mut hw, ld);
            for (i, &bi) in rows.iter().enumerate() {
                let (h_prev, h_out) = (row_of(prev, bi), row_of(out, bi));
                if !steps.real(bi, t) {
                    h_out.copy_from_slice(h_prev);
                    continue;
                }
                let row = t * b + bi;
                // SAFETY: `row < T·B`: the gates row `[3H]` and the `hn` row
                // `[H]` are inside their checked buffers and this thread's.
                let (g, hn) = unsafe { (gp.at_mut(row * g3, g3), np.at_mut(row * h, h)) };
                let (gr, rest) = g.split_at_mut(h);
                let (gz, gn) = rest.split_at_mut(h);
                let hwr = &hw[i * ld..i * ld + g3];
                let cell = GruCell {
                    gates: [gr, gz, gn],
                    rec: [&hwr[..h], &hwr[h..2 * h], &hwr[2 * h..]],
                    rb: [&rb[..h], &rb[h..2 * h], &rb[2 * h..3 * h]],
                    hn,
                    h_prev,
                    h: h_out,
                };
                gru_cell::<G, S>(cell, isa);
            }
        }
    });
}

/// The slices one GRU cell update reads and writes for one observation at
/// one step (`H` values each).
struct GruCell<'a> {
    /// `W·x + b` for `r, z, n` (in), the activated gates (out).
    gates: [&'a mut [f32]; 3],
    /// `R·h` for `r, z, n`.
    rec: [&'a [f32]; 3],
    /// The recurrent bias for `r, z, n`.
    rb: [&'a [f32]; 3],
    /// `R_n·h + rb_n` (out), kept for the backward pass.
    hn: &'a mut [f32],
    h_prev: &'a [f32],
    h: &'a mut [f32],
}

#[inline(always)]
fn gru_cell_body<G: Act, S: Act>(x: GruCell) {
    let [gr, gz, gn] = x.gates;
    let h = gr.len();
    let (gz, gn) = (&mut gz[..h], &mut gn[..h]);
    let [hr, hz, hn] = x.rec;
    let (hr, hz, hn) = (&hr[..h], &hz[..h], &hn[..h]);
    let [rbr, rbz, rbn] = x.rb;
    let (rbr, rbz, rbn) = (&rbr[..h], &rbz[..h], &rbn[..h]);
    let (hn_keep, hp, ho) = (&mut x.hn[..h], &x.h_prev[..h], &mut x.h[..h]);
    for j in 0..h {
        let hn_j = hn[j] + rbn[j];
        let rv = G::f(gr[j] + (hr[j] + rbr[j]));
        let zv = G::f(gz[j] + (hz[j] + rbz[j]));
        let nv = S::f(gn[j] + rv * hn_j);
        gr[j] = rv;
        gz[j] = zv;
        gn[j] = nv;
        hn_keep[j] = hn_j;
        ho[j] = (1.0 - zv) * nv + zv * hp[j];
    }
}

/// [`gru_cell_body`] compiled for AVX-512.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn gru_cell_avx512<G: Act, S: Act>(x: GruCell) {
    gru_cell_body::<G, S>(x)
}

/// [`gru_cell_body`], vectorized where `isa` allows (the activations'
/// `floor` is then an instruction, not a library call).
fn gru_cell<G: Act, S: Act>(x: GruCell, isa: Isa) {
    #[cfg(target_arch = "x86_64")]
    if isa.avx512() {
        // SAFETY: `isa` allows AVX-512, so the CPU has AVX-512F.
        unsafe { gru_cell_avx512::<G, S>(x) };
        return;
    }
    let _ = isa;
    gru_cell_body::<G, S>(x)
}

/// The backward through time for the output gradient `dy` (`[T·B, H]`), from
/// what the forward kept; `w_hh` is `R`, `[3H, H]` row-major. Returns the
/// gradients for `W·x + b` and for `R·h + rb`, both `[T·B, 3H]` (zero at
/// padded steps). The observations are shared between two threads as in
/// [`gru_forward`] when a step's product is large enough.
///
/// # Panics
/// When a slice is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn gru_backward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    trace: GruTrace,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>) {
    steps.check();
    assert!(w_hh.len() >= 3 * h * h, "gru_backward: w_hh");
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
    let g3 = 3 * h;
    let mut dgi = vec![0.0f32; t_len * b * g3];
    let mut dgh = vec![0.0f32; t_len * b * g3];
    // `R` packed once for the pass, read by both threads.
    let mut pack = PackedPanels::default();
    pack.pack(g3, h, |kk, j| w_hh[kk * h + j]);
    let ld = pack.padded_cols();
    // Each observation's backward needs only its own rows (`dh_{t−1}` of
    // row `b` is row `b` of `dG_h·R`): two threads take every other
    // observation and never meet before the pass ends, as in the forward.
    let parts = row_threads(b, b * h * g3);
    let ptrs = (SharedMut(dgi.as_mut_ptr()), SharedMut(dgh.as_mut_ptr()));
    let pack = &pack;
    share(parts, |part| {
        let (ip, hp) = ptrs;
        let rows: Vec<usize> = (part..b).step_by(parts).collect();
        let m = rows.len();
        // This part's `dh` carried to the previous step (`[m, H]`), its
        // step's `dG_h` rows (`[m, 3H]`, zero at padded steps) and `dG_h·R`.
        let mut dh_next = vec![0.0f32; m * h];
        let mut a = vec![0.0f32; m * g3];
        let mut prod = vec![0.0f32; m * ld];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let (prev, _) = steps.slots(t, reverse);
            for (i, &bi) in rows.iter().enumerate() {
                let ai = &mut a[i * g3..(i + 1) * g3];
                if !steps.real(bi, t) {
                    // The state carries over a padded step: so does `dh`.
                    ai.fill(0.0);
                    continue;
                }
                let row = t * b + bi;
                let g = &tape.gates[row * g3..(row + 1) * g3];
                let (gr, gz, gn) = (&g[..h], &g[h..2 * h], &g[2 * h..]);
                let hn = &tape.hn[row * h..(row + 1) * h];
                let hp_row = &tape.h[(prev * b + bi) * h..][..h];
                let dyr = &dy[row * h..(row + 1) * h];
                // SAFETY: `row < T·B`, so both `[3H]` rows are inside their
                // buffers (`T·B·3H` values); row `row` belongs to observation
                // `bi`, which only this thread handles.
                let (di, dh_row) = unsafe { (ip.at_mut(row * g3, g3), hp.at_mut(row * g3, g3)) };
                let dhn = &mut dh_next[i * h..(i + 1) * h];
                for j in 0..h {
                    let dh = dhn[j] + dyr[j];
                    let dn = dh * (1.0 - gz[j]) * S::df(gn[j]);
                    let dz = dh * (hp_row[j] - gn[j]) * G::df(gz[j]);
                    let dr = dn * hn[j] * G::df(gr[j]);
                    di[j] = dr;
                    di[h + j] = dz;
                    di[2 * h + j] = dn;
                    dh_row[j] = dr;
                    dh_row[h + j] = dz;
                    dh_row[2 * h + j] = dn * gr[j];
                    dhn[j] = dh * gz[j];
                }
                ai.copy_from_slice(dh_row);
            }
            gemm_packed_on(isa, &a, g3, m, pack, &mut prod, ld);
            for (d, p) in dh_next.chunks_exact_mut(h).zip(prod.chunks_exact(ld)) {
                d.iter_mut().zip(p).for_each(|(d, p)| *d += p);
            }
        }
    });
    (dgi, dgh)
}
