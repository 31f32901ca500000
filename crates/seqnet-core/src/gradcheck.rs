//! Finite-difference gradient checks for a single layer, used by seqnet's own
//! tests and useful for anyone writing a layer.
//!
//! The scalar checked is `L = Σ_ports Σ y·G` for fixed random `G` (or the layer's
//! own loss for output layers). Central differences in f32 with step `h` are
//! compared against the analytic gradient for the inputs and every learnable.

use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::layer::{ForwardCtx, LayerKernel, Mode};
use crate::layers::Layer;
use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Settings of a gradient check.
#[derive(Debug, Clone, Copy)]
pub struct GradCheck {
    /// Finite-difference step.
    pub step: f32,
    /// Pass when `|analytic − numeric| ≤ tolerance · max(1, |numeric|)`.
    pub tolerance: f32,
    /// At most this many elements of each array are probed (spread at random).
    pub probes: usize,
    pub mode: Mode,
    pub seed: u64,
}

impl Default for GradCheck {
    fn default() -> Self {
        GradCheck {
            step: 1e-2,
            tolerance: 1e-2,
            probes: 40,
            mode: Mode::Training,
            seed: 7,
        }
    }
}

/// The worst disagreement found, for a report.
#[derive(Debug, Clone)]
pub struct GradReport {
    /// `(what, index, analytic, numeric)` of every probe.
    pub probes: Vec<(String, usize, f32, f32)>,
}

impl GradReport {
    /// The probes that fail the tolerance.
    pub fn failures(&self, tolerance: f32) -> Vec<&(String, usize, f32, f32)> {
        self.probes
            .iter()
            .filter(|(_, _, a, n)| (a - n).abs() > tolerance * n.abs().max(1.0))
            .collect()
    }
}

fn loss_of(
    kernel: &mut dyn LayerKernel,
    inputs: &[Activation],
    target: Option<&Activation>,
    upstream: &[ArrayD<f32>],
    cfg: &GradCheck,
) -> Result<f64> {
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let refs: Vec<&Activation> = inputs.iter().collect();
    let mut ctx = ForwardCtx {
        mode: cfg.mode,
        stateful: false,
        rng: &mut rng,
        target,
    };
    let outs = kernel.forward(&refs, &mut ctx)?;
    if let Some(l) = kernel.loss() {
        return Ok(l as f64);
    }
    Ok(outs
        .iter()
        .zip(upstream)
        .map(|(o, g)| {
            o.data
                .iter()
                .zip(g.iter())
                .map(|(a, b)| (*a as f64) * (*b as f64))
                .sum::<f64>()
        })
        .sum())
}

/// Checks `layer`'s gradients at `inputs` (shapes as inferred by the graph).
/// `target` is for output layers. Learnables are initialized from `cfg.seed`.
pub fn check_layer(
    layer: &Layer,
    inputs: Vec<Activation>,
    target: Option<Activation>,
    cfg: GradCheck,
) -> Result<GradReport> {
    let shapes: Vec<_> = inputs.iter().map(|a| a.shape()).collect();
    layer
        .def()
        .infer(&shapes)
        .map_err(|e| Error::layer(layer.name(), e.message))?;
    let mut rng = StdRng::seed_from_u64(cfg.seed ^ 0xabc);
    let mut kernel = crate::layer::build_kernel(layer.def(), &shapes, &mut rng)?;
    // Perturb learnables away from special values (zeros, ones) so every path is exercised.
    for p in kernel.learnables_mut() {
        p.value.mapv_inplace(|v| v + rng.random_range(-0.3..0.3));
    }
    // One forward to learn the output shapes, then fix the upstream gradients.
    let refs: Vec<&Activation> = inputs.iter().collect();
    let mut frng = StdRng::seed_from_u64(cfg.seed);
    let outs = kernel.forward(
        &refs,
        &mut ForwardCtx {
            mode: cfg.mode,
            stateful: false,
            rng: &mut frng,
            target: target.as_ref(),
        },
    )?;
    let upstream: Vec<ArrayD<f32>> = outs
        .iter()
        .map(|o| ArrayD::from_shape_simple_fn(o.data.shape(), || rng.random_range(-1.0..1.0)))
        .collect();
    let analytic_in = kernel.backward(upstream.iter().map(|g| Some(g.clone())).collect())?;
    let analytic_params: Vec<ArrayD<f32>> =
        kernel.learnables().iter().map(|p| p.grad.clone()).collect();

    let mut probes = Vec::new();
    let h = cfg.step;
    for (k, x) in inputs.iter().enumerate() {
        let Some(Some(ga)) = analytic_in.get(k) else {
            continue;
        };
        for idx in pick(x.data.len(), cfg.probes, &mut rng) {
            let mut plus = inputs.clone();
            let mut minus = inputs.clone();
            plus[k] = bump(x, idx, h);
            minus[k] = bump(x, idx, -h);
            let lp = loss_of(kernel.as_mut(), &plus, target.as_ref(), &upstream, &cfg)?;
            let lm = loss_of(kernel.as_mut(), &minus, target.as_ref(), &upstream, &cfg)?;
            let numeric = ((lp - lm) / (2.0 * h as f64)) as f32;
            probes.push((
                format!("input {k}"),
                idx,
                ga.as_slice_memory_order()
                    .map(|s| s[idx])
                    .unwrap_or(f32::NAN),
                numeric,
            ));
        }
    }
    for (pi, ga) in analytic_params.iter().enumerate() {
        let name = kernel.learnables()[pi].name;
        for idx in pick(ga.len(), cfg.probes, &mut rng) {
            let orig = kernel.learnables()[pi]
                .value
                .as_slice_memory_order()
                .expect("contiguous")[idx];
            let set = |k: &mut dyn LayerKernel, v: f32| {
                k.learnables_mut()[pi]
                    .value
                    .as_slice_memory_order_mut()
                    .expect("contiguous")[idx] = v;
            };
            set(kernel.as_mut(), orig + h);
            let lp = loss_of(kernel.as_mut(), &inputs, target.as_ref(), &upstream, &cfg)?;
            set(kernel.as_mut(), orig - h);
            let lm = loss_of(kernel.as_mut(), &inputs, target.as_ref(), &upstream, &cfg)?;
            set(kernel.as_mut(), orig);
            let numeric = ((lp - lm) / (2.0 * h as f64)) as f32;
            probes.push((
                name.to_string(),
                idx,
                ga.as_slice_memory_order().expect("contiguous")[idx],
                numeric,
            ));
        }
    }
    Ok(GradReport { probes })
}

fn pick(len: usize, n: usize, rng: &mut StdRng) -> Vec<usize> {
    if len <= n {
        (0..len).collect()
    } else {
        (0..n).map(|_| rng.random_range(0..len)).collect()
    }
}

fn bump(x: &Activation, idx: usize, h: f32) -> Activation {
    let mut d = x.data.as_standard_layout().into_owned();
    d.as_slice_memory_order_mut().expect("standard layout")[idx] += h;
    x.like(d)
}
