//! `transformer-train-step` and `transformer-infer`: the `transformer`
//! template as `../shared/bench/WORKLOADS.md` defines it (sequenceInput(64)
//! → fc(128) + learned position embedding (256 positions) → 2 pre-LN blocks
//! [layernorm → selfAttention(4 heads, 128 channels) → +; layernorm →
//! fc(512) → relu → fc(128) → +] → globalAveragePooling1d → fc(10) → softmax
//! → classification), on random data, batch 32, T = 128 (all the same
//! length). A step is forward, backward and an adam update (no clipping, no
//! L2); inference is one forward pass without gradients.

use super::{line, random_batch, time_reps, time_train_step};
use crate::Result;
use seqnet_core::layers::InputSize;
use seqnet_core::templates::transformer::TransformerSizes;
use seqnet_core::templates::{Template, TemplateOptions};
use seqnet_core::{Activation, Mode, Network};

const B: usize = 32;
const T: usize = 128;
const F: usize = 64;
const D: usize = 128;
const FF: usize = 512;
const BLOCKS: usize = 2;
const K: usize = 10;

/// FLOPs of the forward pass's matrix products (WORKLOADS.md's count):
/// `2·B·T·(F·D + blocks·(4·D² + 2·T·D + 2·D·FF)) + 2·B·D·K`.
pub fn forward_flop() -> f64 {
    let per_step = F * D + BLOCKS * (4 * D * D + 2 * T * D + 2 * D * FF);
    2.0 * (B * T * per_step) as f64 + 2.0 * (B * D * K) as f64
}

fn network() -> Result<Network> {
    let graph = Template::Transformer.graph(&TemplateOptions {
        input: Some(InputSize::Features(F)),
        outputs: Some(K),
        transformer: TransformerSizes {
            model_dim: Some(D),
            heads: Some(4),
            blocks: Some(BLOCKS),
            ffn_dim: Some(FF),
            max_position: Some(256),
        },
        ..Default::default()
    })?;
    Ok(Network::new(&graph, 0)?)
}

fn data() -> Result<(Activation, Activation)> {
    random_batch(T, B, F, K)
}

/// `transformer-train-step`.
pub fn train_step() -> Result<String> {
    let mut net = network()?;
    let (x, y) = data()?;
    let t = time_train_step(&mut net, &x, &y, 3, 11)?;
    Ok(line(
        "transformer-train-step",
        &t,
        Some(3.0 * forward_flop()),
        "",
    ))
}

/// `transformer-infer`.
pub fn infer() -> Result<String> {
    let mut net = network()?;
    let (x, _) = data()?;
    let t = time_reps(3, 15, || {
        net.forward(std::slice::from_ref(&x), None, Mode::Inference, false)?;
        Ok(())
    })?;
    Ok(line("transformer-infer", &t, Some(forward_flop()), ""))
}
