//! Finite-difference gradient checks for the 1-D layers: convolution (every
//! padding, padding value, stride and dilation), max and average pooling,
//! global pooling and batch normalization of feature sequences, for their
//! input and every learnable, on padded mini-batches in both directions.
//!
//! Tolerance: `|analytic − numeric| ≤ 1e-3 · max(1, |numeric|)`, central
//! differences with step 1e-2 in f32 (as `gradients_vision.rs`, whose header
//! explains the error budget). Convolution and average pooling are linear, so
//! only rounding remains; max pooling takes inputs spaced 0.1 apart, so a step
//! of 1e-2 never changes a window's maximum.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use seqnet_core::gradcheck::{check_layer, GradCheck};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 1e-3;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// Distinct values spaced 0.1 apart, shuffled.
fn distinct(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let n: usize = shape.iter().product();
    let mut v: Vec<f32> = (0..n).map(|i| (i as f32 - n as f32 / 2.0) * 0.1).collect();
    v.shuffle(&mut StdRng::seed_from_u64(seed));
    ArrayD::from_shape_vec(shape, v).unwrap()
}

/// A `[T, B, C]` sequence batch with these lengths; padded steps hold 3.
fn batch(data: ArrayD<f32>, lengths: &[usize], dir: PaddingDirection) -> Activation {
    let t = data.shape()[0];
    let l = SeqLengths::new(lengths.to_vec(), t, dir).unwrap();
    let mut data = data;
    for (b, _) in lengths.iter().enumerate() {
        for s in (0..t).filter(|&s| !l.is_real(b, s)) {
            data.slice_mut(ndarray::s![s, b, ..]).fill(3.0);
        }
    }
    Activation::sequence(data, Some(l)).unwrap()
}

/// Checks every probe of `layer` at `x`; `expected` are the names probed.
fn assert_grads(layer: impl Into<Layer>, x: Activation, mode: Mode, expected: &[&str]) {
    let layer = layer.into();
    let cfg = GradCheck {
        mode,
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
    let worst = report
        .probes
        .iter()
        .map(|(_, _, a, n)| (a - n).abs() / n.abs().max(1.0))
        .fold(0f32, f32::max);
    println!("{}: worst scaled error {worst:.1e}", layer.name());
}

const DIRS: [PaddingDirection; 2] = [PaddingDirection::Right, PaddingDirection::Left];
const CONV: &[&str] = &["input 0", "Weights", "Bias"];

#[test]
fn convolution1d_every_padding_stride_and_dilation() {
    let cases: Vec<(&str, Convolution1d)> = vec![
        ("same", Convolution1d::new(4, 3).padding(Padding1d::Same)),
        (
            "causal_dil2",
            Convolution1d::new(3, 2)
                .padding(Padding1d::Causal)
                .dilation_factor(2),
        ),
        ("valid", Convolution1d::new(2, 3)),
        (
            "explicit_stride2",
            Convolution1d::new(3, 2)
                .padding(Padding1d::Explicit([2, 1]))
                .stride(2),
        ),
        (
            "same_stride3_dil2",
            Convolution1d::new(3, 2)
                .padding(Padding1d::Same)
                .stride(3)
                .dilation_factor(2),
        ),
    ];
    for dir in DIRS {
        for (i, (name, conv)) in cases.iter().enumerate() {
            let x = batch(random(&[7, 3, 2], i as u64), &[7, 4, 2], dir);
            assert_grads(conv.clone().name(*name), x, Mode::Training, CONV);
        }
    }
}

#[test]
fn convolution1d_padding_values() {
    for dir in DIRS {
        for (i, v) in [
            ConvPaddingValue::Value(0.7),
            ConvPaddingValue::Replicate,
            ConvPaddingValue::SymmetricIncludeEdge,
            ConvPaddingValue::SymmetricExcludeEdge,
        ]
        .into_iter()
        .enumerate()
        {
            let conv = Convolution1d::new(5, 2)
                .padding(Padding1d::Explicit([3, 2]))
                .padding_value(v)
                .name(format!("pad_{v:?}"));
            let x = batch(random(&[6, 3, 2], 10 + i as u64), &[6, 1, 3], dir);
            assert_grads(conv, x, Mode::Training, CONV);
        }
    }
}

#[test]
fn max_pooling1d() {
    for dir in DIRS {
        let x = || batch(distinct(&[8, 3, 2], 20), &[8, 5, 1], dir);
        assert_grads(
            MaxPooling1d::new(2).name("mp"),
            x(),
            Mode::Training,
            &["input 0"],
        );
        assert_grads(
            MaxPooling1d::new(3)
                .stride(2)
                .padding(Padding1d::Explicit([1, 2]))
                .name("mp_pad"),
            x(),
            Mode::Training,
            &["input 0"],
        );
        assert_grads(
            MaxPooling1d::new(3)
                .stride(2)
                .padding(Padding1d::Same)
                .name("mp_same"),
            x(),
            Mode::Training,
            &["input 0"],
        );
    }
}

#[test]
fn average_pooling1d() {
    for dir in DIRS {
        for v in [PoolPaddingValue::Zero, PoolPaddingValue::Mean] {
            let x = || batch(random(&[8, 3, 2], 21), &[8, 5, 1], dir);
            assert_grads(
                AveragePooling1d::new(3)
                    .stride(2)
                    .padding(Padding1d::Explicit([1, 2]))
                    .padding_value(v)
                    .name("ap_pad"),
                x(),
                Mode::Training,
                &["input 0"],
            );
            assert_grads(
                AveragePooling1d::new(2)
                    .padding(Padding1d::Same)
                    .padding_value(v)
                    .name("ap_same"),
                x(),
                Mode::Training,
                &["input 0"],
            );
        }
    }
}

#[test]
fn global_pooling1d() {
    for dir in DIRS {
        assert_grads(
            GlobalMaxPooling1d::new().name("gmp"),
            batch(distinct(&[6, 4, 3], 30), &[6, 2, 0, 4], dir),
            Mode::Training,
            &["input 0"],
        );
        assert_grads(
            GlobalAveragePooling1d::new().name("gap"),
            batch(random(&[6, 4, 3], 31), &[6, 2, 0, 4], dir),
            Mode::Training,
            &["input 0"],
        );
    }
}

#[test]
fn batch_normalization_of_feature_sequences() {
    for dir in DIRS {
        for mode in [Mode::Training, Mode::Inference] {
            assert_grads(
                BatchNormalization::new().name("bn_seq"),
                batch(random(&[5, 3, 4], 40), &[5, 2, 3], dir),
                mode,
                &["input 0", "Scale", "Offset"],
            );
        }
    }
}
