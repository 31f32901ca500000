//! `FullyConnected`: an affine map applied at every time step.

use super::util::{grad_or_zeros, no_forward, recycled_len, single};
use super::{name_field, named, weight_bias_options};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::TorchLayout;
use ndarray::{ArcArray, ArrayD, Axis, Ix2, IxDyn};
use seqnet_kernels::gemm::{matmul_bias_packed, matmul_into};
use serde::{Deserialize, Serialize};

/// MATLAB's `fullyConnectedLayer`: `y = W·x + b` for each observation and time step.
///
/// Input `C×B` (`[B, C]`), `C×B×T` (`[T, B, C]`), or images `S×S×C×B` / `S×S×C×B×T`
/// flattened in `(C, H, W)` row-major order. Output `O×B` or `O×B×T`.
/// Learnables: `Weights` `[O, In]`, `Bias` `[O]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FullyConnected {
    #[serde(default)]
    pub name: String,
    pub output_size: usize,
    #[serde(default = "glorot")]
    pub weights_initializer: WeightsInitializer,
    #[serde(default = "zeros")]
    pub bias_initializer: BiasInitializer,
    #[serde(default = "one")]
    pub weight_l2_factor: f32,
    #[serde(default)]
    pub bias_l2_factor: f32,
    #[serde(default = "one")]
    pub weight_learn_rate_factor: f32,
    #[serde(default = "one")]
    pub bias_learn_rate_factor: f32,
}

fn glorot() -> WeightsInitializer {
    WeightsInitializer::Glorot
}
fn zeros() -> BiasInitializer {
    BiasInitializer::Zeros
}
fn one() -> f32 {
    1.0
}

named!(FullyConnected);

impl FullyConnected {
    pub fn new(output_size: usize) -> Self {
        FullyConnected {
            name: String::new(),
            output_size,
            weights_initializer: glorot(),
            bias_initializer: zeros(),
            weight_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            weight_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
    weight_bias_options!("[O, In]", "[O]");
}

impl LayerDef for FullyConnected {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Fully Connected"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if self.output_size == 0 {
            return Err(ShapeError::new(0, "OutputSize must be positive"));
        }
        match x.format {
            Format::CB | Format::SSCB => Ok(vec![ActShape::features(self.output_size)]),
            Format::CBT | Format::SSCBT => Ok(vec![ActShape::sequence(self.output_size)]),
            Format::BatchSize => Err(ShapeError::new(
                0,
                "expects features or images, got the mini-batch size",
            )),
        }
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let n_in = inputs.first().map(|s| s.elements()).unwrap_or(0);
        let o = self.output_size;
        vec![
            LearnableSpec::weights(
                "Weights",
                vec![o, n_in],
                Initializer::Weights {
                    init: self.weights_initializer,
                    fan_in: n_in,
                    fan_out: o,
                },
            )
            .factors(self.weight_l2_factor, self.weight_learn_rate_factor),
            LearnableSpec::bias("Bias", vec![o], Initializer::bias(self.bias_initializer))
                .factors(self.bias_l2_factor, self.bias_learn_rate_factor),
        ]
    }
    fn build(&self, _inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(FullyConnectedKernel {
            name: self.name.clone(),
            weights: params.learnable("Weights")?,
            bias: params.learnable("Bias")?,
            input: None,
            last_output: None,
            input_grad_needed: true,
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout::weight_bias("nn.Linear"))
    }
}

struct FullyConnectedKernel {
    name: String,
    weights: Learnable,
    bias: Learnable,
    /// The last forward's input (standard layout, shared with the network's
    /// values, not copied) and its number of rows `N` (it is `[N, In]`).
    input: Option<(ArcArray<f32, IxDyn>, usize)>,
    /// The last forward's output (shared): its allocation is reused by the
    /// next forward once nothing else holds it.
    last_output: Option<ArcArray<f32, IxDyn>>,
    /// Whether backward returns the input's gradient.
    input_grad_needed: bool,
}

impl LayerKernel for FullyConnectedKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let (o, n_in) = (self.weights.value.shape()[0], self.weights.value.shape()[1]);
        let (rows, out_shape, format) = match x.format {
            Format::CB | Format::SSCB => (x.batch(), vec![x.batch(), o], Format::CB),
            Format::CBT | Format::SSCBT => (
                x.time() * x.batch(),
                vec![x.time(), x.batch(), o],
                Format::CBT,
            ),
            Format::BatchSize => {
                return Err(Error::layer(&self.name, "cannot take the mini-batch size"))
            }
        };
        if x.data.len() != rows * n_in {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects {n_in} features per step, got shape {:?}",
                    x.data.shape()
                ),
            ));
        }
        let xd = if x.data.is_standard_layout() {
            x.data.clone()
        } else {
            x.data.as_standard_layout().into_owned().into_shared()
        };
        let xm = xd
            .view()
            .into_shape_with_order((rows, n_in))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let w = self
            .weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("Weights is 2-D");
        let bias = self.bias.value.as_slice().expect("Bias is 1-D");
        if bias.len() != o {
            return Err(Error::layer(&self.name, "Bias and Weights sizes differ"));
        }
        let buf = recycled_len(self.last_output.take(), rows * o);
        let y = matmul_bias_packed(xm, w.t(), bias, buf);
        self.input = Some((xd, rows));
        let y = y
            .into_dyn()
            .into_shape_with_order(out_shape)
            .expect("same element count")
            .into_shared();
        self.last_output = Some(y.clone());
        Ok(vec![Activation {
            data: y,
            format,
            lengths: x.lengths.clone(),
        }])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let (xd, rows) = self.input.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let (o, rows) = (self.weights.value.shape()[0], *rows);
        let n_in = self.weights.value.shape()[1];
        let xm = xd
            .view()
            .into_shape_with_order((rows, n_in))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let g = grad_or_zeros(&mut grads, &[rows, o])
            .into_shape_with_order((rows, o))
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let w = self
            .weights
            .value
            .view()
            .into_dimensionality::<Ix2>()
            .expect("Weights is 2-D");
        let mut dw = self
            .weights
            .grad
            .view_mut()
            .into_dimensionality::<Ix2>()
            .expect("2-D");
        matmul_into(g.t(), xm, dw.view_mut(), false);
        self.bias.grad = g.sum_axis(Axis(0)).into_dyn();
        if !self.input_grad_needed {
            return Ok(vec![None]);
        }
        let dx = seqnet_kernels::gemm::matmul(g.view(), w);
        Ok(vec![Some(
            dx.into_dyn()
                .into_shape_with_order(xd.shape())
                .expect("same element count"),
        )])
    }

    fn set_input_grad_needed(&mut self, needed: bool) {
        self.input_grad_needed = needed;
    }
    fn can_step(&self) -> bool {
        true
    }
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let (o, n_in) = (self.weights.value.shape()[0], self.weights.value.shape()[1]);
        if x.len() != n_in || self.bias.value.len() != o {
            return Err(Error::layer(
                &self.name,
                format!("expects {n_in} features per step, got {}", x.len()),
            ));
        }
        let w = self.weights.value.as_standard_layout();
        let w = w.as_slice().expect("standard layout");
        out.clear();
        out.extend(
            self.bias
                .value
                .iter()
                .enumerate()
                .map(|(r, &b)| b + seqnet_kernels::dot::dot(&w[r * n_in..(r + 1) * n_in], x)),
        );
        Ok(())
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.weights, &self.bias]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.weights, &mut self.bias]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factor setters reach the learnables' specs (MATLAB's
    /// `WeightLearnRateFactor`, `BiasL2Factor`, ...).
    #[test]
    fn factor_setters_reach_the_learnables() {
        let fc = FullyConnected::new(3)
            .weight_l2_factor(0.25)
            .bias_l2_factor(0.5)
            .weight_learn_rate_factor(2.0)
            .bias_learn_rate_factor(0.0);
        let specs = fc.learnables(&[ActShape::features(4)]);
        assert_eq!(specs[0].shape, vec![3, 4]);
        assert_eq!(
            (specs[0].l2_factor, specs[0].learn_rate_factor),
            (0.25, 2.0)
        );
        assert_eq!((specs[1].l2_factor, specs[1].learn_rate_factor), (0.5, 0.0));
    }
}
