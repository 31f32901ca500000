//! What a layer takes from a PyTorch state dict, declared by the layer itself
//! ([`crate::LayerDef::torch_layout`]) so that the importer walks layers
//! instead of special-casing them.
//!
//! Keys are relative to the module's prefix in the state dict and may hold
//! `{k}`, the index of a layer of a multi-layer `nn.LSTM`/`nn.GRU`
//! (`weight_ih_l{k}`).

use std::ops::Range;

/// One part of a learnable: a state-dict tensor, or some of its rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchSource {
    /// The key relative to the module's prefix, e.g. `weight_ih_l{k}_reverse`.
    pub key: String,
    /// Only these rows (first axis) of the tensor, e.g. the key third of
    /// `nn.MultiheadAttention`'s packed `in_proj_weight`.
    pub rows: Option<Range<usize>>,
}

impl TorchSource {
    /// The whole tensor under `key`.
    pub fn key(key: impl Into<String>) -> Self {
        TorchSource {
            key: key.into(),
            rows: None,
        }
    }

    /// Rows `rows` of the tensor under `key`.
    pub fn rows(key: impl Into<String>, rows: Range<usize>) -> Self {
        TorchSource {
            key: key.into(),
            rows: Some(rows),
        }
    }
}

/// How one learnable or state is made from state-dict tensors: the sum of
/// `terms`, each term its parts stacked along the first axis (a BiLSTM's
/// forward then backward direction).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TorchParam {
    /// The seqnet learnable or state, e.g. `InputWeights`.
    pub target: &'static str,
    /// Summed terms (an LSTM's `Bias` is `bias_ih + bias_hh`).
    pub terms: Vec<Vec<TorchSource>>,
    /// Whether the tensors may be absent (PyTorch's `bias=False`): then the
    /// target is zeros. The optional params of a layer are present or absent
    /// together; only some of them present is an error.
    pub optional: bool,
}

impl TorchParam {
    /// `target` from one whole tensor.
    pub fn one(target: &'static str, key: impl Into<String>) -> Self {
        TorchParam {
            target,
            terms: vec![vec![TorchSource::key(key)]],
            optional: false,
        }
    }

    /// `target` from tensors stacked along the first axis.
    pub fn stacked(target: &'static str, keys: impl IntoIterator<Item = String>) -> Self {
        TorchParam {
            target,
            terms: vec![keys.into_iter().map(TorchSource::key).collect()],
            optional: false,
        }
    }

    /// Marks the tensors as optional (see [`TorchParam::optional`]).
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
}

/// Everything a layer takes from a PyTorch module.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorchLayout {
    /// The PyTorch module this layer corresponds to, for messages (`nn.LSTM`).
    pub module: &'static str,
    pub params: Vec<TorchParam>,
    /// Keys under the module's prefix that are known and not needed
    /// (`num_batches_tracked`).
    pub ignored: Vec<&'static str>,
}

impl TorchLayout {
    /// Whether the keys hold `{k}` (a layer of a multi-layer recurrent module).
    pub fn indexed(&self) -> bool {
        self.params
            .iter()
            .flat_map(|p| p.terms.iter().flatten())
            .any(|s| s.key.contains("{k}"))
    }

    /// The recurrent layout shared by `nn.LSTM` and `nn.GRU`: `weight_ih`,
    /// `weight_hh` per direction, with the biases `bias_ih`, `bias_hh` summed
    /// into `Bias` (`separate_recurrent_bias` false) or kept as `Bias` and
    /// `RecurrentBias`.
    pub fn recurrent(
        module: &'static str,
        directions: usize,
        separate_recurrent_bias: bool,
    ) -> Self {
        let keys = |p: &str| -> Vec<String> {
            (0..directions)
                .map(|d| format!("{p}_l{{k}}{}", if d == 1 { "_reverse" } else { "" }))
                .collect()
        };
        let mut params = vec![
            TorchParam::stacked("InputWeights", keys("weight_ih")),
            TorchParam::stacked("RecurrentWeights", keys("weight_hh")),
        ];
        if separate_recurrent_bias {
            params.push(TorchParam::stacked("Bias", keys("bias_ih")).optional());
            params.push(TorchParam::stacked("RecurrentBias", keys("bias_hh")).optional());
        } else {
            let term = |p| keys(p).into_iter().map(TorchSource::key).collect();
            params.push(TorchParam {
                target: "Bias",
                terms: vec![term("bias_ih"), term("bias_hh")],
                optional: true,
            });
        }
        TorchLayout {
            module,
            params,
            ignored: Vec::new(),
        }
    }
}

impl TorchLayout {
    /// `weight` → `Weights`, optional `bias` → `Bias` (`nn.Linear`, `nn.Conv1d`, `nn.Conv2d`).
    pub fn weight_bias(module: &'static str) -> Self {
        TorchLayout {
            module,
            params: vec![
                TorchParam::one("Weights", "weight"),
                TorchParam::one("Bias", "bias").optional(),
            ],
            ignored: Vec::new(),
        }
    }
}
