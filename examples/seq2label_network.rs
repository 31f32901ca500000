//! The seed's sequence-to-label classification network (MATLAB:
//! `[sequenceInputLayer(12) lstmLayer(100,'OutputMode','last')
//!   fullyConnectedLayer(9) softmaxLayer classificationLayer]`), checked and summarised.
//!
//! Run: `cargo run --example seq2label_network`

use seqnet::prelude::*;

/// The layer graph of the network.
pub fn network() -> seqnet::core::Result<LayerGraph> {
    LayerGraph::from_layers(vec![
        SequenceInput::new(12).name("sequenceinput").into(),
        Lstm::new(100)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ])
}

#[allow(dead_code)]
fn main() -> Result<()> {
    println!("{}", network()?.summary()?);
    Ok(())
}
