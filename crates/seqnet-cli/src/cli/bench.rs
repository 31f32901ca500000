//! `seqnet bench`: the workloads of `bench/WORKLOADS.md`, one line each.

use super::Result;

/// `seqnet bench`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet bench --only lstm-train-step,stream-step\nBuild in release mode (cargo run --release -p seqnet-cli -- bench); compare with PyTorch: bench/compare.sh"
)]
pub struct Args {
    /// Run only these workloads (comma-separated): vowels-epoch, lstm-train-step,
    /// lstm-infer, video-train-step, stream-step, cnn1d-train-step, video-epoch,
    /// transformer-train-step, transformer-infer,
    /// gru-train-step, bilstm-train-step, gru-infer.
    #[arg(long, value_name = "NAMES", value_delimiter = ',')]
    pub only: Vec<String>,
    /// Leave out the machine's 1024³ matrix-product rate (for peak-memory runs).
    #[arg(long)]
    pub no_machine_line: bool,
}

/// Runs `seqnet bench`.
pub fn run(args: Args) -> Result<()> {
    let only = (!args.only.is_empty()).then_some(args.only.as_slice());
    crate::bench::run_with(only, !args.no_machine_line)
}
