//! ONNX export and import of seqnet networks.
//!
//! * [`export_onnx`] writes a [`seqnet_train::Model`]'s network as an ONNX
//!   model with one interface for every network: input `input` (float32,
//!   batch first: `[B, T, C]`, or `[B, T, C, H, W]` for image sequences),
//!   optional input `sequence_lens` (int32 `[B]`, each sequence's real length
//!   in a right-padded batch), output `output` (`[B, K]` or `[B, T, K]`);
//!   batch and time are dynamic. See `docs/ONNX.md`.
//! * [`import_onnx`] reads a model written by `torch.onnx.export` and builds
//!   an ordinary seqnet layer graph from it.

#![forbid(unsafe_code)]

mod error;
pub mod export;
pub mod import;
mod predict;
pub mod proto;

pub use error::{Error, Result};
pub use export::{export_onnx, export_onnx_bytes, ExportOptions};
pub use import::{import_onnx, import_onnx_bytes};
pub use predict::predict_batch_first;
