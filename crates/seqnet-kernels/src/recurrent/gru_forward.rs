//! The GRU's forward pass through time, fused as the LSTM's
//! ([`super::lstm_forward()`]), for the reset gate after the recurrent
//! multiplication (PyTorch's semantics; gate order `r, z, n`):
//!
//! ```text
//! r  = gate(W_r·x + b_r + R_r·h + rb_r)
//! z  = gate(W_z·x + b_z + R_z·h + rb_z)
//! n  = state(W_n·x + b_n + r ⊙ (R_n·h + rb_n))
//! h' = (1 − z) ⊙ n + z ⊙ h
//! ```
//!
//! At every step, one product of `[x_t, h_{t-1}]` (`[B, C + H]`) by the
//! packed weights, or of `h_{t-1}` alone when `W·x + b` of all steps was
//! computed beforehand ([`super::fold_input`]). Each register tile holds four sums
//! per row and unit group: `r` and `z` over all `C + H` features, and the
//! candidate's two halves apart, `W_n·x + b_n` over the input features and
//! `R_n·h + rb_n` over the recurrent ones (the reset gate scales the second
//! only). The cell update is applied to the tile as it leaves the product.
//! The observations (rows) are shared between threads, which never meet
//! before the pass ends.
//!
//! Each row's sums run over `k` in a fixed order (the starting sums, then
//! the input part, then the recurrent part), whichever rows come with it and
//! whichever thread computes it: a sequence gets the same bits in any batch,
//! padded or not.

use super::row_pass::{load, pack_units, run, store, units, Cell, RowPass, Step, LANES};
use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::aligned::AlignedBuf;
use crate::cpu::Isa;
use crate::shared::SharedMut;
use crate::threads::row_threads;

/// One direction's GRU weights, packed for [`gru_forward`]: the hidden units
/// in groups of 16, and for each group and gate `q` (`r, z, n`) a panel
/// `[K, 16]` with `K = kx + H` rows (the `kx` input features of `W` when the
/// input projection is folded in, then the `H` recurrent ones of `R`). Units
/// past `H` in the last group are zero.
#[derive(Debug, Clone, Default)]
pub struct GruPanels {
    /// Input features folded into the product (0: projected beforehand).
    kx: usize,
    h: usize,
    /// `[groups, 3, kx + H, 16]`.
    data: AlignedBuf,
    /// `[groups, 4, 16]`: the starting sums of `r`, `z`, `W_n·x` and `R_n·h`.
    /// Folded: `b_r + rb_r`, `b_z + rb_z`, `b_n`, `rb_n`; projected
    /// beforehand (the projection holds `b`): `rb_r`, `rb_z`, `0`, `rb_n`.
    start: Vec<f32>,
    /// Whether every recurrent weight is finite: then a zero state's product
    /// is exactly zero and can be skipped.
    recurrent_finite: bool,
}

impl GruPanels {
    /// Packs one direction's `w_ih` `[3H, C]`, `w_hh` `[3H, H]`, `bias` `[3H]`
    /// and recurrent bias `rb` `[3H]` (absent: zero), row-major in gate order
    /// `r, z, n`, folding the input part in when `fold`; reuses the allocation.
    ///
    /// # Panics
    /// When a slice is shorter than the sizes say.
    #[allow(clippy::too_many_arguments)]
    pub fn pack(
        &mut self,
        w_ih: &[f32],
        c: usize,
        w_hh: &[f32],
        h: usize,
        bias: &[f32],
        rb: Option<&[f32]>,
        fold: bool,
    ) {
        assert!(w_ih.len() >= 3 * h * c && w_hh.len() >= 3 * h * h && bias.len() >= 3 * h);
        assert!(rb.is_none_or(|rb| rb.len() >= 3 * h), "GruPanels: rb");
        let kx = if fold { c } else { 0 };
        let k = kx + h;
        let groups = h.div_ceil(LANES);
        let len = groups * 3 * k * LANES;
        if self.kx != kx || self.h != h || self.data.as_slice().len() != len {
            self.data.zeroed(len);
        }
        self.kx = kx;
        self.h = h;
        let data = self.data.as_mut_slice();
        self.start.clear();
        self.start.resize(groups * 4 * LANES, 0.0);
        // Every panel value is written (the padding units' zeros too): the
        // training step repacks at every iteration, into the same buffer.
        for g in 0..groups {
            let n = units(h, g);
            for q in 0..3 {
                let r0 = q * h + g * LANES;
                let panel = &mut data[(g * 3 + q) * k * LANES..][..k * LANES];
                let (px, ph) = panel.split_at_mut(kx * LANES);
                pack_units(w_ih, c, r0, n, kx, px);
                pack_units(w_hh, h, r0, n, h, ph);
                for l in 0..n {
                    let r = r0 + l;
                    let rbv = rb.map_or(0.0, |rb| rb[r]);
                    let b = if fold { bias[r] } else { 0.0 };
                    let start = &mut self.start[g * 4 * LANES + l..];
                    if q < 2 {
                        start[q * LANES] = b + rbv;
                    } else {
                        start[2 * LANES] = b;
                        start[3 * LANES] = rbv;
                    }
                }
            }
        }
        let finite = w_hh[..3 * h * h]
            .iter()
            .fold(true, |all, v| all & v.is_finite());
        self.recurrent_finite = finite;
    }

    /// Whether the panels hold `h` units with the input (`fold`, `c` features)
    /// folded in or not.
    pub fn fits(&self, c: usize, h: usize, fold: bool) -> bool {
        self.h == h && self.kx == if fold { c } else { 0 } && !self.data.as_slice().is_empty()
    }

    /// Whether the input projection is folded into each step's product.
    pub fn folded(&self) -> bool {
        self.kx > 0
    }
}

/// The buffers one direction's pass reads and writes.
pub struct GruBuffers<'a> {
    /// `[T·B, 3H]`: when the input is not folded in, `W·x + b` on entry; with
    /// `tape`, the activated `r, z, n` on exit (untouched at padded steps).
    /// Unused otherwise (may be empty).
    pub gates: &'a mut [f32],
    /// `[T·B, H]`: with `tape`, `R_n·h + rb_n` of every step on exit, for the
    /// backward. May be empty otherwise.
    pub hn: &'a mut [f32],
    /// Hidden states, `T + 2` slots of `[B, H]` (see [`super`]): the initial
    /// state in its slot on entry, every slot filled on exit.
    pub h: &'a mut [f32],
}

/// One direction's forward through time (see the module docs), on one or two
/// threads ([`row_threads`]) with the best instruction set ([`Isa::best`]).
///
/// * `steps`: `T`, `B` and each observation's real steps; `reverse` runs
///   from the last step to the first (a BiGRU's backward direction).
/// * `x`: the input `[T·B, C]`, read only when `panels` fold it in
///   ([`super::fold_input`]; may be empty otherwise).
/// * `panels`: the direction's weights, packed ([`GruPanels::pack`]).
/// * `bufs`: the states in and out, and with `tape` the activated gates and
///   `R_n·h + rb_n` kept for [`super::gru_backward_into()`] (see [`GruBuffers`]).
///
/// Padded steps carry the state over unchanged. Each row's result is the
/// same bits on one thread or two.
///
/// # Panics
/// When a buffer is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn gru_forward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    x: &[f32],
    panels: &GruPanels,
    bufs: GruBuffers,
    tape: bool,
) {
    let (b, h) = (steps.b, panels.h);
    // A step's product: `[B, kx + H]·[kx + H, 3H]`.
    let threads = row_threads(b, b * (panels.kx + h) * 3 * h);
    let isa = Isa::best();
    with_acts!(
        acts,
        pass(steps, reverse, x, panels, bufs, tape, threads, isa)
    );
}

/// [`gru_forward`] on `threads` threads with the tiles of `isa`.
#[allow(clippy::too_many_arguments)]
fn pass<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    x: &[f32],
    panels: &GruPanels,
    bufs: GruBuffers,
    tape: bool,
    threads: usize,
    isa: Isa,
) {
    steps.check();
    let (t_len, b, h, kx) = (steps.t, steps.b, panels.h, panels.kx);
    assert!(x.len() >= t_len * b * kx, "gru_forward: input too short");
    assert!(bufs.h.len() >= (t_len + 2) * b * h, "gru_forward: h");
    if tape || kx == 0 {
        assert!(bufs.gates.len() >= t_len * b * 3 * h, "gru_forward: gates");
    }
    if tape {
        assert!(bufs.hn.len() >= t_len * b * h, "gru_forward: hn");
    }
    let hp = SharedMut(bufs.h.as_mut_ptr());
    let rp = RowPass {
        steps,
        reverse,
        x: &x[..t_len * b * kx],
        kx,
        h,
        hp,
        recurrent_finite: panels.recurrent_finite,
        isa,
    };
    let cx = PassCtx {
        panels,
        h,
        b,
        gp: SharedMut(bufs.gates.as_mut_ptr()),
        hp,
        np: SharedMut(bufs.hn.as_mut_ptr()),
        tape,
    };
    run::<G, S, _>(&rp, &cx, threads);
}

/// What every tile of a pass needs. The buffers' lengths were checked
/// against the sizes in [`pass`]: states `[(T+2)·B, H]`, and (when used)
/// gates `[T·B, 3H]` and `hn` `[T·B, H]`.
struct PassCtx<'a> {
    panels: &'a GruPanels,
    h: usize,
    b: usize,
    gp: SharedMut,
    hp: SharedMut,
    np: SharedMut,
    tape: bool,
}

// SAFETY: the raw pointers are read, or written at rows that one thread owns
// (see `row_pass`); the threads meet only when the pass ends.
unsafe impl Sync for PassCtx<'_> {}

impl Cell for PassCtx<'_> {
    /// The GRU's state is `h` alone.
    unsafe fn carry(&self, _prev: usize, _out: usize) {}

    #[cfg(target_arch = "x86_64")]
    unsafe fn avx512_tile<const R: usize, G: Act, S: Act>(
        &self,
        st: &Step,
        g: usize,
        rows: &[usize],
        a: *const f32,
    ) {
        // SAFETY: the contract.
        unsafe { avx512::tile::<R, G, S>(self, st, g, rows, a) }
    }

    unsafe fn portable_tile<G: Act, S: Act>(&self, st: &Step, g: usize, rows: &[usize], a: &[f32]) {
        // SAFETY: the contract.
        unsafe { portable_tile::<G, S>(self, st, g, rows, a) }
    }
}

/// Where a tile's row reads and writes (pointers for row `row` of group `g`).
struct RowPtrs {
    /// The unit group's first unit in the gates row `[3H]`.
    gates: *mut f32,
    /// The unit group's first unit in the `hn` row `[H]`.
    hn: *mut f32,
    h_prev: *const f32,
    h: *mut f32,
}

impl RowPtrs {
    /// # Safety
    /// `row` is inside the batch and `g` inside the groups.
    #[inline(always)]
    unsafe fn new(cx: &PassCtx, st: &Step, g: usize, row: usize) -> Self {
        let (b, h) = (cx.b, cx.h);
        let u0 = g * LANES;
        let tb = st.t * b + row;
        // SAFETY: with `row < B`, `g·16 < H` and `t < T`, every offset is
        // inside its checked buffer (or one past an unused empty one: the
        // gates and `hn` pointers are only used when those buffers are).
        unsafe {
            RowPtrs {
                gates: cx.gp.0.add(tb * 3 * h + u0),
                hn: cx.np.0.add(tb * h + u0),
                h_prev: cx.hp.0.add((st.prev * b + row) * h + u0),
                h: cx.hp.0.add((st.out * b + row) * h + u0),
            }
        }
    }
}

/// The reference tile for CPUs without AVX-512: the same sums in the same
/// order as the AVX-512 tile.
///
/// # Safety
/// As [`Cell::avx512_tile`], on any CPU.
unsafe fn portable_tile<G: Act, S: Act>(
    cx: &PassCtx,
    st: &Step,
    g: usize,
    rows: &[usize],
    a: &[f32],
) {
    let (h, kx) = (cx.h, cx.panels.kx);
    let k = kx + h;
    let n = units(h, g);
    let panels = cx.panels.data.as_slice();
    let start = &cx.panels.start[g * 4 * LANES..][..4 * LANES];
    for (r, &row) in rows.iter().enumerate() {
        // SAFETY: `row` is in the batch, `g` in the groups (the contract).
        let p = unsafe { RowPtrs::new(cx, st, g, row) };
        let ar = &a[r * k..(r + 1) * k];
        // Sums `r, z, W_n·x, R_n·h`, each fed by panel `PANEL[s]`.
        let mut z = [[0f32; LANES]; 4];
        for (s, zs) in z.iter_mut().enumerate() {
            zs.copy_from_slice(&start[s * LANES..(s + 1) * LANES]);
            if kx == 0 && s < 3 {
                // SAFETY: the gates row holds `W·x + b` (the buffer is used
                // whenever the input is not folded in), `n` units of gate `s`.
                let pre = unsafe { load(p.gates.add(s * h), n) };
                for l in 0..LANES {
                    zs[l] += pre[l];
                }
            }
            let q = s.min(2);
            let panel = &panels[(g * 3 + q) * k * LANES..][..k * LANES];
            let span = match s {
                0 | 1 => 0..st.k_end,
                2 => 0..kx,
                _ => kx..st.k_end,
            };
            for kk in span {
                let (av, w) = (ar[kk], &panel[kk * LANES..(kk + 1) * LANES]);
                for l in 0..LANES {
                    zs[l] = av.mul_add(w[l], zs[l]);
                }
            }
        }
        // SAFETY: the row's pointers hold its group's `n` units.
        let hp = unsafe { load(p.h_prev, n) };
        let mut gv = [[0f32; LANES]; 3];
        let mut hv = [0f32; LANES];
        for l in 0..LANES {
            let rv = G::f(z[0][l]);
            let zv = G::f(z[1][l]);
            let nv = S::f(rv.mul_add(z[3][l], z[2][l]));
            gv[0][l] = rv;
            gv[1][l] = zv;
            gv[2][l] = nv;
            hv[l] = zv.mul_add(hp[l] - nv, nv);
        }
        // SAFETY: as above; the gates row holds 3 gates `H` apart.
        unsafe {
            store(p.h, &hv, n);
            if cx.tape {
                for (q, v) in gv.iter().enumerate() {
                    store(p.gates.add(q * h), v, n);
                }
                store(p.hn, &z[3], n);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{units, Act, PassCtx, RowPtrs, Step, LANES};
    use crate::simd::act512::act;
    use std::arch::x86_64::*;

    /// The 3 registers at `p`, `p + stride`, `p + 2·stride` (the 3 gates'
    /// panel rows of a unit group).
    ///
    /// # Safety
    /// The CPU has AVX-512F; the three places hold 16 values each.
    #[inline(always)]
    unsafe fn load3(p: *const f32, stride: usize) -> [__m512; 3] {
        // SAFETY: this function's contract.
        unsafe {
            [
                _mm512_loadu_ps(p),
                _mm512_loadu_ps(p.add(stride)),
                _mm512_loadu_ps(p.add(2 * stride)),
            ]
        }
    }

    /// [`Cell::avx512_tile`](super::Cell::avx512_tile) for `R` rows: `R × 4` accumulators (`r`, `z`,
    /// `W_n·x`, `R_n·h`) over the panels' `K` rows, then the cell update per
    /// row.
    ///
    /// # Safety
    /// As [`Cell::avx512_tile`](super::Cell::avx512_tile).
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::needless_range_loop)] // plain index loops over `acc`, fully unrolled
    pub(super) unsafe fn tile<const R: usize, G: Act, S: Act>(
        cx: &PassCtx,
        st: &Step,
        g: usize,
        rows: &[usize],
        a: *const f32,
    ) {
        let (h, kx) = (cx.h, cx.panels.kx);
        let k = kx + h;
        let n = units(h, g);
        let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
        // SAFETY: the rows are in the batch and `g` in the groups, so every
        // row pointer holds the group's `n` units (masked loads and stores
        // touch no more); the panels hold `[groups, 3, K, 16]` and the
        // starting sums `[groups, 4, 16]`; `a` holds `R` rows of `K` (the
        // contract).
        unsafe {
            let sp = cx.panels.start.as_ptr().add(g * 4 * LANES);
            let sv: [__m512; 4] = std::array::from_fn(|s| _mm512_loadu_ps(sp.add(s * LANES)));
            let mut acc = [sv; R];
            if kx == 0 {
                // The input projection `W·x + b` of each row, computed beforehand.
                let pre: [*const f32; R] =
                    std::array::from_fn(|r| RowPtrs::new(cx, st, g, rows[r]).gates.cast_const());
                for r in 0..R {
                    for q in 0..3 {
                        let v = _mm512_maskz_loadu_ps(mask, pre[r].add(q * h));
                        acc[r][q] = _mm512_add_ps(acc[r][q], v);
                    }
                }
            }
            let w = cx.panels.data.as_slice().as_ptr().add(g * 3 * k * LANES);
            let wq = k * LANES;
            // The input features: `r`, `z` and the candidate's input half.
            for kk in 0..kx {
                let wv = load3(w.add(kk * LANES), wq);
                for r in 0..R {
                    let av = _mm512_set1_ps(*a.add(r * k + kk));
                    for q in 0..3 {
                        acc[r][q] = _mm512_fmadd_ps(av, wv[q], acc[r][q]);
                    }
                }
            }
            // The recurrent features: `r`, `z` and the candidate's recurrent half.
            for kk in kx..st.k_end {
                let wv = load3(w.add(kk * LANES), wq);
                for r in 0..R {
                    let av = _mm512_set1_ps(*a.add(r * k + kk));
                    acc[r][0] = _mm512_fmadd_ps(av, wv[0], acc[r][0]);
                    acc[r][1] = _mm512_fmadd_ps(av, wv[1], acc[r][1]);
                    acc[r][3] = _mm512_fmadd_ps(av, wv[2], acc[r][3]);
                }
            }
            let mut z = [[[0f32; LANES]; 4]; R];
            for r in 0..R {
                for s in 0..4 {
                    _mm512_storeu_ps(z[r][s].as_mut_ptr(), acc[r][s]);
                }
            }
            for (r, zr) in z.iter().enumerate() {
                let p = RowPtrs::new(cx, st, g, rows[r]);
                let rv = act::<G>(_mm512_loadu_ps(zr[0].as_ptr()));
                let zv = act::<G>(_mm512_loadu_ps(zr[1].as_ptr()));
                let hn = _mm512_loadu_ps(zr[3].as_ptr());
                let nx = _mm512_loadu_ps(zr[2].as_ptr());
                let nv = act::<S>(_mm512_fmadd_ps(rv, hn, nx));
                let hp = _mm512_maskz_loadu_ps(mask, p.h_prev);
                let hv = _mm512_fmadd_ps(zv, _mm512_sub_ps(hp, nv), nv);
                _mm512_mask_storeu_ps(p.h, mask, hv);
                if cx.tape {
                    for (q, v) in [rv, zv, nv].into_iter().enumerate() {
                        _mm512_mask_storeu_ps(p.gates.add(q * h), mask, v);
                    }
                    _mm512_mask_storeu_ps(p.hn, mask, hn);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::act::{HardSigmoidAct, SigmoidAct, SoftsignAct, TanhAct};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    struct Net<'a> {
        w_ih: &'a [f32],
        c: usize,
        w_hh: &'a [f32],
        bias: &'a [f32],
        rb: &'a [f32],
        h: usize,
    }

    /// One direction's hidden states in every slot (`[T + 2][B][H]`), and
    /// the activated gates `[T·B][3H]` and `R_n·h + rb_n` `[T·B][H]` at real
    /// steps, in f64 straight from the GRU's equations from the initial
    /// state `h0` (`[B, H]`).
    #[allow(clippy::type_complexity)]
    fn reference<G: Act, S: Act>(
        steps: &Steps,
        reverse: bool,
        x: &[f32],
        net: &Net,
        h0: &[f32],
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let (t_len, b) = (steps.t, steps.b);
        let Net {
            w_ih,
            c,
            w_hh,
            bias,
            rb,
            h,
        } = *net;
        let mut hs = vec![0f64; (t_len + 2) * b * h];
        let mut gates = vec![0f64; t_len * b * 3 * h];
        let mut hns = vec![0f64; t_len * b * h];
        let init = steps.initial_slot(reverse) * b * h;
        for i in 0..b * h {
            hs[init + i] = h0[i] as f64;
        }
        // The activations, in f64 through their f32 versions' formulas.
        let gate = |v: f64| G::f(v as f32) as f64;
        let state = |v: f64| S::f(v as f32) as f64;
        for k in 0..t_len {
            let t = steps.step(k, reverse);
            let (prev, out) = steps.slots(t, reverse);
            for bi in 0..b {
                let (po, oo) = ((prev * b + bi) * h, (out * b + bi) * h);
                if !steps.real(bi, t) {
                    for u in 0..h {
                        hs[oo + u] = hs[po + u];
                    }
                    continue;
                }
                let row = t * b + bi;
                let wx = |r: usize| -> f64 {
                    let mut v = bias[r] as f64;
                    for kk in 0..c {
                        v += w_ih[r * c + kk] as f64 * x[row * c + kk] as f64;
                    }
                    v
                };
                let rh = |r: usize| -> f64 {
                    let mut v = rb[r] as f64;
                    for kk in 0..h {
                        v += w_hh[r * h + kk] as f64 * hs[po + kk];
                    }
                    v
                };
                let mut h_new = vec![0f64; h];
                for (u, hv) in h_new.iter_mut().enumerate() {
                    let rv = gate(wx(u) + rh(u));
                    let zv = gate(wx(h + u) + rh(h + u));
                    let hn = rh(2 * h + u);
                    let nv = state(wx(2 * h + u) + rv * hn);
                    *hv = (1.0 - zv) * nv + zv * hs[po + u];
                    let g = &mut gates[row * 3 * h..];
                    (g[u], g[h + u], g[2 * h + u]) = (rv, zv, nv);
                    hns[row * h + u] = hn;
                }
                hs[oo..oo + h].copy_from_slice(&h_new);
            }
        }
        (hs, gates, hns)
    }

    fn random(n: usize, scale: f32, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    fn close(got: &[f32], want: &[f64], what: &str, case: &str) {
        for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
            assert!(
                (g as f64 - w).abs() < 3e-5,
                "{what}[{i}] {g} vs {w} ({case})"
            );
        }
    }

    /// The fused pass against the equations, for every combination of tiles
    /// (AVX-512 or portable), input folded in or projected beforehand, one
    /// or two threads, forward or reverse, a random or zero initial state,
    /// with and without a recurrent bias, with padding at both ends and a
    /// hidden size that is not a multiple of 16. The tape holds the
    /// activated gates and `R_n·h + rb_n`; one or two threads give the same
    /// bits.
    fn pass_matches_the_equations<G: Act, S: Act>() {
        let mut rng = StdRng::seed_from_u64(11);
        let (t_len, b, c, h) = (6, 13, 7, 37);
        let spans: Vec<std::ops::Range<usize>> = (0..b)
            .map(|i| match i % 4 {
                0 => 0..t_len,
                1 => 0..3,
                2 => 2..t_len,
                _ => 1..2,
            })
            .collect();
        let steps = Steps { t: t_len, b, spans };
        let x = random(t_len * b * c, 1.0, &mut rng);
        let w_ih = random(3 * h * c, 0.5, &mut rng);
        let w_hh = random(3 * h * h, 0.4, &mut rng);
        let bias = random(3 * h, 0.5, &mut rng);
        let rb_random = random(3 * h, 0.5, &mut rng);
        let rb_zero = vec![0f32; 3 * h];
        let random_state = random(b * h, 0.5, &mut rng);
        let zero_state = vec![0f32; b * h];
        for (h0, reverse, with_rb) in [
            (&random_state, false, true),
            (&random_state, true, false),
            (&zero_state, false, false),
            (&zero_state, true, true),
        ] {
            let rb = if with_rb { &rb_random } else { &rb_zero };
            let net = Net {
                w_ih: &w_ih,
                c,
                w_hh: &w_hh,
                bias: &bias,
                rb,
                h,
            };
            let (want_h, want_g, want_hn) = reference::<G, S>(&steps, reverse, &x, &net, h0);
            let mut first_bits: Option<Vec<f32>> = None;
            for fold in [true, false] {
                for isa in Isa::all() {
                    for threads in [1, 2] {
                        let case = format!(
                            "fold {fold}, {} tiles, threads {threads}, reverse {reverse}, rb {with_rb}",
                            isa.name()
                        );
                        let mut panels = GruPanels::default();
                        panels.pack(&w_ih, c, &w_hh, h, &bias, with_rb.then_some(rb), fold);
                        let mut gates = vec![0f32; t_len * b * 3 * h];
                        if !fold {
                            for row in 0..t_len * b {
                                for r in 0..3 * h {
                                    let mut v = bias[r];
                                    for kk in 0..c {
                                        v += w_ih[r * c + kk] * x[row * c + kk];
                                    }
                                    gates[row * 3 * h + r] = v;
                                }
                            }
                        }
                        let mut hb = vec![0f32; (t_len + 2) * b * h];
                        let init = steps.initial_slot(reverse) * b * h;
                        hb[init..init + b * h].copy_from_slice(h0);
                        let mut hn = vec![0f32; t_len * b * h];
                        let bufs = GruBuffers {
                            gates: &mut gates,
                            hn: &mut hn,
                            h: &mut hb,
                        };
                        let xs = if fold { &x[..] } else { &[][..] };
                        pass::<G, S>(&steps, reverse, xs, &panels, bufs, true, threads, isa);
                        close(&hb, &want_h, "h", &case);
                        for row in (0..t_len * b).filter(|r| steps.real(r % b, r / b)) {
                            let g3 = 3 * h;
                            let got = &gates[row * g3..(row + 1) * g3];
                            close(got, &want_g[row * g3..(row + 1) * g3], "gates", &case);
                            let got = &hn[row * h..(row + 1) * h];
                            close(got, &want_hn[row * h..(row + 1) * h], "hn", &case);
                        }
                        if threads == 1 {
                            first_bits = Some(hb.clone());
                        } else {
                            assert_eq!(first_bits.as_ref(), Some(&hb), "threads change bits");
                        }
                        // Without the tape, the same states.
                        let mut hb2 = vec![0f32; (t_len + 2) * b * h];
                        hb2[init..init + b * h].copy_from_slice(h0);
                        let mut pre = vec![0f32; if fold { 0 } else { t_len * b * 3 * h }];
                        if !fold {
                            for row in 0..t_len * b {
                                for r in 0..3 * h {
                                    let mut v = bias[r];
                                    for kk in 0..c {
                                        v += w_ih[r * c + kk] * x[row * c + kk];
                                    }
                                    pre[row * 3 * h + r] = v;
                                }
                            }
                        }
                        let bufs = GruBuffers {
                            gates: &mut pre,
                            hn: &mut [],
                            h: &mut hb2,
                        };
                        pass::<G, S>(&steps, reverse, xs, &panels, bufs, false, threads, isa);
                        assert_eq!(hb, hb2, "the tape changes the states ({case})");
                    }
                }
            }
        }
    }

    #[test]
    fn repacking_gives_what_a_fresh_packing_gives() {
        // As the LSTM's: the padding units (H = 21) stay zero through
        // packings of other weights and shapes without a clearing.
        let mut rng = StdRng::seed_from_u64(6);
        let (c, h) = (6, 21);
        let mut w =
            |n: usize| -> Vec<f32> { (0..n).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (ai, ah, ab, arb) = (w(3 * h * c), w(3 * h * h), w(3 * h), w(3 * h));
        let (bi, bh, bb, brb) = (w(3 * h * c), w(3 * h * h), w(3 * h), w(3 * h));
        let mut reused = GruPanels::default();
        for fold in [true, false, true] {
            reused.pack(&ai, c, &ah, h, &ab, Some(&arb), fold);
            reused.pack(&bi, c, &bh, h, &bb, Some(&brb), fold);
            let mut fresh = GruPanels::default();
            fresh.pack(&bi, c, &bh, h, &bb, Some(&brb), fold);
            assert_eq!(reused.data.as_slice(), fresh.data.as_slice(), "fold {fold}");
            assert_eq!(reused.start, fresh.start);
        }
    }

    #[test]
    fn pass_matches_the_equations_sigmoid_tanh() {
        pass_matches_the_equations::<SigmoidAct, TanhAct>();
    }

    #[test]
    fn pass_matches_the_equations_hard_sigmoid_softsign() {
        pass_matches_the_equations::<HardSigmoidAct, SoftsignAct>();
    }

    /// A zero state skips the recurrent product only when it is exactly zero:
    /// a NaN recurrent weight still reaches the first step's output.
    #[test]
    fn zero_state_with_nan_recurrent_weight_gives_nan() {
        let (t_len, b, c, h) = (1, 8, 3, 16);
        let steps = Steps {
            t: t_len,
            b,
            spans: vec![0..1; b],
        };
        let mut rng = StdRng::seed_from_u64(3);
        let x = random(t_len * b * c, 1.0, &mut rng);
        let w_ih = random(3 * h * c, 0.5, &mut rng);
        let mut w_hh = random(3 * h * h, 0.5, &mut rng);
        w_hh[2 * h * h + 5] = f32::NAN; // gate n, unit 0, from unit 5
        let bias = vec![0.1f32; 3 * h];
        for isa in Isa::all() {
            let mut panels = GruPanels::default();
            panels.pack(&w_ih, c, &w_hh, h, &bias, None, true);
            let mut hb = vec![0f32; (t_len + 2) * b * h];
            let bufs = GruBuffers {
                gates: &mut [],
                hn: &mut [],
                h: &mut hb,
            };
            pass::<SigmoidAct, TanhAct>(&steps, false, &x, &panels, bufs, false, 1, isa);
            for bi in 0..b {
                assert!(hb[(b + bi) * h].is_nan(), "row {bi}, {}", isa.name());
                assert!(hb[(b + bi) * h + 1].is_finite());
            }
        }
    }
}
