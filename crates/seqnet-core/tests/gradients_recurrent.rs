//! Finite-difference gradient checks of the recurrent layers (LSTM, BiLSTM, GRU
//! and BiGRU in each `ResetGateMode`):
//! every learnable and the input, both output modes, variable lengths with right
//! and left padding, and the activation variants.
//!
//! Tolerance: `|analytic − numeric| ≤ 1e-2 · max(1, |numeric|)`, central
//! differences with step `1e-2` on an f32 forward (the truncation error is
//! O(1e-4), the rounding error O(1e-4); a wrong gradient is off by O(1)).
//! Every array of these small layers is probed in full (`probes` exceeds its size).
//! The probes include padded input steps, whose gradient must be exactly the
//! numeric one: zero.

use ndarray::ArrayD;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::gradcheck::{check_layer, GradCheck};
use seqnet_core::init::BiasInitializer;
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{Activation, Layer, Mode, PaddingDirection, SeqLengths};

const TOL: f32 = 1e-2;
const T: usize = 5;
const B: usize = 3;
const C: usize = 3;
const H: usize = 4;

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

/// A `[T, B, C]` batch of lengths 5, 2 and 4 padded on `dir`'s side.
fn batch(dir: PaddingDirection, seed: u64) -> Activation {
    let lengths = SeqLengths::new(vec![5, 2, 4], T, dir).unwrap();
    Activation::sequence(random(&[T, B, C], seed), Some(lengths)).unwrap()
}

fn assert_grads(layer: impl Into<Layer>, input: Activation) {
    let layer = layer.into();
    let cfg = GradCheck {
        probes: 200,
        ..GradCheck::default()
    };
    let report = check_layer(&layer, vec![input], None, cfg).expect("layer runs");
    for want in ["input 0", "InputWeights", "RecurrentWeights", "Bias"] {
        assert!(
            report.probes.iter().any(|p| p.0 == want),
            "{}: {want} not probed",
            layer.tag()
        );
    }
    let bad = report.failures(TOL);
    assert!(
        bad.is_empty(),
        "{}: gradient mismatches (what, index, analytic, numeric): {bad:?}",
        layer.tag()
    );
}

const DIRS: [PaddingDirection; 2] = [PaddingDirection::Right, PaddingDirection::Left];
const MODES: [OutputMode; 2] = [OutputMode::Sequence, OutputMode::Last];

#[test]
fn lstm_both_modes_both_paddings() {
    for (k, dir) in DIRS.into_iter().enumerate() {
        for mode in MODES {
            assert_grads(
                Lstm::new(H).output_mode(mode).name("lstm"),
                batch(dir, 10 + k as u64),
            );
        }
    }
}

#[test]
fn lstm_activation_variants() {
    let variants = [
        (GateActivation::Sigmoid, StateActivation::Softsign),
        (GateActivation::HardSigmoid, StateActivation::Tanh),
        (GateActivation::HardSigmoid, StateActivation::Softsign),
    ];
    for (k, (gate, state)) in variants.into_iter().enumerate() {
        for (d, dir) in DIRS.into_iter().enumerate() {
            for mode in MODES {
                let layer = Lstm::new(H)
                    .gate_activation(gate)
                    .state_activation(state)
                    .output_mode(mode)
                    .name("lstm");
                assert_grads(layer, batch(dir, 20 + 2 * k as u64 + d as u64));
            }
        }
    }
}

#[test]
fn lstm_with_initial_state_broadcast_and_per_observation() {
    let h0 = random(&[H], 30).into_raw_vec_and_offset().0;
    let c0 = random(&[H], 31).into_raw_vec_and_offset().0;
    assert_grads(
        Lstm::new(H).hidden_state(h0).cell_state(c0).name("lstm"),
        batch(PaddingDirection::Left, 32),
    );
    let h0 = random(&[B, H], 33).into_raw_vec_and_offset().0;
    let c0 = random(&[B, H], 34).into_raw_vec_and_offset().0;
    let layer = Lstm::new(H)
        .hidden_state(h0)
        .cell_state(c0)
        .output_mode(OutputMode::Last)
        .name("lstm");
    assert_grads(layer, batch(PaddingDirection::Right, 35));
}

#[test]
fn bilstm_both_modes_both_paddings() {
    for (k, dir) in DIRS.into_iter().enumerate() {
        for mode in MODES {
            assert_grads(
                BiLstm::new(H).output_mode(mode).name("bilstm"),
                batch(dir, 40 + k as u64),
            );
        }
    }
    let h0 = random(&[B, 2 * H], 42).into_raw_vec_and_offset().0;
    let c0 = random(&[2 * H], 43).into_raw_vec_and_offset().0;
    let layer = BiLstm::new(H)
        .hidden_state(h0)
        .cell_state(c0)
        .state_activation(StateActivation::Softsign)
        .name("bilstm");
    assert_grads(layer, batch(PaddingDirection::Left, 44));
}

const RESET_MODES: [ResetGateMode; 3] = [
    ResetGateMode::AfterMultiplication,
    ResetGateMode::BeforeMultiplication,
    ResetGateMode::RecurrentBiasAfterMultiplication,
];

#[test]
fn gru_every_reset_gate_mode_both_output_modes_both_paddings() {
    for (r, reset) in RESET_MODES.into_iter().enumerate() {
        for (k, dir) in DIRS.into_iter().enumerate() {
            for mode in MODES {
                // Non-zero biases, so that where a bias enters matters.
                let layer = Gru::new(H)
                    .reset_gate_mode(reset)
                    .bias_initializer(BiasInitializer::NarrowNormal)
                    .output_mode(mode)
                    .name("gru");
                assert_grads(layer, batch(dir, 50 + 10 * r as u64 + k as u64));
            }
        }
        let h0 = random(&[H], 52).into_raw_vec_and_offset().0;
        let layer = Gru::new(H)
            .reset_gate_mode(reset)
            .hidden_state(h0)
            .gate_activation(GateActivation::HardSigmoid)
            .state_activation(StateActivation::Softsign)
            .name("gru");
        assert_grads(layer, batch(PaddingDirection::Right, 53));
    }
}

#[test]
fn bigru_every_reset_gate_mode_both_output_modes_both_paddings() {
    for (r, reset) in RESET_MODES.into_iter().enumerate() {
        for (k, dir) in DIRS.into_iter().enumerate() {
            for mode in MODES {
                let layer = BiGru::new(H)
                    .reset_gate_mode(reset)
                    .bias_initializer(BiasInitializer::NarrowNormal)
                    .output_mode(mode)
                    .name("bigru");
                assert_grads(layer, batch(dir, 150 + 10 * r as u64 + k as u64));
            }
        }
    }
    let h0 = random(&[B, 2 * H], 180).into_raw_vec_and_offset().0;
    let layer = BiGru::new(H)
        .hidden_state(h0)
        .state_activation(StateActivation::Softsign)
        .name("bigru");
    assert_grads(layer, batch(PaddingDirection::Left, 181));
}

#[test]
fn projected_lstm_and_bilstm_both_modes_both_paddings() {
    let p = 2;
    for (k, dir) in DIRS.into_iter().enumerate() {
        for mode in MODES {
            assert_grads(
                Lstm::new(H)
                    .projection_size(p)
                    .output_mode(mode)
                    .name("lstmp"),
                batch(dir, 200 + k as u64),
            );
            assert_grads(
                BiLstm::new(H)
                    .projection_size(p)
                    .output_mode(mode)
                    .name("bilstmp"),
                batch(dir, 210 + k as u64),
            );
        }
    }
    // Initial states: hidden `P` (`D·P`) wide, cell `H` (`D·H`).
    let layer = Lstm::new(H)
        .projection_size(p)
        .hidden_state(random(&[B, p], 220).into_raw_vec_and_offset().0)
        .cell_state(random(&[H], 221).into_raw_vec_and_offset().0)
        .gate_activation(GateActivation::HardSigmoid)
        .state_activation(StateActivation::Softsign)
        .name("lstmp");
    assert_grads(layer, batch(PaddingDirection::Left, 222));
    let layer: Layer = Lstm::new(H).projection_size(p).name("lstmp").into();
    let report = check_layer(
        &layer,
        vec![batch(PaddingDirection::Right, 223)],
        None,
        GradCheck {
            probes: 200,
            ..GradCheck::default()
        },
    )
    .unwrap();
    assert!(report.probes.iter().any(|p| p.0 == "ProjectorWeights"));
    assert!(
        report.failures(TOL).is_empty(),
        "{:?}",
        report.failures(TOL)
    );
}

#[test]
fn gru_probes_its_recurrent_bias() {
    let layer: Layer = Gru::new(H)
        .reset_gate_mode(ResetGateMode::RecurrentBiasAfterMultiplication)
        .name("gru")
        .into();
    let report = check_layer(
        &layer,
        vec![batch(PaddingDirection::Right, 60)],
        None,
        GradCheck {
            probes: 200,
            ..GradCheck::default()
        },
    )
    .unwrap();
    assert!(report.probes.iter().any(|p| p.0 == "RecurrentBias"));
    assert!(
        report.failures(TOL).is_empty(),
        "{:?}",
        report.failures(TOL)
    );
}

#[test]
fn padded_steps_get_exactly_zero_input_gradient() {
    use seqnet_core::ForwardCtx;
    for dir in DIRS {
        let x = batch(dir, 70);
        let lengths = x.seq_lengths();
        let layers: Vec<Layer> = vec![
            Lstm::new(H).name("l").into(),
            BiLstm::new(H).name("b").into(),
            Gru::new(H).name("g").into(),
            Gru::new(H)
                .reset_gate_mode(ResetGateMode::BeforeMultiplication)
                .name("gb")
                .into(),
            BiGru::new(H).name("bg").into(),
            Lstm::new(H).projection_size(2).name("lp").into(),
            BiLstm::new(H).projection_size(3).name("bp").into(),
        ];
        for layer in layers {
            let mut rng = StdRng::seed_from_u64(1);
            let mut k = layer.def().build_kernel(&[x.shape()], &mut rng).unwrap();
            let y = k
                .forward(
                    &[&x],
                    &mut ForwardCtx {
                        mode: Mode::Training,
                        stateful: false,
                        rng: &mut rng,
                        target: None,
                    },
                )
                .unwrap();
            let g = random(y[0].data.shape(), 71);
            let dx = k.backward(vec![Some(g)]).unwrap().remove(0).unwrap();
            for t in 0..T {
                for b in 0..B {
                    let padded = !lengths.is_real(b, t);
                    for c in 0..C {
                        if padded {
                            assert_eq!(
                                dx[[t, b, c]],
                                0.0,
                                "{}: gradient at padded step",
                                layer.tag()
                            );
                        }
                    }
                    for v in y[0]
                        .data
                        .index_axis(ndarray::Axis(0), t)
                        .index_axis(ndarray::Axis(0), b)
                    {
                        if padded {
                            assert_eq!(*v, 0.0, "{}: output at padded step", layer.tag());
                        }
                    }
                }
            }
        }
    }
}
