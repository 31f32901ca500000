//! Masking of the recurrent layers, as a property: for random batch sizes, padded
//! lengths and sequence lengths (including empty sequences), a padded batch through
//! an LSTM, a BiLSTM (each also projected), a GRU (each `ResetGateMode`) or a BiGRU gives each sequence exactly (≤ 1e-5) the output it
//! gives alone, for right and left padding and both output modes; so does the
//! gradient with respect to the input at its real steps (zero at padded steps),
//! and the learnables' gradients of the batch are the sum of the lone ones.
//! The layers start from a non-zero initial state, so that the state must also
//! stay put during left padding.

use ndarray::{s, ArrayD, Axis};
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::{BiGru, BiLstm, Gru, Lstm, OutputMode, ResetGateMode};
use seqnet_core::BuildKernel;
use seqnet_core::{Activation, ForwardCtx, Layer, LayerKernel, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 1e-5;
const C: usize = 3;
const H: usize = 4;

fn random(shape: &[usize], rng: &mut StdRng) -> ArrayD<f32> {
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

fn layers(mode: OutputMode, rng: &mut StdRng) -> Vec<Layer> {
    let mut v = |n: usize| random(&[n], rng).into_raw_vec_and_offset().0;
    vec![
        Lstm::new(H)
            .output_mode(mode)
            .hidden_state(v(H))
            .cell_state(v(H))
            .name("lstm")
            .into(),
        BiLstm::new(H)
            .output_mode(mode)
            .hidden_state(v(2 * H))
            .cell_state(v(2 * H))
            .name("bilstm")
            .into(),
        Gru::new(H)
            .output_mode(mode)
            .hidden_state(v(H))
            .name("gru")
            .into(),
        Gru::new(H)
            .reset_gate_mode(ResetGateMode::BeforeMultiplication)
            .output_mode(mode)
            .hidden_state(v(H))
            .name("gru_before")
            .into(),
        Gru::new(H)
            .reset_gate_mode(ResetGateMode::RecurrentBiasAfterMultiplication)
            .bias_initializer(seqnet_core::init::BiasInitializer::NarrowNormal)
            .output_mode(mode)
            .hidden_state(v(H))
            .name("gru_rb")
            .into(),
        BiGru::new(H)
            .output_mode(mode)
            .hidden_state(v(2 * H))
            .name("bigru")
            .into(),
        Lstm::new(H)
            .projection_size(2)
            .output_mode(mode)
            .hidden_state(v(2))
            .cell_state(v(H))
            .name("lstm_proj")
            .into(),
        BiLstm::new(H)
            .projection_size(3)
            .output_mode(mode)
            .hidden_state(v(6))
            .cell_state(v(2 * H))
            .name("bilstm_proj")
            .into(),
        BiGru::new(H)
            .reset_gate_mode(ResetGateMode::BeforeMultiplication)
            .output_mode(mode)
            .hidden_state(v(2 * H))
            .name("bigru_before")
            .into(),
    ]
}

/// Forward then backward with upstream gradient `g` (`None`: drawn at random and
/// returned). Returns `(output, input gradient, learnable gradients, upstream)`.
fn run(
    k: &mut dyn LayerKernel,
    x: &Activation,
    g: Option<ArrayD<f32>>,
    rng: &mut StdRng,
) -> (ArrayD<f32>, ArrayD<f32>, Vec<ArrayD<f32>>, ArrayD<f32>) {
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
        )
        .unwrap()
        .remove(0)
        .data
        .to_owned();
    let g = g.unwrap_or_else(|| random(y.shape(), rng));
    let dx = k
        .backward(vec![Some(g.clone())])
        .unwrap()
        .remove(0)
        .unwrap();
    (
        y,
        dx,
        k.learnables().iter().map(|p| p.grad.clone()).collect(),
        g,
    )
}

fn close(a: ndarray::ArrayViewD<f32>, b: ndarray::ArrayViewD<f32>, tol: f32) -> bool {
    a.shape() == b.shape() && a.iter().zip(b.iter()).all(|(x, y)| (x - y).abs() <= tol)
}

fn check(
    batch: usize,
    time: usize,
    lens: Vec<usize>,
    dir: PaddingDirection,
    mode: OutputMode,
    seed: u64,
) -> Result<(), TestCaseError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let lengths = SeqLengths::new(lens.iter().map(|&l| l.min(time)).collect(), time, dir).unwrap();
    let x =
        Activation::sequence(random(&[time, batch, C], &mut rng), Some(lengths.clone())).unwrap();
    for layer in layers(mode, &mut rng) {
        let tag = layer.tag();
        let build = || {
            layer
                .def()
                .build_kernel(&[x.shape()], &mut StdRng::seed_from_u64(seed ^ 0x55))
                .unwrap()
        };
        let mut k = build();
        let (y, dx, dparams, g) = run(k.as_mut(), &x, None, &mut rng);
        let mut sum_params: Vec<ArrayD<f32>> =
            dparams.iter().map(|p| ArrayD::zeros(p.raw_dim())).collect();
        for b in 0..batch {
            let span = lengths.span(b);
            let len = span.len();
            let lone_x = x
                .data
                .slice(s![span.clone(), b..b + 1, ..])
                .to_owned()
                .into_dyn();
            let lone = Activation::sequence(lone_x, None).unwrap();
            let lone_g = match mode {
                OutputMode::Sequence => g
                    .slice(s![span.clone(), b..b + 1, ..])
                    .to_owned()
                    .into_dyn(),
                OutputMode::Last => g.slice(s![b..b + 1, ..]).to_owned().into_dyn(),
            };
            let mut k1 = build();
            let (y1, dx1, dp1, _) = run(k1.as_mut(), &lone, Some(lone_g), &mut rng);
            let batched_y = match mode {
                OutputMode::Sequence => y.slice(s![span.clone(), b..b + 1, ..]).into_dyn(),
                OutputMode::Last => y.slice(s![b..b + 1, ..]).into_dyn(),
            };
            prop_assert!(close(batched_y, y1.view(), TOL), "{tag} {dir:?} {mode:?}: output of observation {b} (length {len}) differs from its lone output");
            prop_assert!(
                close(dx.slice(s![span.clone(), b..b + 1, ..]).into_dyn(), dx1.view(), TOL),
                "{tag} {dir:?} {mode:?}: input gradient of observation {b} differs from its lone one"
            );
            for t in (0..time).filter(|t| !span.contains(t)) {
                prop_assert!(
                    dx.index_axis(Axis(0), t)
                        .index_axis(Axis(0), b)
                        .iter()
                        .all(|&v| v == 0.0),
                    "{tag}: gradient at a padded step"
                );
                if mode == OutputMode::Sequence {
                    prop_assert!(
                        y.index_axis(Axis(0), t)
                            .index_axis(Axis(0), b)
                            .iter()
                            .all(|&v| v == 0.0),
                        "{tag}: output at a padded step"
                    );
                }
            }
            for (s, p) in sum_params.iter_mut().zip(&dp1) {
                *s += p;
            }
        }
        for (i, (a, b)) in dparams.iter().zip(&sum_params).enumerate() {
            let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
            prop_assert!(
                close(a.view(), b.view(), 1e-5 * scale * batch as f32),
                "{tag} {dir:?} {mode:?}: learnable {i}'s gradient is not the sum of the lone ones"
            );
        }
    }
    Ok(())
}

fn case() -> impl Strategy<Value = (usize, usize, Vec<usize>, bool, bool, u64)> {
    (1usize..=5, 1usize..=7).prop_flat_map(|(b, t)| {
        (
            Just(b),
            Just(t),
            proptest::collection::vec(0..=t, b),
            any::<bool>(),
            any::<bool>(),
            any::<u64>(),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn padded_batch_gives_each_sequence_its_lone_result((batch, time, lens, left, last, seed) in case()) {
        let dir = if left { PaddingDirection::Left } else { PaddingDirection::Right };
        let mode = if last { OutputMode::Last } else { OutputMode::Sequence };
        check(batch, time, lens, dir, mode, seed)?;
    }
}

#[test]
fn every_direction_and_mode_on_a_fixed_batch() {
    for dir in [PaddingDirection::Right, PaddingDirection::Left] {
        for mode in [OutputMode::Sequence, OutputMode::Last] {
            check(4, 6, vec![6, 1, 0, 4], dir, mode, 3).unwrap();
        }
    }
}
