//! Finite-difference gradient checks for the attention family: layer
//! normalization, word embedding, self-attention (every mask and bias
//! setting), position embedding, on padded mini-batches in both directions,
//! for their input (where it has a gradient) and every learnable.
//!
//! Tolerance: `|analytic − numeric| ≤ 2e-3 · max(1, |numeric|)`, central
//! differences with step 1e-2 in f32 (as `gradients_sequence_cnn.rs`). These
//! layers are smooth, so only the f32 rounding of the two losses and the
//! `O(h²)` curvature term remain.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::gradcheck::{check_layer, GradCheck};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 2e-3;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// A `[T, B, C]` sequence batch with these lengths; padded steps hold `pad`.
fn batch(data: ArrayD<f32>, lengths: &[usize], dir: PaddingDirection, pad: f32) -> Activation {
    let t = data.shape()[0];
    let l = SeqLengths::new(lengths.to_vec(), t, dir).unwrap();
    let mut data = data;
    for (b, _) in lengths.iter().enumerate() {
        for s in (0..t).filter(|&s| !l.is_real(b, s)) {
            data.slice_mut(ndarray::s![s, b, ..]).fill(pad);
        }
    }
    Activation::sequence(data, Some(l)).unwrap()
}

/// Checks every probe of `layer` at `x`; `expected` are the names probed.
fn assert_grads(layer: impl Into<Layer>, x: Activation, expected: &[&str]) {
    let layer = layer.into();
    let cfg = GradCheck {
        mode: Mode::Training,
        probes: 60,
        ..GradCheck::default()
    };
    let report = check_layer(&layer, vec![x], None, cfg).expect("layer runs");
    for what in expected {
        assert!(
            report.probes.iter().any(|p| p.0 == *what),
            "{}: nothing probed for {what}",
            layer.name()
        );
    }
    let failures = report.failures(TOL);
    assert!(
        failures.is_empty(),
        "{}: {} of {} probes fail, e.g. {:?}",
        layer.name(),
        failures.len(),
        report.probes.len(),
        &failures[..failures.len().min(5)]
    );
}

const DIRS: [PaddingDirection; 2] = [PaddingDirection::Right, PaddingDirection::Left];

#[test]
fn layer_normalization_on_sequences_and_features() {
    for dir in DIRS {
        let x = batch(random(&[5, 3, 4], 1), &[5, 2, 3], dir, 3.0);
        assert_grads(
            LayerNormalization::new().name("ln"),
            x,
            &["input 0", "Scale", "Offset"],
        );
    }
    let x = Activation::features(random(&[3, 6], 2)).unwrap();
    assert_grads(
        LayerNormalization::new().name("ln_cb"),
        x,
        &["input 0", "Scale", "Offset"],
    );
}

#[test]
fn word_embedding_weights() {
    for (base, dir) in [(1, DIRS[0]), (0, DIRS[1])] {
        // Repeated indices, so that gradients of one word add up.
        let mut rng = StdRng::seed_from_u64(3);
        let idx = ArrayD::from_shape_simple_fn(vec![6, 3, 1], || {
            rng.random_range(0..5) as f32 + base as f32
        });
        let x = batch(idx, &[6, 4, 1], dir, f32::NAN);
        assert_grads(
            WordEmbedding::new(3, 5).index_base(base).name("emb"),
            x,
            &["Weights"],
        );
    }
}

#[test]
fn self_attention_every_mask_and_bias_setting() {
    let all = [
        "input 0",
        "QueryWeights",
        "KeyWeights",
        "ValueWeights",
        "OutputWeights",
    ];
    let biases = ["QueryBias", "KeyBias", "ValueBias", "OutputBias"];
    for (i, (mask, bias, dir)) in [
        (AttentionMask::None, true, DIRS[0]),
        (AttentionMask::Causal, true, DIRS[1]),
        (AttentionMask::None, false, DIRS[1]),
        (AttentionMask::Causal, false, DIRS[0]),
    ]
    .into_iter()
    .enumerate()
    {
        let x = batch(random(&[5, 3, 4], 10 + i as u64), &[5, 3, 1], dir, f32::NAN);
        let layer = SelfAttention::new(2, 6)
            .num_value_channels(4)
            .output_size(3)
            .attention_mask(mask)
            .has_bias(bias)
            .name(format!("attn{i}"));
        let mut expected = all.to_vec();
        if bias {
            expected.extend(biases);
        }
        assert_grads(layer, x, &expected);
    }
}

/// Unpadded batches take another path (strided views of the input's rows,
/// no packing): every mask and bias setting there too.
#[test]
fn self_attention_on_unpadded_batches() {
    for (i, (mask, bias)) in [(AttentionMask::None, true), (AttentionMask::Causal, false)]
        .into_iter()
        .enumerate()
    {
        let data = random(&[4, 3, 5], 40 + i as u64);
        let x = if bias {
            batch(data, &[4, 4, 4], DIRS[0], f32::NAN)
        } else {
            Activation::sequence(data, None).unwrap()
        };
        let layer = SelfAttention::new(2, 6)
            .num_value_channels(4)
            .output_size(3)
            .attention_mask(mask)
            .has_bias(bias)
            .name(format!("attn_full{i}"));
        let mut expected = vec![
            "input 0",
            "QueryWeights",
            "KeyWeights",
            "ValueWeights",
            "OutputWeights",
        ];
        if bias {
            expected.extend(["QueryBias", "KeyBias", "ValueBias", "OutputBias"]);
        }
        assert_grads(layer, x, &expected);
    }
}

#[test]
fn position_embedding_weights() {
    for dir in DIRS {
        let x = batch(random(&[5, 3, 2], 20), &[5, 2, 4], dir, f32::NAN);
        assert_grads(PositionEmbedding::new(3, 6).name("pos"), x, &["Weights"]);
    }
}

/// After an inference pass self-attention keeps no attention weights (they
/// are the largest thing it would keep); its backward recomputes them.
#[test]
fn self_attention_backward_after_an_inference_pass() {
    for (i, mask) in [AttentionMask::None, AttentionMask::Causal]
        .into_iter()
        .enumerate()
    {
        let x = batch(
            random(&[5, 3, 4], 30 + i as u64),
            &[5, 3, 1],
            DIRS[i],
            f32::NAN,
        );
        let layer: Layer = SelfAttention::new(2, 6)
            .attention_mask(mask)
            .name(format!("attn_inf{i}"))
            .into();
        let cfg = GradCheck {
            mode: Mode::Inference,
            probes: 60,
            ..GradCheck::default()
        };
        let report = check_layer(&layer, vec![x], None, cfg).expect("layer runs");
        for what in ["input 0", "QueryWeights", "KeyWeights"] {
            assert!(report.probes.iter().any(|p| p.0 == what), "{what}");
        }
        let failures = report.failures(TOL);
        assert!(
            failures.is_empty(),
            "{:?}",
            &failures[..failures.len().min(5)]
        );
    }
}
