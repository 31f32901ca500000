//! `lstm-train-step` and `lstm-infer`: sequenceInput(128) → lstm(256, last) →
//! fc(10) → softmax → classification on random data, batch 32, T = 50 (all
//! the same length). A training step is forward, backward and an adam update
//! (no clipping, no L2); inference is one forward pass without gradients.

use super::{line, lstm_forward_flop, random_batch, time_reps, time_train_step};
use crate::Result;
use seqnet_core::layers::{
    ClassificationOutput, FullyConnected, Lstm, OutputMode, SequenceInput, Softmax,
};
use seqnet_core::{Activation, Layer, LayerGraph, Mode, Network};

const B: usize = 32;
const T: usize = 50;
/// Input channels (shared with [`super::gru`]).
pub(super) const F: usize = 128;
/// Hidden units.
pub(super) const H: usize = 256;
/// Classes.
pub(super) const K: usize = 10;

fn network() -> Result<Network> {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(F).name("in").into(),
        Lstm::new(H)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(K).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("out").into(),
    ];
    Ok(Network::new(&LayerGraph::from_layers(layers)?, 0)?)
}

/// Random `[T, B, F]` inputs and one-hot `[B, K]` targets.
pub(super) fn data() -> Result<(Activation, Activation)> {
    random_batch(T, B, F, K)
}

/// `lstm-train-step`.
pub fn train_step() -> Result<String> {
    let mut net = network()?;
    let (x, y) = data()?;
    let t = time_train_step(&mut net, &x, &y, 3, 21)?;
    let flop = 3.0 * lstm_forward_flop(T, B, F, H);
    Ok(line("lstm-train-step", &t, Some(flop), ""))
}

/// `lstm-infer`.
pub fn infer() -> Result<String> {
    let mut net = network()?;
    let (x, _) = data()?;
    let t = time_reps(3, 31, || {
        net.forward(std::slice::from_ref(&x), None, Mode::Inference, false)?;
        Ok(())
    })?;
    let flop = lstm_forward_flop(T, B, F, H);
    Ok(line("lstm-infer", &t, Some(flop), ""))
}
