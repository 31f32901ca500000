//! `LayerNormalization`: MATLAB's `layerNormalizationLayer`, over the
//! channels of each time step.

use super::util::{grad_or_zeros, no_forward, single, LastOutputs};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::{TorchLayout, TorchParam};
use ndarray::{ArcArray, ArrayD, IxDyn};
use rayon::prelude::*;
use seqnet_kernels::norm::{layer_norm_row, layer_norm_row_backward, RowStats};
use serde::{Deserialize, Serialize};

/// MATLAB's `layerNormalizationLayer`: each time step's channels normalized,
/// `y = Scale ⊙ (x − mean)/sqrt(var + Epsilon) + Offset`, with the mean and
/// the biased variance over the `C` channels of that step alone.
///
/// Input and output `C×B×T` (`[T, B, C]`) or `C×B` (`[B, C]`). MATLAB's
/// `OperationDimension` `"auto"` normalizes sequences over their channels, as
/// here (and as PyTorch's `nn.LayerNorm(C)`); the other settings are not offered.
///
/// **Masking.** Steps are independent, so padding cannot change a real step;
/// padded steps output 0 and get no gradient.
///
/// Learnables: `Scale` `[C]` (ones), `Offset` `[C]` (zeros).
/// PyTorch: `nn.LayerNorm` (`weight` → `Scale`, `bias` → `Offset`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LayerNormalization {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Added to the variance, default `1e-5`.
    #[serde(default = "default_epsilon")]
    pub epsilon: f32,
    /// Multiplies the global L2 regularization for `Scale`; default 1 (MATLAB's).
    #[serde(default = "one")]
    pub scale_l2_factor: f32,
    /// Multiplies the global L2 regularization for `Offset`; default 1 (MATLAB's).
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
fn one() -> f32 {
    1.0
}

named!(LayerNormalization);

impl Default for LayerNormalization {
    fn default() -> Self {
        LayerNormalization {
            name: String::new(),
            epsilon: default_epsilon(),
            scale_l2_factor: 1.0,
            offset_l2_factor: 1.0,
            scale_learn_rate_factor: 1.0,
            offset_learn_rate_factor: 1.0,
        }
    }
}

impl LayerNormalization {
    /// MATLAB's defaults: Epsilon 1e-5, L2 and learn-rate factors 1.
    pub fn new() -> Self {
        Self::default()
    }
    /// Added to the variance (positive).
    pub fn epsilon(mut self, e: f32) -> Self {
        self.epsilon = e;
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

impl LayerDef for LayerNormalization {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Layer Normalization"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if !matches!(x.format, Format::CB | Format::CBT) {
            return Err(ShapeError::new(
                0,
                format!("expects features or feature sequences (C×B or C×B×T), got {x}"),
            ));
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
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        let x = self
            .infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?[0];
        Ok(Box::new(LayerNormKernel {
            name: self.name.clone(),
            channels: x.channels,
            epsilon: self.epsilon as f64,
            scale: params.learnable("Scale")?,
            offset: params.learnable("Offset")?,
            cache: None,
            last_output: LastOutputs::default(),
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout {
            module: "nn.LayerNorm",
            params: vec![
                TorchParam::one("Scale", "weight"),
                TorchParam::one("Offset", "bias").optional(),
            ],
            ignored: Vec::new(),
        })
    }
}

struct LayerNormKernel {
    name: String,
    channels: usize,
    epsilon: f64,
    scale: Learnable,
    offset: Learnable,
    cache: Option<Cache>,
    /// The last two outputs (shared): their allocations are reused by
    /// the next forward once nothing else holds them.
    last_output: LastOutputs,
}

struct Cache {
    /// The input, `[rows, C]` in standard layout (shared with the network's
    /// values, not copied): backward recomputes `xhat` from it.
    x: ArcArray<f32, IxDyn>,
    /// Each row's mean and `1/sqrt(var + eps)` (defaults at padded rows).
    stats: Vec<RowStats>,
    /// Whether each row (`t·B + b`) is a real step.
    real: Vec<bool>,
}

/// Rows per job of the backward: enough work to pay for the hand-off; the
/// partial learnable gradients are added in job order (deterministic).
const BACKWARD_ROWS: usize = 64;

/// Whether each row of `x` (`[B, C]`: every one; `[T, B, C]`: row `t·B + b`)
/// is a real step.
pub(crate) fn real_rows(x: &Activation) -> Vec<bool> {
    match &x.lengths {
        Some(l) if x.format == Format::CBT => l.real_rows(),
        _ => vec![true; x.data.len() / x.data.shape().last().copied().unwrap_or(1).max(1)],
    }
}

impl LayerKernel for LayerNormKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let c = self.channels;
        if !matches!(x.format, Format::CB | Format::CBT) || x.data.shape().last() != Some(&c) {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects {c} channels per step, got shape {:?}",
                    x.data.shape()
                ),
            ));
        }
        let real = real_rows(x);
        let xd = if x.data.is_standard_layout() {
            x.data.clone()
        } else {
            x.data.as_standard_layout().into_owned().into_shared()
        };
        let xs = xd.as_slice().expect("standard layout");
        let (scale, offset) = (self.scale.value.to_owned(), self.offset.value.to_owned());
        let (scale, offset) = (
            scale.as_slice().expect("1-D"),
            offset.as_slice().expect("1-D"),
        );
        // The last output's allocation: every row is written (padded rows 0).
        let mut y = self.last_output.buffer(xs.len());
        let mut stats = vec![RowStats::default(); real.len()];
        // Rows in parallel, in runs long enough to pay for the hand-off.
        y.par_chunks_mut(c)
            .zip(stats.par_iter_mut())
            .enumerate()
            .with_min_len(256)
            .for_each(|(r, (y, st))| {
                if real[r] {
                    *st = layer_norm_row(&xs[r * c..(r + 1) * c], scale, offset, self.epsilon, y);
                } else {
                    y.fill(0.0);
                }
            });
        let y = ArrayD::from_shape_vec(xd.shape(), y)
            .expect("output size")
            .into_shared();
        self.last_output.keep(&y);
        self.cache = Some(Cache { x: xd, stats, real });
        Ok(vec![Activation {
            data: y,
            format: x.format,
            lengths: x.lengths.clone(),
        }])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let c = self.channels;
        let shape = cache.x.shape();
        let dy = grad_or_zeros(&mut grads, shape);
        if dy.shape() != shape {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {:?}",
                    dy.shape(),
                    shape
                ),
            ));
        }
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let xs = cache.x.as_slice().expect("standard layout");
        let scale = self.scale.value.to_owned();
        let scale = scale.as_slice().expect("1-D");
        let mut dx = vec![0f32; dys.len()];
        // Jobs of rows in parallel, each with its partial `dScale`, `dOffset`.
        let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
            .par_chunks_mut(BACKWARD_ROWS * c)
            .enumerate()
            .map(|(job, dxs)| {
                let (mut ds, mut doff) = (vec![0f32; c], vec![0f32; c]);
                for (j, dx) in dxs.chunks_mut(c).enumerate() {
                    let r = job * BACKWARD_ROWS + j;
                    if cache.real[r] {
                        let at = r * c..(r + 1) * c;
                        let (dy, x) = (&dys[at.clone()], &xs[at]);
                        let st = cache.stats[r];
                        layer_norm_row_backward(dy, x, st, scale, dx, &mut ds, &mut doff);
                    }
                }
                (ds, doff)
            })
            .collect();
        let (mut dscale, mut doffset) = (vec![0f32; c], vec![0f32; c]);
        for (ds, doff) in partials {
            dscale.iter_mut().zip(ds).for_each(|(a, b)| *a += b);
            doffset.iter_mut().zip(doff).for_each(|(a, b)| *a += b);
        }
        self.scale.grad = ArrayD::from_shape_vec(vec![c], dscale).expect("[C]");
        self.offset.grad = ArrayD::from_shape_vec(vec![c], doffset).expect("[C]");
        let dx = ArrayD::from_shape_vec(shape, dx).expect("input size");
        Ok(vec![Some(dx)])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.scale, &self.offset]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.scale, &mut self.offset]
    }
}
