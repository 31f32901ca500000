//! `GlobalMaxPooling1d` and `GlobalAveragePooling1d`: MATLAB's
//! `globalMaxPooling1dLayer` and `globalAveragePooling1dLayer`, each channel
//! pooled over each sequence's real steps.

use super::util::{check_shape, grad_or_zeros, no_forward, single};
use super::{name_field, named};
use crate::activation::{Activation, SeqLengths};
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

/// MATLAB's `globalMaxPooling1dLayer`: the maximum over time of each channel.
///
/// Input `C×B×T` (`[T, B, C]`), output `C×B` (`[B, C]`). Only each sequence's
/// real steps count; a sequence without real steps gives 0. Backward sends
/// the gradient to the first step holding the maximum.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalMaxPooling1d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
}

named!(GlobalMaxPooling1d);

impl GlobalMaxPooling1d {
    /// The layer (it has no options but its name).
    pub fn new() -> Self {
        Self::default()
    }
}

/// MATLAB's `globalAveragePooling1dLayer`: the mean over time of each channel.
///
/// Input `C×B×T` (`[T, B, C]`), output `C×B` (`[B, C]`). The mean of a
/// sequence is over its real steps only; a sequence without real steps gives 0.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GlobalAveragePooling1d {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
}

named!(GlobalAveragePooling1d);

impl GlobalAveragePooling1d {
    /// The layer (it has no options but its name).
    pub fn new() -> Self {
        Self::default()
    }
}

fn infer_global(inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
    let x = single(inputs)?;
    if x.format != Format::CBT {
        return Err(ShapeError::new(
            0,
            format!("expects feature sequences (C×B×T), got {x}"),
        ));
    }
    if x.channels == 0 {
        return Err(ShapeError::new(0, "the input has no channels"));
    }
    Ok(vec![ActShape::features(x.channels)])
}

macro_rules! global_def {
    ($ty:ty, $type_name:literal, $max:expr) => {
        impl LayerDef for $ty {
            name_field!();
            fn type_name(&self) -> &'static str {
                $type_name
            }
            fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
                infer_global(inputs)
            }
            fn build(&self, inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
                infer_global(inputs).map_err(|e| Error::layer(&self.name, e.message))?;
                Ok(Box::new(GlobalPoolKernel {
                    name: self.name.clone(),
                    in_shape: inputs[0],
                    max: $max,
                    cache: None,
                }))
            }
        }
    };
}

global_def!(GlobalMaxPooling1d, "1-D Global Max Pooling", true);
global_def!(GlobalAveragePooling1d, "1-D Global Average Pooling", false);

struct GlobalPoolKernel {
    name: String,
    in_shape: ActShape,
    max: bool,
    cache: Option<Cache>,
}

struct Cache {
    lengths: SeqLengths,
    /// Max: the input step of each output value `[B, C]`.
    argmax: Vec<usize>,
}

impl LayerKernel for GlobalPoolKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        check_shape(&self.name, "in", x, &self.in_shape)?;
        let (batch, c) = (x.batch(), self.in_shape.channels);
        let lengths = x.seq_lengths();
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let mut y = vec![0f32; batch * c];
        let mut argmax = vec![0usize; if self.max { batch * c } else { 0 }];
        for (b, yb) in y.chunks_exact_mut(c).enumerate() {
            let span = lengths.span(b);
            let row = |t: usize| &xs[(t * batch + b) * c..(t * batch + b + 1) * c];
            if span.is_empty() {
                continue;
            }
            if self.max {
                let ab = &mut argmax[b * c..(b + 1) * c];
                yb.copy_from_slice(row(span.start));
                ab.fill(span.start);
                for t in span.start + 1..span.end {
                    for ((v, a), &xv) in yb.iter_mut().zip(ab.iter_mut()).zip(row(t)) {
                        if xv > *v {
                            *v = xv;
                            *a = t;
                        }
                    }
                }
            } else {
                // Sums in f64: long sequences add many steps.
                let mut acc = vec![0f64; c];
                for t in span.clone() {
                    acc.iter_mut()
                        .zip(row(t))
                        .for_each(|(a, &v)| *a += v as f64);
                }
                let n = span.len() as f64;
                yb.iter_mut()
                    .zip(&acc)
                    .for_each(|(v, a)| *v = (a / n) as f32);
            }
        }
        self.cache = Some(Cache { lengths, argmax });
        let y = ArrayD::from_shape_vec(vec![batch, c], y).expect("output size");
        Ok(vec![Activation {
            data: y.into_shared(),
            format: Format::CB,
            lengths: None,
        }])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let cache = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let (time, batch, c) = (
            cache.lengths.time,
            cache.lengths.lengths.len(),
            self.in_shape.channels,
        );
        let dy = grad_or_zeros(&mut grads, &[batch, c]);
        if dy.shape() != [batch, c] {
            return Err(Error::layer(
                &self.name,
                format!(
                    "output gradient of shape {:?}, expected {:?}",
                    dy.shape(),
                    [batch, c]
                ),
            ));
        }
        let dy = dy.as_standard_layout();
        let dys = dy.as_slice().expect("standard layout");
        let mut dx = vec![0f32; time * batch * c];
        for (b, g) in dys.chunks_exact(c).enumerate() {
            let span = cache.lengths.span(b);
            if span.is_empty() {
                continue;
            }
            if self.max {
                for (ci, &gv) in g.iter().enumerate() {
                    let t = cache.argmax[b * c + ci];
                    dx[(t * batch + b) * c + ci] = gv;
                }
            } else {
                let inv = 1.0 / span.len() as f32;
                for t in span {
                    let at = (t * batch + b) * c;
                    dx[at..at + c]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(d, &gv)| *d = gv * inv);
                }
            }
        }
        let dx = ArrayD::from_shape_vec(vec![time, batch, c], dx).expect("input size");
        Ok(vec![Some(dx)])
    }
}
