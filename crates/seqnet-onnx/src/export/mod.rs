//! Export: a network's layers become ONNX nodes, one layer at a time in the
//! plan's order, each through [`builtin::export_layer`] (the built-in layers)
//! or the layer's own [`seqnet_core::LayerDef::onnx_export`].

mod attention;
mod builtin;
mod conv;
mod masks;
mod recurrent;
mod to_proto;

use crate::error::{Error, Result};
use ndarray::ArrayD;
use seqnet_core::layers::SequenceInput;
use seqnet_core::onnx::{OnnxAttr, OnnxGraph, OnnxLayerCtx, OnnxNode, OnnxValue};
use seqnet_core::{Format, Network};
use seqnet_train::Model;
use std::collections::HashMap;
use std::path::Path;

/// The opsets the exporter writes (ONNX's default domain).
pub const OPSETS: std::ops::RangeInclusive<i64> = 17..=21;

/// How to export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportOptions {
    /// The ONNX opset (default 17; see [`OPSETS`]).
    pub opset: i64,
    /// Whether the model has the input `sequence_lens` (int32 `[B]`), for
    /// right-padded batches of sequences of different lengths (default true).
    /// Without it, every sequence is taken to fill the time axis.
    pub sequence_lens: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions {
            opset: 17,
            sequence_lens: true,
        }
    }
}

/// Writes `model`'s network to `path` as an ONNX model (see the crate docs
/// for the interface). Nothing is written when a layer cannot be exported:
/// the error names it. The file is written to a temporary file first and
/// renamed, so a failed write leaves no partial file.
pub fn export_onnx(model: &Model, path: impl AsRef<Path>, options: &ExportOptions) -> Result<()> {
    let bytes = export_onnx_bytes(&model.network, options)?;
    seqnet_train::model::write_atomically(path.as_ref(), &bytes)?;
    Ok(())
}

/// The ONNX model of `network`, encoded (see [`export_onnx`]).
pub fn export_onnx_bytes(network: &Network, options: &ExportOptions) -> Result<Vec<u8>> {
    if !OPSETS.contains(&options.opset) {
        return Err(Error::Export(format!(
            "opset {} is not supported; choose one of {}..={}",
            options.opset,
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let exported = build_graph(network, options)?;
    Ok(to_proto::encode(&exported, options.opset))
}

/// The collected graph and its interface.
pub(crate) struct Exported {
    pub graph: OnnxGraph,
    /// The input's format (`C×B×T` or `S×S×C×B×T`) and its channels and frame size.
    pub input: OnnxValue,
    /// The output's format and channels.
    pub output: OnnxValue,
    pub sequence_lens: bool,
}

/// The graph input's and output's names, and the lengths input's.
pub(crate) const INPUT: &str = "input";
pub(crate) const OUTPUT: &str = "output";
pub(crate) const SEQUENCE_LENS: &str = "sequence_lens";

fn build_graph(network: &Network, options: &ExportOptions) -> Result<Exported> {
    let graph_def = network.graph();
    let plan = network.plan();
    let mut g = OnnxGraph::default();
    let mut values: HashMap<(usize, usize), OnnxValue> = HashMap::new();
    let (mut input, mut output) = (None, None);
    for &i in &plan.order {
        let layer = &graph_def.layers[i];
        let def = layer.def();
        let inputs: Vec<OnnxValue> = plan.sources[i]
            .iter()
            .map(|s| values[&(s.layer, s.port)].clone())
            .collect();
        if def.is_input() {
            if input.is_some() {
                return Err(one_of("input", def.name()));
            }
            let si = layer.downcast_ref::<SequenceInput>().ok_or_else(|| {
                seqnet_core::Error::layer(
                    def.name(),
                    "ONNX export: the input layer must be a sequence input layer",
                )
            })?;
            let (raw, v) = graph_input(&mut g, si, &params_of(network, def.name()), options)?;
            input = Some(raw);
            values.insert((i, 0), v);
            continue;
        }
        if def.is_output() {
            if output.is_some() {
                return Err(one_of("output", def.name()));
            }
            output = Some(inputs[0].clone());
            continue;
        }
        let mut ctx = OnnxLayerCtx {
            graph: &mut g,
            layer: def.name(),
            inputs,
            params: params_of(network, def.name()),
            opset: options.opset,
        };
        let outs = match builtin::export_layer(layer, &mut ctx)? {
            Some(outs) => outs,
            None => def.onnx_export(&mut ctx)?,
        };
        for (port, v) in outs.into_iter().enumerate() {
            values.insert((i, port), v);
        }
    }
    let input = input.ok_or_else(|| Error::Export("the network has no input layer".into()))?;
    let output = output.ok_or_else(|| Error::Export("the network has no output layer".into()))?;
    let output = graph_output(&mut g, output);
    Ok(Exported {
        graph: g,
        input,
        output,
        sequence_lens: options.sequence_lens,
    })
}

fn one_of(what: &str, layer: &str) -> Error {
    Error::Export(format!(
        "the ONNX interface has one {what}; layer '{layer}' is a second {what} layer"
    ))
}

/// Learnables and states of `layer`, copied out.
fn params_of<'a>(network: &'a Network, layer: &str) -> Vec<(&'a str, ArrayD<f32>)> {
    let learnables = network
        .learnables()
        .into_iter()
        .filter(|(l, _)| *l == layer)
        .map(|(_, p)| (p.name, p.value.to_owned()));
    let states = network
        .states()
        .into_iter()
        .filter(|(l, _)| *l == layer)
        .map(|(_, s)| (s.name, s.value.to_owned()));
    learnables.chain(states).collect()
}

/// The graph input (batch first) made time-major, then normalized as the
/// sequence input layer does. Returns the raw input's description and the
/// layer's output.
fn graph_input(
    g: &mut OnnxGraph,
    layer: &SequenceInput,
    params: &[(&str, ArrayD<f32>)],
    options: &ExportOptions,
) -> Result<(OnnxValue, OnnxValue)> {
    let shape = layer.shape();
    let lengths = options.sequence_lens.then(|| SEQUENCE_LENS.to_string());
    let raw = OnnxValue {
        name: INPUT.to_string(),
        shape,
        lengths: lengths.clone(),
    };
    let perm: &[i64] = match shape.format {
        Format::SSCBT => &[1, 0, 2, 3, 4],
        _ => &[1, 0, 2],
    };
    let x = g.transpose(&layer.name, INPUT, perm);
    let (scale, shift) = builtin::input_affine(layer, params)?;
    let x = match (scale, shift) {
        (None, None) => x,
        (s, t) => builtin::channel_affine(g, &layer.name, &x, &shape, s, t),
    };
    Ok((
        raw,
        OnnxValue {
            name: x,
            shape,
            lengths,
        },
    ))
}

/// The network's output made batch first, named [`OUTPUT`].
fn graph_output(g: &mut OnnxGraph, value: OnnxValue) -> OnnxValue {
    let (op, attributes) = match value.shape.format {
        Format::CBT => ("Transpose", vec![("perm", OnnxAttr::Ints(vec![1, 0, 2]))]),
        Format::SSCBT => (
            "Transpose",
            vec![("perm", OnnxAttr::Ints(vec![1, 0, 2, 3, 4]))],
        ),
        _ => ("Identity", vec![]),
    };
    g.nodes.push(OnnxNode {
        name: format!("{OUTPUT}/{op}"),
        op_type: op.to_string(),
        inputs: vec![value.name.clone()],
        outputs: vec![OUTPUT.to_string()],
        attributes: attributes
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    });
    OnnxValue {
        name: OUTPUT.to_string(),
        ..value
    }
}
