//! `SequenceFolding`, `SequenceUnfolding` and `Flatten`: reshapes that move
//! between sequences, frames and feature vectors. All are free in seqnet's
//! layouts (see [`crate::format`]) apart from one copy of the data.

use super::util::{no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use ndarray::{ArcArray, ArrayD, IxDyn};
use serde::{Deserialize, Serialize};

/// The gradient of output port 0 reshaped back to the last forward's input
/// shape (zeros when none flows back): the backward of every reshape here.
fn grad_in_shape(
    name: &str,
    grads: &mut [Option<ArrayD<f32>>],
    in_shape: Option<Vec<usize>>,
) -> Result<ArrayD<f32>> {
    let shape = in_shape.ok_or_else(|| no_forward(name))?;
    match grads.get_mut(0).and_then(Option::take) {
        Some(g) => g
            .into_shape_with_order(shape)
            .map_err(|e| Error::layer(name, e.to_string())),
        None => Ok(ArrayD::zeros(shape)),
    }
}

/// `data` in standard layout, shared with the input when it already is (a
/// reshape then costs nothing; the video network's frames are 8 MB), copied
/// otherwise.
fn shared_standard(data: &ArcArray<f32, IxDyn>) -> ArcArray<f32, IxDyn> {
    if data.is_standard_layout() {
        data.clone()
    } else {
        data.as_standard_layout().into_owned().into_shared()
    }
}

/// MATLAB's `sequenceFoldingLayer`: image sequences `S×S×C×B×T` (`[T, B, C, H, W]`)
/// become frames `S×S×C×B` (`[T·B, C, H, W]`), so that image layers apply to every
/// frame; feature sequences `C×B×T` become `C×B` (`[T·B, C]`).
///
/// Output ports: `out` (the frames) and `miniBatchSize` (for [`SequenceUnfolding`]).
/// Frame `n` is time step `n / B` of observation `n % B`; the frames keep the mask.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SequenceFolding {
    #[serde(default)]
    pub name: String,
}

named!(SequenceFolding);

impl SequenceFolding {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LayerDef for SequenceFolding {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Sequence Folding"
    }
    fn output_ports(&self) -> &'static [&'static str] {
        &["out", "miniBatchSize"]
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if !x.format.has_time() {
            return Err(ShapeError::new(
                0,
                format!("expects a sequence (C×B×T or S×S×C×B×T), got {x}"),
            ));
        }
        Ok(vec![x.with_time(false), ActShape::batch_size()])
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(FoldKernel {
            name: self.name.clone(),
            in_shape: None,
        }))
    }
}

struct FoldKernel {
    name: String,
    in_shape: Option<Vec<usize>>,
}

impl LayerKernel for FoldKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let shape = x.data.shape().to_vec();
        let (t, b) = (shape[0], shape[1]);
        let mut folded = vec![t * b];
        folded.extend_from_slice(&shape[2..]);
        let format = x.format.to_owned();
        let data = shared_standard(&x.data)
            .into_shape_with_order(folded)
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        let out_format = if format == Format::SSCBT {
            Format::SSCB
        } else {
            Format::CB
        };
        self.in_shape = Some(shape);
        let frames = Activation {
            data,
            format: out_format,
            lengths: x.lengths.clone(),
        };
        let batch = Activation {
            data: ArrayD::zeros(vec![b, t]).into_shared(),
            format: Format::BatchSize,
            lengths: x.lengths.clone(),
        };
        Ok(vec![frames, batch])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let g = grad_in_shape(&self.name, &mut grads, self.in_shape.clone())?;
        Ok(vec![Some(g)])
    }
}

/// MATLAB's `sequenceUnfoldingLayer`: the inverse of [`SequenceFolding`].
/// Input ports: `in` (frames `[T·B, …]`) and `miniBatchSize` (from the folding layer).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SequenceUnfolding {
    #[serde(default)]
    pub name: String,
}

named!(SequenceUnfolding);

impl SequenceUnfolding {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LayerDef for SequenceUnfolding {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Sequence Unfolding"
    }
    fn input_ports(&self) -> &'static [&'static str] {
        &["in", "miniBatchSize"]
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if !matches!(x.format, Format::CB | Format::SSCB) {
            return Err(ShapeError::new(
                0,
                format!("expects folded frames (S×S×C×B or C×B), got {x}"),
            ));
        }
        match inputs.get(1) {
            Some(m) if m.format == Format::BatchSize => Ok(vec![x.with_time(true)]),
            Some(m) => Err(ShapeError::new(
                1,
                format!("expects the mini-batch size of a sequence folding layer, got {m}"),
            )),
            None => Err(ShapeError::new(1, "not connected")),
        }
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(UnfoldKernel {
            name: self.name.clone(),
            in_shape: None,
        }))
    }
}

struct UnfoldKernel {
    name: String,
    in_shape: Option<Vec<usize>>,
}

impl LayerKernel for UnfoldKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let (Some(x), Some(m)) = (inputs.first(), inputs.get(1)) else {
            return Err(Error::layer(
                &self.name,
                "needs its 'in' and 'miniBatchSize' inputs",
            ));
        };
        let (b, t) = (m.data.shape()[0], m.data.shape()[1]);
        let shape = x.data.shape().to_vec();
        if shape[0] != t * b {
            return Err(Error::layer(
                &self.name,
                format!(
                    "{} frames cannot unfold into {b} sequences of {t} steps",
                    shape[0]
                ),
            ));
        }
        let mut unfolded = vec![t, b];
        unfolded.extend_from_slice(&shape[1..]);
        let format = if x.format == Format::SSCB {
            Format::SSCBT
        } else {
            Format::CBT
        };
        let data = shared_standard(&x.data)
            .into_shape_with_order(unfolded)
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        self.in_shape = Some(shape);
        Ok(vec![Activation {
            data,
            format,
            lengths: m.lengths.clone(),
        }])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let g = grad_in_shape(&self.name, &mut grads, self.in_shape.clone())?;
        Ok(vec![Some(g), None])
    }
}

/// MATLAB's `flattenLayer`: `S×S×C×B×T` becomes `(H·W·C)×B×T` and `S×S×C×B`
/// becomes `(H·W·C)×B`, in `(C, H, W)` row-major order (index `c·H·W + h·W + w`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Flatten {
    #[serde(default)]
    pub name: String,
}

named!(Flatten);

impl Flatten {
    pub fn new() -> Self {
        Self::default()
    }
}

impl LayerDef for Flatten {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Flatten"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        match x.format {
            Format::SSCBT => Ok(vec![ActShape::sequence(x.elements())]),
            Format::SSCB => Ok(vec![ActShape::features(x.elements())]),
            Format::CB | Format::CBT => Ok(vec![x]),
            Format::BatchSize => Err(ShapeError::new(0, "cannot take the mini-batch size")),
        }
    }
    fn build(&self, _inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        Ok(Box::new(FlattenKernel {
            name: self.name.clone(),
            in_shape: None,
        }))
    }
}

struct FlattenKernel {
    name: String,
    in_shape: Option<Vec<usize>>,
}

impl LayerKernel for FlattenKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        let shape = x.data.shape().to_vec();
        let (lead, format) = match x.format {
            Format::SSCBT | Format::CBT => (2, Format::CBT),
            _ => (1, Format::CB),
        };
        let mut flat = shape[..lead].to_vec();
        flat.push(shape[lead..].iter().product());
        let data = shared_standard(&x.data)
            .into_shape_with_order(flat)
            .map_err(|e| Error::layer(&self.name, e.to_string()))?;
        self.in_shape = Some(shape);
        Ok(vec![Activation {
            data,
            format,
            lengths: x.lengths.clone(),
        }])
    }
    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let g = grad_in_shape(&self.name, &mut grads, self.in_shape.clone())?;
        Ok(vec![Some(g)])
    }
}
