//! `seqnet import-onnx`: a model file from an ONNX model written by
//! `torch.onnx.export` (see `docs/ONNX.md` for what is supported).

use super::train::save_model;
use super::{in_file, out, shown, Result};
use std::path::PathBuf;

/// `seqnet import-onnx`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet import-onnx model.onnx --out model.safetensors

Reads models written by torch.onnx.export (opset 17 or newer) from LSTM, GRU,
Linear, Conv1d/Conv2d, BatchNorm, ReLU, softmax and mean over time. The result
is an ordinary seqnet layer graph (see seqnet summary); a network ending in
softmax classifies, with classes named 1..K. An op or pattern outside the
supported set is an error naming the node."
)]
pub struct Args {
    /// The ONNX model (.onnx).
    #[arg(value_name = "MODEL.onnx")]
    pub onnx: PathBuf,
    /// Where to write the model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `seqnet import-onnx`.
pub fn run(args: Args) -> Result<()> {
    let model = seqnet_onnx::import_onnx(&args.onnx).map_err(|e| in_file(&args.onnx, e.into()))?;
    save_model(&model, &args.out)?;
    let layers = model.network.graph().layers.len();
    out(&format!(
        "imported {layers} layers from {}; model written to {}\n",
        shown(&args.onnx),
        shown(&args.out)
    ))
}
