//! The seed's video network, built as MATLAB builds it: a layer array, a
//! `LayerGraph`, the folding layer's `miniBatchSize` output connected to the
//! unfolding layer's, then the summary. Then one prediction on a random
//! video, to show the network runs.
//!
//! Run: `cargo run --release --example video_network`

use seqnet::prelude::*;
use seqnet::train::{predict_sequences, PredictOptions};

fn main() -> Result<()> {
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
    println!("{}", graph.summary()?);

    // One random 16-frame video of 28×28×1 frames through the untrained network.
    let mut network = Network::new(&graph, 0)?;
    let video = ndarray::Array4::from_shape_fn((16, 28, 28, 1), |(t, y, x, _)| {
        ((t * 31 + y * 7 + x * 3) % 17) as f32 / 17.0
    });
    let scores = predict_sequences(
        &mut network,
        &[Sequence::Images(video)],
        &PredictOptions::default(),
    )?;
    println!("\nclass scores of a random video: {:.3}", scores[0].row(0));
    Ok(())
}
