//! The seed's sequence-to-sequence classification network: a label at every
//! time step (MATLAB: `lstmLayer(200,'OutputMode','sequence')`).
//!
//! Run: `cargo run --example seq2seq_classification_network`

use seqnet::prelude::*;

/// The layer graph: 3 features per step, 200 hidden units, 5 classes per step.
pub fn network() -> seqnet::core::Result<LayerGraph> {
    LayerGraph::from_layers(vec![
        SequenceInput::new(3).name("sequenceinput").into(),
        Lstm::new(200)
            .output_mode(OutputMode::Sequence)
            .name("lstm")
            .into(),
        FullyConnected::new(5).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ])
}

#[allow(dead_code)]
fn main() -> Result<()> {
    println!("{}", network()?.summary()?);
    Ok(())
}
