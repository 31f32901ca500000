//! Masking of the 1-D layers, as a property (the counterpart of
//! `masking_property.rs` for the recurrent layers): for random batch sizes,
//! padded lengths, sequence lengths (including empty ones), padding
//! directions and values held in the padded steps (NaN included), a padded
//! batch through a 1-D convolution (every padding, padding value, stride and
//! dilation), max or average pooling, global pooling or batch normalization
//! in inference mode gives each sequence exactly (≤ 1e-5) what it gives alone:
//! its output at its real output steps (0 at the others), its input gradient
//! (0 at padded steps), and learnable gradients that add up to the batch's.
//! A sequence too short for a window alone has no output steps in the batch.
//!
//! Batch normalization in training mode takes statistics over the whole
//! mini-batch, so its property is different: the padded batch gives what the
//! real steps of all sequences, packed into one unpadded sequence, give.

use ndarray::{s, ArrayD, Axis};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{Activation, ForwardCtx, Layer, LayerKernel, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 1e-5;
const C: usize = 3;

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// The layers checked, each with settings that exercise another path.
fn layers() -> Vec<Layer> {
    vec![
        Convolution1d::new(4, 2)
            .padding(Padding1d::Same)
            .name("conv_same")
            .into(),
        Convolution1d::new(3, 2)
            .padding(Padding1d::Causal)
            .dilation_factor(2)
            .name("conv_causal")
            .into(),
        Convolution1d::new(2, 2).name("conv_valid").into(),
        Convolution1d::new(3, 2)
            .padding(Padding1d::Explicit([2, 1]))
            .stride(2)
            .padding_value(ConvPaddingValue::Value(0.5))
            .name("conv_stride")
            .into(),
        Convolution1d::new(3, 2)
            .padding(Padding1d::Same)
            .stride(2)
            .padding_value(ConvPaddingValue::Replicate)
            .name("conv_same_stride")
            .into(),
        Convolution1d::new(3, 2)
            .padding(Padding1d::Explicit([2, 2]))
            .padding_value(ConvPaddingValue::SymmetricExcludeEdge)
            .name("conv_symmetric")
            .into(),
        MaxPooling1d::new(3)
            .stride(2)
            .padding(Padding1d::Explicit([1, 2]))
            .name("max_pool")
            .into(),
        AveragePooling1d::new(2)
            .stride(2)
            .padding(Padding1d::Same)
            .name("avg_pool")
            .into(),
        AveragePooling1d::new(3)
            .padding(Padding1d::Explicit([1, 1]))
            .padding_value(PoolPaddingValue::Mean)
            .name("avg_pool_mean")
            .into(),
        GlobalMaxPooling1d::new().name("global_max").into(),
        GlobalAveragePooling1d::new().name("global_avg").into(),
        BatchNormalization::new().name("bn").into(),
    ]
}

struct Run {
    y: Activation,
    dx: ArrayD<f32>,
    dparams: Vec<ArrayD<f32>>,
}

fn build(layer: &Layer) -> Box<dyn LayerKernel> {
    let mut k = layer
        .def()
        .build_kernel(
            &[seqnet_core::ActShape::sequence(C)],
            &mut StdRng::seed_from_u64(5),
        )
        .unwrap();
    // Batch norm: statistics away from 0 and 1, so that they matter.
    for s in k.states_mut() {
        s.value.mapv_inplace(|v| v + 0.3);
    }
    k
}

/// Forward, then backward with `g` (`None`: drawn at random, returned in `Run.y`'s place).
fn run(
    k: &mut dyn LayerKernel,
    x: &Activation,
    mode: Mode,
    g: impl FnOnce(&Activation) -> ArrayD<f32>,
) -> Result<(Run, ArrayD<f32>), seqnet_core::Error> {
    let mut frng = StdRng::seed_from_u64(0);
    let y = k
        .forward(
            &[x],
            &mut ForwardCtx {
                mode,
                stateful: false,
                rng: &mut frng,
                target: None,
            },
        )?
        .remove(0);
    let g = g(&y);
    let dx = k.backward(vec![Some(g.clone())])?.remove(0).unwrap();
    let dparams = k.learnables().iter().map(|p| p.grad.clone()).collect();
    Ok((Run { y, dx, dparams }, g))
}

fn close(a: ndarray::ArrayViewD<f32>, b: ndarray::ArrayViewD<f32>, tol: f32) -> bool {
    a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= tol)
}

/// Observation `b`'s real steps (`[len, 1, …]`) of a `[T, B, …]` array, or
/// its row (`[1, …]`) of a `[B, …]` one.
fn part(a: &ArrayD<f32>, lengths: Option<&SeqLengths>, b: usize) -> ArrayD<f32> {
    match lengths {
        Some(l) => a.slice(s![l.span(b), b..b + 1, ..]).to_owned().into_dyn(),
        None => a.slice(s![b..b + 1, ..]).to_owned().into_dyn(),
    }
}

fn zero_outside(a: &ArrayD<f32>, l: &SeqLengths) -> bool {
    (0..l.lengths.len()).all(|b| {
        (0..l.time)
            .filter(|&t| !l.is_real(b, t))
            .all(|t| a.slice(s![t, b, ..]).iter().all(|&v| v == 0.0))
    })
}

fn check_alone(layer: &Layer, x: &Activation, rng: &mut StdRng) -> Result<(), TestCaseError> {
    let name = layer.name().to_string();
    let lengths = x.seq_lengths();
    let (batch, mode) = (lengths.lengths.len(), Mode::Inference);
    let mut k = build(layer);
    let (r, g) = run(k.as_mut(), x, mode, |y| random(y.data.shape(), rng)).unwrap();
    let out_lengths = r.y.lengths.as_deref().cloned();
    if let Some(ol) = &out_lengths {
        prop_assert!(
            zero_outside(&r.y.data.to_owned(), ol),
            "{name}: output at a padded step"
        );
    }
    prop_assert!(
        zero_outside(&r.dx, &lengths),
        "{name}: gradient at a padded step"
    );
    let mut sum: Vec<ArrayD<f32>> = r
        .dparams
        .iter()
        .map(|p| ArrayD::zeros(p.raw_dim()))
        .collect();
    for b in 0..batch {
        let lone = Activation::sequence(part(&x.data.to_owned(), Some(&lengths), b), None).unwrap();
        let mut k1 = build(layer);
        let lone_g = part(&g, out_lengths.as_ref(), b);
        let Ok((r1, _)) = run(k1.as_mut(), &lone, mode, |_| lone_g.clone()) else {
            // Too short (or empty) alone: then it has no output steps in the batch.
            let len = out_lengths.as_ref().map_or(1, |l| l.lengths[b]);
            prop_assert!(
                len == 0 || lengths.lengths[b] == 0,
                "{name}: observation {b} fails alone but has {len} output steps"
            );
            continue;
        };
        let y_b = part(&r.y.data.to_owned(), out_lengths.as_ref(), b);
        prop_assert!(
            close(y_b.view(), r1.y.data.view(), TOL),
            "{name}: output of observation {b} differs from its lone output"
        );
        let dx_b = part(&r.dx, Some(&lengths), b);
        prop_assert!(
            close(dx_b.view(), r1.dx.view(), TOL),
            "{name}: input gradient of observation {b} differs from its lone one"
        );
        for (s, p) in sum.iter_mut().zip(&r1.dparams) {
            *s += p;
        }
    }
    for (i, (a, b)) in r.dparams.iter().zip(&sum).enumerate() {
        let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        prop_assert!(
            close(a.view(), b.view(), 1e-5 * scale * batch as f32),
            "{name}: learnable {i}'s gradient is not the sum of the lone ones"
        );
    }
    Ok(())
}

/// Batch normalization in training mode: the padded batch equals all real
/// steps packed into one sequence.
fn check_bn_training(x: &Activation, rng: &mut StdRng) -> Result<(), TestCaseError> {
    let lengths = x.seq_lengths();
    if lengths.real_steps() == 0 {
        return Ok(());
    }
    let layer: Layer = BatchNormalization::new().name("bn").into();
    let data = x.data.to_owned();
    let parts: Vec<ArrayD<f32>> = (0..lengths.lengths.len())
        .map(|b| part(&data, Some(&lengths), b))
        .collect();
    let views: Vec<_> = parts.iter().map(|p| p.view()).collect();
    let packed = ndarray::concatenate(Axis(0), &views).unwrap();
    let (mut k, mut kp) = (build(&layer), build(&layer));
    let (r, g) = run(k.as_mut(), x, Mode::Training, |y| {
        random(y.data.shape(), rng)
    })
    .unwrap();
    let gparts: Vec<ArrayD<f32>> = (0..lengths.lengths.len())
        .map(|b| part(&g, Some(&lengths), b))
        .collect();
    let gviews: Vec<_> = gparts.iter().map(|p| p.view()).collect();
    let gpacked = ndarray::concatenate(Axis(0), &gviews).unwrap();
    let xp = Activation::sequence(packed, None).unwrap();
    let (rp, _) = run(kp.as_mut(), &xp, Mode::Training, |_| gpacked).unwrap();
    let (mut at, y, dx) = (0, r.y.data.to_owned(), r.dx);
    for b in 0..lengths.lengths.len() {
        let n = lengths.lengths[b];
        let yp =
            rp.y.data
                .slice(s![at..at + n, .., ..])
                .to_owned()
                .into_dyn();
        let dxp = rp.dx.slice(s![at..at + n, .., ..]).to_owned().into_dyn();
        prop_assert!(
            close(part(&y, Some(&lengths), b).view(), yp.view(), TOL),
            "bn training: output of observation {b}"
        );
        prop_assert!(
            close(part(&dx, Some(&lengths), b).view(), dxp.view(), TOL),
            "bn training: input gradient of observation {b}"
        );
        at += n;
    }
    prop_assert!(
        zero_outside(&y, &lengths) && zero_outside(&dx, &lengths),
        "bn training: padded steps"
    );
    for (a, b) in r.dparams.iter().zip(&rp.dparams) {
        prop_assert!(
            close(a.view(), b.view(), 1e-4),
            "bn training: learnable gradients"
        );
    }
    let (s, sp) = (k.states(), kp.states());
    for (a, b) in s.iter().zip(&sp) {
        prop_assert!(
            close(a.value.view(), b.value.view(), TOL),
            "bn training: running statistics"
        );
    }
    Ok(())
}

fn check(
    batch: usize,
    time: usize,
    lens: Vec<usize>,
    dir: PaddingDirection,
    pad: f32,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let lengths = SeqLengths::new(lens.iter().map(|&l| l.min(time)).collect(), time, dir).unwrap();
    let mut data = random(&[time, batch, C], &mut rng);
    for b in 0..batch {
        for t in (0..time).filter(|&t| !lengths.is_real(b, t)) {
            data.slice_mut(s![t, b, ..]).fill(pad);
        }
    }
    let x = Activation::sequence(data, Some(lengths)).unwrap();
    for layer in layers() {
        check_alone(&layer, &x, &mut rng)?;
    }
    check_bn_training(&x, &mut rng)
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<usize>, bool, f32, u64)> {
    (1usize..=4, 5usize..=9).prop_flat_map(|(b, t)| {
        (
            Just(b),
            Just(t),
            proptest::collection::vec(0..=t, b),
            any::<bool>(),
            prop_oneof![Just(0.0f32), Just(f32::NAN), -1e3f32..1e3],
            any::<u64>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn padded_batch_gives_each_sequence_its_lone_result((batch, time, lens, left, pad, seed) in case()) {
        let dir = if left { PaddingDirection::Left } else { PaddingDirection::Right };
        check(batch, time, lens, dir, pad, seed)?;
    }
}

#[test]
fn both_directions_on_a_fixed_batch() {
    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
        for pad in [0.0, -7.0, f32::NAN] {
            check(4, 8, vec![8, 1, 0, 5], dir, pad, 3).unwrap();
        }
    }
}
