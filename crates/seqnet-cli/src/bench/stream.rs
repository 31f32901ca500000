//! `stream-step`: sequenceInput(12) → lstm(100, sequence) → fc(9) → softmax,
//! one `predict_and_update_state` call on one observation of one sequence
//! (batch 1, T = 1), the recurrent state kept between calls. (The network ends
//! in a classification layer, which a network needs and prediction ignores.)

use super::{line, time_reps, Timings};
use crate::Result;
use ndarray::Array2;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::{
    ClassificationOutput, FullyConnected, Lstm, OutputMode, SequenceInput, Softmax,
};
use seqnet_core::{Layer, LayerGraph, Network};
use seqnet_data::Sequence;
use seqnet_train::predict_and_update_state;

/// Calls timed one by one; the median is over these.
const CALLS: usize = 4000;

/// Times the workload and returns its result line.
pub fn run() -> Result<String> {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(12).name("in").into(),
        Lstm::new(100)
            .output_mode(OutputMode::Sequence)
            .name("lstm")
            .into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("softmax").into(),
        // A network needs an output layer; prediction computes no loss.
        ClassificationOutput::new().name("out").into(),
    ];
    let mut net = Network::new(&LayerGraph::from_layers(layers)?, 0)?;
    let mut rng = StdRng::seed_from_u64(3);
    let inputs: Vec<Sequence> = (0..64)
        .map(|_| {
            Sequence::Features(Array2::from_shape_simple_fn((1, 12), || {
                rng.random_range(-1.0f32..1.0)
            }))
        })
        .collect();
    let mut i = 0;
    let mut step = || -> Result<()> {
        let y = predict_and_update_state(&mut net, std::slice::from_ref(&inputs[i % 64]))?;
        i += 1;
        std::hint::black_box(y);
        Ok(())
    };
    let t: Timings = time_reps(200, CALLS, &mut step)?;
    let extra = format!("median_us={:.3}", t.median() * 1e3);
    Ok(line("stream-step", &t, None, &extra))
}
