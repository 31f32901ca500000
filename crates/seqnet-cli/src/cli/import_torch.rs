//! `seqnet import-torch`: a model file from a PyTorch state dict saved as
//! safetensors, a graph JSON and a mapping JSON (see
//! [`seqnet_train::import_torch`] for the mapping's syntax).

use super::train::save_model;
use super::{in_file, load_graph, out, read_text, shown, Result};
use seqnet_train::TorchMapping;
use std::path::PathBuf;

/// `seqnet import-torch`'s arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Example: seqnet import-torch --state-dict weights.safetensors --net net.json --map mapping.json --out model.safetensors

The mapping is a JSON object from the graph's layer names to state-dict
prefixes, e.g. {\"lstm\": \"lstm\", \"fc\": \"fc\"}. For layer k of a multi-layer
nn.LSTM or nn.GRU add @k: {\"lstm1\": \"lstm@0\", \"lstm2\": \"lstm@1\"}. An empty
prefix takes unprefixed names (weight_ih_l0). In Python, save the weights with
safetensors.torch.save_file(model.state_dict(), \"weights.safetensors\")."
)]
pub struct Args {
    /// The PyTorch state dict, saved as .safetensors.
    #[arg(long, value_name = "FILE")]
    pub state_dict: PathBuf,
    /// The network: a graph JSON whose layers match the PyTorch modules.
    #[arg(long, value_name = "FILE")]
    pub net: PathBuf,
    /// The mapping from layer names to state-dict prefixes (JSON).
    #[arg(long, value_name = "FILE")]
    pub map: PathBuf,
    /// Where to write the model (.safetensors).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

/// Runs `seqnet import-torch`.
pub fn run(args: Args) -> Result<()> {
    let graph = load_graph(&args.net)?;
    let mapping = TorchMapping::from_json(&read_text(&args.map)?, &shown(&args.map))?;
    let bytes =
        std::fs::read(&args.state_dict).map_err(|e| super::io_error(&args.state_dict, e))?;
    let model = seqnet_train::import_torch(&graph, &bytes, &shown(&args.state_dict), &mapping)
        .map_err(|e| in_file(&args.state_dict, e.into()))?;
    save_model(&model, &args.out)?;
    let values: usize = model
        .network
        .learnables()
        .iter()
        .map(|(_, p)| p.value.len())
        .sum();
    out(&format!(
        "imported {} layer{} ({values} learnable values) from {}; model written to {}\n",
        mapping.layers.len(),
        if mapping.layers.len() == 1 { "" } else { "s" },
        shown(&args.state_dict),
        shown(&args.out)
    ))
}
