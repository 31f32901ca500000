//! `SelfAttention`: MATLAB's `selfAttentionLayer`, multi-head scaled
//! dot-product attention over each sequence's real steps.

mod kernel;

use super::util::single;
use super::{name_field, named};
use crate::error::{Error, Result};
use crate::format::{ActShape, Format};
use crate::init::{BiasInitializer, WeightsInitializer};
use crate::layer::{LayerDef, LayerKernel, Params, ShapeError};
use crate::learnable::{Initializer, LearnableSpec};
use crate::torch::{TorchLayout, TorchParam, TorchSource};
use kernel::{AttentionKernel, Sizes};
use serde::{Deserialize, Serialize};

/// Which keys a query may attend to besides the padded ones (always masked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttentionMask {
    /// Every real step of the sequence (MATLAB's default).
    #[default]
    None,
    /// Steps up to and including the query's own (no look-ahead).
    Causal,
}

/// MATLAB's `selfAttentionLayer(numHeads, numKeyChannels)`.
///
/// Input `C×B×T` (`[T, B, C]`), output `O×B×T` (`[T, B, O]`). For each
/// sequence, at its `L` real steps (`X` `[L, C]`):
/// `Q = X·QueryWeightsᵀ + QueryBias` `[L, K]`, `K`, `V` `[L, V]` likewise;
/// head `j` of `h` takes channels `j·K/h … (j+1)·K/h − 1` of `Q` and `K` and
/// `j·V/h …` of `V`; `A_j = softmax(Q_j·K_jᵀ / sqrt(K/h))` over the keys, the
/// heads' `A_j·V_j` concatenated in order `[L, V]`, then
/// `Y = concat·OutputWeightsᵀ + OutputBias`.
///
/// **Masking.** Keys at padded steps are always masked (and, with
/// [`AttentionMask::Causal`], keys after the query): a padded batch gives each
/// sequence what it gives alone, whatever the padding direction and values.
/// Padded steps output 0 and get no gradient.
///
/// Learnables (MATLAB's names, PyTorch's `[out, in]` layout as MATLAB's):
/// `QueryWeights` `[K, C]`, `KeyWeights` `[K, C]`, `ValueWeights` `[V, C]`,
/// `OutputWeights` `[O, V]`, and with `HasBias` `QueryBias` `[K]`, `KeyBias`
/// `[K]`, `ValueBias` `[V]`, `OutputBias` `[O]`. Glorot weights, zero biases.
/// PyTorch: `nn.MultiheadAttention` (`in_proj_weight` rows `0..K` query,
/// `K..2K` key, `2K..2K+V` value; `out_proj.weight`, `out_proj.bias`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelfAttention {
    /// The layer's name, unique in its graph.
    #[serde(default)]
    pub name: String,
    /// Number of heads `h`; divides `NumKeyChannels` and `NumValueChannels`.
    pub num_heads: usize,
    /// Channels `K` of the queries and keys (all heads together).
    pub num_key_channels: usize,
    /// Channels `V` of the values; `None` ("auto"): `NumKeyChannels`.
    #[serde(default)]
    pub num_value_channels: Option<usize>,
    /// Output channels `O`; `None` ("auto"): the input's channels.
    #[serde(default)]
    pub output_size: Option<usize>,
    #[serde(default)]
    pub attention_mask: AttentionMask,
    /// Whether the four projections have biases (default true).
    #[serde(default = "yes")]
    pub has_bias: bool,
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

fn yes() -> bool {
    true
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

named!(SelfAttention);

impl SelfAttention {
    /// `selfAttentionLayer(numHeads, numKeyChannels)` with MATLAB's defaults.
    pub fn new(num_heads: usize, num_key_channels: usize) -> Self {
        SelfAttention {
            name: String::new(),
            num_heads,
            num_key_channels,
            num_value_channels: None,
            output_size: None,
            attention_mask: AttentionMask::None,
            has_bias: true,
            weights_initializer: glorot(),
            bias_initializer: zeros(),
            weight_l2_factor: 1.0,
            bias_l2_factor: 0.0,
            weight_learn_rate_factor: 1.0,
            bias_learn_rate_factor: 1.0,
        }
    }
    /// Channels `V` of the values.
    pub fn num_value_channels(mut self, v: usize) -> Self {
        self.num_value_channels = Some(v);
        self
    }
    /// Output channels `O`.
    pub fn output_size(mut self, o: usize) -> Self {
        self.output_size = Some(o);
        self
    }
    pub fn attention_mask(mut self, m: AttentionMask) -> Self {
        self.attention_mask = m;
        self
    }
    pub fn has_bias(mut self, b: bool) -> Self {
        self.has_bias = b;
        self
    }
    pub fn weights_initializer(mut self, i: WeightsInitializer) -> Self {
        self.weights_initializer = i;
        self
    }
    pub fn bias_initializer(mut self, i: BiasInitializer) -> Self {
        self.bias_initializer = i;
        self
    }

    /// `(K, V)`: key and value channels.
    fn kv(&self) -> (usize, usize) {
        let k = self.num_key_channels;
        (k, self.num_value_channels.unwrap_or(k))
    }

    fn sizes(&self, x: &ActShape) -> Sizes {
        let (k, v) = self.kv();
        Sizes {
            c: x.channels,
            k,
            v,
            o: self.output_size.unwrap_or(x.channels),
            heads: self.num_heads,
            causal: self.attention_mask == AttentionMask::Causal,
        }
    }
}

impl LayerDef for SelfAttention {
    name_field!();
    fn type_name(&self) -> &'static str {
        "Self-Attention"
    }
    fn infer(&self, inputs: &[ActShape]) -> Result<Vec<ActShape>, ShapeError> {
        let x = single(inputs)?;
        if x.format != Format::CBT || x.channels == 0 {
            return Err(ShapeError::new(
                0,
                format!("expects feature sequences (C×B×T), got {x}"),
            ));
        }
        let (k, v) = self.kv();
        let h = self.num_heads;
        if h == 0 || k == 0 || v == 0 || self.output_size == Some(0) {
            return Err(ShapeError::new(
                0,
                "NumHeads, NumKeyChannels, NumValueChannels and OutputSize must be positive",
            ));
        }
        if k % h != 0 || v % h != 0 {
            return Err(ShapeError::new(
                0,
                format!("NumHeads {h} must divide NumKeyChannels {k} and NumValueChannels {v}"),
            ));
        }
        Ok(vec![ActShape::sequence(self.sizes(&x).o)])
    }
    fn learnables(&self, inputs: &[ActShape]) -> Vec<LearnableSpec> {
        let Some(x) = inputs.first() else {
            return Vec::new();
        };
        let s = self.sizes(x);
        let w = |name, out: usize, fan_in: usize| {
            LearnableSpec::weights(
                name,
                vec![out, fan_in],
                Initializer::Weights {
                    init: self.weights_initializer,
                    fan_in,
                    fan_out: out,
                },
            )
            .factors(self.weight_l2_factor, self.weight_learn_rate_factor)
        };
        let mut specs = vec![
            w("QueryWeights", s.k, s.c),
            w("KeyWeights", s.k, s.c),
            w("ValueWeights", s.v, s.c),
            w("OutputWeights", s.o, s.v),
        ];
        if self.has_bias {
            for (name, n) in [
                ("QueryBias", s.k),
                ("KeyBias", s.k),
                ("ValueBias", s.v),
                ("OutputBias", s.o),
            ] {
                specs.push(
                    LearnableSpec::bias(name, vec![n], Initializer::bias(self.bias_initializer))
                        .factors(self.bias_l2_factor, self.bias_learn_rate_factor),
                );
            }
        }
        specs
    }
    fn build(&self, inputs: &[ActShape], mut params: Params) -> Result<Box<dyn LayerKernel>> {
        self.infer(inputs)
            .map_err(|e| Error::layer(&self.name, e.message))?;
        let sizes = self.sizes(&inputs[0]);
        let mut take = |n| params.learnable(n);
        let weights = [
            take("QueryWeights")?,
            take("KeyWeights")?,
            take("ValueWeights")?,
            take("OutputWeights")?,
        ];
        let biases = if self.has_bias {
            Some([
                take("QueryBias")?,
                take("KeyBias")?,
                take("ValueBias")?,
                take("OutputBias")?,
            ])
        } else {
            None
        };
        Ok(Box::new(AttentionKernel::new(
            self.name.clone(),
            sizes,
            weights,
            biases,
        )))
    }
    fn torch_layout(&self) -> Option<TorchLayout> {
        let (k, v) = self.kv();
        let rows = |target, key: &str, r: std::ops::Range<usize>| TorchParam {
            target,
            terms: vec![vec![TorchSource::rows(key, r)]],
            optional: false,
        };
        let mut params = vec![
            rows("QueryWeights", "in_proj_weight", 0..k),
            rows("KeyWeights", "in_proj_weight", k..2 * k),
            rows("ValueWeights", "in_proj_weight", 2 * k..2 * k + v),
            TorchParam::one("OutputWeights", "out_proj.weight"),
        ];
        if self.has_bias {
            params.extend([
                rows("QueryBias", "in_proj_bias", 0..k).optional(),
                rows("KeyBias", "in_proj_bias", k..2 * k).optional(),
                rows("ValueBias", "in_proj_bias", 2 * k..2 * k + v).optional(),
                TorchParam::one("OutputBias", "out_proj.bias").optional(),
            ]);
        }
        Some(TorchLayout {
            module: "nn.MultiheadAttention",
            params,
            ignored: Vec::new(),
        })
    }
}
