//! The seed's sequence-to-one regression network: one response per sequence
//! (MATLAB: `lstmLayer(125,'OutputMode','last')`, `regressionLayer`).
//!
//! Run: `cargo run --example seq2one_regression_network`

use seqnet::prelude::*;

/// The layer graph: 12 features per step, 125 hidden units, 1 response.
pub fn network() -> seqnet::core::Result<LayerGraph> {
    LayerGraph::from_layers(vec![
        SequenceInput::new(12).name("sequenceinput").into(),
        Lstm::new(125)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(1).name("fc").into(),
        RegressionOutput::new().name("regressionoutput").into(),
    ])
}

#[allow(dead_code)]
fn main() -> Result<()> {
    println!("{}", network()?.summary()?);
    Ok(())
}
