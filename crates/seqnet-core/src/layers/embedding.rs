//! `WordEmbedding`: MATLAB's `wordEmbeddingLayer`, a learned vector per token index.

use super::util::{no_forward, single};
use super::{name_field, named};
use crate::activation::Activation;
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::WeightsInitializer;
use crate::layer::{ForwardCtx, LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, Learnable, LearnableSpec};
use crate::torch::{TorchLayout, TorchParam};
use ndarray::ArrayD;
use serde::{Deserialize, Serialize};

use super::layernorm::real_rows;

/// MATLAB's `wordEmbeddingLayer(dimension, numWords)`: each step's token
/// index replaced by its learned vector.
///
/// Input: token sequences `1×B×T` (`[T, B, 1]`), each index an integer held in
/// an `f32` (exact up to 2²⁴); output `Dimension×B×T` (`[T, B, Dimension]`).
/// Indices start at [`WordEmbedding::index_base`]: 1 as in MATLAB (default),
/// or 0 as in PyTorch.
///
/// An index at a real step that is not an integer, or outside
/// `index_base … index_base + NumWords − 1`, is an error naming the layer
/// (MATLAB's `OOVMode` `"error"`; its default `"map-to-last"`, an extra
/// vector for unknown words, is not offered: map unknown words to an index
/// of your own when building the vocabulary).
///
/// **Masking.** Padded steps may hold anything (they are not read): they
/// output 0 and add nothing to the gradient.
///
/// Learnables: `Weights` `[NumWords, Dimension]`, row `i` the vector of index
/// `index_base + i`: the transpose of MATLAB's `Dimension×NumWords`, PyTorch's
/// `nn.Embedding.weight` layout, so a lookup reads one contiguous row.
/// Initialized narrow-normal (MATLAB's default). Indices have no gradient:
/// backward returns none for the input.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WordEmbedding {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Length of each word vector.
    pub dimension: usize,
    /// Number of words in the vocabulary.
    pub num_words: usize,
    /// The index of the first word: 1 (MATLAB, default) or 0 (PyTorch).
    #[serde(default = "default_base")]
    pub index_base: usize,
    #[serde(default = "narrow_normal")]
    pub weights_initializer: WeightsInitializer,
    /// Multiplies the global L2 regularization for `Weights`; default 1.
    #[serde(default = "one")]
    pub weight_l2_factor: f32,
    /// Multiplies the global learning rate for `Weights`; default 1.
    #[serde(default = "one")]
    pub weight_learn_rate_factor: f32,
}

fn default_base() -> usize {
    1
}
fn narrow_normal() -> WeightsInitializer {
    WeightsInitializer::NarrowNormal
}
fn one() -> f32 {
    1.0
}

named!(WordEmbedding);

impl WordEmbedding {
    /// `wordEmbeddingLayer(dimension, numWords)` with MATLAB's defaults (1-based indices).
    pub fn new(dimension: usize, num_words: usize) -> Self {
        WordEmbedding {
            name: String::new(),
            dimension,
            num_words,
            index_base: 1,
            weights_initializer: narrow_normal(),
            weight_l2_factor: 1.0,
            weight_learn_rate_factor: 1.0,
        }
    }
    /// The index of the first word: 1 (MATLAB) or 0 (PyTorch).
    pub fn index_base(mut self, base: usize) -> Self {
        self.index_base = base;
        self
    }
    pub fn weights_initializer(mut self, i: WeightsInitializer) -> Self {
        self.weights_initializer = i;
        self
    }
    /// L2 factor of `Weights` `[NumWords, Dimension]`.
    pub fn weight_l2_factor(mut self, f: f32) -> Self {
        self.weight_l2_factor = f;
        self
    }
    /// Learning-rate factor of `Weights` `[NumWords, Dimension]`.
    pub fn weight_learn_rate_factor(mut self, f: f32) -> Self {
        self.weight_learn_rate_factor = f;
        self
    }
}

impl LayerDef for WordEmbedding {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Word Embedding"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if x.format != Format::CBT || x.channels != 1 {
            return Err(ShapeError::new(
                0,
                format!("expects token sequences (1×B×T, one index per step), got {x}"),
            ));
        }
        if self.dimension == 0 || self.num_words == 0 {
            return Err(ShapeError::new(
                0,
                "Dimension and NumWords must be positive",
            ));
        }
        if self.index_base > 1 {
            return Err(ShapeError::new(
                0,
                format!("IndexBase must be 0 or 1, got {}", self.index_base),
            ));
        }
        Ok(vec![ActShape::sequence(self.dimension)])
    }
    fn learnables(&self, _inputs: &[ActShape]) -> Vec<LearnableSpec> {
        vec![LearnableSpec::weights(
            "Weights",
            vec![self.num_words, self.dimension],
            Initializer::Weights {
                init: self.weights_initializer,
                fan_in: self.dimension,
                fan_out: self.num_words,
            },
        )
        .factors(self.weight_l2_factor, self.weight_learn_rate_factor)]
    }
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        Ok(Box::new(EmbeddingKernel {
            name: self.name.clone(),
            index_base: self.index_base,
            weights: params.learnable("Weights")?,
            cache: None,
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

struct EmbeddingKernel {
    name: String,
    index_base: usize,
    weights: Learnable,
    /// The word (row of `Weights`) of each input row `t·B + b`; `None` at padded steps.
    cache: Option<Vec<Option<usize>>>,
}

impl EmbeddingKernel {
    /// The row of `Weights` for each step, checking every real index.
    fn words(&self, x: &Activation) -> Result<Vec<Option<usize>>> {
        let num_words = self.weights.value.shape()[0];
        let real = real_rows(x);
        let data = x.data.as_standard_layout();
        let xs = data.as_slice().expect("standard layout");
        let base = self.index_base as f32;
        xs.iter()
            .zip(&real)
            .map(|(&v, &is_real)| {
                if !is_real {
                    return Ok(None);
                }
                let i = v - base;
                if v.fract() != 0.0 || !(0.0..num_words as f32).contains(&i) {
                    return Err(Error::layer(
                        &self.name,
                        format!(
                            "token index {v} is not an integer in {} … {}",
                            self.index_base,
                            self.index_base + num_words - 1
                        ),
                    ));
                }
                Ok(Some(i as usize))
            })
            .collect()
    }
}

impl LayerKernel for EmbeddingKernel {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _ctx: &mut ForwardCtx,
    ) -> Result<Vec<Activation>> {
        let x = inputs
            .first()
            .ok_or_else(|| Error::layer(&self.name, "no input"))?;
        if x.format != Format::CBT || x.data.shape()[2] != 1 {
            return Err(Error::layer(
                &self.name,
                format!(
                    "expects token sequences [T, B, 1], got shape {:?}",
                    x.data.shape()
                ),
            ));
        }
        let words = self.words(x)?;
        let d = self.weights.value.shape()[1];
        let w = self.weights.value.as_standard_layout();
        let ws = w.as_slice().expect("standard layout");
        let mut y = vec![0f32; words.len() * d];
        for (row, word) in y.chunks_exact_mut(d).zip(&words) {
            if let Some(i) = word {
                row.copy_from_slice(&ws[i * d..(i + 1) * d]);
            }
        }
        let (t, b) = (x.data.shape()[0], x.data.shape()[1]);
        let y = ArrayD::from_shape_vec(vec![t, b, d], y).expect("output size");
        self.cache = Some(words);
        Ok(vec![x.like(y)])
    }

    fn backward(
        &mut self,
        mut grads: Vec<Option<ArrayD<f32>>>,
    ) -> Result<Vec<Option<ArrayD<f32>>>> {
        let words = self.cache.as_ref().ok_or_else(|| no_forward(&self.name))?;
        let d = self.weights.value.shape()[1];
        let mut dw = ArrayD::zeros(self.weights.value.shape());
        if let Some(dy) = grads.get_mut(0).and_then(Option::take) {
            if dy.len() != words.len() * d {
                return Err(Error::layer(
                    &self.name,
                    format!("output gradient of shape {:?}", dy.shape()),
                ));
            }
            let dy = dy.as_standard_layout();
            let dys = dy.as_slice().expect("standard layout");
            let dws = dw.as_slice_mut().expect("standard layout");
            for (g, word) in dys.chunks_exact(d).zip(words) {
                if let Some(i) = word {
                    dws[i * d..(i + 1) * d]
                        .iter_mut()
                        .zip(g)
                        .for_each(|(a, &b)| *a += b);
                }
            }
        }
        self.weights.grad = dw;
        // Indices have no gradient: nothing flows back to the input.
        Ok(vec![None])
    }

    fn learnables(&self) -> Vec<&Learnable> {
        vec![&self.weights]
    }
    fn learnables_mut(&mut self) -> Vec<&mut Learnable> {
        vec![&mut self.weights]
    }
}
