//! Masking of the attention family, as a property (the counterpart of
//! `masking_sequence_cnn.rs`): for random batch sizes, padded lengths,
//! sequence lengths (including empty ones), padding directions and values
//! held in the padded steps (NaN included), a padded batch through layer
//! normalization, word embedding, self-attention (every mask), or the
//! position layers (positions counted from each sequence's first real step)
//! gives each sequence exactly (≤ 1e-5) what it gives alone:
//! its output at its real steps (0 at the others), its input gradient (0 at
//! padded steps), and learnable gradients that add up to the batch's.
//! Word embedding also rejects a bad index at a real step, naming the layer.

use ndarray::{s, ArrayD};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{
    ActShape, Activation, ForwardCtx, Layer, LayerKernel, Mode, PaddingDirection, SeqLengths,
};

const TOL: f32 = 1e-5;
const C: usize = 4;
const WORDS: usize = 6;

/// The layers checked on `C`-channel sequences, each with settings that
/// exercise another path.
fn layers() -> Vec<Layer> {
    vec![
        LayerNormalization::new().name("ln").into(),
        SelfAttention::new(2, 4).name("attn").into(),
        SelfAttention::new(1, 3)
            .num_value_channels(2)
            .output_size(5)
            .attention_mask(AttentionMask::Causal)
            .has_bias(false)
            .name("attn_causal")
            .into(),
        PositionEmbedding::new(3, 9).name("pos").into(),
        SinusoidalPositionEncoding::new(6).name("sinusoid").into(),
    ]
}

struct Run {
    y: Activation,
    dx: Option<ArrayD<f32>>,
    dparams: Vec<ArrayD<f32>>,
}

fn build(layer: &Layer, channels: usize) -> Box<dyn LayerKernel> {
    let mut rng = StdRng::seed_from_u64(5);
    let mut k = layer
        .def()
        .build_kernel(&[ActShape::sequence(channels)], &mut rng)
        .unwrap();
    // Learnables away from their initial ones and zeros, so that they matter.
    for p in k.learnables_mut() {
        p.value.mapv_inplace(|v| v + rng.random_range(-0.5..0.5));
    }
    k
}

fn run(
    k: &mut dyn LayerKernel,
    x: &Activation,
    g: impl FnOnce(&Activation) -> ArrayD<f32>,
) -> Result<(Run, ArrayD<f32>), seqnet_core::Error> {
    let mut frng = StdRng::seed_from_u64(0);
    let y = k
        .forward(
            &[x],
            &mut ForwardCtx {
                mode: Mode::Training,
                stateful: false,
                rng: &mut frng,
                target: None,
            },
        )?
        .remove(0);
    let g = g(&y);
    let dx = k.backward(vec![Some(g.clone())])?.remove(0);
    let dparams = k.learnables().iter().map(|p| p.grad.clone()).collect();
    Ok((Run { y, dx, dparams }, g))
}

fn close(a: ndarray::ArrayViewD<f32>, b: ndarray::ArrayViewD<f32>, tol: f32) -> bool {
    a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= tol)
}

/// Observation `b`'s real steps (`[len, 1, …]`) of a `[T, B, …]` array.
fn part(a: &ArrayD<f32>, l: &SeqLengths, b: usize) -> ArrayD<f32> {
    a.slice(s![l.span(b), b..b + 1, ..]).to_owned().into_dyn()
}

fn zero_outside(a: &ArrayD<f32>, l: &SeqLengths) -> bool {
    (0..l.lengths.len()).all(|b| {
        (0..l.time)
            .filter(|&t| !l.is_real(b, t))
            .all(|t| a.slice(s![t, b, ..]).iter().all(|&v| v == 0.0))
    })
}

fn check_alone(
    layer: &Layer,
    channels: usize,
    x: &Activation,
    rng: &mut StdRng,
) -> Result<(), TestCaseError> {
    let name = layer.name().to_string();
    let lengths = x.seq_lengths();
    let batch = lengths.lengths.len();
    let mut k = build(layer, channels);
    let (r, g) = run(k.as_mut(), x, |y| {
        ArrayD::from_shape_simple_fn(y.data.shape(), || rng.random_range(-1.0..1.0))
    })
    .unwrap();
    let y = r.y.data.to_owned();
    prop_assert!(
        zero_outside(&y, &lengths),
        "{name}: output at a padded step"
    );
    if let Some(dx) = &r.dx {
        prop_assert!(
            zero_outside(dx, &lengths),
            "{name}: gradient at a padded step"
        );
    }
    let mut sum: Vec<ArrayD<f32>> = r
        .dparams
        .iter()
        .map(|p| ArrayD::zeros(p.raw_dim()))
        .collect();
    for b in (0..batch).filter(|&b| lengths.lengths[b] > 0) {
        let lone = Activation::sequence(part(&x.data.to_owned(), &lengths, b), None).unwrap();
        let mut k1 = build(layer, channels);
        let (r1, _) = run(k1.as_mut(), &lone, |_| part(&g, &lengths, b)).unwrap();
        prop_assert!(
            close(part(&y, &lengths, b).view(), r1.y.data.view(), TOL),
            "{name}: output of observation {b} differs from its lone output"
        );
        if let (Some(dx), Some(dx1)) = (&r.dx, &r1.dx) {
            prop_assert!(
                close(part(dx, &lengths, b).view(), dx1.view(), TOL),
                "{name}: input gradient of observation {b} differs from its lone one"
            );
        }
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

/// A `[T, B, channels]` batch of `lens` (clipped to `time`) with `pad` at padded steps;
/// `tokens`: integer indices in `1..=WORDS` instead of random values.
fn padded(
    batch: usize,
    time: usize,
    lens: &[usize],
    dir: PaddingDirection,
    pad: f32,
    channels: usize,
    rng: &mut StdRng,
) -> Activation {
    let tokens = channels == 1;
    let lengths = SeqLengths::new(lens.iter().map(|&l| l.min(time)).collect(), time, dir).unwrap();
    let mut data = ArrayD::from_shape_simple_fn(vec![time, batch, channels], || {
        if tokens {
            rng.random_range(1..=WORDS) as f32
        } else {
            rng.random_range(-1.0..1.0)
        }
    });
    for b in 0..batch {
        for t in (0..time).filter(|&t| !lengths.is_real(b, t)) {
            data.slice_mut(s![t, b, ..]).fill(pad);
        }
    }
    Activation::sequence(data, Some(lengths)).unwrap()
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
    let x = padded(batch, time, &lens, dir, pad, C, &mut rng);
    for layer in layers() {
        check_alone(&layer, C, &x, &mut rng)?;
    }
    let tokens = padded(batch, time, &lens, dir, pad, 1, &mut rng);
    let emb: Layer = WordEmbedding::new(3, WORDS).name("emb").into();
    check_alone(&emb, 1, &tokens, &mut rng)
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<usize>, bool, f32, u64)> {
    (1usize..=4, 1usize..=8).prop_flat_map(|(b, t)| {
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
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

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
            check(4, 7, vec![7, 1, 0, 5], dir, pad, 3).unwrap();
        }
    }
}

/// Without padding self-attention works on the input's own rows (each
/// sequence a strided view of `[T, B, C]`) instead of packed copies: the
/// same property, with the lengths given and without them.
#[test]
fn unpadded_batches_with_and_without_lengths() {
    for (batch, time, seed) in [(3, 7, 11), (2, 1, 12), (5, 4, 13)] {
        check(
            batch,
            time,
            vec![time; batch],
            PaddingDirection::Right,
            0.0,
            seed,
        )
        .unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        let data =
            ArrayD::from_shape_simple_fn(vec![time, batch, C], || rng.random_range(-1.0..1.0));
        let x = Activation::sequence(data, None).unwrap();
        for layer in layers() {
            check_alone(&layer, C, &x, &mut rng).unwrap();
        }
    }
}

#[test]
fn word_embedding_rejects_bad_indices_at_real_steps_only() {
    let emb: Layer = WordEmbedding::new(2, 3).name("words").into();
    let x = |v: [f32; 3], lens: Vec<usize>| {
        let l = SeqLengths::new(lens, 3, PaddingDirection::Right).unwrap();
        Activation::sequence(
            ArrayD::from_shape_vec(vec![3, 1, 1], v.to_vec()).unwrap(),
            Some(l),
        )
        .unwrap()
    };
    for bad in [0.0, 4.0, 1.5, f32::NAN, -1.0] {
        let mut k = build(&emb, 1);
        let err = run(k.as_mut(), &x([1.0, bad, 3.0], vec![3]), |y| {
            ArrayD::zeros(y.data.shape())
        })
        .err()
        .unwrap_or_else(|| panic!("index {bad} accepted"));
        assert!(err.to_string().contains("words"), "{err}");
        // The same value at a padded step is not read.
        let mut k = build(&emb, 1);
        assert!(run(k.as_mut(), &x([1.0, 3.0, bad], vec![2]), |y| {
            ArrayD::zeros(y.data.shape())
        })
        .is_ok());
    }
    // 0-based: 0 … 2 valid, 3 not.
    let emb0: Layer = WordEmbedding::new(2, 3).index_base(0).name("words0").into();
    let mut k = build(&emb0, 1);
    assert!(
        run(k.as_mut(), &x([0.0, 2.0, 1.0], vec![3]), |y| ArrayD::zeros(
            y.data.shape()
        ))
        .is_ok()
    );
    let mut k = build(&emb0, 1);
    assert!(
        run(k.as_mut(), &x([0.0, 3.0, 1.0], vec![3]), |y| ArrayD::zeros(
            y.data.shape()
        ))
        .is_err()
    );
}

#[test]
fn position_embedding_rejects_sequences_longer_than_max_position() {
    let pos: Layer = PositionEmbedding::new(2, 3).name("positions").into();
    let mut rng = StdRng::seed_from_u64(1);
    // Padded length 5, real lengths 3 and 2: fits (padding does not count).
    let x = padded(2, 5, &[3, 2], PaddingDirection::Left, 0.0, C, &mut rng);
    let mut k = build(&pos, C);
    assert!(run(k.as_mut(), &x, |y| ArrayD::zeros(y.data.shape())).is_ok());
    let x = padded(2, 5, &[4, 2], PaddingDirection::Right, 0.0, C, &mut rng);
    let mut k = build(&pos, C);
    let err = run(k.as_mut(), &x, |y| ArrayD::zeros(y.data.shape()))
        .err()
        .expect("a sequence of 4 steps with MaxPosition 3");
    assert!(err.to_string().contains("positions"), "{err}");
}

#[test]
fn sinusoidal_encoding_is_vaswanis_formula() {
    let layer: Layer = SinusoidalPositionEncoding::new(4).name("sin").into();
    let l = SeqLengths::new(vec![3], 4, PaddingDirection::Left).unwrap();
    let x = Activation::sequence(ArrayD::zeros(vec![4, 1, 2]), Some(l)).unwrap();
    let mut k = build(&layer, 2);
    let (r, _) = run(k.as_mut(), &x, |y| ArrayD::zeros(y.data.shape())).unwrap();
    let y = r.y.data.to_owned();
    // Step 0 is padding; steps 1..4 are positions 0, 1, 2.
    assert!(y.slice(s![0, 0, ..]).iter().all(|&v| v == 0.0));
    for p in 0..3usize {
        let pf = p as f64;
        let want = [
            pf.sin(),
            pf.cos(),
            (pf / 100f64).sin(), // 10000^(2/4) = 100
            (pf / 100f64).cos(),
        ];
        for (c, w) in want.iter().enumerate() {
            assert!((y[[p + 1, 0, c]] as f64 - w).abs() < 1e-6, "p {p} c {c}");
        }
    }
}
