//! `PositionEmbedding` and `SinusoidalPositionEncoding`: MATLAB's
//! `positionEmbeddingLayer` and `sinusoidalPositionEncodingLayer`, a vector
//! per position of each sequence, counted from its first real step.

use super::util::{no_forward, single, LastOutputs};
use super::{name_field, named};
use crate::activation::{Activation, SeqLengths};
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::WeightsInitializer;
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::{TorchLayout, TorchParam};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

/// MATLAB's `positionEmbeddingLayer(outputSize, maxPosition)`: a learned
/// vector for each position.
///
/// Input `C×B×T` (`[T, B, C]`, only its lengths are used), output
/// `OutputSize×B×T` (`[T, B, OutputSize]`): at real step `t` of a sequence
/// whose first real step is `t₀`, row `t − t₀` of `Weights`. Positions count
/// from each sequence's first real step, so a left-padded sequence gets the
/// same embeddings as alone; padded steps output 0 and add no gradient. A
/// sequence longer than `MaxPosition` is an error naming the layer. Add the
/// output to the input with an [`crate::layers::Addition`].
///
/// Learnables: `Weights` `[MaxPosition, OutputSize]` (row per position,
/// PyTorch's `nn.Embedding` layout; MATLAB stores `OutputSize×MaxPosition`),
/// narrow-normal. The input gets no gradient (the output does not depend on
/// its values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PositionEmbedding {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    pub output_size: usize,
    /// The longest sequence the layer takes.
    pub max_position: usize,
    #[serde(default = "narrow_normal")]
    pub weights_initializer: WeightsInitializer,
    #[serde(default = "one")]
    pub weight_l2_factor: f32,
    #[serde(default = "one")]
    pub weight_learn_rate_factor: f32,
}

fn narrow_normal() -> WeightsInitializer {
    WeightsInitializer::NarrowNormal
}
fn one() -> f32 {
    1.0
}

named!(PositionEmbedding);

impl PositionEmbedding {
    /// `positionEmbeddingLayer(outputSize, maxPosition)` with MATLAB's defaults.
    pub fn new(output_size: usize, max_position: usize) -> Self {
        PositionEmbedding {
            name: String::new(),
            output_size,
            max_position,
            weights_initializer: narrow_normal(),
            weight_l2_factor: 1.0,
            weight_learn_rate_factor: 1.0,
        }
    }
    pub fn weights_initializer(mut self, i: WeightsInitializer) -> Self {
        self.weights_initializer = i;
        self
    }
    /// L2 factor of `Weights` `[MaxPosition, OutputSize]`.
    pub fn weight_l2_factor(mut self, f: f32) -> Self {
        self.weight_l2_factor = f;
        self
    }
}

/// MATLAB's `sinusoidalPositionEncodingLayer(outputSize)`: a fixed vector
/// for each position `p` (0 at each sequence's first real step), channel
/// `2k` `sin(p / 10000^(2k/OutputSize))`, channel `2k + 1` the cosine of the
/// same angle (Vaswani et al. 2017).
///
/// Input `C×B×T` (only its lengths are used), output `OutputSize×B×T`; padded
/// steps output 0. `OutputSize` must be even. No learnables; the input gets
/// no gradient.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SinusoidalPositionEncoding {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    pub output_size: usize,
}

named!(SinusoidalPositionEncoding);

impl SinusoidalPositionEncoding {
    /// `sinusoidalPositionEncodingLayer(outputSize)`.
    pub fn new(output_size: usize) -> Self {
        SinusoidalPositionEncoding {
            name: String::new(),
            output_size,
        }
    }
}

fn infer_position(inputs: &[ActShape], output_size: usize) -> Result<Vec<ActShape>, ShapeError> {
    let x = single(inputs)?;
    if x.format != Format::CBT {
        return Err(ShapeError::new(
            0,
            format!("expects sequences (C×B×T), got {x}"),
        ));
    }
    if output_size == 0 {
        return Err(ShapeError::new(0, "OutputSize must be positive"));
    }
    Ok(vec![ActShape::sequence(output_size)])
}

impl LayerDef for PositionEmbedding {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Position Embedding"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        if self.max_position == 0 {
            return Err(ShapeError::new(0, "MaxPosition must be positive"));
        }
        infer_position(inputs, self.output_size)
    }
    fn learnables(&self, _inputs: &[ActShape]) -> Vec<LearnableSpec> {
        vec![LearnableSpec::weights(
            "Weights",
            vec![self.max_position, self.output_size],
            Initializer::Weights {
                init: self.weights_initializer,
                fan_in: self.output_size,
                fan_out: self.max_position,
            },
        )
        .factors(self.weight_l2_factor, self.weight_learn_rate_factor)]
    }
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        Ok(Box::new(PositionKernel {
            name: self.name.clone(),
            output_size: self.output_size,
            table: Table::Learned(Box::new(params.learnable("Weights")?)),
            lengths: None,
            last_output: LastOutputs::default(),
        }))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        Some(TorchLayout {
            module: "nn.Embedding",
            params: vec![TorchParam::one("Weights", "weight")],
            ignored: Vec::new(),
        })
    }
}

impl LayerDef for SinusoidalPositionEncoding {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Sinusoidal Position Encoding"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        if !self.output_size.is_multiple_of(2) {
            return Err(ShapeError::new(
                0,
                format!("OutputSize must be even, got {}", self.output_size),
            ));
        }
        infer_position(inputs, self.output_size)
    }
    fn build(&self, inputs: &[ActShape], _params: Params) -> Result<Box<dyn LayerKernel>> {
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        Ok(Box::new(PositionKernel {
            name: self.name.clone(),
            output_size: self.output_size,
            table: Table::Sinusoidal,
            lengths: None,
            last_output: LastOutputs::default(),
        }))
    }
}

/// Where each position's vector comes from.
enum Table {
    /// `Weights` `[MaxPosition, O]`.
    Learned(Box<Learnable>),
    Sinusoidal,
}

struct PositionKernel {
    name: String,
    output_size: usize,
    table: Table,
    lengths: Option<SeqLengths>,
    /// The last two outputs (shared): their allocations are reused by
    /// the next forward once nothing else holds them.
    last_output: LastOutputs,
}

/// The sinusoidal vector of position `p`, written into `row` `[O]`.
fn sinusoid(p: usize, row: &mut [f32]) {
    let d = row.len() as f64;
    for (k, pair) in row.chunks_exact_mut(2).enumerate() {
        let angle = p as f64 / 10000f64.powf(2.0 * k as f64 / d);
        pair[0] = angle.sin() as f32;
        pair[1] = angle.cos() as f32;
    }
}

impl LayerKernel for PositionKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        if x.format != Format::CBT {
            return Err(Error::layer(&self.name, "expects a sequence (C×B×T)"));
        }
        let lengths = x.seq_lengths();
        let longest = lengths.lengths.iter().copied().max().unwrap_or(0);
        let o = self.output_size;
        if let Table::Learned(w) = &self.table {
            let max = w.value.shape()[0];
            if longest > max {
                return Err(Error::layer(
                    &self.name,
                    format!("a sequence of {longest} steps is longer than MaxPosition {max}"),
                ));
            }
        }
        let (time, batch) = (lengths.time, lengths.lengths.len());
        // Every real step is written below; padded steps are 0.
        let mut y = self.last_output.buffer(time * batch * o);
        if lengths.lengths.iter().any(|&l| l < time) {
            y.fill(0.0);
        }
        let table = match &self.table {
            Table::Learned(w) => {
                w.value
                    .as_standard_layout()
                    .into_owned()
                    .into_raw_vec_and_offset()
                    .0
            }
            Table::Sinusoidal => {
                let mut t = vec![0f32; longest * o];
                for (p, row) in t.chunks_exact_mut(o.max(1)).enumerate() {
                    sinusoid(p, row);
                }
                t
            }
        };
        for b in 0..batch {
            let span = lengths.span(b);
            for (p, t) in span.enumerate() {
                let at = (t * batch + b) * o;
                y[at..at + o].copy_from_slice(&table[p * o..(p + 1) * o]);
            }
        }
        self.lengths = Some(lengths);
        let y = ArrayD::from_shape_vec(vec![time, batch, o], y)
            .expect("output size")
            .into_shared();
        self.last_output.keep(&y);
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
        let lengths = self
            .lengths
            .as_ref()
            .ok_or_else(|| no_forward(&self.name))?;
        let Table::Learned(w) = &mut self.table else {
            return Ok(vec![None]);
        };
        let o = self.output_size;
        let (time, batch) = (lengths.time, lengths.lengths.len());
        let mut dw = ArrayD::zeros(w.value.shape());
        if let Some(dy) = grads.get_mut(0).and_then(Option::take) {
            if dy.shape() != [time, batch, o] {
                return Err(Error::layer(
                    &self.name,
                    format!(
                        "output gradient of shape {:?}, expected {:?}",
                        dy.shape(),
                        [time, batch, o]
                    ),
                ));
            }
            let dy = dy.as_standard_layout();
            let dys = dy.as_slice().expect("standard layout");
            let dws = dw.as_slice_mut().expect("standard layout");
            for b in 0..batch {
                for (p, t) in lengths.span(b).enumerate() {
                    let at = (t * batch + b) * o;
                    dws[p * o..(p + 1) * o]
                        .iter_mut()
                        .zip(&dys[at..at + o])
                        .for_each(|(a, &g)| *a += g);
                }
            }
        }
        w.grad = dw;
        Ok(vec![None])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        match &self.table {
            Table::Learned(w) => vec![w],
            Table::Sinusoidal => Vec::new(),
        }
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        match &mut self.table {
            Table::Learned(w) => vec![w],
            Table::Sinusoidal => Vec::new(),
        }
    }
}
