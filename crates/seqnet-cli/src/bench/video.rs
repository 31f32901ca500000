//! `video-train-step`: the seed's video network, sequenceInput([28 28 1]) →
//! sequenceFolding → conv2d(5, 20) → batchnorm → relu → sequenceUnfolding →
//! flatten → lstm(200, last) → fc(10) → softmax → classification, one training
//! step (forward, backward, adam update) on random frames, batch 8, T = 16.

use super::{line, time_train_step};
use crate::Result;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::InputSize;
use seqnet_core::templates::{Template, TemplateOptions};
use seqnet_core::{Activation, LayerGraph, Network};

const B: usize = 8;
const T: usize = 16;
const K: usize = 10;

/// The video network: the `video` template with 28×28×1 frames, lstm 200 and 10 classes.
pub fn graph() -> Result<LayerGraph> {
    Ok(Template::Video.graph(&TemplateOptions {
        input: Some(InputSize::Image([28, 28, 1])),
        hidden: Some(200),
        outputs: Some(K),
        ..Default::default()
    })?)
}

/// Times the workload and returns its result line.
pub fn run() -> Result<String> {
    let mut net = Network::new(&graph()?, 0)?;
    let mut rng = StdRng::seed_from_u64(11);
    let x =
        ArrayD::from_shape_simple_fn(IxDyn(&[T, B, 1, 28, 28]), || rng.random_range(0.0f32..1.0));
    let x = Activation::image_sequence(x, None)?;
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[B, K]));
    for b in 0..B {
        y[[b, rng.random_range(0..K)]] = 1.0;
    }
    let y = Activation::features(y)?;
    let t = time_train_step(&mut net, &x, &y, 2, 11)?;
    Ok(line("video-train-step", &t, None, ""))
}
