//! The seed's video classification network, built as MATLAB's example builds it:
//! a layer array, turned into a layer graph, then `fold/miniBatchSize`
//! connected to `unfold/miniBatchSize`:
//!
//! ```text
//! sequenceInputLayer([28 28 1])   sequenceFoldingLayer      convolution2dLayer(5, 20)
//! batchNormalizationLayer         reluLayer                 sequenceUnfoldingLayer
//! flattenLayer                    lstmLayer(200,'OutputMode','last')
//! fullyConnectedLayer(10)         softmaxLayer              classificationLayer
//! ```
//!
//! Run: `cargo run --example video_network [-- --json]` (prints the summary, then
//! the graph as DOT, or as JSON with `--json`).

use seqnet::prelude::*;

/// The layer graph of the video network.
pub fn network() -> seqnet::core::Result<LayerGraph> {
    let layers: Vec<Layer> = vec![
        SequenceInput::image([28, 28, 1]).name("input").into(),
        SequenceFolding::new().name("fold").into(),
        Convolution2d::new([5, 5], 20).name("conv").into(),
        BatchNormalization::new().name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        Lstm::new(200)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(10).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classification").into(),
    ];
    let mut graph = LayerGraph::from_layers(layers)?;
    graph.connect("fold/miniBatchSize", "unfold/miniBatchSize")?;
    Ok(graph)
}

#[allow(dead_code)]
fn main() -> Result<()> {
    let graph = network()?;
    println!("{}\n", graph.summary()?);
    if std::env::args().any(|a| a == "--json") {
        println!("{}", graph.to_json());
    } else {
        println!("{}", graph.to_dot());
    }
    Ok(())
}
