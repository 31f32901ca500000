//! `seqnet export-onnx`: a model file as an ONNX model (see `docs/ONNX.md`).

use super::predict::load_model;
use super::{ensure_parent, in_file, out, shown, Result};
use seqnet_onnx::ExportOptions;
use std::path::PathBuf;

/// `seqnet export-onnx`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet export-onnx --model model.safetensors --out model.onnx

The ONNX model has the input 'input' (float32, batch first: [B, T, C], or
[B, T, C, H, W] for image sequences), the input 'sequence_lens' (int32 [B],
each sequence's length in a right-padded batch; leave it out with
--no-sequence-lens) and the output 'output' ([B, K] or [B, T, K]). Batch and
time are dynamic. A layer without an ONNX equivalent is an error naming it,
and nothing is written."
)]
pub struct Args {
    /// The model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// Where to write the ONNX model (.onnx).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    /// The ONNX opset (17 to 21).
    #[arg(long, value_name = "N", default_value_t = 17)]
    pub opset: i64,
    /// Leave out the 'sequence_lens' input: every sequence fills the time axis.
    #[arg(long)]
    pub no_sequence_lens: bool,
}

/// Runs `seqnet export-onnx`.
pub fn run(args: Args) -> Result<()> {
    let model = load_model(&args.model)?;
    let options = ExportOptions {
        opset: args.opset,
        sequence_lens: !args.no_sequence_lens,
    };
    ensure_parent(&args.out)?;
    seqnet_onnx::export_onnx(&model, &args.out, &options)
        .map_err(|e| in_file(&args.model, e.into()))?;
    out(&format!(
        "exported {} to {} (opset {})\n",
        shown(&args.model),
        shown(&args.out),
        args.opset
    ))
}
