//! `SequenceInput`: the network's data enters here, normalized.

use super::util::{check_shape, no_forward};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::ActShape;
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{StateArray, StateSpec};
use ndarray::{Array1, ArrayD, Axis};
use serde::{Deserialize, Serialize};

/// The size of one time step: a feature count, or `[H, W, C]` for image sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum InputSize {
    Features(usize),
    Image([usize; 3]),
}

/// Input normalization, MATLAB's `Normalization` values. Statistics are per channel,
/// computed from the training data when training starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Normalization {
    #[default]
    None,
    /// `x − Mean`.
    Zerocenter,
    /// `(x − Mean) / StandardDeviation`.
    Zscore,
    /// `2 (x − Min) / (Max − Min) − 1`.
    RescaleSymmetric,
    /// `(x − Min) / (Max − Min)`.
    RescaleZeroOne,
}

/// MATLAB's `sequenceInputLayer`. Output: `C×B×T` (`[T, B, C]`) for features,
/// `S×S×C×B×T` (`[T, B, C, H, W]`) for image sequences.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SequenceInput {
    #[serde(default)]
    pub name: String,
    pub input_size: InputSize,
    #[serde(default)]
    pub normalization: Normalization,
    /// Shortest sequence the network accepts.
    #[serde(default = "one")]
    pub min_length: usize,
}

fn one() -> usize {
    1
}

named!(SequenceInput);

impl SequenceInput {
    /// Feature sequences with `features` channels.
    pub fn new(features: usize) -> Self {
        SequenceInput {
            name: String::new(),
            input_size: InputSize::Features(features),
            normalization: Normalization::None,
            min_length: 1,
        }
    }
    /// Image sequences of `[H, W, C]` frames.
    pub fn image(size: [usize; 3]) -> Self {
        SequenceInput {
            input_size: InputSize::Image(size),
            ..Self::new(0)
        }
    }
    pub fn normalization(mut self, n: Normalization) -> Self {
        self.normalization = n;
        self
    }
    pub fn min_length(mut self, n: usize) -> Self {
        self.min_length = n;
        self
    }
    /// The shape of this layer's output.
    pub fn shape(&self) -> ActShape {
        match self.input_size {
            InputSize::Features(c) => ActShape::sequence(c),
            InputSize::Image([h, w, c]) => ActShape::image_sequence(h, w, c),
        }
    }
}

impl LayerDef for SequenceInput {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Sequence Input"
    }
    fn input_ports(&self) -> &'static [&'static str] {
        &[]
    }
    fn is_input(&self) -> bool {
        true
    }
    fn infer(&self, _inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        if self.shape().elements() == 0 {
            return Err(ShapeError::new(0, "input size must be positive"));
        }
        Ok(vec![self.shape()])
    }
    fn states(&self, _inputs: &[ActShape]) -> Vec<StateSpec> {
        let c = vec![self.shape().channels];
        let stat = |name, v| StateSpec::constant(name, c.clone(), v);
        match self.normalization {
            Normalization::None => vec![],
            Normalization::Zerocenter => vec![stat("Mean", 0.0)],
            Normalization::Zscore => vec![stat("Mean", 0.0), stat("StandardDeviation", 1.0)],
            Normalization::RescaleSymmetric | Normalization::RescaleZeroOne => {
                vec![stat("Min", 0.0), stat("Max", 1.0)]
            }
        }
    }
    fn build(&self, _inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(SequenceInputKernel {
            def: self.clone(),
            stats: params.take_states(),
            scale: None,
        }))
    }
}

struct SequenceInputKernel {
    def: SequenceInput,
    stats: Vec<StateArray>,
    /// The per-channel scale of the last forward, for backward.
    scale: Option<Array1<f32>>,
}

impl SequenceInputKernel {
    fn stat(&self, name: &str) -> Option<&ArrayD<f32>> {
        self.stats.iter().find(|s| s.name == name).map(|s| &s.value)
    }

    /// Per-channel `(scale, shift)` so that the normalized value is `scale·x + shift`.
    fn affine(&self) -> (Array1<f32>, Array1<f32>) {
        let c = self.def.shape().channels;
        let get = |n: &str, d: f32| {
            self.stat(n)
                .map(|a| Array1::from_iter(a.iter().copied()))
                .unwrap_or_else(|| Array1::from_elem(c, d))
        };
        let nonzero = |v: f32| if v.abs() > f32::EPSILON { v } else { 1.0 };
        match self.def.normalization {
            Normalization::None => (Array1::ones(c), Array1::zeros(c)),
            Normalization::Zerocenter => (Array1::ones(c), -get("Mean", 0.0)),
            Normalization::Zscore => {
                let s = get("StandardDeviation", 1.0).mapv(|v| 1.0 / nonzero(v));
                let shift = -&get("Mean", 0.0) * &s;
                (s, shift)
            }
            Normalization::RescaleSymmetric | Normalization::RescaleZeroOne => {
                let (lo, hi) = (get("Min", 0.0), get("Max", 1.0));
                let mut s = (&hi - &lo).mapv(|r| 1.0 / nonzero(r));
                let mut shift = -&lo * &s;
                if self.def.normalization == Normalization::RescaleSymmetric {
                    s *= 2.0;
                    shift = shift * 2.0 - 1.0;
                }
                (s, shift)
            }
        }
    }
}

impl LayerKernel for SequenceInputKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let name = &self.def.name;
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(name, "no input data"))?;
        check_shape(name, "in", x, &self.def.shape())?;
        if x.time() < self.def.min_length {
            return Err(Error::layer(
                name,
                format!(
                    "sequences have {} time steps, fewer than MinLength {}",
                    x.time(),
                    self.def.min_length
                ),
            ));
        }
        if self.def.normalization == Normalization::None {
            self.scale = None;
            return Ok(vec![(*x).clone()]);
        }
        let (scale, shift) = self.affine();
        let mut y = x.data.to_owned();
        // The channel axis is 2 in both `[T, B, C]` and `[T, B, C, H, W]`.
        for (c, mut lane) in y.axis_iter_mut(Axis(2)).enumerate() {
            let (s, b) = (scale[c], shift[c]);
            lane.mapv_inplace(|v| s * v + b);
        }
        self.scale = Some(scale);
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let Some(mut g) = grads.get_mut(0).and_then(Option::take) else {
            return Ok(vec![None]);
        };
        if let Some(scale) = &self.scale {
            if g.ndim() < 3 {
                return Err(no_forward(&self.def.name));
            }
            for (c, mut lane) in g.axis_iter_mut(Axis(2)).enumerate() {
                lane *= scale[c];
            }
        }
        Ok(vec![Some(g)])
    }

    fn can_step(&self) -> bool {
        matches!(self.def.input_size, InputSize::Features(_)) && self.def.min_length <= 1
    }
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let c = self.def.shape().channels;
        if x.len() != c {
            return Err(Error::layer(
                &self.def.name,
                format!("expects {c} features per step, got {}", x.len()),
            ));
        }
        out.clear();
        if self.def.normalization == Normalization::None {
            out.extend_from_slice(x);
        } else {
            let (scale, shift) = self.affine();
            out.extend(
                x.iter()
                    .zip(scale.iter().zip(shift.iter()))
                    .map(|(&v, (&s, &b))| s * v + b),
            );
        }
        Ok(())
    }

    fn states(&self) -> Vec<&StateArray> {
        self.stats.iter().collect()
    }
    fn states_mut(&mut self) -> Vec<&mut StateArray> {
        self.stats.iter_mut().collect()
    }
}
