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
//! This file holds the backward pass ([`gru_backward`]); the forward is
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

/// The backward through time for the output gradient `dy` (`[T·B, H]`), from
/// what the forward kept; `w_hh` is `R`, `[3H, H]` row-major. Returns the
/// gradients for `W·x + b` and for `R·h + rb`, both `[T·B, 3H]` (zero at
/// padded steps). The observations are shared between two threads as in
/// [`super::gru_forward()`] when a step's product is large enough.
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
