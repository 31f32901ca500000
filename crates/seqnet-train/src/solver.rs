//! The update rules: L2 regularization, gradient clipping, then sgdm, adam or rmsprop.

use crate::options::{GradientThresholdMethod, Solver, TrainingOptions};
use ndarray::{ArrayD, Zip};
use seqnet_core::Learnable;
use std::ops::Range;

/// A solver's per-learnable state (velocities and moment estimates), in the
/// order of `Network::learnables`.
#[derive(Debug, Clone, Default)]
pub struct SolverState {
    /// sgdm: velocity; adam: first moment. Empty until the first step.
    pub first: Vec<ArrayD<f32>>,
    /// adam, rmsprop: second moment.
    pub second: Vec<ArrayD<f32>>,
    /// Updates taken (adam's bias correction).
    pub steps: u64,
}

/// Adds `λ·factor·w` to each gradient (MATLAB's `L2Regularization`).
pub fn add_l2(params: &mut [&mut Learnable], lambda: f32) {
    if lambda == 0.0 {
        return;
    }
    for p in params.iter_mut() {
        let k = lambda * p.l2_factor;
        if k != 0.0 {
            Zip::from(&mut p.grad)
                .and(&p.value)
                .for_each(|g, &w| *g += k * w);
        }
    }
}

/// Clips gradients to `threshold` by `method`.
pub fn clip(params: &mut [&mut Learnable], threshold: f32, method: GradientThresholdMethod) {
    let norm = |g: &ArrayD<f32>| {
        g.iter()
            .map(|v| (*v as f64) * (*v as f64))
            .sum::<f64>()
            .sqrt()
    };
    match method {
        GradientThresholdMethod::L2norm => {
            for p in params.iter_mut() {
                let n = norm(&p.grad);
                if n > threshold as f64 {
                    p.grad *= (threshold as f64 / n) as f32;
                }
            }
        }
        GradientThresholdMethod::GlobalL2norm => {
            let n = params
                .iter()
                .map(|p| norm(&p.grad).powi(2))
                .sum::<f64>()
                .sqrt();
            if n > threshold as f64 {
                let s = (threshold as f64 / n) as f32;
                params.iter_mut().for_each(|p| p.grad *= s);
            }
        }
        GradientThresholdMethod::AbsoluteValue => {
            params
                .iter_mut()
                .for_each(|p| p.grad.mapv_inplace(|g| g.clamp(-threshold, threshold)));
        }
    }
}

/// One solver step with learning rate `lr`: regularize, clip, update.
///
/// The result is that of [`add_l2`], then [`clip`], then the solver's
/// formula, but in at most two passes over each learnable's memory (one for
/// the gradient norms clipping needs, one for the update), split over rayon's
/// threads for large learnables: the update is bound by memory bandwidth, and
/// for the video network's 9.2M input weights the three separate passes took
/// a fifth of a training epoch. Gradients are left as the backward pass wrote
/// them.
pub fn step(
    params: &mut [&mut Learnable],
    state: &mut SolverState,
    options: &TrainingOptions,
    lr: f32,
) {
    let whole = vec![None; params.len()];
    step_parts(params, state, options, lr, &whole, &mut |_| {});
}

/// [`step`] on parts of the learnables only: the sharded solver of
/// data-parallel training, where each rank updates its part of each large
/// learnable (and of its solver state) and the ranks then exchange the
/// updated weights.
///
/// `parts[i]`: the elements of learnable `i` (in standard-layout order) to
/// update, `None` for all of them; only those elements of its gradient
/// need to hold the (summed) gradient, and only those of its weights and
/// solver state change. Clipping needs the norms of whole gradients:
/// `sum_parts` receives the squared norms of the parts (one per `Some`
/// part, in order) and must replace each by its sum over all the parts of
/// that learnable (over the ranks); it is called once, and only when a
/// gradient threshold by norm is set.
pub fn step_parts(
    params: &mut [&mut Learnable],
    state: &mut SolverState,
    options: &TrainingOptions,
    lr: f32,
    parts: &[Option<Range<usize>>],
    sum_parts: &mut dyn FnMut(&mut [f64]),
) {
    let prepare = gradient_preparation(params, options, parts, sum_parts);
    if state.first.len() != params.len() {
        state.first = params
            .iter()
            .map(|p| ArrayD::zeros(p.value.raw_dim()))
            .collect();
        state.second = params
            .iter()
            .map(|p| ArrayD::zeros(p.value.raw_dim()))
            .collect();
        state.steps = 0;
    }
    state.steps += 1;
    let eps = options.epsilon;
    let (b1, b2) = (options.gradient_decay_factor, options.squared_decay());
    let t = state.steps as i32;
    let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
    let mu = options.momentum;
    let solver = options.solver;
    for ((((p, m), v), prep), part) in params
        .iter_mut()
        .zip(&mut state.first)
        .zip(&mut state.second)
        .zip(prepare)
        .zip(parts)
    {
        let a = lr * p.learn_rate_factor;
        let Learnable { value, grad, .. } = &mut **p;
        if !value.is_standard_layout() {
            *value = value.as_standard_layout().into_owned().into();
        }
        let grad = grad.as_standard_layout();
        let (Some(w), Some(m), Some(v), Some(g)) = (
            value.as_slice_mut(),
            m.as_slice_mut(),
            v.as_slice_mut(),
            grad.as_slice(),
        ) else {
            unreachable!("standard-layout arrays have slices")
        };
        let (w, m, v, g) = match part.clone() {
            Some(r) => (
                &mut w[r.clone()],
                &mut m[r.clone()],
                &mut v[r.clone()],
                &g[r],
            ),
            None => (w, m, v, g),
        };
        match solver {
            Solver::Sgdm => update_chunks(w, m, v, g, |w, m, _, g| {
                let g = prep.apply(g, *w);
                *m = mu * *m - a * g;
                *w += *m;
            }),
            Solver::Adam => update_chunks(w, m, v, g, |w, m, v, g| {
                let g = prep.apply(g, *w);
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= a * (*m / c1) / ((*v / c2).sqrt() + eps);
            }),
            Solver::Rmsprop => update_chunks(w, m, v, g, |w, _, v, g| {
                let g = prep.apply(g, *w);
                *v = b2 * *v + (1.0 - b2) * g * g;
                *w -= a * g / (v.sqrt() + eps);
            }),
        }
    }
}

/// What happens to one learnable's gradient `g` (weight `w`) before the
/// update: `g ← clamp(s·(g + k·w))`, the effect of [`add_l2`] (`k`) and then
/// [`clip`] (`s`, or the clamp of `AbsoluteValue`), in the same f32
/// operations and order.
#[derive(Debug, Clone, Copy)]
struct Preparation {
    l2: f32,
    scale: f32,
    clamp: Option<f32>,
}

impl Preparation {
    #[inline(always)]
    fn apply(self, g: f32, w: f32) -> f32 {
        let g = (g + self.l2 * w) * self.scale;
        match self.clamp {
            Some(t) => g.clamp(-t, t),
            None => g,
        }
    }
}

/// Each learnable's [`Preparation`] under `options`: its L2 factor, and the
/// clipping scale from the norms of the regularized gradients.
/// With `parts` (see [`step_parts`]), the norms come from the parts'
/// squared norms, summed by `sum_parts`.
fn gradient_preparation(
    params: &[&mut Learnable],
    options: &TrainingOptions,
    parts: &[Option<Range<usize>>],
    sum_parts: &mut dyn FnMut(&mut [f64]),
) -> Vec<Preparation> {
    let mut prep: Vec<Preparation> = params
        .iter()
        .map(|p| Preparation {
            l2: options.l2_regularization * p.l2_factor,
            scale: 1.0,
            clamp: None,
        })
        .collect();
    let Some(threshold) = options.gradient_threshold else {
        return prep;
    };
    let method = options.gradient_threshold_method;
    if method == GradientThresholdMethod::AbsoluteValue {
        prep.iter_mut().for_each(|p| p.clamp = Some(threshold));
        return prep;
    }
    let squared = |p: &Learnable, k: f32, part: &Option<Range<usize>>| {
        let grad = p.grad.as_standard_layout();
        let value = p.value.as_standard_layout();
        match (grad.as_slice(), value.as_slice(), part.clone()) {
            (Some(g), Some(w), None) => squared_norm(g, w, k),
            (Some(g), Some(w), Some(r)) => squared_norm(&g[r.clone()], &w[r], k),
            _ => unreachable!("standard-layout arrays have slices"),
        }
    };
    let mut squares: Vec<f64> = (params.iter().zip(&prep).zip(parts))
        .map(|((p, prep), part)| squared(p, prep.l2, part))
        .collect();
    let mut partial: Vec<f64> = (squares.iter().zip(parts))
        .filter(|(_, part)| part.is_some())
        .map(|(s, _)| *s)
        .collect();
    if !partial.is_empty() {
        sum_parts(&mut partial);
        let sharded = squares.iter_mut().zip(parts).filter(|(_, p)| p.is_some());
        sharded.zip(partial).for_each(|((s, _), sum)| *s = sum);
    }
    match method {
        GradientThresholdMethod::L2norm => {
            for (s, prep) in squares.iter().zip(&mut prep) {
                let n = s.sqrt();
                if n > threshold as f64 {
                    prep.scale = (threshold as f64 / n) as f32;
                }
            }
        }
        GradientThresholdMethod::GlobalL2norm => {
            let n = squares.iter().map(|s| s.sqrt().powi(2)).sum::<f64>().sqrt();
            if n > threshold as f64 {
                let s = (threshold as f64 / n) as f32;
                prep.iter_mut().for_each(|p| p.scale = s);
            }
        }
        GradientThresholdMethod::AbsoluteValue => {}
    }
    prep
}

/// Elements per piece of work when a pass over a learnable is split over threads.
const CHUNK: usize = 1 << 16;

/// f64 partial sums [`squared_norm`] keeps apart: one serial chain of f64
/// additions waits 4 cycles per element (a fifth of the video epoch's solver
/// time went there); eight independent lanes vectorize and leave the pass
/// bound by memory.
const NORM_LANES: usize = 8;

/// `Σ (g + k·w)²` in f64 (the regularized gradient rounded to f32 first, as
/// [`add_l2`] stores it), over rayon's threads for large learnables. Summed
/// in [`NORM_LANES`] interleaved partial sums per chunk: the order is fixed
/// by the lengths alone, so the result does not depend on the thread count.
fn squared_norm(g: &[f32], w: &[f32], k: f32) -> f64 {
    use rayon::prelude::*;
    let square = |g: f32, w: f32| {
        let v = (g + k * w) as f64;
        v * v
    };
    let body = |g: &[f32], w: &[f32]| {
        let (gc, wc) = (g.chunks_exact(NORM_LANES), w.chunks_exact(NORM_LANES));
        let tail: f64 = (gc.remainder().iter().zip(wc.remainder()))
            .map(|(&g, &w)| square(g, w))
            .sum();
        let mut lanes = [0f64; NORM_LANES];
        for (g, w) in gc.zip(wc) {
            for ((l, &g), &w) in lanes.iter_mut().zip(g).zip(w) {
                *l += square(g, w);
            }
        }
        lanes.iter().sum::<f64>() + tail
    };
    if g.len() < 4 * CHUNK {
        return body(g, w);
    }
    g.par_chunks(CHUNK)
        .zip(w.par_chunks(CHUNK))
        .map(|(g, w)| body(g, w))
        .sum()
}

/// Runs `f(w, m, v, g)` on every element of equally long slices (weights,
/// first and second solver state, gradient), split over rayon's threads for
/// large learnables.
fn update_chunks<F>(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], f: F)
where
    F: Fn(&mut f32, &mut f32, &mut f32, f32) + Sync,
{
    use rayon::prelude::*;
    let body = |w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            f(w, m, v, g);
        }
    };
    if w.len() < 4 * CHUNK {
        body(w, m, v, g);
        return;
    }
    w.par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(g.par_chunks(CHUNK))
        .for_each(|(((w, m), v), g)| body(w, m, v, g));
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::arr1;

    fn param(w: f32, g: f32) -> Learnable {
        let mut p = Learnable::weights("W", arr1(&[w]).into_dyn());
        p.grad = arr1(&[g]).into_dyn();
        p
    }

    /// Hand-computed updates of each solver (no L2, no clipping).
    #[test]
    fn solver_updates_match_their_formulas() {
        let o = TrainingOptions::new(Solver::Sgdm).l2_regularization(0.0);
        let mut p = param(1.0, 0.5);
        let mut st = SolverState::default();
        step(&mut [&mut p], &mut st, &o, 0.1);
        assert!((p.value[0] - 0.95).abs() < 1e-7);
        p.grad[0] = 0.5;
        step(&mut [&mut p], &mut st, &o, 0.1); // v = 0.9·(−0.05) − 0.05 = −0.095
        assert!((p.value[0] - 0.855).abs() < 1e-6);

        let o = TrainingOptions::new(Solver::Adam).l2_regularization(0.0);
        let mut p = param(1.0, 0.5);
        let mut st = SolverState::default();
        step(&mut [&mut p], &mut st, &o, 0.1); // first adam step moves by lr·sign(g)
        assert!((p.value[0] - 0.9).abs() < 1e-6, "{}", p.value[0]);

        let o = TrainingOptions::new(Solver::Rmsprop).l2_regularization(0.0);
        let mut p = param(1.0, 0.5);
        let mut st = SolverState::default();
        step(&mut [&mut p], &mut st, &o, 0.1); // v = 0.1·0.25; step = 0.1·0.5/sqrt(0.025)
        let want = 1.0 - 0.1 * 0.5 / 0.025f32.sqrt();
        assert!((p.value[0] - want).abs() < 1e-5);
    }

    #[test]
    fn l2_skips_biases_and_clipping_methods_differ() {
        let mut w = param(2.0, 0.0);
        let mut b = Learnable::bias("Bias", arr1(&[2.0]).into_dyn());
        add_l2(&mut [&mut w, &mut b], 0.1);
        assert_eq!((w.grad[0], b.grad[0]), (0.2, 0.0));

        let mk = || {
            (
                Learnable {
                    grad: arr1(&[3.0, 4.0]).into_dyn(),
                    ..Learnable::weights("A", arr1(&[0.0, 0.0]).into_dyn())
                },
                Learnable {
                    grad: arr1(&[0.0, 1.0]).into_dyn(),
                    ..Learnable::weights("B", arr1(&[0.0, 0.0]).into_dyn())
                },
            )
        };
        let (mut a, mut b) = mk();
        clip(&mut [&mut a, &mut b], 1.0, GradientThresholdMethod::L2norm);
        assert_eq!(
            (
                a.grad.iter().copied().collect::<Vec<f32>>(),
                b.grad.iter().copied().collect::<Vec<f32>>()
            ),
            (vec![0.6, 0.8], vec![0.0, 1.0])
        );
        let (mut a, mut b) = mk();
        clip(
            &mut [&mut a, &mut b],
            1.0,
            GradientThresholdMethod::GlobalL2norm,
        );
        let n = 26f32.sqrt();
        assert!((a.grad[0] - 3.0 / n).abs() < 1e-6 && (b.grad[1] - 1.0 / n).abs() < 1e-6);
        let (mut a, mut b) = mk();
        clip(
            &mut [&mut a, &mut b],
            1.0,
            GradientThresholdMethod::AbsoluteValue,
        );
        assert_eq!(a.grad.iter().copied().collect::<Vec<f32>>(), vec![1.0, 1.0]);
        let _ = b;
    }

    /// The separate passes the fused step replaces: L2, clipping, then each
    /// solver's formula as MATLAB documents it.
    fn reference_step(
        params: &mut [&mut Learnable],
        state: &mut SolverState,
        options: &TrainingOptions,
        lr: f32,
    ) {
        add_l2(params, options.l2_regularization);
        if let Some(t) = options.gradient_threshold {
            clip(params, t, options.gradient_threshold_method);
        }
        if state.first.len() != params.len() {
            state.first = params
                .iter()
                .map(|p| ArrayD::zeros(p.value.raw_dim()))
                .collect();
            state.second = state.first.clone();
        }
        state.steps += 1;
        let (b1, b2, eps) = (
            options.gradient_decay_factor,
            options.squared_decay(),
            options.epsilon,
        );
        let t = state.steps as i32;
        let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
        for ((p, m), v) in params
            .iter_mut()
            .zip(&mut state.first)
            .zip(&mut state.second)
        {
            let a = lr * p.learn_rate_factor;
            let Learnable { value, grad, .. } = &mut **p;
            Zip::from(value)
                .and(m)
                .and(v)
                .and(&*grad)
                .for_each(|w, m, v, &g| match options.solver {
                    Solver::Sgdm => {
                        *m = options.momentum * *m - a * g;
                        *w += *m;
                    }
                    Solver::Adam => {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= a * (*m / c1) / ((*v / c2).sqrt() + eps);
                    }
                    Solver::Rmsprop => {
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= a * g / (v.sqrt() + eps);
                    }
                });
        }
    }

    /// The fused step gives the separate passes' weights to the last bit, for
    /// every solver and clipping method, with L2 factors and learning-rate
    /// factors, on a learnable large enough to be split over threads, a
    /// transposed (non-standard layout) one and a small one, over three steps.
    #[test]
    fn fused_step_equals_the_separate_passes() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let mut random = |shape: &[usize], scale: f32| {
            ArrayD::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
        };
        let methods = [
            None,
            Some(GradientThresholdMethod::L2norm),
            Some(GradientThresholdMethod::GlobalL2norm),
            Some(GradientThresholdMethod::AbsoluteValue),
        ];
        for solver in [Solver::Sgdm, Solver::Adam, Solver::Rmsprop] {
            for method in methods {
                let mut options = TrainingOptions::new(solver).l2_regularization(1e-2);
                if let Some(m) = method {
                    options = options.gradient_threshold(0.5).gradient_threshold_method(m);
                }
                let mut big = Learnable::weights("Big", random(&[700, 600], 1.0));
                big.l2_factor = 2.0;
                let mut wide = Learnable::weights("Wide", random(&[30, 20], 1.0));
                wide.value = wide.value.t().to_owned().into_shared();
                wide.learn_rate_factor = 0.5;
                let small = Learnable::bias("Bias", random(&[7], 1.0));
                let mut fused = [big, wide, small];
                let mut reference = fused.clone();
                let (mut sf, mut sr) = (SolverState::default(), SolverState::default());
                for _ in 0..3 {
                    for (f, r) in fused.iter_mut().zip(&mut reference) {
                        let g = random(f.value.shape(), 0.3);
                        f.grad = g.clone();
                        r.grad = g;
                    }
                    let mut pf: Vec<&mut Learnable> = fused.iter_mut().collect();
                    step(&mut pf, &mut sf, &options, 0.01);
                    let mut pr: Vec<&mut Learnable> = reference.iter_mut().collect();
                    reference_step(&mut pr, &mut sr, &options, 0.01);
                }
                for (f, r) in fused.iter().zip(&reference) {
                    assert_eq!(f.value, r.value, "{solver:?} {method:?} {}", f.name);
                }
            }
        }
    }
}
