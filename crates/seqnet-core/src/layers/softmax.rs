//! `Softmax` over the channels of each observation and time step.

use super::util::{as_rows, as_rows_mut, grad_or_zeros, no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::{ArrayD, Axis, Zip};
use serde::{Deserialize, Serialize};

/// MATLAB's `softmaxLayer`. Input and output `C×B` or `C×B×T`; softmax over `C`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Softmax {
    #[serde(default)]
    pub name: String,
}

named!(Softmax);

impl Softmax {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LayerDef for Softmax {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Softmax"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        match x.format {
            Format::CB | Format::CBT => Ok(vec![x]),
            _ => Err(ShapeError::new(
                0,
                format!("expects C×B or C×B×T features, got {x}"),
            )),
        }
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(SoftmaxKernel {
            name: self.name.clone(),
            output: None,
        }))
    }
}

struct SoftmaxKernel {
    name: String,
    output: Option<ArrayD<f32>>,
}

/// Softmax of each row of `[N, C]` data, in place.
pub(crate) fn softmax_rows(data: &mut ArrayD<f32>) {
    for mut row in as_rows_mut(data).axis_iter_mut(Axis(0)) {
        let m = row.fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        row.mapv_inplace(|v| (v - m).exp());
        let s = row.sum();
        row /= s;
    }
}

impl LayerKernel for SoftmaxKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let mut y = x.data.as_standard_layout().into_owned();
        softmax_rows(&mut y);
        self.output = Some(y.clone());
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let y = self.output.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let mut g = grad_or_zeros(&mut grads, y.shape());
        let yr = as_rows(y);
        for (mut gr, yr) in as_rows_mut(&mut g)
            .axis_iter_mut(Axis(0))
            .zip(yr.axis_iter(Axis(0)))
        {
            let dot: f32 = gr.iter().zip(yr.iter()).map(|(a, b)| a * b).sum();
            Zip::from(&mut gr)
                .and(&yr)
                .for_each(|g, &y| *g = y * (*g - dot));
        }
        Ok(vec![Some(g)])
    }

    fn can_step(&self) -> bool {
        true
    }
    fn forward_step(&mut self, x: &[f32], out: &mut Vec<f32>) -> Result<()> {
        let m = x.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b));
        out.clear();
        out.extend(x.iter().map(|&v| (v - m).exp()));
        let s: f32 = out.iter().sum();
        out.iter_mut().for_each(|v| *v /= s);
        Ok(())
    }
}
