//! Padding never changes a result of the image layers: a video predicted alone
//! or inside a padded mini-batch of folded frames gives the same outputs, and in
//! training, batch normalization's statistics and gradients ignore padded frames.

use ndarray::{ArrayD, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{
    ActShape, Activation, ForwardCtx, LayerDef, LayerKernel, Mode, PaddingDirection, SeqLengths,
};

const C: usize = 2;
const H: usize = 5;
const W: usize = 4;

fn random(shape: &[usize], rng: &mut StdRng, scale: f32) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-scale..scale))
}

fn run(kernel: &mut dyn LayerKernel, x: &Activation, mode: Mode) -> Activation {
    let mut rng = StdRng::seed_from_u64(0);
    let mut ctx = ForwardCtx {
        mode,
        stateful: false,
        rng: &mut rng,
        target: None,
    };
    kernel.forward(&[x], &mut ctx).expect("forward").remove(0)
}

/// Folds `[T, B, C, H, W]` sequences with these lengths into frames `[T·B, C, H, W]`.
fn fold(data: ArrayD<f32>, lengths: SeqLengths) -> Activation {
    let x = Activation::image_sequence(data, Some(lengths)).unwrap();
    let mut k = SequenceFolding::new()
        .name("fold")
        .build_kernel(&[x.shape()], &mut StdRng::seed_from_u64(0))
        .unwrap();
    run(k.as_mut(), &x, Mode::Inference)
}

/// Convolution and batch normalization with random learnables and statistics;
/// the same for every call.
fn conv_bn() -> (Box<dyn LayerKernel>, Box<dyn LayerKernel>) {
    let mut rng = StdRng::seed_from_u64(42);
    let in_shape = ActShape::images(H, W, 1);
    let conv_def = Convolution2d::new([3, 3], C)
        .padding(Padding::Same)
        .name("conv");
    let conv = conv_def.build_kernel(&[in_shape], &mut rng).unwrap();
    let out = conv_def.infer(&[in_shape]).unwrap()[0];
    let mut bn = BatchNormalization::new()
        .name("bn")
        .build_kernel(&[out], &mut rng)
        .unwrap();
    for p in bn.learnables_mut() {
        p.value = (random(&[C], &mut rng, 1.0) + 1.0).into();
    }
    for s in bn.states_mut() {
        s.value = (random(&[C], &mut rng, 0.5) + 1.0).into();
    }
    (conv, bn)
}

/// Frame `n` of folded frames.
fn frame(a: &Activation, n: usize) -> ArrayD<f32> {
    a.data.index_axis(Axis(0), n).to_owned()
}

#[test]
fn a_video_alone_and_in_a_padded_batch_gives_the_same_frames_in_inference() {
    let mut rng = StdRng::seed_from_u64(1);
    let video = random(&[2, 1, 1, H, W], &mut rng, 1.0);
    let (mut conv, mut bn) = conv_bn();
    let alone = fold(video.clone(), SeqLengths::full(1, 2));
    let alone = run(
        bn.as_mut(),
        &run(conv.as_mut(), &alone, Mode::Inference),
        Mode::Inference,
    );

    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
        // Three videos of lengths 3, 2 (ours, observation 1) and 1, padded to 3 steps with garbage.
        let lengths = SeqLengths::new(vec![3, 2, 1], 3, dir).unwrap();
        let mut batch = random(&[3, 3, 1, H, W], &mut rng, 50.0);
        let steps = lengths.span(1);
        for (k, t) in steps.clone().enumerate() {
            batch
                .index_axis_mut(Axis(0), t)
                .index_axis_mut(Axis(0), 1)
                .assign(&video.index_axis(Axis(0), k).index_axis(Axis(0), 0));
        }
        let frames = fold(batch, lengths.clone());
        let y = run(
            bn.as_mut(),
            &run(conv.as_mut(), &frames, Mode::Inference),
            Mode::Inference,
        );
        for (k, t) in steps.enumerate() {
            assert_eq!(
                frame(&y, t * 3 + 1),
                frame(&alone, k),
                "{dir:?}: step {k} of the video"
            );
        }
        // Padded frames come out as zeros.
        for n in 0..9 {
            if !lengths.is_real(n % 3, n / 3) {
                assert!(
                    frame(&y, n).iter().all(|&v| v == 0.0),
                    "{dir:?}: padded frame {n}"
                );
            }
        }
    }
}

#[test]
fn padded_frames_change_nothing_in_training() {
    let mut rng = StdRng::seed_from_u64(2);
    let lengths = SeqLengths::new(vec![3, 1, 2], 3, PaddingDirection::Right).unwrap();
    let real: Vec<usize> = (0..9).filter(|&n| lengths.is_real(n % 3, n / 3)).collect();
    let x = random(&[3, 3, C, H, W], &mut rng, 1.0);
    let dy = random(&[9, C, H, W], &mut rng, 1.0);
    // The same real frames with two different paddings, and packed without padding.
    let mut garbage = x.clone();
    let mut garbage_dy = dy.clone();
    for &n in (0..9)
        .collect::<Vec<_>>()
        .iter()
        .filter(|n| !real.contains(n))
    {
        garbage
            .index_axis_mut(Axis(0), n / 3)
            .index_axis_mut(Axis(0), n % 3)
            .mapv_inplace(|v| 1e3 * v + 7.0);
        garbage_dy.index_axis_mut(Axis(0), n).fill(-5.0);
    }
    let padded_a = fold(x.clone(), lengths.clone());
    let padded_b = fold(garbage, lengths.clone());
    let packed = Activation::images(padded_a.data.select(Axis(0), &real)).unwrap();
    let packed_dy = dy.select(Axis(0), &real);

    let bn_def = BatchNormalization::new().name("bn");
    let shape = ActShape::images(H, W, C);
    let mut results = Vec::new();
    for (input, g) in [
        (&padded_a, &dy),
        (&padded_b, &garbage_dy),
        (&packed, &packed_dy),
    ] {
        let mut bn = bn_def
            .build_kernel(&[shape], &mut StdRng::seed_from_u64(3))
            .unwrap();
        for p in bn.learnables_mut() {
            p.value.mapv_inplace(|v| v * 1.5 + 0.25);
        }
        let y = run(bn.as_mut(), input, Mode::Training);
        let dx = bn
            .backward(vec![Some(g.clone())])
            .unwrap()
            .remove(0)
            .unwrap();
        let grads: Vec<ArrayD<f32>> = bn.learnables().iter().map(|p| p.grad.clone()).collect();
        let states: Vec<ArrayD<f32>> = bn.states().iter().map(|s| s.value.to_owned()).collect();
        results.push((y.data.to_owned(), dx, grads, states));
    }
    let (a, b, p) = (&results[0], &results[1], &results[2]);
    // Two paddings: bit-identical on real frames, zeros on padded frames.
    assert_eq!(a.0.select(Axis(0), &real), b.0.select(Axis(0), &real));
    assert_eq!(a.1.select(Axis(0), &real), b.1.select(Axis(0), &real));
    assert_eq!(a.2, b.2, "Scale and Offset gradients");
    assert_eq!(a.3, b.3, "running statistics");
    for n in (0..9).filter(|n| !real.contains(n)) {
        for r in [a, b] {
            assert!(
                r.0.index_axis(Axis(0), n).iter().all(|&v| v == 0.0),
                "padded frame {n} outputs zeros"
            );
            assert!(
                r.1.index_axis(Axis(0), n).iter().all(|&v| v == 0.0),
                "padded frame {n} gets no gradient"
            );
        }
    }
    // Packed without padding: the same batch statistics, so the same results.
    let close = |x: &ArrayD<f32>, y: &ArrayD<f32>| {
        x.shape() == y.shape()
            && x.iter()
                .zip(y)
                .all(|(u, v)| (u - v).abs() <= 1e-5 * v.abs().max(1.0))
    };
    assert!(close(&a.0.select(Axis(0), &real), &p.0), "outputs");
    assert!(close(&a.1.select(Axis(0), &real), &p.1), "input gradients");
    for (u, v) in a.2.iter().zip(&p.2).chain(a.3.iter().zip(&p.3)) {
        assert!(close(u, v), "{u} vs {v}");
    }
}

/// The convolution skips padded frames in training: they come out as zeros,
/// get no input gradient, and whatever their values and output gradients,
/// the real frames' outputs, input gradients and the weight and bias
/// gradients are those of the real frames packed without padding.
#[test]
fn convolution_skips_padded_frames_in_training() {
    let mut rng = StdRng::seed_from_u64(3);
    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
        let lengths = SeqLengths::new(vec![3, 1, 2], 3, dir).unwrap();
        let real: Vec<usize> = (0..9).filter(|&n| lengths.is_real(n % 3, n / 3)).collect();
        let x = random(&[3, 3, 1, H, W], &mut rng, 1.0);
        let dy = random(&[9, C, H, W], &mut rng, 1.0);
        let mut garbage = x.clone();
        let mut garbage_dy = dy.clone();
        for n in (0..9).filter(|n| !real.contains(n)) {
            garbage
                .index_axis_mut(Axis(0), n / 3)
                .index_axis_mut(Axis(0), n % 3)
                .mapv_inplace(|v| 1e3 * v + 7.0);
            garbage_dy.index_axis_mut(Axis(0), n).fill(-5.0);
        }
        let padded_a = fold(x, lengths.clone());
        let padded_b = fold(garbage, lengths.clone());
        let packed = Activation::images(padded_a.data.select(Axis(0), &real)).unwrap();
        let packed_dy = dy.select(Axis(0), &real);
        let mut results = Vec::new();
        for (input, g) in [
            (&padded_a, &dy),
            (&padded_b, &garbage_dy),
            (&packed, &packed_dy),
        ] {
            let (mut conv, _) = conv_bn();
            let y = run(conv.as_mut(), input, Mode::Training);
            let dx = conv
                .backward(vec![Some(g.clone())])
                .unwrap()
                .remove(0)
                .unwrap();
            let grads: Vec<ArrayD<f32>> =
                conv.learnables().iter().map(|p| p.grad.clone()).collect();
            results.push((y.data.to_owned(), dx, grads));
        }
        let (a, b, p) = (&results[0], &results[1], &results[2]);
        for r in [a, b] {
            assert_eq!(r.0.select(Axis(0), &real), p.0, "{dir:?}: real outputs");
            assert_eq!(r.1.select(Axis(0), &real), p.1, "{dir:?}: input gradients");
            for n in (0..9).filter(|n| !real.contains(n)) {
                assert!(r.0.index_axis(Axis(0), n).iter().all(|&v| v == 0.0));
                assert!(r.1.index_axis(Axis(0), n).iter().all(|&v| v == 0.0));
            }
        }
        // The weight gradients sum the same frames; only the tasks' split of
        // the frames (a function of the frame count) may order them differently.
        for (u, v) in a.2.iter().chain(&b.2).zip(p.2.iter().chain(&p.2)) {
            let close = u
                .iter()
                .zip(v)
                .all(|(s, t)| (s - t).abs() <= 1e-5 * t.abs().max(1.0));
            assert!(close, "{dir:?}: weight/bias gradients {u} vs {v}");
        }
        assert_eq!(a.2, b.2, "{dir:?}: both paddings, the same gradients");
    }
}
