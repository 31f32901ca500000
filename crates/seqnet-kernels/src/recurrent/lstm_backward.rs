//! The LSTM's backward pass through time, one direction: from the gates and
//! cell states its forward kept, the gradient for every step's gate
//! pre-activations, walking the steps backwards. Two threads split the
//! observations (rows) as the forward pass does and never meet before the
//! pass ends: each computes its rows' `dh_prev = dG·R` over every unit (the
//! weight gradients are whole-sequence products the caller makes afterwards).

use super::Steps;
use crate::act::{with_acts, Act, Acts};
use crate::cpu::Isa;
use crate::packed::{gemm_packed_on, PackedPanels};
use crate::shared::SharedMut;
use crate::threads::{row_threads, share};

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

/// One direction's backward through time. Writes the gradient for the gate
/// pre-activations, from which the caller makes the weight and input
/// gradients, into `dg`, a buffer kept by the caller: resized to
/// `[T·B, 4H]` and every value overwritten (zero at padded steps), so a
/// buffer reused between backwards is neither cleared nor faulted in anew
/// (`[T·B, 4H]` is 6.5 MB for the `lstm-train-step` workload). Also writes
/// the bias gradient `db` `[4H]`, the column sums of `dg`, summed by the
/// threads as they go (each observation's steps in the pass's order, then
/// the observations in order: the same bits on one thread or two), so that
/// no pass over `dg` follows on one thread.
///
/// * `steps`, `reverse`: as the forward ran ([`super::lstm_forward()`]).
/// * `w_hh`: the direction's recurrent weights `R`, `[4H, H]` row-major.
/// * `trace`: what the forward kept (`tape` on).
/// * `grad`: the output's gradient and this direction's columns `offset..offset + H`.
///
/// Two threads share the rows when a step's product is large enough
/// ([`back_threads`]); each row's gradients are the same bits on one thread
/// or two.
///
/// # Panics
/// When a slice is shorter than the sizes say, `offset + H > S`, `steps`
/// has not one span per observation (checked before any thread starts), or
/// `db` holds fewer than `4H` values.
#[allow(clippy::too_many_arguments)]
pub fn lstm_backward_into(
    acts: Acts,
    steps: &Steps,
    reverse: bool,
    w_hh: &[f32],
    h: usize,
    trace: LstmTrace,
    grad: OutputGrad,
    dg: &mut Vec<f32>,
    db: &mut [f32],
) {
    steps.check();
    let (t, b) = (steps.t, steps.b);
    assert!(w_hh.len() >= 4 * h * h, "lstm_backward: w_hh");
    assert!(trace.gates.len() >= t * b * 4 * h, "lstm_backward: gates");
    assert!(trace.c.len() >= (t + 2) * b * h, "lstm_backward: c");
    assert!(trace.tc.len() >= t * b * h, "lstm_backward: tc");
    assert!(grad.offset + h <= grad.width, "lstm_backward: columns");
    assert!(grad.dy.len() >= t * b * grad.width, "lstm_backward: dy");
    assert!(db.len() >= 4 * h, "lstm_backward: db");
    let threads = back_threads(b, h);
    dg.resize(t * b * 4 * h, 0.0);
    with_acts!(
        acts,
        pass_back(
            steps,
            reverse,
            w_hh,
            h,
            trace,
            grad,
            threads,
            Isa::best(),
            dg,
            &mut db[..4 * h]
        )
    )
}

/// How many threads share one direction's backward: as for the forward
/// ([`row_threads`] of a step's `[B, 4H]·[4H, H]` product), but one below
/// 2^21 multiply-adds per step. (Japanese Vowels' 27×400·400×100, 1M, gave
/// `vowels-epoch` medians 1.3× slower on two threads than on one at load 7,
/// equal minima: the pass is too short to pay for the hand-over.)
fn back_threads(b: usize, h: usize) -> usize {
    let macs = b * 4 * h * h;
    if macs >= 1 << 21 {
        row_threads(b, macs)
    } else {
        1
    }
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
    /// The observation's running sums of `dg` over its steps (in and out).
    sums: &'a mut [f32],
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
    let (si, rest) = x.sums.split_at_mut(n);
    let (sf, rest) = rest.split_at_mut(n);
    let (sg, so) = rest.split_at_mut(n);
    let (sg, so) = (&mut sg[..n], &mut so[..n]);
    for j in 0..n {
        let dh = dhn[j] + dyr[j];
        let dcv = dcr[j] + dh * go[j] * S::df(tc[j]);
        d_o[j] = dh * tc[j] * G::df(go[j]);
        di[j] = dcv * gg[j] * G::df(gi[j]);
        df[j] = dcv * cp[j] * G::df(gf[j]);
        dgg[j] = dcv * gi[j] * S::df(gg[j]);
        dcr[j] = dcv * gf[j];
        si[j] += di[j];
        sf[j] += df[j];
        sg[j] += dgg[j];
        so[j] += d_o[j];
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

/// [`lstm_backward_into`] on `threads` threads with the loops of `isa`.
///
/// The rows (observations) are shared between the threads, interleaved as
/// in the forward pass ([`share`]); each thread walks the steps backwards
/// for its rows alone, its `dh_prev = dG_t·R` over every unit (the packed
/// `R`, read by both threads), so the threads never meet before the pass
/// ends: no barrier per step, and a thread the host deschedules holds up
/// nobody but itself until the end.
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
    dg: &mut [f32],
    db: &mut [f32],
) {
    let (t_len, b) = (steps.t, steps.b);
    let g4 = 4 * h;
    assert!(dg.len() >= t_len * b * g4, "lstm_backward: dg");
    assert!(db.len() == g4, "lstm_backward: db");
    // Each observation's sum of its gate gradients over the steps, `[B, 4H]`.
    let mut row_sums = vec![0f32; b * g4];
    let active = steps.active_rows();
    // `R` `[4H, H]` packed once for every step of both threads.
    let pack = use_packing(t_len, b).then(|| {
        let mut p = PackedPanels::default();
        p.pack_row_major(w_hh, g4, h);
        p
    });
    let cx = BackCtx {
        steps,
        reverse,
        w_hh,
        h,
        dir,
        grad,
        pack: pack.as_ref(),
        active: &active,
        dg: SharedMut(dg.as_mut_ptr()),
        row_sums: SharedMut(row_sums.as_mut_ptr()),
        isa,
    };
    let parts = threads.clamp(1, b.max(1));
    if parts == 1 {
        back_rows::<G, S>(&cx, 0, 1);
    } else {
        share(parts, |part| back_rows::<G, S>(&cx, part, parts));
    }
    db.fill(0.0);
    for r in row_sums.chunks_exact(g4) {
        for (d, v) in db.iter_mut().zip(r) {
            *d += v;
        }
    }
}

/// What every thread of a backward pass reads; `dg` (`[T·B, 4H]`) is written
/// at the rows a thread owns, every row at every step (zeros at padded ones).
struct BackCtx<'a> {
    steps: &'a Steps,
    reverse: bool,
    w_hh: &'a [f32],
    h: usize,
    dir: LstmTrace<'a>,
    grad: OutputGrad<'a>,
    /// `R` packed, when the pass is long enough to pay for packing.
    pack: Option<&'a PackedPanels>,
    /// Per step, one past the last row with a real step ([`Steps::active_rows`]).
    active: &'a [usize],
    dg: SharedMut,
    /// `[B, 4H]`: each row's sum of its gate gradients, written once by the
    /// row's thread when its pass ends.
    row_sums: SharedMut,
    isa: Isa,
}

/// The backward pass for rows `part, part + parts, …` (see [`pass_back`]).
fn back_rows<G: Act, S: Act>(cx: &BackCtx, part: usize, parts: usize) {
    let (steps, h) = (cx.steps, cx.h);
    let (b, g4) = (steps.b, 4 * h);
    let (dy, s, offset) = (cx.grad.dy, cx.grad.width, cx.grad.offset);
    let mine: Vec<usize> = (part..b).step_by(parts).collect();
    let n = mine.len();
    let ldc = cx.pack.map_or(h, |p| p.padded_cols());
    // This step's gate gradients of the thread's rows, `[n, 4H]` (zero at
    // padded rows), then their product by `R`.
    let mut dg_t = vec![0f32; n * g4];
    let mut prod = vec![0f32; n * ldc];
    // Gradients for the hidden and cell state after the step being
    // processed, `[n, H]`, and the part of `dh` passed through unchanged.
    let mut dh_next = vec![0f32; n * h];
    let mut dh_carry = vec![0f32; n * h];
    let mut dc = vec![0f32; n * h];
    let mut sums = vec![0f32; n * g4];
    for k in (0..steps.t).rev() {
        let t = steps.step(k, cx.reverse);
        let (prev, _) = steps.slots(t, cx.reverse);
        for (j, &bi) in mine.iter().enumerate() {
            let rj = j * h..(j + 1) * h;
            let dgj = &mut dg_t[j * g4..(j + 1) * g4];
            if !steps.real(bi, t) {
                // The state passes through unchanged: so does its gradient.
                dh_carry[rj.clone()].copy_from_slice(&dh_next[rj]);
                dgj.fill(0.0);
                // SAFETY: as for the real rows' copy below.
                unsafe { cx.dg.at_mut((t * b + bi) * g4, g4) }.fill(0.0);
                continue;
            }
            dh_carry[rj.clone()].fill(0.0);
            let row = t * b + bi;
            let g = &cx.dir.gates[row * g4..(row + 1) * g4];
            let (di, rest) = dgj.split_at_mut(h);
            let (df, rest) = rest.split_at_mut(h);
            let (dgg, d_o) = rest.split_at_mut(h);
            cell_back::<G, S>(
                CellBack {
                    gates: [&g[..h], &g[h..2 * h], &g[2 * h..3 * h], &g[3 * h..]],
                    c_prev: &cx.dir.c[(prev * b + bi) * h..][..h],
                    tc: &cx.dir.tc[row * h..][..h],
                    dy: &dy[row * s + offset..][..h],
                    dh_next: &dh_next[rj.clone()],
                    dc: &mut dc[rj],
                    dg: [di, df, dgg, d_o],
                    sums: &mut sums[j * g4..(j + 1) * g4],
                },
                cx.isa,
            );
            // SAFETY: `dg` holds `[T·B, 4H]` and `row < T·B`; row `bi` is
            // this thread's alone, and nobody reads `dg` before the pass ends.
            unsafe { cx.dg.at_mut(row * g4, g4) }.copy_from_slice(dgj);
        }
        // dh_prev = carried part + dG_t·R, for the rows up to the step's
        // last real one (a padded row's zero `dG` adds zero).
        let m = mine.iter().take_while(|&&bi| bi < cx.active[t]).count();
        match cx.pack {
            Some(pack) => gemm_packed_on(cx.isa, &dg_t, g4, m, pack, &mut prod, ldc),
            None => plain_product(&dg_t[..m * g4], cx.w_hh, h, &mut prod),
        }
        for j in 0..n {
            let rj = j * h..(j + 1) * h;
            if j < m {
                for ((d, c), p) in dh_next[rj.clone()]
                    .iter_mut()
                    .zip(&dh_carry[rj])
                    .zip(&prod[j * ldc..j * ldc + h])
                {
                    *d = c + p;
                }
            } else {
                dh_next[rj.clone()].copy_from_slice(&dh_carry[rj]);
            }
        }
    }
    for (j, &bi) in mine.iter().enumerate() {
        // SAFETY: `row_sums` holds `[B, 4H]` and `bi < B`; row `bi` is this
        // thread's alone, read only after the pass ends.
        unsafe { cx.row_sums.at_mut(bi * g4, g4) }.copy_from_slice(&sums[j * g4..(j + 1) * g4]);
    }
}

/// `out = dG·R` row by row for short passes (no packing): `dg` `[m, 4H]`,
/// `R` `[4H, H]`, `out` `[m, H]`; the same sums in the same order as
/// [`gemm_packed_on`].
fn plain_product(dg: &[f32], w_hh: &[f32], h: usize, out: &mut [f32]) {
    for (dgr, o) in dg.chunks_exact(4 * h).zip(out.chunks_exact_mut(h)) {
        o.fill(0.0);
        for (kk, &g) in dgr.iter().enumerate() {
            for (ov, &w) in o.iter_mut().zip(&w_hh[kk * h..(kk + 1) * h]) {
                *ov = g.mul_add(w, *ov);
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

    fn random(n: usize, lo: f32, hi: f32, rng: &mut StdRng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(lo..hi)).collect()
    }

    /// The gate gradients `[T·B, 4H]` in f64, straight from the LSTM's
    /// backward equations (sigmoid gates, `tanh` state).
    fn reference(
        steps: &Steps,
        reverse: bool,
        w_hh: &[f32],
        h: usize,
        tr: &LstmTrace,
        gr: &OutputGrad,
    ) -> Vec<f64> {
        let (t_len, b, g4) = (steps.t, steps.b, 4 * h);
        let mut dg = vec![0f64; t_len * b * g4];
        let mut dh_next = vec![0f64; b * h];
        let mut dc = vec![0f64; b * h];
        for k in (0..t_len).rev() {
            let t = steps.step(k, reverse);
            let prev = steps.slots(t, reverse).0;
            for bi in (0..b).filter(|&bi| steps.real(bi, t)) {
                let row = t * b + bi;
                for u in 0..h {
                    let q = |j: usize| tr.gates[row * g4 + j * h + u] as f64;
                    let (i, f, g, o) = (q(0), q(1), q(2), q(3));
                    let tc = tr.tc[row * h + u] as f64;
                    let cp = tr.c[(prev * b + bi) * h + u] as f64;
                    let dh = dh_next[bi * h + u] + gr.dy[row * gr.width + gr.offset + u] as f64;
                    let dcv = dc[bi * h + u] + dh * o * (1.0 - tc * tc);
                    let d = &mut dg[row * g4..];
                    d[u] = dcv * g * i * (1.0 - i);
                    d[h + u] = dcv * cp * f * (1.0 - f);
                    d[2 * h + u] = dcv * i * (1.0 - g * g);
                    d[3 * h + u] = dh * tc * o * (1.0 - o);
                    dc[bi * h + u] = dcv * f;
                }
            }
            // dh_prev = dh (padded rows: passed through) + dG·R (zero there).
            for bi in 0..b {
                let row = t * b + bi;
                let real = steps.real(bi, t);
                for u in 0..h {
                    let mut v = if real { 0.0 } else { dh_next[bi * h + u] };
                    for kk in 0..g4 {
                        v += dg[row * g4 + kk] * w_hh[kk * h + u] as f64;
                    }
                    dh_next[bi * h + u] = v;
                }
            }
        }
        dg
    }

    /// The backward against the equations for both product paths (packed
    /// `R`, and the plain loop of short passes), both instruction sets, one
    /// or two threads (the same bits), forward and reverse, padding at both
    /// ends, a hidden size that is not a multiple of 16 and an output
    /// gradient with this direction's columns in the middle.
    #[test]
    fn backward_matches_the_equations() {
        let mut rng = StdRng::seed_from_u64(11);
        for (t_len, b, h) in [(7usize, 11usize, 21usize), (2, 3, 5), (5, 9, 16)] {
            let spans: Vec<std::ops::Range<usize>> = (0..b)
                .map(|i| match i % 4 {
                    0 => 0..t_len,
                    1 => 0..t_len.div_ceil(2),
                    2 => 1..t_len,
                    _ => t_len - 1..t_len,
                })
                .collect();
            let steps = Steps::new(t_len, spans);
            let g4 = 4 * h;
            let gates = random(t_len * b * g4, 0.05, 0.95, &mut rng);
            let c = random((t_len + 2) * b * h, -1.5, 1.5, &mut rng);
            let tc = random(t_len * b * h, -0.9, 0.9, &mut rng);
            let (width, offset) = (3 * h, h);
            let dy = random(t_len * b * width, -1.0, 1.0, &mut rng);
            let w_hh = random(g4 * h, -0.3, 0.3, &mut rng);
            let tr = LstmTrace {
                gates: &gates,
                c: &c,
                tc: &tc,
            };
            let gr = OutputGrad {
                dy: &dy,
                width,
                offset,
            };
            for reverse in [false, true] {
                let want = reference(&steps, reverse, &w_hh, h, &tr, &gr);
                for isa in Isa::all() {
                    // Into buffers holding garbage (a reused buffer): every
                    // value, padded steps' zeros included, must be written.
                    let pass = |threads, garbage| {
                        let mut dg = vec![garbage; t_len * b * g4];
                        let mut db = vec![garbage; g4];
                        pass_back::<SigmoidAct, TanhAct>(
                            &steps, reverse, &w_hh, h, tr, gr, threads, isa, &mut dg, &mut db,
                        );
                        (dg, db)
                    };
                    let one = pass(1, f32::NAN);
                    for (i, (&got, &w)) in one.0.iter().zip(&want).enumerate() {
                        assert!(
                            (got as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "dg[{i}] {got} vs {w} (T {t_len}, B {b}, H {h}, reverse {reverse}, {})",
                            isa.name()
                        );
                    }
                    // The bias gradient: the reference's column sums.
                    for (q, &got) in one.1.iter().enumerate() {
                        let w: f64 = want.chunks_exact(g4).map(|r| r[q]).sum();
                        assert!(
                            (got as f64 - w).abs() < 1e-4 * (1.0 + w.abs()),
                            "db[{q}] {got} vs {w} (T {t_len}, B {b}, H {h}, reverse {reverse})"
                        );
                    }
                    let two = pass(2, 7.0);
                    assert_eq!(one, two, "threads change bits");
                }
            }
        }
    }
}
