//! `Dropout`: zeroes inputs at random in training, passes them through at prediction.

use super::util::{no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Mode, Params, ShapeError};
use ndarray::ArrayD;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// MATLAB's `dropoutLayer` (probability 0.5): in training each element is zeroed
/// with that probability and the rest scaled by `1 / (1 − p)`. Any format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Dropout {
    #[serde(default)]
    pub name: String,
    #[serde(default = "half")]
    pub probability: f32,
}

fn half() -> f32 {
    0.5
}

named!(Dropout);

impl Default for Dropout {
    fn default() -> Self {
        Dropout {
            name: String::new(),
            probability: 0.5,
        }
    }
}

impl Dropout {
    pub fn new(probability: f32) -> Self {
        Dropout {
            name: String::new(),
            probability,
        }
    }
}

impl LayerDef for Dropout {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Dropout"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if !(0.0..1.0).contains(&self.probability) {
            return Err(ShapeError::new(
                0,
                format!("Probability must be in [0, 1), got {}", self.probability),
            ));
        }
        if x.format == Format::BatchSize {
            return Err(ShapeError::new(0, "cannot take the mini-batch size"));
        }
        Ok(vec![x])
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(DropoutKernel {
            name: self.name.clone(),
            p: self.probability,
            mask: None,
            ran: false,
        }))
    }
}

struct DropoutKernel {
    name: String,
    p: f32,
    /// The scaled keep-mask of the last training forward; `None` after a pass-through.
    mask: Option<ArrayD<f32>>,
    ran: bool,
}

impl LayerKernel for DropoutKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        self.ran = true;
        if ctx.mode == Mode::Inference || self.p == 0.0 {
            self.mask = None;
            return Ok(vec![(*x).clone()]);
        }
        let keep = 1.0 / (1.0 - self.p);
        let p = self.p;
        let mask = ArrayD::from_shape_simple_fn(x.data.shape(), || {
            if ctx.rng.random::<f32>() < p {
                0.0
            } else {
                keep
            }
        });
        let y = &x.data * &mask;
        self.mask = Some(mask);
        Ok(vec![x.like(y)])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        if !self.ran {
            return Err(no_forward(&self.name));
        }
        let Some(g) = grads.get_mut(0).and_then(Option::take) else {
            return Ok(vec![None]);
        };
        Ok(vec![Some(match &self.mask {
            Some(m) => g * m,
            None => g,
        })])
    }
}
