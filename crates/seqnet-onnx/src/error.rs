//! The errors of ONNX export and import.

use std::path::PathBuf;

/// What can go wrong exporting or importing ONNX.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A layer, graph or network problem (an unsupported layer names itself here).
    #[error(transparent)]
    Core(#[from] seqnet_core::Error),
    /// A model file problem.
    #[error(transparent)]
    Train(#[from] seqnet_train::Error),
    /// Reading or writing a file.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not an ONNX model.
    #[error("{path}: not an ONNX model: {source}")]
    Decode {
        path: PathBuf,
        source: prost::DecodeError,
    },
    /// The export's settings.
    #[error("ONNX export: {0}")]
    Export(String),
    /// An ONNX node the importer cannot turn into seqnet layers.
    #[error("ONNX import: node '{node}' ({op_type}): {message}")]
    Unsupported {
        node: String,
        op_type: String,
        message: String,
    },
    /// A raw input batch that does not fit the network.
    #[error("input: {0}")]
    Input(String),
    /// A model-level import problem (inputs, outputs, opset, a tensor).
    #[error("ONNX import: {0}")]
    Import(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
