//! The LSTM's forward pass through time, fused. At every step, one product of
//! `[x_t, h_{t-1}]` (`[B, C + H]`) by the packed `[W R]ᵀ` (`[C + H, 4H]`), or
//! of `h_{t-1}` by `Rᵀ` alone when the input projection `W·x + b` of all steps
//! was computed beforehand (large inputs, whose `W` would not stay in cache);
//! the cell update is applied to each register tile as it leaves the product,
//! so no step writes or re-reads gate sums. The observations (rows) are shared
//! between threads, which never meet before the pass ends: an observation's
//! recurrence needs nothing from another's.
//!
//! Each row's result is a sum over `k` in a fixed order (bias or projection
//! first, then the input part, then the recurrent part), whichever rows come
//! with it and whichever thread computes it: a sequence gets the same bits in
//! any batch, padded or not.

use super::row_pass::{load, pack_units, run, store, units, Cell, RowPass, Step, LANES};
use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::aligned::AlignedBuf;
use crate::cpu::Isa;
use crate::shared::SharedMut;
use crate::threads::row_threads;

/// One direction's gate weights, packed for [`lstm_forward`]: the hidden units in
/// groups of 16, and for each group and gate `q` (`i, f, g, o`) a panel
/// `[K, 16]` with `K = kx + H` rows (the `kx` input features when the input
/// projection is folded in, then the `H` recurrent ones). Units past `H` in
/// the last group are zero.
#[derive(Debug, Clone, Default)]
pub struct GatePanels {
    /// Input features folded into the product (0: projected beforehand).
    kx: usize,
    h: usize,
    /// `[groups, 4, kx + H, 16]`.
    data: AlignedBuf,
    /// `[groups, 4, 16]`: the bias, used when the input is folded in.
    bias: Vec<f32>,
    /// Whether every recurrent weight is finite: then a zero state's product
    /// is exactly zero and can be skipped.
    recurrent_finite: bool,
}

impl GatePanels {
    /// Packs one direction's `w_ih` `[4H, C]`, `w_hh` `[4H, H]` and `bias`
    /// `[4H]` (row-major, gate order `i, f, g, o`), folding the input part
    /// in when `fold`; reuses the allocation.
    pub fn pack(
        &mut self,
        w_ih: &[f32],
        c: usize,
        w_hh: &[f32],
        h: usize,
        bias: &[f32],
        fold: bool,
    ) {
        let kx = if fold { c } else { 0 };
        let k = kx + h;
        let groups = h.div_ceil(LANES);
        let len = groups * 4 * k * LANES;
        if self.kx != kx || self.h != h || self.data.as_slice().len() != len {
            self.data.zeroed(len);
        }
        self.kx = kx;
        self.h = h;
        let data = self.data.as_mut_slice();
        self.bias.clear();
        self.bias.resize(groups * 4 * LANES, 0.0);
        // Every panel value is written (the padding units' zeros too): the
        // training step repacks at every iteration, into the same buffer.
        for g in 0..groups {
            let n = units(h, g);
            for q in 0..4 {
                let r0 = q * h + g * LANES;
                let panel = &mut data[(g * 4 + q) * k * LANES..][..k * LANES];
                let (px, ph) = panel.split_at_mut(kx * LANES);
                pack_units(w_ih, c, r0, n, kx, px);
                pack_units(w_hh, h, r0, n, h, ph);
                self.bias[(g * 4 + q) * LANES..][..n].copy_from_slice(&bias[r0..r0 + n]);
            }
        }
        let finite = w_hh[..4 * h * h]
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

/// Whether a pass folds the input projection into each step's product: when
/// the packed `[W R]ᵀ` (read once per step and thread) stays in cache, and
/// the steps have enough rows to reuse it. Else `W·x + b` is one product over
/// all steps beforehand (the video network's 11520 inputs: 37 MB of `W`).
pub fn fold_input(c: usize, h: usize, b: usize) -> bool {
    let bytes = (c + h) * 4 * h * std::mem::size_of::<f32>();
    c > 0 && b >= 4 && bytes <= 2 << 20
}

/// The buffers one direction's pass reads and writes.
pub struct PassBuffers<'a> {
    /// `[T·B, 4H]`: when the input is not folded in, `W·x + b` on entry; with
    /// `tape`, the activated gates on exit. Unused otherwise (may be empty).
    pub gates: &'a mut [f32],
    /// `T + 2` slots of `[B, H]`, the initial state in its slot on entry.
    pub h: &'a mut [f32],
    /// Cell states, same slots as `h`.
    pub c: &'a mut [f32],
    /// `[T·B, H]`: with `tape`, `state(c)` after each step. May be empty otherwise.
    pub tc: &'a mut [f32],
}

/// One direction's forward through time (see the module docs), on one or two
/// threads ([`row_threads`]) with the best instruction set ([`Isa::best`]).
///
/// * `steps`: `T`, `B` and each observation's real steps; `reverse` runs
///   from the last step to the first (a BiLSTM's backward direction).
/// * `x`: the input `[T·B, C]`, read only when `panels` fold it in
///   ([`fold_input`]; may be empty otherwise).
/// * `panels`: the direction's weights, packed ([`GatePanels::pack`]).
/// * `bufs`: the states in and out, and with `tape` the activated gates and
///   `state(c)` kept for [`super::lstm_backward_into()`] (see [`PassBuffers`]).
///
/// Padded steps carry the state over unchanged. Each row's result is the
/// same bits on one thread or two.
///
/// # Panics
/// When a buffer is shorter than the sizes say, or `steps` has not one span
/// per observation.
pub fn lstm_forward(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    x: &[f32],
    panels: &GatePanels,
    bufs: PassBuffers,
    tape: bool,
) {
    let (b, h) = (steps.b, panels.h);
    // A step's product: `[B, kx + H]·[kx + H, 4H]`.
    let threads = row_threads(b, b * (panels.kx + h) * 4 * h);
    with_acts!(
        acts,
        pass(steps, reverse, x, panels, bufs, tape, threads, Isa::best())
    );
}

/// [`lstm_forward`] on `threads` threads with the tiles of `isa`.
#[allow(clippy::too_many_arguments)]
fn pass<G: Act, S: Act>(
    steps: &Steps,
    reverse: bool,
    x: &[f32],
    panels: &GatePanels,
    bufs: PassBuffers,
    tape: bool,
    threads: usize,
    isa: Isa,
) {
    steps.check();
    let (t_len, b, h, kx) = (steps.t, steps.b, panels.h, panels.kx);
    assert!(x.len() >= t_len * b * kx, "lstm_forward: input too short");
    assert!(bufs.h.len() >= (t_len + 2) * b * h && bufs.c.len() >= (t_len + 2) * b * h);
    if tape || kx == 0 {
        assert!(bufs.gates.len() >= t_len * b * 4 * h, "lstm_forward: gates");
    }
    if tape {
        assert!(bufs.tc.len() >= t_len * b * h, "lstm_forward: tc");
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
        cp: SharedMut(bufs.c.as_mut_ptr()),
        tp: SharedMut(bufs.tc.as_mut_ptr()),
        tape,
    };
    run::<G, S, _>(&rp, &cx, threads);
}

/// What every tile of a pass needs. The buffers' lengths were checked
/// against the sizes in [`pass`]: states `[(T+2)·B, H]`, and (when used)
/// gates `[T·B, 4H]` and `tc` `[T·B, H]`.
struct PassCtx<'a> {
    panels: &'a GatePanels,
    h: usize,
    b: usize,
    gp: SharedMut,
    hp: SharedMut,
    cp: SharedMut,
    tp: SharedMut,
    tape: bool,
}

// SAFETY: the raw pointers are read, or written at rows that one thread owns
// (see `row_pass`); the threads meet only when the pass ends.
unsafe impl Sync for PassCtx<'_> {}

impl Cell for PassCtx<'_> {
    unsafe fn carry(&self, prev: usize, out: usize) {
        // SAFETY: the contract: a row's `H` cell states in two slots.
        unsafe { std::ptr::copy_nonoverlapping(self.cp.0.add(prev), self.cp.0.add(out), self.h) };
    }

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

/// Where a tile's row writes (pointers for row `row` of group `g`).
struct RowPtrs {
    /// The unit group's first unit in the gates row `[4H]`.
    gates: *mut f32,
    c_prev: *const f32,
    c: *mut f32,
    h: *mut f32,
    tc: *mut f32,
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
        // gates and `tc` pointers are only used when those buffers are).
        unsafe {
            RowPtrs {
                gates: cx.gp.0.add(tb * 4 * h + u0),
                c_prev: cx.cp.0.add((st.prev * b + row) * h + u0),
                c: cx.cp.0.add((st.out * b + row) * h + u0),
                h: cx.hp.0.add((st.out * b + row) * h + u0),
                tc: cx.tp.0.add(tb * h + u0),
            }
        }
    }
}

/// The starting sums of gate `q` for one row: the bias when the input is
/// folded in, else the input projection `W·x + b` (which includes it).
///
/// # Safety
/// As [`Cell::avx512_tile`], on any CPU.
#[inline(always)]
unsafe fn start_sums(cx: &PassCtx, p: &RowPtrs, g: usize, q: usize, n: usize) -> [f32; LANES] {
    // SAFETY: the bias holds `[groups, 4, 16]`; the gates row holds the
    // group's `n` units of gate `q` at `q·H` (the gates buffer is used
    // whenever the input is not folded in).
    unsafe {
        if cx.panels.kx > 0 {
            load(cx.panels.bias.as_ptr().add((g * 4 + q) * LANES), LANES)
        } else {
            load(p.gates.add(q * cx.h), n)
        }
    }
}

/// The cell update of one row's unit group from its gate sums `z` (`i, f, g,
/// o`, 16 lanes each, of which the first `n` are units): writes `c`, `h` and,
/// with `tape`, the activated gates and `state(c)`.
///
/// # Safety
/// The pointers hold `n` units (gates: 4 rows `H` apart).
#[inline(always)]
unsafe fn cell<G: Act, S: Act>(z: &[[f32; LANES]; 4], n: usize, p: &RowPtrs, h: usize, tape: bool) {
    // SAFETY: this function's contract.
    let cp = unsafe { load(p.c_prev, n) };
    let (mut gi, mut gf, mut gg, mut go) =
        ([0f32; LANES], [0f32; LANES], [0f32; LANES], [0f32; LANES]);
    let (mut cv, mut sc, mut hv) = ([0f32; LANES], [0f32; LANES], [0f32; LANES]);
    for l in 0..LANES {
        gi[l] = G::f(z[0][l]);
        gf[l] = G::f(z[1][l]);
        gg[l] = S::f(z[2][l]);
        go[l] = G::f(z[3][l]);
        cv[l] = gf[l] * cp[l] + gi[l] * gg[l];
        sc[l] = S::f(cv[l]);
        hv[l] = go[l] * sc[l];
    }
    // SAFETY: this function's contract.
    unsafe {
        store(p.c, &cv, n);
        store(p.h, &hv, n);
        if tape {
            store(p.gates, &gi, n);
            store(p.gates.add(h), &gf, n);
            store(p.gates.add(2 * h), &gg, n);
            store(p.gates.add(3 * h), &go, n);
            store(p.tc, &sc, n);
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
    let (h, k) = (cx.h, cx.panels.kx + cx.h);
    let n = units(h, g);
    for (r, &row) in rows.iter().enumerate() {
        // SAFETY: `row` is in the batch, `g` in the groups (the contract).
        let p = unsafe { RowPtrs::new(cx, st, g, row) };
        let ar = &a[r * k..(r + 1) * k];
        let mut z = [[0f32; LANES]; 4];
        for (q, zq) in z.iter_mut().enumerate() {
            // SAFETY: as above.
            *zq = unsafe { start_sums(cx, &p, g, q, n) };
            let panel = &cx.panels.data.as_slice()[(g * 4 + q) * k * LANES..][..k * LANES];
            for (kk, &av) in ar[..st.k_end].iter().enumerate() {
                let w = &panel[kk * LANES..(kk + 1) * LANES];
                for l in 0..LANES {
                    zq[l] = av.mul_add(w[l], zq[l]);
                }
            }
        }
        // SAFETY: the row's pointers hold its group's `n` units.
        unsafe { cell::<G, S>(&z, n, &p, h, cx.tape) };
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{units, Act, PassCtx, RowPtrs, Step, LANES};
    use crate::simd::act512::act;
    use std::arch::x86_64::*;

    /// The 4 registers at `p`, `p + stride`, `p + 2·stride`, `p + 3·stride`
    /// (the 4 gates of a unit group).
    ///
    /// # Safety
    /// The CPU has AVX-512F; the four places hold 16 values each.
    #[inline(always)]
    unsafe fn load4(p: *const f32, stride: usize) -> [__m512; 4] {
        // SAFETY: this function's contract.
        unsafe {
            [
                _mm512_loadu_ps(p),
                _mm512_loadu_ps(p.add(stride)),
                _mm512_loadu_ps(p.add(2 * stride)),
                _mm512_loadu_ps(p.add(3 * stride)),
            ]
        }
    }

    /// [`Cell::avx512_tile`](super::Cell::avx512_tile) for `R` rows: `R × 4` accumulators over the panels'
    /// `K` rows, then the cell update per row.
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
        let (h, k) = (cx.h, cx.panels.kx + cx.h);
        let n = units(h, g);
        let mask: __mmask16 = if n == LANES { 0xffff } else { (1u16 << n) - 1 };
        // SAFETY: the rows are in the batch and `g` in the groups, so every
        // row pointer holds the group's `n` units (masked loads and stores
        // touch no more); the panels hold `[groups, 4, K, 16]` and the bias
        // `[groups, 4, 16]`; `a` holds `R` rows of `K` (the contract).
        unsafe {
            // The sums start from the bias (input folded in) or from each row's
            // input projection; `z` (memory) takes them at the end, so that the
            // loops touching `acc` stay short and unrolled and `acc` in registers.
            let mut acc = [[_mm512_setzero_ps(); 4]; R];
            if cx.panels.kx > 0 {
                let bv = load4(cx.panels.bias.as_ptr().add(g * 4 * LANES), LANES);
                for r in 0..R {
                    acc[r] = bv;
                }
            } else {
                let pre: [*const f32; R] =
                    std::array::from_fn(|r| RowPtrs::new(cx, st, g, rows[r]).gates.cast_const());
                for r in 0..R {
                    for q in 0..4 {
                        acc[r][q] = _mm512_maskz_loadu_ps(mask, pre[r].add(q * h));
                    }
                }
            }
            let w = cx.panels.data.as_slice().as_ptr().add(g * 4 * k * LANES);
            let wq = k * LANES;
            for kk in 0..st.k_end {
                let wv = load4(w.add(kk * LANES), wq);
                for r in 0..R {
                    let av = _mm512_set1_ps(*a.add(r * k + kk));
                    for q in 0..4 {
                        acc[r][q] = _mm512_fmadd_ps(av, wv[q], acc[r][q]);
                    }
                }
            }
            let mut z = [[[0f32; LANES]; 4]; R];
            for r in 0..R {
                for q in 0..4 {
                    _mm512_storeu_ps(z[r][q].as_mut_ptr(), acc[r][q]);
                }
            }
            for (r, zr) in z.iter().enumerate() {
                let p = RowPtrs::new(cx, st, g, rows[r]);
                let i = act::<G>(_mm512_loadu_ps(zr[0].as_ptr()));
                let f = act::<G>(_mm512_loadu_ps(zr[1].as_ptr()));
                let gg = act::<S>(_mm512_loadu_ps(zr[2].as_ptr()));
                let o = act::<G>(_mm512_loadu_ps(zr[3].as_ptr()));
                let cp = _mm512_maskz_loadu_ps(mask, p.c_prev);
                let cv = _mm512_fmadd_ps(f, cp, _mm512_mul_ps(i, gg));
                let sc = act::<S>(cv);
                _mm512_mask_storeu_ps(p.c, mask, cv);
                _mm512_mask_storeu_ps(p.h, mask, _mm512_mul_ps(o, sc));
                if cx.tape {
                    for (q, v) in [i, f, gg, o].into_iter().enumerate() {
                        _mm512_mask_storeu_ps(p.gates.add(q * h), mask, v);
                    }
                    _mm512_mask_storeu_ps(p.tc, mask, sc);
                }
            }
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

    struct Net<'a> {
        w_ih: &'a [f32],
        c: usize,
        w_hh: &'a [f32],
        bias: &'a [f32],
        h: usize,
    }

    /// One direction's states in every slot, in f64, straight from the
    /// LSTM's equations from the initial state `h0`, `c0` (`[B, H]`):
    /// `[T + 2][B][H]` for `h` and `c`.
    fn reference(
        steps: &Steps,
        reverse: bool,
        x: &[f32],
        net: &Net,
        h0: &[f32],
        c0: &[f32],
    ) -> (Vec<f64>, Vec<f64>) {
        let (t_len, b) = (steps.t, steps.b);
        let Net {
            w_ih,
            c,
            w_hh,
            bias,
            h,
        } = *net;
        let mut hs = vec![0f64; (t_len + 2) * b * h];
        let mut cs = vec![0f64; (t_len + 2) * b * h];
        let init = steps.initial_slot(reverse) * b * h;
        for i in 0..b * h {
            hs[init + i] = h0[i] as f64;
            cs[init + i] = c0[i] as f64;
        }
        for k in 0..t_len {
            let t = steps.step(k, reverse);
            let (prev, out) = steps.slots(t, reverse);
            for bi in 0..b {
                let (po, oo) = ((prev * b + bi) * h, (out * b + bi) * h);
                if !steps.real(bi, t) {
                    for u in 0..h {
                        hs[oo + u] = hs[po + u];
                        cs[oo + u] = cs[po + u];
                    }
                    continue;
                }
                let z: Vec<f64> = (0..4 * h)
                    .map(|r| {
                        let mut v = bias[r] as f64;
                        for kk in 0..c {
                            v += w_ih[r * c + kk] as f64 * x[(t * b + bi) * c + kk] as f64;
                        }
                        for kk in 0..h {
                            v += w_hh[r * h + kk] as f64 * hs[po + kk];
                        }
                        v
                    })
                    .collect();
                for u in 0..h {
                    let (i, f) = (sig(z[u]), sig(z[h + u]));
                    let (g, o) = (z[2 * h + u].tanh(), sig(z[3 * h + u]));
                    cs[oo + u] = f * cs[po + u] + i * g;
                    hs[oo + u] = o * cs[oo + u].tanh();
                }
            }
        }
        (hs, cs)
    }

    fn random(n: usize, scale: f32, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-scale..scale)).collect()
    }

    /// The fused pass against the equations, for every combination of tiles
    /// (AVX-512 or portable), input folded in or projected beforehand, one
    /// or two threads, forward or reverse, with padding at both ends and a
    /// hidden size that is not a multiple of 16. The tape holds the activated
    /// gates; one or two threads give the same bits.
    #[test]
    fn repacking_gives_what_a_fresh_packing_gives() {
        // A reused `GatePanels` skips its clearing when the shape is the
        // same: the padding units (H = 21: 11 in the last group) must stay
        // zero through packings of other weights and other shapes.
        let mut rng = StdRng::seed_from_u64(5);
        let (c, h) = (6, 21);
        let mut w = || -> Vec<f32> {
            (0..4 * h * (c + h) + 4 * h)
                .map(|_| rng.random_range(-1.0..1.0))
                .collect()
        };
        let (a, b) = (w(), w());
        let split = |v: &[f32]| -> (Vec<f32>, Vec<f32>, Vec<f32>) {
            let (ih, rest) = v.split_at(4 * h * c);
            let (hh, bias) = rest.split_at(4 * h * h);
            (ih.to_vec(), hh.to_vec(), bias.to_vec())
        };
        let ((ai, ah, ab), (bi, bh, bb)) = (split(&a), split(&b));
        let mut reused = GatePanels::default();
        for fold in [true, false, true] {
            reused.pack(&ai, c, &ah, h, &ab, fold);
            reused.pack(&bi, c, &bh, h, &bb, fold);
            let mut fresh = GatePanels::default();
            fresh.pack(&bi, c, &bh, h, &bb, fold);
            assert_eq!(reused.data.as_slice(), fresh.data.as_slice(), "fold {fold}");
            assert_eq!(reused.bias, fresh.bias);
        }
    }

    #[test]
    fn pass_matches_the_equations() {
        let mut rng = StdRng::seed_from_u64(7);
        let (t_len, b, c, h) = (6, 11, 5, 21);
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
        let w_ih = random(4 * h * c, 0.5, &mut rng);
        let w_hh = random(4 * h * h, 0.5, &mut rng);
        let bias = random(4 * h, 0.5, &mut rng);
        let random_state = (random(b * h, 0.5, &mut rng), random(b * h, 0.5, &mut rng));
        let zero_state = (vec![0f32; b * h], vec![0f32; b * h]);
        for ((h0, c0), reverse) in [
            (&random_state, false),
            (&random_state, true),
            (&zero_state, false),
            (&zero_state, true),
        ] {
            let (mut want_h, mut want_c) = (vec![], vec![]);
            let mut first_bits: Option<Vec<f32>> = None;
            for fold in [true, false] {
                for isa in Isa::all() {
                    for threads in [1, 2] {
                        let mut panels = GatePanels::default();
                        panels.pack(&w_ih, c, &w_hh, h, &bias, fold);
                        let mut gates = vec![0f32; t_len * b * 4 * h];
                        if !fold {
                            for row in 0..t_len * b {
                                for r in 0..4 * h {
                                    let mut v = bias[r];
                                    for kk in 0..c {
                                        v += w_ih[r * c + kk] * x[row * c + kk];
                                    }
                                    gates[row * 4 * h + r] = v;
                                }
                            }
                        }
                        let mut hb = vec![0f32; (t_len + 2) * b * h];
                        let mut cb = vec![0f32; (t_len + 2) * b * h];
                        let init = steps.initial_slot(reverse) * b * h;
                        hb[init..init + b * h].copy_from_slice(h0);
                        cb[init..init + b * h].copy_from_slice(c0);
                        let mut tc = vec![0f32; t_len * b * h];
                        let bufs = PassBuffers {
                            gates: &mut gates,
                            h: &mut hb,
                            c: &mut cb,
                            tc: &mut tc,
                        };
                        let xs = if fold { &x[..] } else { &[][..] };
                        pass::<SigmoidAct, TanhAct>(
                            &steps, reverse, xs, &panels, bufs, true, threads, isa,
                        );
                        if want_h.is_empty() {
                            let net = Net {
                                w_ih: &w_ih,
                                c,
                                w_hh: &w_hh,
                                bias: &bias,
                                h,
                            };
                            (want_h, want_c) = reference(&steps, reverse, &x, &net, h0, c0);
                        }
                        for (i, (&got, &want)) in hb.iter().zip(&want_h).enumerate() {
                            assert!(
                                (got as f64 - want).abs() < 2e-5,
                                "h[{i}] {got} vs {want} (fold {fold}, {} tiles, threads {threads}, reverse {reverse})",
                                isa.name()
                            );
                        }
                        for (&got, &want) in cb.iter().zip(&want_c) {
                            assert!((got as f64 - want).abs() < 2e-5);
                        }
                        // The tape: o·state(c) is h, at every real step.
                        for t in 0..t_len {
                            let out = steps.slots(t, reverse).1;
                            for bi in (0..b).filter(|&bi| steps.real(bi, t)) {
                                for u in 0..h {
                                    let o = gates[(t * b + bi) * 4 * h + 3 * h + u];
                                    let sc = tc[(t * b + bi) * h + u];
                                    let hv = hb[(out * b + bi) * h + u];
                                    assert!((o * sc - hv).abs() < 1e-6);
                                }
                            }
                        }
                        if threads == 1 {
                            first_bits = Some(hb.clone());
                        } else {
                            assert_eq!(first_bits.as_ref(), Some(&hb), "threads change bits");
                        }
                    }
                }
            }
        }
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
        let w_ih = random(4 * h * c, 0.5, &mut rng);
        let mut w_hh = random(4 * h * h, 0.5, &mut rng);
        w_hh[5] = f32::NAN; // gate i, unit 0, from unit 5
        let bias = vec![0.1f32; 4 * h];
        for isa in Isa::all() {
            let mut panels = GatePanels::default();
            panels.pack(&w_ih, c, &w_hh, h, &bias, true);
            let mut hb = vec![0f32; (t_len + 2) * b * h];
            let mut cb = vec![0f32; (t_len + 2) * b * h];
            let bufs = PassBuffers {
                gates: &mut [],
                h: &mut hb,
                c: &mut cb,
                tc: &mut [],
            };
            pass::<SigmoidAct, TanhAct>(&steps, false, &x, &panels, bufs, false, 1, isa);
            for bi in 0..b {
                assert!(hb[(b + bi) * h].is_nan(), "row {bi}, {}", isa.name());
                assert!(hb[(b + bi) * h + 1].is_finite());
            }
        }
    }
}
