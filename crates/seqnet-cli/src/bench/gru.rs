//! `gru-train-step`, `gru-infer` and `bilstm-train-step`: sequenceInput(128)
//! → gru(256, last) (MATLAB's default `ResetGateMode`, `after-multiplication`)
//! or bilstm(256 per direction, last) → fc(10) → softmax → classification on
//! random data, batch 32, T = 50 (all the same length), as `lstm-*`.

use super::lstm::{data, F, H, K};
use super::{line, lstm_forward_flop, time_reps, time_train_step};
use crate::Result;
use seqnet_core::layers::{
    BiLstm, ClassificationOutput, FullyConnected, Gru, OutputMode, SequenceInput, Softmax,
};
use seqnet_core::{Layer, LayerGraph, Mode, Network};

const B: usize = 32;
const T: usize = 50;

fn network(recurrent: Layer) -> Result<Network> {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(F).name("in").into(),
        recurrent,
        FullyConnected::new(K).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("out").into(),
    ];
    Ok(Network::new(&LayerGraph::from_layers(layers)?, 0)?)
}

fn gru() -> Layer {
    Gru::new(H).output_mode(OutputMode::Last).name("gru").into()
}

/// FLOPs of a GRU forward (the spec's `6·T·B·H·(F+H)`).
fn gru_forward_flop() -> f64 {
    6.0 * (T * B * H * (F + H)) as f64
}

/// `gru-train-step`.
pub fn train_step() -> Result<String> {
    let mut net = network(gru())?;
    let (x, y) = data()?;
    let t = time_train_step(&mut net, &x, &y, 3, 21)?;
    Ok(line(
        "gru-train-step",
        &t,
        Some(3.0 * gru_forward_flop()),
        "",
    ))
}

/// `gru-infer`.
pub fn infer() -> Result<String> {
    let mut net = network(gru())?;
    let (x, _) = data()?;
    let t = time_reps(3, 31, || {
        net.forward(std::slice::from_ref(&x), None, Mode::Inference, false)?;
        Ok(())
    })?;
    Ok(line("gru-infer", &t, Some(gru_forward_flop()), ""))
}

/// `bilstm-train-step` ('last': the output sequence at step T, forward and
/// backward halves, as MATLAB's BiLSTM).
pub fn bilstm_train_step() -> Result<String> {
    let bilstm = BiLstm::new(H)
        .output_mode(OutputMode::Last)
        .name("bilstm")
        .into();
    let mut net = network(bilstm)?;
    let (x, y) = data()?;
    let t = time_train_step(&mut net, &x, &y, 3, 21)?;
    let flop = 3.0 * 2.0 * lstm_forward_flop(T, B, F, H);
    Ok(line("bilstm-train-step", &t, Some(flop), ""))
}
