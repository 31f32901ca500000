//! The inference paths of the attention family against their training
//! paths, and outputs written into the last pass's buffers:
//! - self-attention's inference pass (scores, softmax and values fused per
//!   block of queries, `seqnet_kernels::attention`) gives what its training
//!   pass gives (≤ 1e-5), on padded batches in both directions with NaN in
//!   the padded steps, every mask, one head, odd head sizes, batch 1, `T`
//!   not a multiple of the query block;
//! - layers that reuse their last outputs' allocations (fully connected,
//!   self-attention, layer normalization, addition, position embedding,
//!   element-wise activations) give in a pass after others exactly what a
//!   fresh kernel gives, whether the caller still holds every earlier
//!   output (no reuse), only the last one (the older one is reused) or
//!   none, when the shapes change between passes, and with padded steps 0.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{
    ActShape, Activation, ForwardCtx, Layer, LayerKernel, Mode, PaddingDirection, SeqLengths,
};

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// A `[T, B, C]` batch with these lengths, NaN at the padded steps.
fn batch(t: usize, lengths: &[usize], c: usize, dir: PaddingDirection, seed: u64) -> Activation {
    let mut data = random(&[t, lengths.len(), c], seed);
    let l = SeqLengths::new(lengths.to_vec(), t, dir).unwrap();
    for b in 0..lengths.len() {
        for s in (0..t).filter(|&s| !l.is_real(b, s)) {
            data.slice_mut(ndarray::s![s, b, ..]).fill(f32::NAN);
        }
    }
    Activation::sequence(data, Some(l)).unwrap()
}

fn build(layer: &Layer, shapes: &[ActShape]) -> Box<dyn LayerKernel> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut k = layer.def().build_kernel(shapes, &mut rng).unwrap();
    // Learnables away from their initial ones and zeros, so that they matter.
    for p in k.learnables_mut() {
        p.value.mapv_inplace(|v| v + rng.random_range(-0.5..0.5));
    }
    k
}

fn forward(k: &mut dyn LayerKernel, xs: &[&Activation], mode: Mode) -> Activation {
    let mut rng = StdRng::seed_from_u64(0);
    k.forward(
        xs,
        &mut ForwardCtx {
            mode,
            stateful: false,
            rng: &mut rng,
            target: None,
        },
    )
    .unwrap()
    .remove(0)
}

fn max_diff(a: &ArrayD<f32>, b: &ArrayD<f32>) -> f32 {
    assert_eq!(a.shape(), b.shape());
    a.iter()
        .zip(b.iter())
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn self_attention_inference_matches_its_training_pass() {
    use PaddingDirection::{Left, Right};
    // (heads, key channels, value channels, T, lengths, padding).
    type Case<'a> = (usize, usize, usize, usize, &'a [usize], PaddingDirection);
    let cases: &[Case] = &[
        (2, 8, 8, 13, &[13, 9, 1, 0], Right),
        (2, 8, 8, 13, &[13, 9, 1, 0], Left),
        (1, 5, 3, 21, &[21], Right),
        (3, 9, 15, 37, &[30, 37, 17], Left),
        (4, 128, 128, 40, &[40, 40], Right),
    ];
    for (i, &(heads, keys, values, t, lengths, dir)) in cases.iter().enumerate() {
        for mask in [AttentionMask::None, AttentionMask::Causal] {
            let c = 6;
            let layer: Layer = SelfAttention::new(heads, keys)
                .num_value_channels(values)
                .attention_mask(mask)
                .name("attn")
                .into();
            let x = batch(t, lengths, c, dir, 40 + i as u64);
            let mut k = build(&layer, &[ActShape::sequence(c)]);
            let train = forward(k.as_mut(), &[&x], Mode::Training).data.to_owned();
            // Twice: the second pass reuses the first one's buffers.
            for _ in 0..2 {
                let y = forward(k.as_mut(), &[&x], Mode::Inference).data.to_owned();
                let d = max_diff(&y, &train);
                assert!(d <= 1e-5, "case {i} {mask:?}: inference differs by {d}");
                let l = x.seq_lengths();
                for b in 0..lengths.len() {
                    for s in (0..t).filter(|&s| !l.is_real(b, s)) {
                        assert!(y.slice(ndarray::s![s, b, ..]).iter().all(|&v| v == 0.0));
                    }
                }
            }
        }
    }
}

/// Equal values (NaN where the other is NaN: padded steps pass through
/// some layers).
fn same(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape()
        && a.iter()
            .zip(b.iter())
            .all(|(x, y)| x == y || (x.is_nan() && y.is_nan()))
}

/// Each layer's output for `xs` from a fresh kernel, and from one that ran
/// `others` first: while the caller held each earlier output, and after it
/// let them go.
fn check_reuse(layer: Layer, shapes: &[ActShape], runs: &[Vec<Activation>]) {
    for mode in [Mode::Inference, Mode::Training] {
        let want: Vec<ArrayD<f32>> = runs
            .iter()
            .map(|xs| {
                let xs: Vec<&Activation> = xs.iter().collect();
                forward(build(&layer, shapes).as_mut(), &xs, mode)
                    .data
                    .to_owned()
            })
            .collect();
        let mut k = build(&layer, shapes);
        let mut held = Vec::new();
        // Round 0 holds every output, round 1 none, round 2 only the last
        // one (as a consumer that keeps its input for backward does).
        for round in 0..3 {
            for (xs, w) in runs.iter().zip(&want) {
                let xs: Vec<&Activation> = xs.iter().collect();
                let y = forward(k.as_mut(), &xs, mode);
                assert!(
                    same(&y.data.to_owned(), w),
                    "{} {mode:?} round {round}",
                    layer.name()
                );
                match round {
                    0 => held.push(y),
                    2 => held = vec![y],
                    _ => {}
                }
            }
            held.clear();
        }
    }
}

#[test]
fn layers_reusing_their_last_output_give_fresh_results() {
    use PaddingDirection::{Left, Right};
    let c = 5;
    let seqs = |seed: u64| {
        vec![
            batch(9, &[9, 4, 0], c, Right, seed),
            batch(9, &[9, 9, 9], c, Right, seed + 1),
            batch(6, &[6, 2], c, Left, seed + 2),
            batch(11, &[11, 11, 11, 11], c, Right, seed + 3),
        ]
    };
    let one = |v: Vec<Activation>| v.into_iter().map(|x| vec![x]).collect::<Vec<_>>();
    let shape = [ActShape::sequence(c)];
    check_reuse(
        FullyConnected::new(7).name("fc").into(),
        &shape,
        &one(seqs(1)),
    );
    check_reuse(
        SelfAttention::new(2, 4).name("attn").into(),
        &shape,
        &one(seqs(2)),
    );
    check_reuse(
        LayerNormalization::new().name("ln").into(),
        &shape,
        &one(seqs(3)),
    );
    check_reuse(Relu::new().name("relu").into(), &shape, &one(seqs(6)));
    check_reuse(Tanh::new().name("tanh").into(), &shape, &one(seqs(7)));
    check_reuse(
        PositionEmbedding::new(c, 16).name("pos").into(),
        &shape,
        &one(seqs(4)),
    );
    let pairs: Vec<Vec<Activation>> = seqs(5)
        .into_iter()
        .zip(seqs(9))
        .map(|(a, b)| {
            // The same lengths for both inputs (the padded steps of `a`).
            let b = Activation::sequence(b.data.to_owned(), Some(a.seq_lengths())).unwrap();
            vec![a, b]
        })
        .collect();
    check_reuse(
        Addition::new(2).name("add").into(),
        &[ActShape::sequence(c), ActShape::sequence(c)],
        &pairs,
    );
}

#[test]
fn addition_gives_the_elementwise_sum_of_two_and_three_inputs() {
    // Long enough for several rayon runs of the one-pass two-input sum and
    // a partial last one.
    let (t, b, c) = (70, 3, 161);
    let xs: Vec<Activation> = (0..3)
        .map(|i| Activation::sequence(random(&[t, b, c], 60 + i), None).unwrap())
        .collect();
    for n in [2usize, 3] {
        let shapes = vec![ActShape::sequence(c); n];
        let mut k = build(&Addition::new(n).name("add").into(), &shapes);
        let inputs: Vec<&Activation> = xs[..n].iter().collect();
        for _ in 0..3 {
            let y = forward(k.as_mut(), &inputs, Mode::Inference)
                .data
                .to_owned();
            let mut want = xs[0].data.to_owned();
            for x in &xs[1..n] {
                want.zip_mut_with(&x.data, |s, &v| *s += v);
            }
            assert_eq!(y, want, "{n} inputs");
        }
    }
}
