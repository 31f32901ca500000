//! Import: an ONNX model written by `torch.onnx.export` (opset 17 or newer)
//! becomes an ordinary seqnet layer graph with MATLAB-style layers.
//!
//! The importer walks the nodes in order, knowing each tensor as a
//! [`values::Value`]: constants, shapes computed from the input's batch and
//! time sizes (the exporter's `Shape → Gather → Unsqueeze → Concat` chains),
//! zero initial states (`ConstantOfShape`), or data, a seqnet layer's output
//! in some ONNX layout. Shape arithmetic and layout changes make no layers;
//! each computing node becomes one seqnet layer (see `docs/ONNX.md` for the
//! patterns). Anything else is an error naming the node, its op type and
//! what is supported.

mod builder;
mod ops;
mod values;

use crate::error::{Error, Result};
use crate::proto::{tensor_shape_proto::dimension, type_proto, ModelProto, ValueInfoProto};
use builder::Builder;
use prost::Message;
use seqnet_core::layers::SequenceInput;
use seqnet_train::Model;
use std::path::Path;
use values::{Const, Data, Layout, Value};

/// The lowest opset imported.
pub const MIN_OPSET: i64 = 17;

/// Reads the ONNX model at `path` as a seqnet model (see the module docs).
/// Classification names are not in ONNX files: a network ending in softmax
/// gets classes `"1"` … `"K"`.
pub fn import_onnx(path: impl AsRef<Path>) -> Result<Model> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|source| Error::Decode {
        path: path.to_path_buf(),
        source,
    })?;
    import_model(&model)
}

/// [`import_onnx`] of an encoded model.
pub fn import_onnx_bytes(bytes: &[u8]) -> Result<Model> {
    let model = ModelProto::decode(bytes).map_err(|source| Error::Decode {
        path: "(bytes)".into(),
        source,
    })?;
    import_model(&model)
}

fn import_model(model: &ModelProto) -> Result<Model> {
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.as_deref().unwrap_or("").is_empty())
        .and_then(|o| o.version)
        .ok_or_else(|| Error::Import("the model imports no opset of the default domain".into()))?;
    if opset < MIN_OPSET {
        return Err(Error::Import(format!(
            "opset {opset}: models of opset {MIN_OPSET} or newer are imported"
        )));
    }
    let graph = model
        .graph
        .as_ref()
        .ok_or_else(|| Error::Import("the model has no graph".into()))?;
    let mut b = Builder::new();
    for t in &graph.initializer {
        let name = t.name.clone().unwrap_or_default();
        b.values.insert(name, Value::Const(Const::from_proto(t)?));
    }
    let inputs: Vec<&ValueInfoProto> = graph
        .input
        .iter()
        .filter(|i| !b.values.contains_key(i.name.as_deref().unwrap_or("")))
        .collect();
    let [input] = inputs[..] else {
        return Err(Error::Import(format!(
            "the graph has {} inputs; one data input (batch first) is imported",
            inputs.len()
        )));
    };
    add_input(&mut b, input)?;
    for node in &graph.node {
        ops::convert(&mut b, node)?;
    }
    let [output] = &graph.output[..] else {
        return Err(Error::Import(format!(
            "the graph has {} outputs; one is imported",
            graph.output.len()
        )));
    };
    let name = output.name.clone().unwrap_or_default();
    b.finish(&name)
}

/// The static sizes of `[batch, time, C]` or `[batch, time, C, H, W]`.
fn add_input(b: &mut Builder, input: &ValueInfoProto) -> Result<()> {
    let name = input.name.clone().unwrap_or_default();
    let dims: Vec<Option<usize>> = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t
            .shape
            .as_ref()
            .map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        _ => vec![],
    };
    let bad = || {
        Error::Import(format!(
            "input '{name}' must be float [batch, time, C] or [batch, time, C, H, W] with C, H, W fixed, got {dims:?}"
        ))
    };
    let layer = match dims[..] {
        [_, _, Some(c)] => SequenceInput::new(c),
        [_, _, Some(c), Some(h), Some(w)] => SequenceInput::image([h, w, c]),
        _ => return Err(bad()),
    };
    let shape = layer.shape();
    let layout = if dims.len() == 3 {
        Layout::Btc
    } else {
        Layout::Btchw
    };
    let port = b.add("sequenceinput", layer.into(), &[])?;
    b.values.insert(
        name,
        Value::Data(Data {
            port,
            shape,
            layout,
        }),
    );
    Ok(())
}
