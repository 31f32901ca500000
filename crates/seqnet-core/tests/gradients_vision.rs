//! Finite-difference gradient checks for the image layers: convolution, batch
//! normalization and pooling, for their inputs and every learnable.
//!
//! Tolerance: `|analytic − numeric| ≤ 1e-3 · max(1, |numeric|)`, central
//! differences with step 1e-2 in f32 (ten times tighter than `gradients_basic.rs`;
//! the worst scaled error seen is about 1e-4, printed with `--nocapture`).
//! - Convolution and average pooling are linear in their input and in each
//!   learnable, so the only error is f32 rounding of the loss (`~1e-7·|L|/h`).
//! - Max pooling is piecewise linear; inputs are spaced 0.1 apart, so a step of
//!   1e-2 never changes a window's maximum.
//! - Batch normalization is smooth but not linear: the central difference's
//!   truncation error is `h²/6·|∂³L|`; small inputs (values of order 1, 12 to 36
//!   values per channel) keep it near 1e-5 for `h = 1e-2`, and the f32 rounding
//!   of the loss divided by `2h` stays near 1e-4. A wrong gradient (a missing
//!   mean or variance term, a padded frame counted) is off by O(1e-1) or more.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use seqnet_core::gradcheck::{check_layer, GradCheck};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Format, Layer, Mode, PaddingDirection, SeqLengths};
use std::sync::Arc;

const TOL: f32 = 1e-3;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// Images `[N, C, H, W]` of distinct values spaced 0.1 apart, shuffled.
fn distinct(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    v.shuffle(&mut StdRng::seed_from_u64(seed));
    ArrayD::from_shape_vec(shape, v).unwrap()
}

fn images(shape: &[usize], seed: u64) -> Activation {
    Activation::images(random(shape, seed)).unwrap()
}

/// Folded frames `[T·B, C, H, W]` of `B` sequences with these lengths.
fn folded(
    t: usize,
    lengths: &[usize],
    dir: PaddingDirection,
    chw: [usize; 3],
    seed: u64,
) -> Activation {
    let b = lengths.len();
    let l = SeqLengths::new(lengths.to_vec(), t, dir).unwrap();
    let data = random(&[t * b, chw[0], chw[1], chw[2]], seed);
    Activation {
        data: data.into_shared(),
        format: Format::SSCB,
        lengths: Some(Arc::new(l)),
    }
}

fn assert_grads(layer: impl Into<Layer>, inputs: Vec<Activation>, mode: Mode) {
    let layer = layer.into();
    let cfg = GradCheck {
        mode,
        probes: 60,
        ..GradCheck::default()
    };
    let report = check_layer(&layer, inputs, None, cfg).expect("layer runs");
    assert!(
        !report.probes.is_empty(),
        "nothing probed for {}",
        layer.tag()
    );
    for what in ["input 0", "Weights", "Bias", "Scale", "Offset"] {
        let n = report.probes.iter().filter(|p| p.0 == what).count();
        let expected = match layer.tag() {
            "convolution2d" => matches!(what, "input 0" | "Weights" | "Bias"),
            "batchNormalization" => matches!(what, "input 0" | "Scale" | "Offset"),
            _ => what == "input 0",
        };
        assert_eq!(n > 0, expected, "{}: probes of {what}", layer.tag());
    }
    let worst = report
        .probes
        .iter()
        .map(|(_, _, a, n)| (a - n).abs() / n.abs().max(1.0))
        .fold(0.0f32, f32::max);
    eprintln!(
        "{} {}: {} probes, worst scaled error {worst:.2e}",
        layer.tag(),
        layer.name(),
        report.probes.len()
    );
    let bad = report.failures(TOL);
    assert!(
        bad.is_empty(),
        "{} {}: gradient mismatches (what, index, analytic, numeric): {bad:?}",
        layer.tag(),
        layer.name()
    );
}

#[test]
fn convolution_plain_strided_padded_dilated_same() {
    let x = || images(&[3, 2, 7, 6], 1);
    assert_grads(
        Convolution2d::new([3, 3], 4).name("plain"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([3, 2], 3).stride([2, 2]).name("stride2"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([3, 3], 3)
            .padding(Padding::Explicit([1, 2, 0, 1]))
            .stride([1, 2])
            .name("padded"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([2, 3], 3)
            .dilation_factor([2, 1])
            .name("dilated"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([3, 3], 2)
            .padding(Padding::Same)
            .name("same"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([4, 3], 2)
            .padding(Padding::Same)
            .stride([2, 2])
            .name("same_stride2"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([2, 2], 2)
            .padding(Padding::Same)
            .dilation_factor([2, 3])
            .name("same_dilated"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        Convolution2d::new([1, 1], 3).name("pointwise"),
        vec![x()],
        Mode::Training,
    );
}

#[test]
fn batchnorm_training_images_and_features() {
    assert_grads(
        BatchNormalization::new().name("bn"),
        vec![images(&[4, 3, 3, 3], 2)],
        Mode::Training,
    );
    assert_grads(
        BatchNormalization::new().name("bn_cb"),
        vec![Activation::features(random(&[8, 3], 3)).unwrap()],
        Mode::Training,
    );
}

#[test]
fn batchnorm_training_with_masked_frames() {
    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
        let x = folded(3, &[3, 1, 2], dir, [2, 3, 2], 4);
        assert_grads(
            BatchNormalization::new().name("bn_masked"),
            vec![x],
            Mode::Training,
        );
    }
    let l = SeqLengths::new(vec![4, 2], 4, PaddingDirection::Right).unwrap();
    let seq = Activation::sequence(random(&[4, 2, 3], 5), Some(l)).unwrap();
    assert_grads(
        BatchNormalization::new().name("bn_cbt"),
        vec![seq],
        Mode::Training,
    );
}

#[test]
fn batchnorm_inference() {
    assert_grads(
        BatchNormalization::new().name("bn"),
        vec![images(&[4, 3, 3, 3], 6)],
        Mode::Inference,
    );
    let x = folded(3, &[1, 3], PaddingDirection::Right, [2, 2, 2], 7);
    assert_grads(
        BatchNormalization::new().name("bn_masked"),
        vec![x],
        Mode::Inference,
    );
}

#[test]
fn max_pooling() {
    let x = || Activation::images(distinct(&[2, 2, 7, 6], 8)).unwrap();
    assert_grads(
        MaxPooling2d::new([2, 2]).name("mp"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        MaxPooling2d::new([2, 2]).stride([2, 2]).name("mp_s2"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        MaxPooling2d::new([3, 2])
            .stride([2, 1])
            .padding(Padding::Explicit([1, 2, 0, 1]))
            .name("mp_pad"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        MaxPooling2d::new([3, 3])
            .stride([2, 2])
            .padding(Padding::Same)
            .name("mp_same"),
        vec![x()],
        Mode::Training,
    );
}

#[test]
fn average_pooling() {
    let x = || images(&[2, 2, 7, 6], 9);
    assert_grads(
        AveragePooling2d::new([2, 2]).name("ap"),
        vec![x()],
        Mode::Training,
    );
    assert_grads(
        AveragePooling2d::new([3, 2]).stride([2, 2]).name("ap_s2"),
        vec![x()],
        Mode::Training,
    );
    for v in [PoolPaddingValue::Zero, PoolPaddingValue::Mean] {
        assert_grads(
            AveragePooling2d::new([3, 3])
                .stride([2, 1])
                .padding(Padding::Explicit([1, 2, 2, 0]))
                .padding_value(v)
                .name("ap_pad"),
            vec![x()],
            Mode::Training,
        );
        assert_grads(
            AveragePooling2d::new([2, 3])
                .stride([2, 2])
                .padding(Padding::Same)
                .padding_value(v)
                .name("ap_same"),
            vec![x()],
            Mode::Training,
        );
    }
}
