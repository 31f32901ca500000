//! `cnn1d-train-step`: Wang et al.'s FCN, the `cnn1d` template
//! (sequenceInput(12) → 3 × [convolution1d('same'; 8, 5, 3 steps; 128, 256,
//! 128 filters) → batchnorm → relu] → globalAveragePooling1d → fc(9) →
//! softmax → classification), on random data, batch 32, T = 128 (all the same
//! length). A step is forward (batch statistics), backward and an adam update
//! (no clipping, no L2).

use super::{line, time_train_step};
use crate::Result;
use ndarray::{ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::InputSize;
use seqnet_core::templates::{cnn1d, Template, TemplateOptions};
use seqnet_core::{Activation, Network};

const B: usize = 32;
const T: usize = 128;
const F: usize = 12;
const K: usize = 9;

/// FLOPs of the three convolutions' forward pass, `Σ 2·B·T·Cout·Cin·K`.
pub fn forward_flop() -> f64 {
    let mut c_in = F;
    let mut flop = 0.0;
    for (&n, &k) in cnn1d::FILTERS.iter().zip(&cnn1d::FILTER_SIZES) {
        flop += 2.0 * (B * T * n * c_in * k) as f64;
        c_in = n;
    }
    flop
}

/// `cnn1d-train-step`.
pub fn train_step() -> Result<String> {
    let graph = Template::Cnn1d.graph(&TemplateOptions {
        input: Some(InputSize::Features(F)),
        outputs: Some(K),
        ..Default::default()
    })?;
    let mut net = Network::new(&graph, 0)?;
    let mut rng = StdRng::seed_from_u64(7);
    let x = ArrayD::from_shape_simple_fn(IxDyn(&[T, B, F]), || rng.random_range(-1.0f32..1.0));
    let mut y = ArrayD::<f32>::zeros(IxDyn(&[B, K]));
    for b in 0..B {
        y[[b, rng.random_range(0..K)]] = 1.0;
    }
    let (x, y) = (Activation::sequence(x, None)?, Activation::features(y)?);
    let t = time_train_step(&mut net, &x, &y, 3, 21)?;
    Ok(line("cnn1d-train-step", &t, Some(3.0 * forward_flop()), ""))
}
