//! Finite-difference gradient checks for the non-recurrent, non-convolutional layers.
//! Tolerance: |analytic − numeric| ≤ 1e-2 · max(1, |numeric|) with step 1e-2 in f32
//! (central differences of an f32 forward; errors of a wrong gradient are O(1)).

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::gradcheck::{check_layer, GradCheck};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 1e-2;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

fn assert_grads(
    layer: impl Into<Layer>,
    inputs: Vec<Activation>,
    target: Option<Activation>,
    mode: Mode,
) {
    let layer = layer.into();
    let cfg = GradCheck {
        mode,
        ..GradCheck::default()
    };
    let report = check_layer(&layer, inputs, target, cfg).expect("layer runs");
    assert!(
        !report.probes.is_empty(),
        "nothing probed for {}",
        layer.tag()
    );
    let bad = report.failures(TOL);
    assert!(
        bad.is_empty(),
        "{}: gradient mismatches (what, index, analytic, numeric): {bad:?}",
        layer.tag()
    );
}

fn seq(t: usize, b: usize, c: usize, seed: u64) -> Activation {
    Activation::sequence(random(&[t, b, c], seed), None).unwrap()
}

#[test]
fn fully_connected_on_sequences_features_and_images() {
    assert_grads(
        FullyConnected::new(3).name("fc"),
        vec![seq(4, 2, 5, 1)],
        None,
        Mode::Training,
    );
    assert_grads(
        FullyConnected::new(3).name("fc"),
        vec![Activation::features(random(&[3, 6], 2)).unwrap()],
        None,
        Mode::Training,
    );
    assert_grads(
        FullyConnected::new(2).name("fc"),
        vec![Activation::images(random(&[2, 2, 3, 3], 3)).unwrap()],
        None,
        Mode::Training,
    );
}

#[test]
fn softmax() {
    assert_grads(
        Softmax::new().name("sm"),
        vec![seq(3, 2, 4, 4)],
        None,
        Mode::Training,
    );
}

#[test]
fn elementwise_activations() {
    assert_grads(
        Relu::new().name("r"),
        vec![seq(3, 2, 4, 5)],
        None,
        Mode::Training,
    );
    assert_grads(
        LeakyRelu::new(0.1).name("l"),
        vec![seq(3, 2, 4, 6)],
        None,
        Mode::Training,
    );
    assert_grads(
        Tanh::new().name("t"),
        vec![seq(3, 2, 4, 7)],
        None,
        Mode::Training,
    );
    assert_grads(
        Sigmoid::new().name("s"),
        vec![seq(3, 2, 4, 8)],
        None,
        Mode::Training,
    );
}

#[test]
fn dropout_in_training_and_inference() {
    assert_grads(
        Dropout::new(0.4).name("d"),
        vec![seq(3, 2, 4, 9)],
        None,
        Mode::Training,
    );
    assert_grads(
        Dropout::new(0.4).name("d"),
        vec![seq(3, 2, 4, 9)],
        None,
        Mode::Inference,
    );
}

fn probs(t: usize, b: usize, k: usize, seed: u64) -> ArrayD<f32> {
    let mut p = random(&[t, b, k], seed).mapv(f32::exp);
    for mut row in p.rows_mut() {
        let s = row.sum();
        row /= s;
    }
    p
}

fn one_hot(t: usize, b: usize, k: usize, seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut y = ArrayD::zeros(vec![t, b, k]);
    for i in 0..t {
        for j in 0..b {
            y[[i, j, rng.random_range(0..k)]] = 1.0;
        }
    }
    y
}

#[test]
fn classification_output_masks_padding_and_weights_classes() {
    let lengths = SeqLengths::new(vec![4, 2, 3], 4, PaddingDirection::Left).unwrap();
    let y = Activation::sequence(probs(4, 3, 5, 10), Some(lengths.clone())).unwrap();
    let t = Activation::sequence(one_hot(4, 3, 5, 11), Some(lengths)).unwrap();
    assert_grads(
        ClassificationOutput::new().name("c"),
        vec![y.clone()],
        Some(t.clone()),
        Mode::Training,
    );
    assert_grads(
        ClassificationOutput::new()
            .class_weights(vec![1., 2., 0.5, 1., 3.])
            .name("c"),
        vec![y],
        Some(t),
        Mode::Training,
    );
}

#[test]
fn regression_output_sequence_and_one() {
    let lengths = SeqLengths::new(vec![2, 4], 4, PaddingDirection::Right).unwrap();
    let y = Activation::sequence(random(&[4, 2, 3], 12), Some(lengths.clone())).unwrap();
    let t = Activation::sequence(random(&[4, 2, 3], 13), Some(lengths)).unwrap();
    assert_grads(
        RegressionOutput::new().name("r"),
        vec![y],
        Some(t),
        Mode::Training,
    );
    let y = Activation::features(random(&[5, 2], 14)).unwrap();
    let t = Activation::features(random(&[5, 2], 15)).unwrap();
    assert_grads(
        RegressionOutput::new().name("r"),
        vec![y],
        Some(t),
        Mode::Training,
    );
}

#[test]
fn folding_flatten_unfolding() {
    let x = Activation::image_sequence(random(&[3, 2, 2, 3, 3], 16), None).unwrap();
    assert_grads(
        SequenceFolding::new().name("f"),
        vec![x.clone()],
        None,
        Mode::Training,
    );
    assert_grads(Flatten::new().name("fl"), vec![x], None, Mode::Training);
    let frames = Activation::images(random(&[6, 2, 3, 3], 17)).unwrap();
    let batch = Activation {
        data: ArrayD::zeros(vec![2, 3]).into_shared(),
        format: seqnet_core::Format::BatchSize,
        lengths: None,
    };
    assert_grads(
        SequenceUnfolding::new().name("u"),
        vec![frames, batch],
        None,
        Mode::Training,
    );
}

#[test]
fn addition_and_concatenation() {
    assert_grads(
        Addition::new(3).name("a"),
        vec![seq(3, 2, 4, 18), seq(3, 2, 4, 19), seq(3, 2, 4, 20)],
        None,
        Mode::Training,
    );
    assert_grads(
        Concatenation::new(2).name("c"),
        vec![seq(3, 2, 4, 21), seq(3, 2, 2, 22)],
        None,
        Mode::Training,
    );
}

#[test]
fn sequence_input_normalization_gradient_reaches_the_data() {
    for n in [
        Normalization::None,
        Normalization::Zscore,
        Normalization::RescaleSymmetric,
    ] {
        assert_grads(
            SequenceInput::new(4).normalization(n).name("in"),
            vec![seq(3, 2, 4, 23)],
            None,
            Mode::Training,
        );
    }
}
