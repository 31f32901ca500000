//! The collected [`OnnxGraph`] as an ONNX `ModelProto`, encoded.

use super::{Exported, INPUT, OUTPUT, SEQUENCE_LENS};
use crate::proto::{
    attribute_proto::AttributeType, tensor_proto::DataType, tensor_shape_proto::dimension,
    tensor_shape_proto::Dimension, type_proto, AttributeProto, GraphProto, ModelProto, NodeProto,
    OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};
use prost::Message;
use seqnet_core::onnx::{OnnxAttr, OnnxData, OnnxNode, OnnxTensor};
use seqnet_core::{ActShape, Format};

/// The IR version that goes with `opset` (ONNX's versioning table).
fn ir_version(opset: i64) -> i64 {
    match opset {
        ..=18 => 8,
        19 | 20 => 9,
        _ => 10,
    }
}

/// Encodes the model: graph `seqnet`, producer `seqnet`, the default domain at `opset`.
pub(crate) fn encode(e: &Exported, opset: i64) -> Vec<u8> {
    let mut inputs = vec![value_info(INPUT, DataType::Float, dims_of(&e.input.shape))];
    if e.sequence_lens && e.input.shape.format.has_time() {
        inputs.push(value_info(
            SEQUENCE_LENS,
            DataType::Int32,
            vec![Dim::Param("batch")],
        ));
    }
    let graph = GraphProto {
        name: Some("seqnet".into()),
        node: e.graph.nodes.iter().map(node).collect(),
        initializer: e.graph.initializers.iter().map(tensor).collect(),
        input: inputs,
        output: vec![value_info(
            OUTPUT,
            DataType::Float,
            dims_of(&e.output.shape),
        )],
        ..Default::default()
    };
    let model = ModelProto {
        ir_version: Some(ir_version(opset)),
        producer_name: Some("seqnet".into()),
        producer_version: Some(env!("CARGO_PKG_VERSION").into()),
        opset_import: vec![OperatorSetIdProto {
            domain: Some(String::new()),
            version: Some(opset),
        }],
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

/// One dimension of an interface tensor.
enum Dim {
    Value(usize),
    Param(&'static str),
}

/// The batch-first interface dimensions of a value of `shape`.
fn dims_of(shape: &ActShape) -> Vec<Dim> {
    let mut d = vec![Dim::Param("batch")];
    if shape.format.has_time() {
        d.push(Dim::Param("time"));
    }
    d.push(Dim::Value(shape.channels));
    if matches!(shape.format, Format::SSCB | Format::SSCBT) {
        d.push(Dim::Value(shape.spatial[0]));
        d.push(Dim::Value(shape.spatial[1]));
    }
    d
}

fn value_info(name: &str, elem: DataType, dims: Vec<Dim>) -> ValueInfoProto {
    let dim = dims
        .into_iter()
        .map(|d| Dimension {
            value: Some(match d {
                Dim::Value(v) => dimension::Value::DimValue(v as i64),
                Dim::Param(p) => dimension::Value::DimParam(p.into()),
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: Some(name.into()),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: Some(elem as i32),
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn node(n: &OnnxNode) -> NodeProto {
    NodeProto {
        name: Some(n.name.clone()),
        op_type: Some(n.op_type.clone()),
        input: n.inputs.clone(),
        output: n.outputs.clone(),
        attribute: n.attributes.iter().map(|(k, v)| attribute(k, v)).collect(),
        ..Default::default()
    }
}

fn attribute(name: &str, v: &OnnxAttr) -> AttributeProto {
    let mut a = AttributeProto {
        name: Some(name.into()),
        ..Default::default()
    };
    let t = match v {
        OnnxAttr::Int(i) => {
            a.i = Some(*i);
            AttributeType::Int
        }
        OnnxAttr::Float(f) => {
            a.f = Some(*f);
            AttributeType::Float
        }
        OnnxAttr::Ints(v) => {
            a.ints = v.clone();
            AttributeType::Ints
        }
        OnnxAttr::Floats(v) => {
            a.floats = v.clone();
            AttributeType::Floats
        }
        OnnxAttr::String(s) => {
            a.s = Some(s.as_bytes().to_vec());
            AttributeType::String
        }
        OnnxAttr::Strings(v) => {
            a.strings = v.iter().map(|s| s.as_bytes().to_vec()).collect();
            AttributeType::Strings
        }
    };
    a.r#type = Some(t as i32);
    a
}

fn tensor(t: &OnnxTensor) -> TensorProto {
    let mut p = TensorProto {
        name: Some(t.name.clone()),
        dims: t.dims.clone(),
        ..Default::default()
    };
    match &t.data {
        OnnxData::Float(v) => {
            p.data_type = Some(DataType::Float as i32);
            p.raw_data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
        }
        OnnxData::Int64(v) => {
            p.data_type = Some(DataType::Int64 as i32);
            p.raw_data = Some(v.iter().flat_map(|x| x.to_le_bytes()).collect());
        }
    }
    p
}
