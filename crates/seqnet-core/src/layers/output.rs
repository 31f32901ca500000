//! Output layers: `ClassificationOutput` (cross-entropy) and `RegressionOutput`
//! (half mean squared error). Both honour the sequence mask.
//!
//! Loss normalization, for `N` observations of real lengths `S_n` (1 without time):
//! `loss = 1/N Σ_n 1/S_n Σ_t ℓ(n, t)` over the `N` observations with at least
//! one real step, where for classification
//! `ℓ = −Σ_k w_k t_k ln y_k` and for regression `ℓ = ½ Σ_r (y_r − t_r)²`.
//! This is MATLAB's definition for regression; for classification it equals the
//! mean over all real steps when the lengths are equal.

use super::util::single;
use super::{name_field, named};
use crate::activation::{Activation, PaddingDirection, SeqLengths};
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::{ArrayD, Axis};
use serde::{Deserialize, Serialize};

/// MATLAB's `classificationLayer`. Input: probabilities `K×B` or `K×B×T`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClassificationOutput {
    #[serde(default)]
    pub name: String,
    /// Class names, in score order; empty until known (set by training).
    #[serde(default)]
    pub classes: Vec<String>,
    /// Per-class weights of the loss; empty means all 1.
    #[serde(default)]
    pub class_weights: Vec<f32>,
}

named!(ClassificationOutput);

impl ClassificationOutput {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn classes(mut self, classes: Vec<String>) -> Self {
        self.classes = classes;
        self
    }
    pub fn class_weights(mut self, w: Vec<f32>) -> Self {
        self.class_weights = w;
        self
    }
}

/// MATLAB's `regressionLayer`. Input: responses `R×B` or `R×B×T`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegressionOutput {
    #[serde(default)]
    pub name: String,
    /// Response names; empty until known.
    #[serde(default)]
    pub response_names: Vec<String>,
}

named!(RegressionOutput);

impl RegressionOutput {
    pub fn new() -> Self {
        Self::default()
    }
}

fn infer_output(inputs: &[ActShape], classes: usize) -> Result<Vec<ActShape>, ShapeError> {
    let x = single(inputs)?;
    if !matches!(x.format, Format::CB | Format::CBT) {
        return Err(ShapeError::new(0, format!("expects C×B or C×B×T, got {x}")));
    }
    if classes > 0 && x.channels != classes {
        return Err(ShapeError::new(
            0,
            format!("{classes} class names but {} scores", x.channels),
        ));
    }
    Ok(vec![])
}

impl LayerDef for ClassificationOutput {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Classification Output"
    }
    fn output_ports(&self) -> &'static [&'static str] {
        &[]
    }
    fn is_output(&self) -> bool {
        true
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        if !self.class_weights.is_empty() {
            if let Some(x) = inputs.first() {
                if x.channels != self.class_weights.len() {
                    return Err(ShapeError::new(
                        0,
                        format!(
                            "{} class weights but {} scores",
                            self.class_weights.len(),
                            x.channels
                        ),
                    ));
                }
            }
        }
        infer_output(inputs, self.classes.len())
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(LossKernel {
            name: self.name.clone(),
            kind: LossKind::CrossEntropy(self.class_weights.clone()),
            grad: None,
            loss: None,
            observations: 0,
        }))
    }
}

impl LayerDef for RegressionOutput {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Regression Output"
    }
    fn output_ports(&self) -> &'static [&'static str] {
        &[]
    }
    fn is_output(&self) -> bool {
        true
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        infer_output(inputs, self.response_names.len())
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(LossKernel {
            name: self.name.clone(),
            kind: LossKind::HalfMse,
            grad: None,
            loss: None,
            observations: 0,
        }))
    }
}

enum LossKind {
    CrossEntropy(Vec<f32>),
    HalfMse,
}

struct LossKernel {
    name: String,
    kind: LossKind,
    grad: Option<ArrayD<f32>>,
    loss: Option<f32>,
    /// The observations the last loss was averaged over.
    observations: usize,
}

/// Probabilities below this are taken as this in the log and its derivative.
const MIN_PROB: f32 = 1e-30;

impl LayerKernel for LossKernel {
    fn forward(&mut self, inputs: &[&Activation], ctx: &mut ForwardCtx) -> Result<Vec<Activation>> {
        let y = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        self.grad = None;
        self.loss = None;
        let Some(t) = ctx.target else {
            return Ok(vec![]);
        };
        if t.data.shape() != y.data.shape() {
            return Err(Error::layer(
                &self.name,
                format!(
                    "targets of shape {:?} do not match predictions of shape {:?}",
                    t.data.shape(),
                    y.data.shape()
                ),
            ));
        }
        let (time, batch, k) = match y.format {
            Format::CB => (1, y.batch(), y.data.shape()[1]),
            Format::CBT => (y.time(), y.batch(), y.data.shape()[2]),
            _ => return Err(Error::layer(&self.name, "expects C×B or C×B×T")),
        };
        // Observations with no real step (later chunks of a split batch) are
        // left out of the loss and of its mean.
        let active: Vec<bool> = match &y.lengths {
            Some(l) => l.lengths.iter().map(|&n| n > 0).collect(),
            None => vec![true; batch],
        };
        let lengths = if y.format == Format::CBT {
            y.seq_lengths()
        } else {
            SeqLengths::new(
                active.iter().map(|&a| a as usize).collect(),
                1,
                PaddingDirection::Right,
            )?
        };
        let yv = y
            .data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((time, batch, k))
            .expect("3-D view");
        let tv = t
            .data
            .as_standard_layout()
            .into_owned()
            .into_shape_with_order((time, batch, k))
            .expect("3-D view");
        let mut grad = ndarray::Array3::<f32>::zeros((time, batch, k));
        let mut total = 0.0f64;
        let active_count = active.iter().filter(|&&a| a).count();
        let n = active_count.max(1) as f32;
        for b in 0..batch {
            let span = lengths.span(b);
            let s = span.len().max(1) as f32;
            for step in span {
                let (yr, tr) = (yv.index_axis(Axis(0), step), tv.index_axis(Axis(0), step));
                let (yr, tr) = (yr.index_axis(Axis(0), b), tr.index_axis(Axis(0), b));
                let mut gr = grad.index_axis_mut(Axis(0), step);
                let mut gr = gr.index_axis_mut(Axis(0), b);
                for c in 0..k {
                    match &self.kind {
                        LossKind::CrossEntropy(w) => {
                            let wc = w.get(c).copied().unwrap_or(1.0);
                            let p = yr[c].max(MIN_PROB);
                            total -= (wc * tr[c] * p.ln() / s) as f64;
                            gr[c] = -wc * tr[c] / (p * s * n);
                        }
                        LossKind::HalfMse => {
                            let d = yr[c] - tr[c];
                            total += (0.5 * d * d / s) as f64;
                            gr[c] = d / (s * n);
                        }
                    }
                }
            }
        }
        self.loss = Some((total / active_count.max(1) as f64) as f32);
        self.observations = active_count;
        self.grad = Some(
            grad.into_dyn()
                .into_shape_with_order(y.data.shape())
                .expect("same element count"),
        );
        Ok(vec![])
    }

    fn backward(&mut self, _grads: Vec<Option<ArrayD<f32>>>) -> Result<Vec<Option<ArrayD<f32>>>> {
        let g = self
            .grad
            .take()
            .ok_or_else(|| Error::layer(&self.name, "backward needs a forward with targets"))?;
        Ok(vec![Some(g)])
    }

    fn loss(&self) -> Option<f32> {
        self.loss
    }
    fn loss_observations(&self) -> Option<usize> {
        self.loss.map(|_| self.observations)
    }
    fn scale_loss_gradient(&mut self, factor: f32) {
        if let Some(g) = &mut self.grad {
            g.mapv_inplace(|v| v * factor);
        }
    }
    /// Output layers end a streaming chain; the network returns their input.
    fn can_step(&self) -> bool {
        true
    }
}
