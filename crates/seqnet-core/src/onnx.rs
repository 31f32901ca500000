//! A small ONNX graph builder, free of protobuf: what a layer's ONNX export
//! writes ([`crate::LayerDef::onnx_export`]). The crate `seqnet-onnx` walks a
//! network, hands each layer an [`OnnxLayerCtx`] and turns the collected
//! [`OnnxGraph`] into an ONNX `ModelProto`.
//!
//! **Layouts.** Every tensor between layers has seqnet's memory layout of its
//! format (see [`crate::format`]): `C×B` is `[B, C]`, `C×B×T` is `[T, B, C]`,
//! `S×S×C×B` is `[B, C, H, W]` and `S×S×C×B×T` is `[T, B, C, H, W]` (time
//! first, as ONNX's recurrent operators want it). The exporter adds the
//! transposes from and to the batch-first interface.

use crate::error::{Error, Result};
use crate::format::ActShape;
use ndarray::ArrayD;

/// The values of an ONNX tensor (initializer or attribute).
#[derive(Debug, Clone, PartialEq)]
pub enum OnnxData {
    Float(Vec<f32>),
    Int64(Vec<i64>),
}

/// A constant tensor: name, dimensions and row-major values.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxTensor {
    pub name: String,
    pub dims: Vec<i64>,
    pub data: OnnxData,
}

/// An attribute value of a node.
#[derive(Debug, Clone, PartialEq)]
pub enum OnnxAttr {
    Int(i64),
    Float(f32),
    Ints(Vec<i64>),
    Floats(Vec<f32>),
    String(String),
    Strings(Vec<String>),
}

/// One node: operator type, input and output tensor names (`""` for an
/// omitted optional input), attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxNode {
    pub name: String,
    pub op_type: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub attributes: Vec<(String, OnnxAttr)>,
}

/// The nodes and initializers collected so far, with unique names.
#[derive(Debug, Clone, Default)]
pub struct OnnxGraph {
    pub nodes: Vec<OnnxNode>,
    pub initializers: Vec<OnnxTensor>,
    counter: usize,
}

impl OnnxGraph {
    /// A fresh unique name starting with `stem`.
    pub fn unique(&mut self, stem: &str) -> String {
        self.counter += 1;
        format!("{stem}_{}", self.counter)
    }

    /// Adds node `op` named after `stem` with `n_outputs` fresh outputs; returns them.
    pub fn node_n(
        &mut self,
        stem: &str,
        op: &str,
        inputs: &[&str],
        n_outputs: usize,
        attributes: Vec<(&str, OnnxAttr)>,
    ) -> Vec<String> {
        let name = self.unique(&format!("{stem}/{op}"));
        let outputs: Vec<String> = (0..n_outputs).map(|i| format!("{name}:{i}")).collect();
        self.nodes.push(OnnxNode {
            name,
            op_type: op.to_string(),
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: outputs.clone(),
            attributes: attributes
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        });
        outputs
    }

    /// Adds node `op` with one output; returns its name.
    pub fn node(
        &mut self,
        stem: &str,
        op: &str,
        inputs: &[&str],
        attributes: Vec<(&str, OnnxAttr)>,
    ) -> String {
        self.node_n(stem, op, inputs, 1, attributes).remove(0)
    }

    /// Adds a float initializer of shape `dims`; returns its name.
    pub fn float(&mut self, stem: &str, dims: &[usize], data: Vec<f32>) -> String {
        let name = self.unique(stem);
        self.initializers.push(OnnxTensor {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: OnnxData::Float(data),
        });
        name
    }

    /// Adds an int64 initializer of shape `dims` (`&[]` for a scalar); returns its name.
    pub fn int64(&mut self, stem: &str, dims: &[usize], data: Vec<i64>) -> String {
        let name = self.unique(stem);
        self.initializers.push(OnnxTensor {
            name: name.clone(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data: OnnxData::Int64(data),
        });
        name
    }

    /// `x` transposed by `perm`.
    pub fn transpose(&mut self, stem: &str, x: &str, perm: &[i64]) -> String {
        self.node(
            stem,
            "Transpose",
            &[x],
            vec![("perm", OnnxAttr::Ints(perm.to_vec()))],
        )
    }

    /// `x` reshaped to `shape` (ONNX `Reshape` semantics: 0 copies, −1 infers).
    pub fn reshape(&mut self, stem: &str, x: &str, shape: &[i64]) -> String {
        let s = self.int64(&format!("{stem}/shape"), &[shape.len()], shape.to_vec());
        self.node(stem, "Reshape", &[x, &s], vec![])
    }
}

/// One tensor of the exported graph as a layer sees it: its ONNX name, its
/// seqnet shape, and for sequences, the name of its int32 `[B]` lengths
/// tensor when the export has `sequence_lens` (`None`: every sequence fills
/// the time axis).
#[derive(Debug, Clone, PartialEq)]
pub struct OnnxValue {
    pub name: String,
    pub shape: ActShape,
    pub lengths: Option<String>,
}

/// What [`crate::LayerDef::onnx_export`] gets: the graph to add to, the
/// layer's inputs (one per port) and its learnables and states by name.
pub struct OnnxLayerCtx<'a> {
    pub graph: &'a mut OnnxGraph,
    /// The layer's name (a stem for its node names).
    pub layer: &'a str,
    pub inputs: Vec<OnnxValue>,
    /// The layer's learnables and states, by MATLAB name.
    pub params: Vec<(&'a str, ArrayD<f32>)>,
    /// The opset the model declares.
    pub opset: i64,
}

impl OnnxLayerCtx<'_> {
    /// Learnable or state `name`; an error naming the layer if it has none.
    pub fn param(&self, name: &str) -> Result<&ArrayD<f32>> {
        self.params
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| Error::layer(self.layer, format!("ONNX export: no learnable {name}")))
    }

    /// Input `port`; an error naming the layer if it is missing.
    pub fn input(&self, port: usize) -> Result<&OnnxValue> {
        self.inputs
            .get(port)
            .ok_or_else(|| Error::layer(self.layer, format!("ONNX export: no input {port}")))
    }

    /// Adds a node named after the layer (see [`OnnxGraph::node`]).
    pub fn node(&mut self, op: &str, inputs: &[&str], attributes: Vec<(&str, OnnxAttr)>) -> String {
        self.graph.node(self.layer, op, inputs, attributes)
    }

    /// Adds a float initializer named after the layer.
    pub fn float(&mut self, what: &str, dims: &[usize], data: Vec<f32>) -> String {
        self.graph
            .float(&format!("{}/{what}", self.layer), dims, data)
    }

    /// Adds an int64 initializer named after the layer.
    pub fn int64(&mut self, what: &str, dims: &[usize], data: Vec<i64>) -> String {
        self.graph
            .int64(&format!("{}/{what}", self.layer), dims, data)
    }

    /// An error naming the layer: "ONNX export: `message`".
    pub fn unsupported(&self, message: impl std::fmt::Display) -> Error {
        Error::layer(self.layer, format!("ONNX export: {message}"))
    }
}
