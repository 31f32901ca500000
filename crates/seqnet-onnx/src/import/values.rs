//! What the importer knows about each ONNX tensor: a constant, a shape
//! computed at run time from the input's batch and time sizes, a zero
//! initial state, or data flowing through seqnet layers (which layer's
//! output, viewed in which ONNX layout).

use crate::error::{Error, Result};
use crate::proto::{tensor_proto::DataType, TensorProto};
use seqnet_core::ActShape;

/// A constant tensor, float or integer (both kept as given).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Const {
    pub dims: Vec<usize>,
    pub floats: Vec<f32>,
    pub ints: Vec<i64>,
}

impl Const {
    pub fn ints(dims: Vec<usize>, ints: Vec<i64>) -> Self {
        Const {
            dims,
            floats: vec![],
            ints,
        }
    }

    /// Decodes an initializer or a `Constant` node's tensor (float32, int64, int32).
    pub fn from_proto(t: &TensorProto) -> Result<Self> {
        let dims: Vec<usize> = t.dims.iter().map(|&d| d.max(0) as usize).collect();
        let name = t.name.clone().unwrap_or_default();
        let raw = t.raw_data.as_deref();
        let bad = |what: &str| Error::Import(format!("tensor '{name}': {what}"));
        let c = match DataType::try_from(t.data_type.unwrap_or(0)) {
            Ok(DataType::Float) => {
                let floats = match raw {
                    Some(r) => r
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect(),
                    None => t.float_data.clone(),
                };
                Const {
                    dims,
                    floats,
                    ints: vec![],
                }
            }
            Ok(DataType::Int64) => {
                let ints = match raw {
                    Some(r) => r
                        .chunks_exact(8)
                        .map(|b| i64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
                        .collect(),
                    None => t.int64_data.clone(),
                };
                Const::ints(dims, ints)
            }
            Ok(DataType::Int32) => {
                let ints = match raw {
                    Some(r) => r
                        .chunks_exact(4)
                        .map(|b| i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                        .collect(),
                    None => t.int32_data.iter().map(|&v| i64::from(v)).collect(),
                };
                Const::ints(dims, ints)
            }
            _ => return Err(bad("only float32, int64 and int32 tensors are read")),
        };
        let n: usize = c.dims.iter().product();
        if c.floats.len().max(c.ints.len()) != n {
            return Err(bad(&format!(
                "{n} values expected (external data is not read)"
            )));
        }
        Ok(c)
    }

    /// The number of values.
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// One dimension of a shape computed at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SymDim {
    Batch,
    Time,
    /// `B·T`, the folded frames.
    BatchTime,
    Known(i64),
}

/// How the ONNX tensor lays out the seqnet activation it views.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layout {
    /// `[B, T, C]` (a `C×B×T` activation, batch first).
    Btc,
    /// `[T, B, C]`.
    Tbc,
    /// `[B, C, T]` (for 1-D convolution).
    Bct,
    /// `[B, C]` (a `C×B` activation).
    Bc,
    /// `[B, T, C, H, W]` (an image sequence, batch first).
    Btchw,
    /// `[B·T, C, H, W]` (folded frames: a `S×S×C×B` activation).
    Nchw,
    /// A recurrent node's `Y` `[T, D, B, H]`.
    Y(usize),
    /// `Y` transposed to `[T, B, D, H]`.
    Ytbdh(usize),
    /// A recurrent node's `Y_h` `[D, B, H]`.
    Yh(usize),
}

/// Data from the seqnet graph: the output port (`"layer/port"`) it is, the
/// activation's shape and the ONNX view of it.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Data {
    pub port: String,
    pub shape: ActShape,
    pub layout: Layout,
}

impl Data {
    /// The ONNX dimensions of this view (batch and time symbolic).
    pub fn dims(&self) -> Vec<SymDim> {
        use SymDim::*;
        let c = Known(self.shape.channels as i64);
        let [h, w] = self.shape.spatial.map(|v| Known(v as i64));
        match self.layout {
            Layout::Btc => vec![Batch, Time, c],
            Layout::Tbc => vec![Time, Batch, c],
            Layout::Bct => vec![Batch, c, Time],
            Layout::Bc => vec![Batch, c],
            Layout::Btchw => vec![Batch, Time, c, h, w],
            Layout::Nchw => vec![BatchTime, c, h, w],
            Layout::Y(d) | Layout::Ytbdh(d) | Layout::Yh(d) => {
                let hh = Known((self.shape.channels / d) as i64);
                let dd = Known(d as i64);
                match self.layout {
                    Layout::Y(_) => vec![Time, dd, Batch, hh],
                    Layout::Ytbdh(_) => vec![Time, Batch, dd, hh],
                    _ => vec![dd, Batch, hh],
                }
            }
        }
    }
}

/// What an ONNX tensor is to the importer.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Const(Const),
    /// An int64 shape vector (or scalar) computed from the input's shape.
    Sym {
        dims: Vec<SymDim>,
        scalar: bool,
    },
    /// `ConstantOfShape` of zero: a recurrent layer's zero initial state.
    Zeros,
    Data(Data),
}
