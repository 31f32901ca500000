//! `BatchNormalization`: MATLAB's `batchNormalizationLayer`, per channel, with
//! padded frames and steps excluded from the batch statistics.

use super::util::{check_shape, grad_or_zeros, no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Mode, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec, StateArray, StateSpec};
use crate::reduce::{SharedReducer, StatReducer};
use crate::torch::{TorchLayout, TorchParam};
use ndarray::{ArcArray, Array1, ArrayD, IxDyn};
use rayon::prelude::*;
use seqnet_kernels::fresh::fresh_rows;
use serde::{Deserialize, Serialize};

/// MATLAB's `batchNormalizationLayer`:
/// `y = Scale·(x − μ) / sqrt(σ² + Epsilon) + Offset`, per channel.
///
/// Input and output have the same shape and format: `S×S×C×B` (`[N, C, H, W]`,
/// statistics over `N, H, W`), `S×S×C×B×T` (`[T, B, C, H, W]`, over `T, B, H, W`),
/// `C×B` (`[N, C]`) or `C×B×T` (`[T, B, C]`, over `T, B`).
///
/// - [`Mode::Training`]: `μ`, `σ²` are the mini-batch's mean and biased variance,
///   and the running statistics are updated as MATLAB does:
///   `TrainedMean = (1 − MeanDecay)·TrainedMean + MeanDecay·μ` and
///   `TrainedVariance = (1 − VarianceDecay)·TrainedVariance + VarianceDecay·σ²·m/(m − 1)`,
///   with `m` the number of values per channel. The running variance takes the
///   *unbiased* batch variance, as MATLAB (and PyTorch's `running_var`) do; the
///   normalization itself uses the biased one.
/// - [`Mode::Inference`]: `μ = TrainedMean`, `σ² = TrainedVariance`.
///
/// **Masking.** When the activation carries sequence lengths (a sequence, or
/// folded frames whose frame `n` is step `n / B` of observation `n % B`), padded
/// steps are left out of the statistics, output zeros and get zero input
/// gradient (nor do they add to the `Scale`/`Offset` gradients), in both modes:
/// padding never changes a result.
///
/// Learnables: `Scale` `[C]` (ones), `Offset` `[C]` (zeros).
/// States: `TrainedMean` `[C]` (zeros), `TrainedVariance` `[C]` (ones).
/// PyTorch: `nn.BatchNorm1d` on `C×B×T` and `C×B`, `nn.BatchNorm2d` on images
/// (`weight`, `bias`, `running_mean`, `running_var`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchNormalization {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Added to the variance, default `1e-5`.
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Weight of the batch mean in the running mean update, default 0.1.
    #[serde(default = "default_decay")]
    pub mean_decay: f32,
    /// Weight of the batch variance in the running variance update, default 0.1.
    #[serde(default = "default_decay")]
    pub variance_decay: f32,
    /// Multiplies the global L2 regularization for `Scale` `[C]`; default 1 (MATLAB's).
    #[serde(default = "one")]
    pub scale_l2_factor: f32,
    /// Multiplies the global L2 regularization for `Offset` `[C]`; default 1 (MATLAB's).
    #[serde(default = "one")]
    pub offset_l2_factor: f32,
    /// Multiplies the global learning rate for `Scale`; default 1.
    #[serde(default = "one")]
    pub scale_learn_rate_factor: f32,
    /// Multiplies the global learning rate for `Offset`; default 1.
    #[serde(default = "one")]
    pub offset_learn_rate_factor: f32,
}

fn default_epsilon() -> f32 {
    1e-5
}
fn default_decay() -> f32 {
    0.1
}
fn one() -> f32 {
    1.0
}

named!(BatchNormalization);

impl Default for BatchNormalization {
    fn default() -> Self {
        BatchNormalization {
            name: String::new(),
            epsilon: default_epsilon(),
            mean_decay: default_decay(),
            variance_decay: default_decay(),
            scale_l2_factor: 1.0,
            offset_l2_factor: 1.0,
            scale_learn_rate_factor: 1.0,
            offset_learn_rate_factor: 1.0,
        }
    }
}

impl BatchNormalization {
    /// MATLAB's defaults: Epsilon 1e-5, decays 0.1, L2 and learn-rate factors 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// Added to the variance (positive).
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
        self
    }
    /// Weight of the batch mean in the `TrainedMean` `[C]` update, in `[0, 1]`.
    pub fn mean_decay(mut self, d: f32) -> Self {
        self.mean_decay = d;
        self
    }
    /// Weight of the batch variance in the `TrainedVariance` `[C]` update, in `[0, 1]`.
    pub fn variance_decay(mut self, d: f32) -> Self {
        self.variance_decay = d;
        self
    }
    /// L2 factor of `Scale` `[C]`.
    pub fn scale_l2_factor(mut self, f: f32) -> Self {
        self.scale_l2_factor = f;
        self
    }
    /// L2 factor of `Offset` `[C]`.
    pub fn offset_l2_factor(mut self, f: f32) -> Self {
        self.offset_l2_factor = f;
        self
    }
    /// Learning-rate factor of `Scale` `[C]`.
    pub fn scale_learn_rate_factor(mut self, f: f32) -> Self {
        self.scale_learn_rate_factor = f;
        self
    }
    /// Learning-rate factor of `Offset` `[C]`.
    pub fn offset_learn_rate_factor(mut self, f: f32) -> Self {
        self.offset_learn_rate_factor = f;
        self
    }
}

impl LayerDef for BatchNormalization {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Batch Normalization"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if x.format == Format::BatchSize {
            return Err(ShapeError::new(0, "cannot take the mini-batch size"));
        }
        if x.channels == 0 {
            return Err(ShapeError::new(0, "the input has no channels"));
        }
        if !(self.epsilon.is_finite() && self.epsilon > 0.0) {
            return Err(ShapeError::new(
                0,
                format!("Epsilon must be positive, got {}", self.epsilon),
            ));
        }
        for (what, d) in [
            ("MeanDecay", self.mean_decay),
            ("VarianceDecay", self.variance_decay),
        ] {
            if !(0.0..=1.0).contains(&d) {
                return Err(ShapeError::new(
                    0,
                    format!("{what} must be in [0, 1], got {d}"),
                ));
            }
        }
        Ok(vec![x])
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        vec![
            LearnableSpec::weights("Scale", vec![c], Initializer::Constant(1.0))
                .factors(self.scale_l2_factor, self.scale_learn_rate_factor),
            LearnableSpec::bias("Offset", vec![c], Initializer::Constant(0.0))
                .factors(self.offset_l2_factor, self.offset_learn_rate_factor),
        ]
    }
    fn states(&self, inputs: &[ActShape]) -> Vec<StateSpec> {
        let c = inputs.first().map(|s| s.channels).unwrap_or(0);
        vec![
            StateSpec::constant("TrainedMean", vec![c], 0.0),
            StateSpec::constant("TrainedVariance", vec![c], 1.0),
        ]
    }
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        let x = single(inputs).map_err(|e| Error::layer(&self.name, e.message))?;
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        Ok(Box::new(BatchNormKernel {
            name: self.name.clone(),
            in_shape: x,
            epsilon: self.epsilon as f64,
            mean_decay: self.mean_decay,
            variance_decay: self.variance_decay,
            scale: params.learnable("Scale")?,
            offset: params.learnable("Offset")?,
            mean: params.state("TrainedMean")?,
            variance: params.state("TrainedVariance")?,
            cache: None,
            reducer: None,
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout {
            // The keys of nn.BatchNorm1d (feature sequences) and nn.BatchNorm2d (images) are the same.
            module: "nn.BatchNorm1d / nn.BatchNorm2d",
            params: vec![
                TorchParam::one("Scale", "weight"),
                TorchParam::one("Offset", "bias"),
                TorchParam::one("TrainedMean", "running_mean"),
                TorchParam::one("TrainedVariance", "running_var"),
            ],
            ignored: vec!["num_batches_tracked"],
        })
    }
}

struct BatchNormKernel {
    name: String,
    in_shape: ActShape,
    epsilon: f64,
    mean_decay: f32,
    variance_decay: f32,
    scale: Learnable,
    offset: Learnable,
    mean: StateArray,
    variance: StateArray,
    cache: Option<Cache>,
    /// Data-parallel training: adds the statistics of every rank's share.
    reducer: Option<SharedReducer>,
}

/// What backward needs from its forward.
struct Cache {
    /// The input, standard layout, seen as `[N, C, S]`.
    x: ArcArray<f32, IxDyn>,
    /// `S` (spatial elements per channel, 1 without space).
    spatial: usize,
    /// Which of the `N` frames are real; `None` when none is padded.
    real: Option<Vec<bool>>,
    /// Real values per channel.
    count: usize,
    /// The mean used and `1 / sqrt(σ² + ε)`, per channel.
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    mode: Mode,
    /// The statistics were those of every rank's share (`count` is the
    /// global count): backward reduces its sums too.
    reduced: bool,
}

impl Cache {
    fn is_real(&self, n: usize) -> bool {
        self.real.as_ref().is_none_or(|r| r[n])
    }
}

/// Lanes of the f32 partial sums: wide enough for the compiler to keep them in
/// vector registers, few enough to stay accurate (a block is one channel of one
/// frame; the blocks' sums are added in f64).
const LANES: usize = 8;

/// `Σ v` of a block, in f32 lanes, returned as f64.
fn block_sum(v: &[f32]) -> f64 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().sum();
    for ch in chunks {
        let ch: &[f32; LANES] = ch.try_into().expect("chunks_exact");
        for l in 0..LANES {
            acc[l] += ch[l];
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest as f64
}

/// `Σ (v − m)²` of a block.
fn block_sq_dev(v: &[f32], m: f32) -> f64 {
    let mut acc = [0f32; LANES];
    let chunks = v.chunks_exact(LANES);
    let rest: f32 = chunks.remainder().iter().map(|x| (x - m) * (x - m)).sum();
    for ch in chunks {
        let ch: &[f32; LANES] = ch.try_into().expect("chunks_exact");
        for l in 0..LANES {
            let d = ch[l] - m;
            acc[l] += d * d;
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest as f64
}

/// `Σ g·(v − m)` of a block.
fn block_dot_dev(g: &[f32], v: &[f32], m: f32) -> f64 {
    let mut acc = [0f32; LANES];
    let (gc, vc) = (g.chunks_exact(LANES), v.chunks_exact(LANES));
    let rest: f32 = gc
        .remainder()
        .iter()
        .zip(vc.remainder())
        .map(|(a, b)| a * (b - m))
        .sum();
    for (g8, v8) in gc.zip(vc) {
        let g8: &[f32; LANES] = g8.try_into().expect("chunks_exact");
        let v8: &[f32; LANES] = v8.try_into().expect("chunks_exact");
        for l in 0..LANES {
            acc[l] += g8[l] * (v8[l] - m);
        }
    }
    acc.iter().map(|&a| a as f64).sum::<f64>() + rest as f64
}

/// `(Σ g, Σ g·(v − m))` of a block (two loops: the block is in L1 for the second).
fn block_grad_sums(g: &[f32], v: &[f32], m: f32) -> (f64, f64) {
    (block_sum(g), block_dot_dev(g, v, m))
}

/// Frames per parallel task when normalizing: at least 16 Ki values, so that
/// feature sequences (one value per channel and step) are not split into
/// thousands of tiny tasks.
fn min_frames_per_task(frame_len: usize) -> usize {
    (1 << 14) / frame_len.max(1) + 1
}

/// Rows per partial sum of [`row_stats`] and [`row_grad_sums`]: a constant,
/// so that the order of the additions (and so the result) does not depend on
/// the thread count.
const ROWS_PER_PART: usize = 256;

/// Real rows per f32 block of [`row_sums`]: a block's sums are taken in
/// f32 (a loop as wide as the vector registers), then added in f64.
const ROWS_PER_BLOCK: usize = 8;

/// Per-channel sums over the real rows of `[N, C]` data (rows `r` with
/// `is_real(r)`), in parts of [`ROWS_PER_PART`] rows added in order, each
/// the f64 sum of f32 blocks of [`ROWS_PER_BLOCK`] real rows: `add_row(r,
/// block)` adds row `r`'s terms into the block (`[C]` or `[2·C]` values).
fn row_sums(
    n: usize,
    width: usize,
    is_real: &(dyn Fn(usize) -> bool + Sync),
    add_row: impl Fn(usize, &mut [f32]) + Sync,
) -> Vec<f64> {
    let flush = |block: &mut [f32], acc: &mut [f64]| {
        acc.iter_mut()
            .zip(block.iter())
            .for_each(|(a, &v)| *a += v as f64);
        block.fill(0.0);
    };
    let parts: Vec<Vec<f64>> = (0..n.div_ceil(ROWS_PER_PART))
        .into_par_iter()
        .map(|p| {
            let mut acc = vec![0f64; width];
            let mut block = vec![0f32; width];
            let rows = p * ROWS_PER_PART..((p + 1) * ROWS_PER_PART).min(n);
            for (i, r) in rows.filter(|&r| is_real(r)).enumerate() {
                add_row(r, &mut block);
                if (i + 1) % ROWS_PER_BLOCK == 0 {
                    flush(&mut block, &mut acc);
                }
            }
            flush(&mut block, &mut acc);
            acc
        })
        .collect();
    let mut total = vec![0f64; width];
    for p in parts {
        total.iter_mut().zip(&p).for_each(|(t, v)| *t += v);
    }
    total
}

/// Mean and biased variance per channel of the real rows of feature data
/// `xs` (`[N, C]`, one value per channel and step; at least one real row).
fn row_stats(
    xs: &[f32],
    c: usize,
    is_real: &(dyn Fn(usize) -> bool + Sync),
) -> (Vec<f64>, Vec<f64>) {
    let n = xs.len() / c;
    let count = (0..n).filter(|&r| is_real(r)).count() as f64;
    let row = |r: usize| &xs[r * c..(r + 1) * c];
    let sum = row_sums(n, c, is_real, |r, acc| {
        acc.iter_mut().zip(row(r)).for_each(|(a, &v)| *a += v);
    });
    let mean: Vec<f64> = sum.iter().map(|s| s / count).collect();
    let m32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let sq = row_sums(n, c, is_real, |r, acc| {
        for ((a, &v), &m) in acc.iter_mut().zip(row(r)).zip(&m32) {
            let d = v - m;
            *a += d * d;
        }
    });
    (mean, sq.iter().map(|q| q / count).collect())
}

/// `(Σ dy, Σ dy·(x − μ))` per channel over the real rows of feature data.
fn row_grad_sums(
    dys: &[f32],
    xs: &[f32],
    c: usize,
    mean: &[f32],
    is_real: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<(f64, f64)> {
    let n = xs.len() / c;
    let sums = row_sums(n, 2 * c, is_real, |r, acc| {
        let (sg, sd) = acc.split_at_mut(c);
        let (g, x) = (&dys[r * c..(r + 1) * c], &xs[r * c..(r + 1) * c]);
        for ci in 0..c {
            sg[ci] += g[ci];
            sd[ci] += g[ci] * (x[ci] - mean[ci]);
        }
    });
    (0..c).map(|ci| (sums[ci], sums[c + ci])).collect()
}

impl BatchNormKernel {
    /// Checks that learnables and statistics are still `[C]` (they are public and mutable).
    fn check_sizes(&self) -> Result<()> {
        let c = self.in_shape.channels;
        let arrays = [
            (self.scale.name, &self.scale.value),
            (self.offset.name, &self.offset.value),
            (self.mean.name, &self.mean.value),
            (self.variance.name, &self.variance.value),
        ];
        for (name, v) in arrays {
            if v.shape() != [c] {
                return Err(Error::Learnable {
                    layer: self.name.clone(),
                    learnable: name.into(),
                    message: format!("expects shape [{c}], has {:?}", v.shape()),
                });
            }
        }
        Ok(())
    }
}

impl BatchNormKernel {
    /// Which of the input's `frames` frames (or steps) are real; `None` when none is padded.
    fn real_frames(&self, x: &Activation, frames: usize) -> Result<Option<Vec<bool>>> {
        match &x.lengths {
            Some(l) if !l.is_full() => {
                let b = l.lengths.len();
                if b * l.time != frames {
                    return Err(Error::layer(
                        &self.name,
                        format!("the input's sequence lengths ({b} sequences of {} steps) do not fit its {frames} frames", l.time),
                    ));
                }
                Ok(Some(l.real_rows()))
            }
            _ => Ok(None),
        }
    }

    /// The mean and variance to normalize with, per channel: the real
    /// values' (training, updating the running statistics) or the running
    /// ones (inference). `xs` is `[N, C, S]`; `count` real values per channel.
    fn statistics(
        &mut self,
        mode: Mode,
        xs: &[f32],
        (c, spatial): (usize, usize),
        is_real: &(dyn Fn(usize) -> bool + Sync),
        count: usize,
    ) -> (Vec<f64>, Vec<f64>) {
        let frames = xs.len() / (c * spatial).max(1);
        let block = |n: usize, ci: usize| &xs[(n * c + ci) * spatial..(n * c + ci + 1) * spatial];
        let (mean, var): (Vec<f64>, Vec<f64>) = match mode {
            Mode::Training if count > 0 && spatial == 1 => row_stats(xs, c, is_real),
            Mode::Training if count > 0 => (0..c)
                .into_par_iter()
                .map(|ci| {
                    let s: f64 = (0..frames)
                        .filter(|&n| is_real(n))
                        .map(|n| block_sum(block(n, ci)))
                        .sum();
                    let m = s / count as f64;
                    let q: f64 = (0..frames)
                        .filter(|&n| is_real(n))
                        .map(|n| block_sq_dev(block(n, ci), m as f32))
                        .sum();
                    (m, q / count as f64)
                })
                .unzip(),
            // Nothing real to take statistics of: any normalization will do.
            Mode::Training => (vec![0.0; c], vec![1.0; c]),
            Mode::Inference => (
                self.mean.value.iter().map(|&v| v as f64).collect(),
                self.variance.value.iter().map(|&v| v as f64).collect(),
            ),
        };
        if mode == Mode::Training && count > 0 {
            self.update_running(&mean, &var, count);
        }
        (mean, var)
    }

    /// Moves the running statistics towards the batch `mean` and `var`
    /// (biased; taken over `count` ≥ 1 values per channel).
    fn update_running(&mut self, mean: &[f64], var: &[f64], count: usize) {
        let correction = if count > 1 {
            count as f64 / (count - 1) as f64
        } else {
            1.0
        };
        let (md, vd) = (self.mean_decay as f64, self.variance_decay as f64);
        for (r, &m) in self.mean.value.iter_mut().zip(mean) {
            *r = ((1.0 - md) * *r as f64 + md * m) as f32;
        }
        for (r, &v) in self.variance.value.iter_mut().zip(var) {
            *r = ((1.0 - vd) * *r as f64 + vd * v * correction) as f32;
        }
    }
}

/// Per-channel `(scale γ, inverse standard deviation, mean, offset β)` of a normalization.
struct Affine<'a> {
    gamma: &'a [f32],
    inv_std: &'a [f32],
    mean: &'a [f32],
    beta: &'a [f32],
}

/// `y = γ·inv·(x − μ) + β` at the real frames of `xs` (`[N, C, S]`), 0 at the others.
fn normalize(
    xs: &[f32],
    (c, spatial): (usize, usize),
    is_real: &(dyn Fn(usize) -> bool + Sync),
    f: &Affine,
) -> Vec<f32> {
    let frame = c * spatial;
    if frame == 0 {
        return Vec::new();
    }
    // Each output frame written once (no zeroing pass before).
    let frames = xs.len() / frame;
    fresh_rows(frames, frame, min_frames_per_task(frame), |first, ys| {
        for (i, yn) in ys.chunks_exact_mut(frame).enumerate() {
            let n = first + i;
            let xn = &xs[n * frame..(n + 1) * frame];
            if !is_real(n) {
                yn.fill(0.0);
                continue;
            }
            if spatial == 1 {
                // Feature rows: one value per channel, a loop the compiler vectorizes.
                let coeffs = f.gamma.iter().zip(f.inv_std).zip(f.mean).zip(f.beta);
                for ((yv, &xv), (((&g, &inv), &m), &b)) in yn.iter_mut().zip(xn).zip(coeffs) {
                    *yv = g * inv * (xv - m) + b;
                }
                continue;
            }
            for ci in 0..c {
                let (a, m, b) = (f.gamma[ci] * f.inv_std[ci], f.mean[ci], f.beta[ci]);
                let r = ci * spatial..(ci + 1) * spatial;
                for (yv, &xv) in yn[r.clone()].iter_mut().zip(&xn[r]) {
                    *yv = a * (xv - m) + b;
                }
            }
        }
    })
}

/// Per channel `(Σ dy, Σ dy·(x − μ))` over the real values of `[N, C, S]` data.
fn grad_sums(
    dys: &[f32],
    xs: &[f32],
    (c, s): (usize, usize),
    mean: &[f32],
    is_real: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<(f64, f64)> {
    if s == 1 {
        return row_grad_sums(dys, xs, c, mean, is_real);
    }
    let frames = xs.len() / (c * s).max(1);
    let at = |n: usize, ci: usize| (n * c + ci) * s..(n * c + ci + 1) * s;
    (0..c)
        .into_par_iter()
        .map(|ci| {
            (0..frames)
                .filter(|&n| is_real(n))
                .fold((0.0, 0.0), |(a, b), n| {
                    let (p, q) = block_grad_sums(&dys[at(n, ci)], &xs[at(n, ci)], mean[ci]);
                    (a + p, b + q)
                })
        })
        .collect()
}

/// `dx = a·(dy − k0 − (x − μ)·k1)` per channel at the real frames of
/// `[N, C, S]` data, 0 at the others; `coeffs` holds `(a, k0, k1)` per channel.
fn input_grad(
    dys: &[f32],
    xs: &[f32],
    (c, s): (usize, usize),
    is_real: &(dyn Fn(usize) -> bool + Sync),
    coeffs: &[(f32, f32, f32)],
    mean: &[f32],
) -> Vec<f32> {
    let (ca, ck0, ck1): (Vec<f32>, Vec<f32>, Vec<f32>) = (
        coeffs.iter().map(|c| c.0).collect(),
        coeffs.iter().map(|c| c.1).collect(),
        coeffs.iter().map(|c| c.2).collect(),
    );
    let frame = c * s;
    if frame == 0 {
        return Vec::new();
    }
    // Each frame of `dx` written once (no zeroing pass before).
    let frames = xs.len() / frame;
    fresh_rows(frames, frame, min_frames_per_task(frame), |first, dxs| {
        for (i, dxn) in dxs.chunks_exact_mut(frame).enumerate() {
            let n = first + i;
            let (dyn_, xn) = (
                &dys[n * frame..(n + 1) * frame],
                &xs[n * frame..(n + 1) * frame],
            );
            if !is_real(n) {
                dxn.fill(0.0);
                continue;
            }
            if s == 1 {
                // Feature rows: one value per channel, a loop the compiler vectorizes.
                let per_channel = ca.iter().zip(&ck0).zip(&ck1).zip(mean);
                let values = dxn.iter_mut().zip(dyn_).zip(xn);
                for (((d, &g), &v), (((&a, &k0), &k1), &m)) in values.zip(per_channel) {
                    *d = a * (g - k0 - (v - m) * k1);
                }
                continue;
            }
            let blocks = dxn
                .chunks_exact_mut(s)
                .zip(dyn_.chunks_exact(s))
                .zip(xn.chunks_exact(s));
            for ((((dxb, dyb), xb), &(a, k0, k1)), &m) in blocks.zip(coeffs).zip(mean) {
                for ((d, &g), &v) in dxb.iter_mut().zip(dyb).zip(xb) {
                    *d = a * (g - k0 - (v - m) * k1);
                }
            }
        }
    })
}

impl LayerKernel for BatchNormKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        check_shape(&self.name, "in", x, &self.in_shape)?;
        self.check_sizes()?;
        let data = if x.data.is_standard_layout() {
            x.data.clone()
        } else {
            x.data.as_standard_layout().into_owned().into_shared()
        };
        let c = self.in_shape.channels;
        let spatial = if self.in_shape.format.is_spatial() {
            self.in_shape.spatial[0] * self.in_shape.spatial[1]
        } else {
            1
        };
        let frames = data.len() / (c * spatial);
        let real = self.real_frames(x, frames)?;
        let real_frames = real
            .as_ref()
            .map_or(frames, |r| r.iter().filter(|&&v| v).count());
        let count = real_frames * spatial;
        let xs = data.as_slice().expect("standard layout");
        let is_real = |n: usize| real.as_ref().is_none_or(|r| r[n]);
        let reducer = self.reducer.clone().filter(|_| ctx.mode == Mode::Training);
        let (mean, var, count) = match &reducer {
            Some(r) => self.reduced_statistics(r.as_ref(), xs, (c, spatial), &is_real, count),
            None => {
                let (mean, var) = self.statistics(ctx.mode, xs, (c, spatial), &is_real, count);
                (mean, var, count)
            }
        };
        let inv_std: Vec<f32> = var
            .iter()
            .map(|&v| (1.0 / (v + self.epsilon).sqrt()) as f32)
            .collect();
        let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let gamma = self.scale.value.as_standard_layout();
        let beta = self.offset.value.as_standard_layout();
        let affine = Affine {
            gamma: gamma.as_slice().expect("standard layout"),
            inv_std: &inv_std,
            mean: &mean,
            beta: beta.as_slice().expect("standard layout"),
        };
        let y = normalize(xs, (c, spatial), &is_real, &affine);
        let y = ArrayD::from_shape_vec(data.shape(), y).expect("same shape");
        self.cache = Some(Cache {
            x: data,
            spatial,
            real,
            count,
            mean,
            inv_std,
            mode: ctx.mode,
            reduced: reducer.is_some(),
        });
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        self.check_sizes()?;
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let dy = grad_or_zeros(&mut grads, cache.x.shape());
        if dy.shape() != cache.x.shape() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {:?}",
                    dy.shape(),
                    cache.x.shape()
                ),
            ));
        }
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let xs = cache.x.as_slice().expect("standard layout");
        let (c, s) = (self.in_shape.channels, cache.spatial);
        let is_real = |n: usize| cache.is_real(n);
        let mut sums = grad_sums(dys, xs, (c, s), &cache.mean, &is_real);
        let gamma = self.scale.value.as_standard_layout();
        let gamma = gamma.as_slice().expect("standard layout");
        // dOffset = Σ dy, dScale = Σ dy·x̂ with x̂ = (x − μ)·inv.
        self.offset.grad = Array1::from_iter(sums.iter().map(|&(a, _)| a as f32)).into_dyn();
        self.scale.grad = Array1::from_iter(
            sums.iter()
                .zip(&cache.inv_std)
                .map(|(&(_, b), &inv)| (b * inv as f64) as f32),
        )
        .into_dyn();
        // The learnables' gradients stay this share's (the solver's gradient
        // sum adds them across ranks); dx needs the global mini-batch's sums.
        if let (true, Some(r)) = (cache.reduced, &self.reducer) {
            sums = reduce_pairs(r.as_ref(), &sums);
        }
        // Training: dx = γ·inv·(dy − Σdy/m − x̂·Σ(dy·x̂)/m); inference: dx = γ·inv·dy.
        let coeffs: Vec<(f32, f32, f32)> = (0..c)
            .map(|ci| {
                let inv = cache.inv_std[ci] as f64;
                let a = gamma[ci] as f64 * inv;
                match cache.mode {
                    Mode::Training if cache.count > 0 => {
                        let m = cache.count as f64;
                        let (sdy, sdx) = sums[ci];
                        (a as f32, (sdy / m) as f32, (sdx * inv * inv / m) as f32)
                    }
                    _ => (a as f32, 0.0, 0.0),
                }
            })
            .collect();
        let dx = input_grad(dys, xs, (c, s), &is_real, &coeffs, &cache.mean);
        Ok(vec![Some(
            ArrayD::from_shape_vec(cache.x.shape(), dx).expect("same shape"),
        )])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.scale, &self.offset]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.scale, &mut self.offset]
    }
    fn states(&self) -> Vec<&StateArray> {
        vec![&self.mean, &self.variance]
    }
    fn states_mut(&mut self) -> Vec<&mut StateArray> {
        vec![&mut self.mean, &mut self.variance]
    }
    fn set_stat_reducer(&mut self, reducer: Option<SharedReducer>) {
        self.reducer = reducer;
    }
}

// Data-parallel training: the statistics of the global mini-batch, from
// every rank's sums over its share (as PyTorch's SyncBatchNorm).

/// Per channel `Σ x` over the real values of `[N, C, S]` data.
fn channel_sums(
    xs: &[f32],
    (c, s): (usize, usize),
    is_real: &(dyn Fn(usize) -> bool + Sync),
) -> Vec<f64> {
    let frames = xs.len() / (c * s).max(1);
    if s == 1 {
        return row_sums(frames, c, is_real, |r, acc| {
            let row = &xs[r * c..(r + 1) * c];
            acc.iter_mut().zip(row).for_each(|(a, &v)| *a += v);
        });
    }
    let block = |n: usize, ci: usize| &xs[(n * c + ci) * s..(n * c + ci + 1) * s];
    (0..c)
        .into_par_iter()
        .map(|ci| {
            (0..frames)
                .filter(|&n| is_real(n))
                .map(|n| block_sum(block(n, ci)))
                .sum()
        })
        .collect()
}

/// Per channel `Σ (x − mean)²` over the real values of `[N, C, S]` data.
fn channel_sq_devs(
    xs: &[f32],
    (c, s): (usize, usize),
    is_real: &(dyn Fn(usize) -> bool + Sync),
    mean: &[f32],
) -> Vec<f64> {
    let frames = xs.len() / (c * s).max(1);
    if s == 1 {
        return row_sums(frames, c, is_real, |r, acc| {
            let row = &xs[r * c..(r + 1) * c];
            for ((a, &v), &m) in acc.iter_mut().zip(row).zip(mean) {
                let d = v - m;
                *a += d * d;
            }
        });
    }
    let block = |n: usize, ci: usize| &xs[(n * c + ci) * s..(n * c + ci + 1) * s];
    (0..c)
        .into_par_iter()
        .map(|ci| {
            (0..frames)
                .filter(|&n| is_real(n))
                .map(|n| block_sq_dev(block(n, ci), mean[ci]))
                .sum()
        })
        .collect()
}

/// Per channel `(a, b)` pairs summed across ranks.
fn reduce_pairs(reducer: &dyn StatReducer, pairs: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let mut flat: Vec<f64> = pairs.iter().flat_map(|&(a, b)| [a, b]).collect();
    reducer.sum(&mut flat);
    flat.chunks_exact(2).map(|p| (p[0], p[1])).collect()
}

impl BatchNormKernel {
    /// Training statistics of the global mini-batch: this share's sums and
    /// `count` added across ranks (two reductions, both made on every rank
    /// whatever its share holds). Returns the mean, the biased variance and
    /// the global count of real values per channel; updates the running
    /// statistics as one process would on the whole mini-batch.
    fn reduced_statistics(
        &mut self,
        reducer: &dyn StatReducer,
        xs: &[f32],
        (c, spatial): (usize, usize),
        is_real: &(dyn Fn(usize) -> bool + Sync),
        count: usize,
    ) -> (Vec<f64>, Vec<f64>, usize) {
        let mut sums = channel_sums(xs, (c, spatial), is_real);
        sums.push(count as f64);
        reducer.sum(&mut sums);
        let total = sums.pop().unwrap_or(0.0).round() as usize;
        if total == 0 {
            // Nothing real on any rank: any normalization will do.
            return (vec![0.0; c], vec![1.0; c], 0);
        }
        let mean: Vec<f64> = sums.iter().map(|s| s / total as f64).collect();
        let m32: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
        let mut sq = channel_sq_devs(xs, (c, spatial), is_real, &m32);
        reducer.sum(&mut sq);
        let var: Vec<f64> = sq.iter().map(|q| q / total as f64).collect();
        self.update_running(&mean, &var, total);
        (mean, var, total)
    }
}
