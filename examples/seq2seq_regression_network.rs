//! The seed's sequence-to-sequence regression network: responses at every time
//! step (MATLAB: `lstmLayer(125,'OutputMode','sequence')`, `fullyConnectedLayer(50)`,
//! `dropoutLayer(0.5)`, `fullyConnectedLayer(1)`, `regressionLayer`).
//!
//! Run: `cargo run --example seq2seq_regression_network`

use seqnet::prelude::*;

/// The layer graph: 17 features per step, 1 response per step.
pub fn network() -> seqnet::core::Result<LayerGraph> {
    LayerGraph::from_layers(vec![
        SequenceInput::new(17)
            .normalization(Normalization::Zscore)
            .name("sequenceinput")
            .into(),
        Lstm::new(200)
            .output_mode(OutputMode::Sequence)
            .name("lstm")
            .into(),
        FullyConnected::new(50).name("fc_1").into(),
        Dropout::new(0.5).name("dropout").into(),
        FullyConnected::new(1).name("fc_2").into(),
        RegressionOutput::new().name("regressionoutput").into(),
    ])
}

#[allow(dead_code)]
fn main() -> Result<()> {
    println!("{}", network()?.summary()?);
    Ok(())
}
