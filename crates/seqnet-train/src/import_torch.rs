//! Models from PyTorch: a state dict saved as safetensors, a layer graph and a
//! mapping from the graph's layer names to state-dict prefixes.
//!
//! # The mapping
//!
//! A JSON object from layer names to prefixes, e.g.
//! `{"lstm": "lstm", "fc": "fc"}`: layer `fc` takes `fc.weight` and
//! `fc.bias`. An empty prefix means the parameters have no prefix
//! (`weight_ih_l0`). The prefix of a recurrent layer may end in `@k` to take
//! layer `k` of a multi-layer `nn.LSTM`/`nn.GRU` (the `_l{k}` tensors); without
//! it, layer 0. So a two-layer `nn.LSTM` saved under `lstm` feeding two graph
//! layers is `{"lstm1": "lstm@0", "lstm2": "lstm@1"}`.
//!
//! # What each layer takes
//!
//! | seqnet layer | PyTorch module | tensors → learnables |
//! |---|---|---|
//! | `Lstm` | `nn.LSTM` | `weight_ih_l{k}` → InputWeights, `weight_hh_l{k}` → RecurrentWeights, `bias_ih_l{k} + bias_hh_l{k}` → Bias |
//! | `BiLstm` | `nn.LSTM(bidirectional=True)` | as `Lstm`, the `_reverse` tensors stacked below the forward ones (rows `4H..8H`) |
//! | `Gru` (`ResetGateMode` `recurrent-bias-after-multiplication`) | `nn.GRU` | `weight_ih_l{k}` → InputWeights, `weight_hh_l{k}` → RecurrentWeights, `bias_ih_l{k}` → Bias, `bias_hh_l{k}` → RecurrentBias |
//! | `BiGru` (same mode) | `nn.GRU(bidirectional=True)` | as `Gru`, the `_reverse` tensors stacked below the forward ones (rows `3H..6H`) |
//! | `FullyConnected` | `nn.Linear` | `weight` → Weights, `bias` → Bias |
//! | `Convolution2d` | `nn.Conv2d` | `weight` → Weights, `bias` → Bias |
//! | `Convolution1d` | `nn.Conv1d` | `weight` → Weights `[F, C, K]`, `bias` → Bias |
//! | `BatchNormalization` | `nn.BatchNorm1d`, `nn.BatchNorm2d` | `weight` → Scale, `bias` → Offset, `running_mean` → TrainedMean, `running_var` → TrainedVariance (`num_batches_tracked` is ignored) |
//! | `LayerNormalization` | `nn.LayerNorm` | `weight` → Scale, `bias` → Offset |
//! | `WordEmbedding` | `nn.Embedding` | `weight` → Weights `[NumWords, Dimension]` (set `index_base(0)` for PyTorch's indices) |
//! | `SelfAttention` | `nn.MultiheadAttention` | `in_proj_weight` rows `0..K` → QueryWeights, `K..2K` → KeyWeights, `2K..2K+V` → ValueWeights; `in_proj_bias` likewise → QueryBias, KeyBias, ValueBias; `out_proj.weight` → OutputWeights, `out_proj.bias` → OutputBias |
//!
//! The gate orders agree: PyTorch's LSTM rows `i, f, g, o` are MATLAB's, and
//! its GRU rows `r, z, n` are seqnet's. `nn.GRU` is MATLAB's GRU with
//! `ResetGateMode` `recurrent-bias-after-multiplication`; a GRU in another
//! mode (MATLAB's default `after-multiplication` among them) is refused with
//! an error saying so. Biases are optional as in PyTorch (`bias=False` gives
//! none): both absent means zeros; only one of a pair present is an error.
//!
//! Every mismatch is an error naming the tensor and the layer: a tensor that
//! is missing or has the wrong shape or type, a layer with learnables that
//! the mapping leaves out, a mapped layer without learnables, and a tensor
//! under a mapped prefix that no layer uses. Tensors outside the mapped
//! prefixes are ignored.

use crate::error::{Error, Result};
use crate::model::Model;
use crate::train::classes_of;
use ndarray::{concatenate, ArrayD, Axis, IxDyn};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;
use seqnet_core::layers::{BiGru, Gru, Normalization, SequenceInput};
use seqnet_core::{Layer, LayerGraph, Network, TorchLayout};
use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;

/// Which state-dict prefix each graph layer takes its parameters from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TorchMapping {
    /// Layer name → prefix (optionally ending in `@k` for layer `k` of a
    /// multi-layer recurrent module).
    pub layers: BTreeMap<String, String>,
}

impl TorchMapping {
    /// A mapping from `(layer, prefix)` pairs.
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        TorchMapping {
            layers: pairs
                .into_iter()
                .map(|(l, p)| (l.to_string(), p.to_string()))
                .collect(),
        }
    }

    /// A mapping from its JSON object; `origin` names the file in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        let layers: BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|source| Error::MappingJson {
                file: origin.to_string(),
                line: source.line(),
                source,
            })?;
        Ok(TorchMapping { layers })
    }
}

/// A prefix and recurrent layer index parsed from a mapping value.
fn split_prefix(layer: &str, spec: &str) -> Result<(String, Option<usize>)> {
    match spec.rsplit_once('@') {
        None => Ok((spec.to_string(), None)),
        Some((p, k)) => k
            .parse::<usize>()
            .map(|k| (p.to_string(), Some(k)))
            .map_err(|_| Error::TorchBadIndex {
                layer: layer.to_string(),
                spec: spec.to_string(),
            }),
    }
}

/// The tensors of a state dict, read as f32, with the names used so far.
struct StateDict<'a> {
    st: SafeTensors<'a>,
    origin: String,
    used: BTreeSet<String>,
}

impl StateDict<'_> {
    fn name(prefix: &str, param: &str) -> String {
        if prefix.is_empty() {
            param.to_string()
        } else {
            format!("{prefix}.{param}")
        }
    }

    fn has(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// Tensor `name` as f32 for `learnable` of layer `layer`; F64, F16 and
    /// BF16 are converted.
    fn get(&mut self, layer: &str, learnable: &'static str, name: &str) -> Result<ArrayD<f32>> {
        let t = self
            .st
            .tensor(name)
            .map_err(|_| Error::TorchMissingTensor {
                layer: layer.to_string(),
                learnable,
                tensor: name.to_string(),
                file: self.origin.clone(),
            })?;
        let data = t.data();
        let values: Vec<f32> = match t.dtype() {
            Dtype::F32 => data
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
            Dtype::F64 => data
                .chunks_exact(8)
                .map(|b| {
                    f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32
                })
                .collect(),
            Dtype::F16 => data
                .chunks_exact(2)
                .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
                .collect(),
            Dtype::BF16 => data
                .chunks_exact(2)
                .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
                .collect(),
            other => {
                return Err(Error::TorchTensorType {
                    layer: layer.to_string(),
                    tensor: name.to_string(),
                    file: self.origin.clone(),
                    dtype: format!("{other:?}"),
                })
            }
        };
        self.used.insert(name.to_string());
        // safetensors checked that the data holds exactly the shape's elements.
        Ok(ArrayD::from_shape_vec(IxDyn(t.shape()), values)
            .expect("safetensors checks the data length against the shape"))
    }
}

/// IEEE half precision to f32.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: normalize.
            let mut e = -14;
            let mut f = f;
            while f & 0x400 == 0 {
                f <<= 1;
                e -= 1;
            }
            sign | (((e + 127) as u32) << 23) | ((f & 0x3ff) << 13)
        }
        (31, 0) => sign | 0x7f80_0000,
        (31, f) => sign | 0x7fc0_0000 | (f << 13),
        (e, f) => sign | (((e - 15 + 127) as u32) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Rows `rows` of `a` (its first axis), or all of it.
fn rows_of(
    layer: &str,
    key: &str,
    a: ArrayD<f32>,
    rows: &Option<Range<usize>>,
) -> Result<ArrayD<f32>> {
    let Some(r) = rows else { return Ok(a) };
    let n = a.shape().first().copied().unwrap_or(0);
    if r.end > n || r.start > r.end {
        return Err(Error::TorchRows {
            layer: layer.to_string(),
            tensor: key.to_string(),
            rows: n,
            wanted: r.clone(),
        });
    }
    Ok(a.slice_axis(Axis(0), (r.start..r.end).into()).to_owned())
}

/// The values of every learnable and state `layout` declares, read from
/// `sd` with `key` turning a relative key into a state-dict name. `want`
/// gives each target's shape; every part of a term is a `1/parts` share of
/// its rows.
fn layout_values(
    sd: &mut StateDict,
    name: &str,
    layout: &TorchLayout,
    key: &dyn Fn(&str) -> String,
    want: &BTreeMap<String, Vec<usize>>,
) -> Result<Vec<(&'static str, ArrayD<f32>)>> {
    // Optional tensors (biases) are present or absent together.
    let optional: Vec<String> = layout
        .params
        .iter()
        .filter(|p| p.optional)
        .flat_map(|p| p.terms.iter().flatten().map(|s| key(&s.key)))
        .collect();
    let present: Vec<&String> = optional.iter().filter(|k| sd.has(k)).collect();
    if let (Some(have), Some(missing)) = (present.first(), optional.iter().find(|k| !sd.has(k))) {
        return Err(Error::TorchMissingPair {
            layer: name.to_string(),
            tensor: missing.clone(),
            pair: (*have).clone(),
            file: sd.origin.clone(),
        });
    }
    let mut values = Vec::new();
    for p in &layout.params {
        let shape = want.get(p.target).cloned().ok_or_else(|| {
            Error::Core(seqnet_core::Error::Learnable {
                layer: name.to_string(),
                learnable: p.target.to_string(),
                message: "the layer's PyTorch layout names it, but the layer has no such learnable or statistic".into(),
            })
        })?;
        if p.optional && present.is_empty() {
            values.push((p.target, ArrayD::zeros(IxDyn(&shape))));
            continue;
        }
        let mut sum: Option<ArrayD<f32>> = None;
        for term in &p.terms {
            let mut part_shape = shape.clone();
            if let Some(rows) = part_shape.first_mut() {
                *rows /= term.len().max(1);
            }
            let parts = term
                .iter()
                .map(|src| {
                    let k = key(&src.key);
                    let a = rows_of(name, &k, sd.get(name, p.target, &k)?, &src.rows)?;
                    if a.shape() != part_shape.as_slice() {
                        return Err(Error::TorchShape {
                            layer: name.to_string(),
                            learnable: p.target,
                            tensor: k,
                            found: a.shape().into(),
                            expected: part_shape.as_slice().into(),
                        });
                    }
                    Ok(a)
                })
                .collect::<Result<Vec<_>>>()?;
            let views: Vec<_> = parts.iter().map(|a| a.view()).collect();
            // Every part was checked to have `part_shape`.
            let stacked = concatenate(Axis(0), &views).expect("parts of one checked shape");
            sum = Some(match sum {
                Some(acc) => acc + stacked,
                None => stacked,
            });
        }
        values.push((
            p.target,
            sum.unwrap_or_else(|| ArrayD::zeros(IxDyn(&shape))),
        ));
    }
    for ignored in &layout.ignored {
        let k = key(ignored);
        if sd.has(&k) {
            sd.used.insert(k);
        }
    }
    Ok(values)
}

/// The shapes the network wants for layer `layer`'s learnables and states.
fn wanted(network: &Network, layer: &str) -> BTreeMap<String, Vec<usize>> {
    network
        .learnables()
        .into_iter()
        .filter(|(l, _)| *l == layer)
        .map(|(_, p)| (p.name.to_string(), p.value.shape().to_vec()))
        .chain(
            network
                .states()
                .into_iter()
                .filter(|(l, _)| *l == layer)
                .map(|(_, s)| (s.name.to_string(), s.value.shape().to_vec())),
        )
        .collect()
}

/// Builds a network from `graph` with the parameters of a PyTorch state dict
/// (`state_dict`: the bytes of a `.safetensors` file; `origin` names it in
/// errors) placed as `mapping` says. The returned model has the class names
/// of the graph's classification layer, if any, and no training options.
///
/// See the [module documentation](self) for the mapping and the tensors each
/// layer takes.
///
/// # Errors
/// [`Error::NotSafetensors`] when the bytes are not a safetensors file; a
/// `Torch…` variant naming the layer (and the learnable and tensor) for every
/// mismatch; graph errors from building the network.
pub fn import_torch(
    graph: &LayerGraph,
    state_dict: &[u8],
    origin: &str,
    mapping: &TorchMapping,
) -> Result<Model> {
    let st = SafeTensors::deserialize(state_dict).map_err(|source| Error::NotSafetensors {
        file: origin.to_string(),
        source,
    })?;
    let mut sd = StateDict {
        st,
        origin: origin.to_string(),
        used: BTreeSet::new(),
    };
    let mut network = Network::new(graph, 0)?;
    for name in mapping.layers.keys() {
        if graph.layer(name).is_none() {
            return Err(Error::TorchUnknownLayer {
                layer: name.clone(),
            });
        }
    }
    let mut prefixes = BTreeSet::new();
    for layer in &graph.layers {
        if let Some(prefix) = import_layer(&mut sd, &mut network, layer, mapping)? {
            prefixes.insert(prefix);
        }
    }
    unused_tensors(&sd, &prefixes, mapping)?;
    let classes = classes_of(graph);
    Ok(Model {
        network,
        classes,
        options: None,
    })
}

/// Sets `layer`'s learnables and statistics from the state dict under the
/// prefix the mapping gives it; returns that prefix (`None`: the layer is
/// not mapped and needs nothing).
fn import_layer(
    sd: &mut StateDict,
    network: &mut Network,
    layer: &Layer,
    mapping: &TorchMapping,
) -> Result<Option<String>> {
    let name = layer.name();
    let want = wanted(network, name);
    if let Some(s) = layer.downcast_ref::<SequenceInput>() {
        if s.normalization != Normalization::None {
            return Err(Error::TorchNormalizedInput {
                layer: name.to_string(),
            });
        }
    }
    let Some(spec) = mapping.layers.get(name) else {
        if !want.is_empty() {
            return Err(Error::TorchUnmappedLayer {
                layer: name.to_string(),
                learnables: want.keys().cloned().collect(),
            });
        }
        return Ok(None);
    };
    let (prefix, index) = split_prefix(name, spec)?;
    let Some(layout) = layer.def().torch_layout() else {
        let gru_mode = layer
            .downcast_ref::<Gru>()
            .map(|g| g.reset_gate_mode)
            .or_else(|| layer.downcast_ref::<BiGru>().map(|g| g.reset_gate_mode));
        if let Some(mode) = gru_mode {
            return Err(Error::TorchGruMode {
                layer: name.to_string(),
                kind: layer.def().type_name().to_string(),
                mode: mode.label().to_string(),
            });
        }
        return Err(Error::TorchNotImportable {
            layer: name.to_string(),
            kind: layer.def().type_name().to_string(),
            spec: spec.clone(),
        });
    };
    if index.is_some() && !layout.indexed() {
        return Err(Error::TorchIndexNotRecurrent {
            layer: name.to_string(),
            spec: spec.clone(),
            kind: layer.def().type_name().to_string(),
        });
    }
    let key =
        |k: &str| StateDict::name(&prefix, &k.replace("{k}", &index.unwrap_or(0).to_string()));
    for (learnable, value) in layout_values(sd, name, &layout, &key, &want)? {
        network.set_learnable(name, learnable, value)?;
    }
    Ok(Some(prefix))
}

/// A tensor under a mapped prefix that no layer took is a mapping mistake
/// (say, the second layer of a two-layer LSTM mapped to nothing).
fn unused_tensors(
    sd: &StateDict,
    prefixes: &BTreeSet<String>,
    mapping: &TorchMapping,
) -> Result<()> {
    let mut names: Vec<String> = sd.st.names().into_iter().map(str::to_string).collect();
    names.sort_unstable();
    for t in names.iter().filter(|t| !sd.used.contains(*t)) {
        let under = prefixes.iter().find(|p| {
            if p.is_empty() {
                !t.contains('.')
            } else {
                t.strip_prefix(p.as_str())
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|rest| !rest.contains('.'))
            }
        });
        if let Some(p) = under {
            let owner = mapping
                .layers
                .iter()
                .find(|(_, s)| split_prefix("", s).map(|(q, _)| &q == p).unwrap_or(false))
                .map(|(l, _)| l.as_str());
            return Err(Error::TorchUnusedTensor {
                layer: owner.unwrap_or("").to_string(),
                tensor: t.clone(),
                file: sd.origin.clone(),
                prefix: p.clone(),
            });
        }
    }
    Ok(())
}

/// [`import_torch`] on files: the state dict (`.safetensors`), the graph
/// JSON and the mapping JSON.
pub fn import_torch_files(
    state_dict: impl AsRef<Path>,
    graph: impl AsRef<Path>,
    mapping: impl AsRef<Path>,
) -> Result<Model> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| Error::io(p, e));
    let text = |p: &Path| {
        String::from_utf8(read(p)?).map_err(|_| Error::NotText {
            file: p.display().to_string(),
        })
    };
    let (sd, g, m) = (state_dict.as_ref(), graph.as_ref(), mapping.as_ref());
    let graph = LayerGraph::from_json(&text(g)?, &g.display().to_string())?;
    let mapping = TorchMapping::from_json(&text(m)?, &m.display().to_string())?;
    import_torch(&graph, &read(sd)?, &sd.display().to_string(), &mapping)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn prefixes() {
        assert_eq!(
            split_prefix("l", "lstm@1").unwrap(),
            ("lstm".into(), Some(1))
        );
        assert_eq!(
            split_prefix("l", "param.lstm").unwrap(),
            ("param.lstm".into(), None)
        );
        assert!(split_prefix("l", "lstm@x").is_err());
    }
}
