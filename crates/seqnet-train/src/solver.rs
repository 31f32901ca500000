//! The update rules: L2 regularization, gradient clipping, then sgdm, adam or rmsprop.

use crate::options::{GradientThresholdMethod, Solver, TrainingOptions};
use ndarray::{ArrayD, Zip};
use seqnet_core::Learnable;

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
pub fn step(
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
        state.second = params
            .iter()
            .map(|p| ArrayD::zeros(p.value.raw_dim()))
            .collect();
        state.steps = 0;
    }
    state.steps += 1;
    let eps = options.epsilon;
    match options.solver {
        Solver::Sgdm => {
            let mu = options.momentum;
            for (p, v) in params.iter_mut().zip(&mut state.first) {
                let a = lr * p.learn_rate_factor;
                Zip::from(&mut p.value)
                    .and(v)
                    .and(&p.grad)
                    .for_each(|w, v, &g| {
                        *v = mu * *v - a * g;
                        *w += *v;
                    });
            }
        }
        Solver::Adam => {
            let (b1, b2) = (options.gradient_decay_factor, options.squared_decay());
            let t = state.steps as i32;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            for ((p, m), v) in params
                .iter_mut()
                .zip(&mut state.first)
                .zip(&mut state.second)
            {
                let a = lr * p.learn_rate_factor;
                let Learnable { value, grad, .. } = &mut **p;
                let slices = (
                    value.as_slice_mut(),
                    m.as_slice_mut(),
                    v.as_slice_mut(),
                    grad.as_slice(),
                );
                if let (Some(w), Some(m), Some(v), Some(g)) = slices {
                    adam_fused(
                        w,
                        m,
                        v,
                        g,
                        AdamStep {
                            b1,
                            b2,
                            c1,
                            c2,
                            a,
                            eps,
                        },
                    );
                    continue;
                }
                Zip::from(value)
                    .and(m)
                    .and(v)
                    .and(&*grad)
                    .for_each(|w, m, v, &g| {
                        *m = b1 * *m + (1.0 - b1) * g;
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= a * (*m / c1) / ((*v / c2).sqrt() + eps);
                    });
            }
        }
        Solver::Rmsprop => {
            let b2 = options.squared_decay();
            for (p, v) in params.iter_mut().zip(&mut state.second) {
                let a = lr * p.learn_rate_factor;
                Zip::from(&mut p.value)
                    .and(v)
                    .and(&p.grad)
                    .for_each(|w, v, &g| {
                        *v = b2 * *v + (1.0 - b2) * g * g;
                        *w -= a * g / (v.sqrt() + eps);
                    });
            }
        }
    }
}

/// The constants of one adam update.
#[derive(Debug, Clone, Copy)]
struct AdamStep {
    b1: f32,
    b2: f32,
    c1: f32,
    c2: f32,
    a: f32,
    eps: f32,
}

/// One adam update on contiguous slices: the same formula as the generic path
/// in one pass over memory, split over rayon's threads for large learnables
/// (the video network's 9.2M input weights: the update is bound by memory
/// bandwidth, which two cores share better than one uses).
fn adam_fused(w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32], k: AdamStep) {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    let body = |w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]| {
        for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            *m = k.b1 * *m + (1.0 - k.b1) * g;
            *v = k.b2 * *v + (1.0 - k.b2) * g * g;
            *w -= k.a * (*m / k.c1) / ((*v / k.c2).sqrt() + k.eps);
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
}
