//! `LayerNormalization`: MATLAB's `layerNormalizationLayer`, over the
//! channels of each time step.

use super::util::{grad_or_zeros, no_forward, single};
use super::{name_field, named};
use crate::activation::{Activation, SeqLengths};
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::{TorchLayout, TorchParam};
use ndarray::ArrayD;
use rayon::prelude::*;
use seqnet_kernels::norm::{layer_norm_row, layer_norm_row_backward};
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
}

struct Cache {
    /// The normalized input, `[rows, C]` (0 at padded rows).
    xhat: Vec<f32>,
    /// `1/sqrt(var + eps)` of each row (0 at padded rows).
    inv_std: Vec<f32>,
    /// Whether each row (`t·B + b`) is a real step.
    real: Vec<bool>,
    shape: Vec<usize>,
}

/// Whether each row of `x` (`[B, C]`: every one; `[T, B, C]`: row `t·B + b`)
/// is a real step.
pub(crate) fn real_rows(x: &Activation) -> Vec<bool> {
    match &x.lengths {
        Some(l) if x.format == Format::CBT => real_rows_of(l),
        _ => vec![true; x.data.len() / x.data.shape().last().copied().unwrap_or(1).max(1)],
    }
}

/// [`real_rows`] from the lengths of a `[T, B, …]` sequence.
pub(crate) fn real_rows_of(l: &SeqLengths) -> Vec<bool> {
    let b = l.lengths.len();
    (0..l.time * b).map(|r| l.is_real(r % b, r / b)).collect()
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
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let (scale, offset) = (self.scale.value.to_owned(), self.offset.value.to_owned());
        let (scale, offset) = (
            scale.as_slice().expect("1-D"),
            offset.as_slice().expect("1-D"),
        );
        let mut y = vec![0f32; xs.len()];
        let mut xhat = vec![0f32; xs.len()];
        let mut inv_std = vec![0f32; real.len()];
        // Rows in parallel, in runs long enough to pay for the hand-off.
        y.par_chunks_mut(c)
            .zip(xhat.par_chunks_mut(c))
            .zip(inv_std.par_iter_mut())
            .enumerate()
            .with_min_len(256)
            .filter(|(r, _)| real[*r])
            .for_each(|(r, ((y, xhat), inv))| {
                *inv = layer_norm_row(
                    &xs[r * c..(r + 1) * c],
                    scale,
                    offset,
                    self.epsilon,
                    y,
                    xhat,
                );
            });
        let shape = x.data.shape().to_vec();
        self.cache = Some(Cache {
            xhat,
            inv_std,
            real,
            shape: shape.clone(),
        });
        let y = ArrayD::from_shape_vec(shape, y).expect("output size");
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let c = self.channels;
        let dy = grad_or_zeros(&mut grads, &cache.shape);
        if dy.shape() != cache.shape.as_slice() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {:?}",
                    dy.shape(),
                    cache.shape
                ),
            ));
        }
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let scale = self.scale.value.to_owned();
        let scale = scale.as_slice().expect("1-D");
        let (mut dscale, mut doffset) = (vec![0f32; c], vec![0f32; c]);
        let mut dx = vec![0f32; dys.len()];
        for (r, &is_real) in cache.real.iter().enumerate() {
            if is_real {
                let at = r * c..(r + 1) * c;
                layer_norm_row_backward(
                    &dys[at.clone()],
                    &cache.xhat[at.clone()],
                    cache.inv_std[r],
                    scale,
                    &mut dx[at],
                    &mut dscale,
                    &mut doffset,
                );
            }
        }
        self.scale.grad = ArrayD::from_shape_vec(vec![c], dscale).expect("[C]");
        self.offset.grad = ArrayD::from_shape_vec(vec![c], doffset).expect("[C]");
        let dx = ArrayD::from_shape_vec(cache.shape.clone(), dx).expect("input size");
        Ok(vec![Some(dx)])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.scale, &self.offset]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.scale, &mut self.offset]
    }
}
