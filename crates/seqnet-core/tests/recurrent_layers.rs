//! Behaviour of the recurrent layers besides their gradients: stateful mode,
//! shape inference and configuration errors, serialisation, initializers, and use
//! inside a `Network`.

use ndarray::{s, ArrayD, Axis};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::init::BiasInitializer;
use seqnet_core::layers::*;
use seqnet_core::BuildKernel;
use seqnet_core::{
    ActShape, Activation, Error, ForwardCtx, Layer, LayerDef, LayerGraph, LayerKernel, Mode,
    Network, PaddingDirection, SeqLengths,
};

fn random(shape: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    ArrayD::from_shape_simple_fn(shape, || rng.random_range(-1.0..1.0))
}

fn forward(k: &mut dyn LayerKernel, x: &Activation, stateful: bool) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(0);
    k.forward(
        &[x],
        &mut ForwardCtx {
            mode: Mode::Inference,
            stateful,
            rng: &mut rng,
            target: None,
        },
    )
    .unwrap()
    .remove(0)
    .data
    .to_owned()
}

fn close(a: &ArrayD<f32>, b: &ArrayD<f32>) -> bool {
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-5)
}

/// Lengths `[7, 4]`, right-padded: the whole batch, and the same split into steps
/// `0..3` and `3..7` (the second observation ends inside the second chunk).
fn chunks() -> (Activation, Activation, Activation) {
    let data = random(&[7, 2, 3], 1);
    let whole = Activation::sequence(
        data.clone(),
        Some(SeqLengths::new(vec![7, 4], 7, PaddingDirection::Right).unwrap()),
    )
    .unwrap();
    let first =
        Activation::sequence(data.slice(s![0..3, .., ..]).to_owned().into_dyn(), None).unwrap();
    let second = Activation::sequence(
        data.slice(s![3..7, .., ..]).to_owned().into_dyn(),
        Some(SeqLengths::new(vec![4, 1], 4, PaddingDirection::Right).unwrap()),
    )
    .unwrap();
    (whole, first, second)
}

#[test]
fn stateful_chunks_continue_the_sequence_and_reset_forgets() {
    let (whole, first, second) = chunks();
    let layers: Vec<Layer> = vec![
        Lstm::new(4).name("l").into(),
        Gru::new(4).name("g").into(),
        Lstm::new(4)
            .hidden_state(vec![0.5; 4])
            .cell_state(vec![-0.5; 4])
            .name("s")
            .into(),
    ];
    for layer in layers {
        let mut k = layer
            .def()
            .build_kernel(&[whole.shape()], &mut StdRng::seed_from_u64(2))
            .unwrap();
        let y = forward(k.as_mut(), &whole, false);
        let y1 = forward(k.as_mut(), &first, true);
        let y2 = forward(k.as_mut(), &second, true);
        let joined = ndarray::concatenate(Axis(0), &[y1.view(), y2.view()]).unwrap();
        assert!(
            close(&joined, &y),
            "{}: chunks differ from the whole sequence",
            layer.tag()
        );
        // A non-stateful forward starts from the initial state and keeps nothing.
        let again = forward(k.as_mut(), &first, false);
        assert!(close(&again, &y1), "{}", layer.tag());
        // The kept state is used by the next stateful forward until reset.
        let y2b = forward(k.as_mut(), &second, true);
        assert!(
            !close(&y2b, &y2),
            "{}: the kept state moved on",
            layer.tag()
        );
        k.reset_state();
        let fresh = forward(k.as_mut(), &first, true);
        assert!(
            close(&fresh, &y1),
            "{}: reset_state did not forget",
            layer.tag()
        );
        // A different batch size starts from the initial state.
        let one = Activation::sequence(
            first.data.slice(s![.., 0..1, ..]).to_owned().into_dyn(),
            None,
        )
        .unwrap();
        let lone = forward(k.as_mut(), &one, true);
        assert!(
            close(&lone, &y1.slice(s![.., 0..1, ..]).to_owned().into_dyn()),
            "{}",
            layer.tag()
        );
    }
}

#[test]
fn stateful_final_state_is_at_the_last_real_step() {
    let (whole, first, second) = chunks();
    let mut k = Lstm::new(4)
        .name("l")
        .kernel(&[whole.shape()], &mut StdRng::seed_from_u64(3))
        .unwrap();
    let y = forward(&mut k, &whole, false);
    forward(&mut k, &first, true);
    forward(&mut k, &second, true);
    let kept = k.kept_state().expect("kept");
    assert_eq!(kept.hidden.row(0), y.slice(s![6, 0, ..]));
    assert_eq!(kept.hidden.row(1), y.slice(s![3, 1, ..]));
    assert_eq!(k.final_state().unwrap(), kept);
}

#[test]
fn stateful_backward_is_truncated_at_the_chunk() {
    let (whole, first, second) = chunks();
    let mut k = Gru::new(3)
        .name("g")
        .kernel(&[whole.shape()], &mut StdRng::seed_from_u64(4))
        .unwrap();
    // The whole sequence with gradient only on the second chunk's steps.
    let y = forward(&mut k, &whole, false);
    let mut g = random(y.shape(), 5);
    g.slice_mut(s![0..3, .., ..]).fill(0.0);
    let dx = k
        .backward(vec![Some(g.clone())])
        .unwrap()
        .remove(0)
        .unwrap();
    forward(&mut k, &first, true);
    forward(&mut k, &second, true);
    let dx2 = k
        .backward(vec![Some(g.slice(s![3..7, .., ..]).to_owned().into_dyn())])
        .unwrap()
        .remove(0)
        .unwrap();
    assert!(close(
        &dx2,
        &dx.slice(s![3..7, .., ..]).to_owned().into_dyn()
    ));
}

#[test]
fn shape_inference_takes_feature_sequences_only() {
    let seq = ActShape::sequence(3);
    assert_eq!(
        Lstm::new(5).infer(&[seq]).unwrap(),
        vec![ActShape::sequence(5)]
    );
    assert_eq!(
        BiLstm::new(5).infer(&[seq]).unwrap(),
        vec![ActShape::sequence(10)]
    );
    assert_eq!(
        Gru::new(5)
            .output_mode(OutputMode::Last)
            .infer(&[seq])
            .unwrap(),
        vec![ActShape::features(5)]
    );
    for bad in [
        ActShape::features(3),
        ActShape::image_sequence(4, 4, 1),
        ActShape::images(4, 4, 1),
    ] {
        let layers: Vec<Layer> = vec![
            Lstm::new(5).into(),
            BiLstm::new(5).into(),
            Gru::new(5).into(),
        ];
        for l in layers {
            let e = l.def().infer(&[bad]).unwrap_err();
            assert!(e.message.contains("C×B×T"), "{}: {}", l.tag(), e.message);
        }
    }
    assert!(Lstm::new(0)
        .infer(&[seq])
        .unwrap_err()
        .message
        .contains("NumHiddenUnits"));
    assert!(Lstm::new(4)
        .hidden_state(vec![0.0; 6])
        .infer(&[seq])
        .unwrap_err()
        .message
        .contains("HiddenState"));
    assert!(BiLstm::new(4)
        .cell_state(vec![0.0; 4])
        .infer(&[seq])
        .unwrap_err()
        .message
        .contains("CellState"));
    assert!(Gru::new(4)
        .bias_initializer(BiasInitializer::UnitForgetGate)
        .infer(&[seq])
        .unwrap_err()
        .message
        .contains("BiasInitializer"));
    let err = Gru::new(4)
        .bias_initializer(BiasInitializer::UnitForgetGate)
        .name("g")
        .build_kernel(&[seq], &mut StdRng::seed_from_u64(0))
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            Error::LayerConfig {
                setting: "BiasInitializer",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_graph_check_names_the_recurrent_layer_fed_features() {
    let graph = LayerGraph::from_layers([
        SequenceInput::new(3).into(),
        Lstm::new(4).output_mode(OutputMode::Last).name("l1").into(),
        Lstm::new(4).name("l2").into(),
    ])
    .unwrap();
    let err = graph.check().unwrap_err();
    assert!(
        err.graph_problems().iter().any(|p| p.layer() == Some("l2")),
        "{err}"
    );
}

#[test]
fn learnable_shapes_and_initializers() {
    let seq = [ActShape::sequence(3)];
    let mut rng = StdRng::seed_from_u64(0);
    let k = BiLstm::new(2).kernel(&seq, &mut rng).unwrap();
    let shapes: Vec<_> = k
        .learnables()
        .iter()
        .map(|p| (p.name, p.value.shape().to_vec()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("InputWeights", vec![16, 3]),
            ("RecurrentWeights", vec![16, 2]),
            ("Bias", vec![16])
        ]
    );
    let declared: Vec<_> = BiLstm::new(2)
        .learnables(&seq)
        .into_iter()
        .map(|l| (l.name, l.shape))
        .collect();
    assert_eq!(declared, shapes);
    // Unit forget gate in each direction.
    let bias: Vec<f32> = k.learnables()[2].value.iter().copied().collect();
    assert_eq!(
        bias,
        vec![0., 0., 1., 1., 0., 0., 0., 0., 0., 0., 1., 1., 0., 0., 0., 0.]
    );
    let g = Gru::new(2)
        .reset_gate_mode(ResetGateMode::RecurrentBiasAfterMultiplication)
        .kernel(&seq, &mut rng)
        .unwrap();
    let names: Vec<_> = g
        .learnables()
        .iter()
        .map(|p| (p.name, p.value.shape().to_vec(), p.l2_factor))
        .collect();
    assert_eq!(
        names,
        vec![
            ("InputWeights", vec![6, 3], 1.0),
            ("RecurrentWeights", vec![6, 2], 1.0),
            ("Bias", vec![6], 0.0),
            ("RecurrentBias", vec![6], 0.0)
        ]
    );
}

#[test]
fn per_observation_initial_state_needs_its_batch_size() {
    let x = Activation::sequence(random(&[3, 2, 3], 6), None).unwrap();
    let mut k = Lstm::new(2)
        .hidden_state(vec![0.1, 0.2, 0.3, 0.4])
        .name("l")
        .build_kernel(&[x.shape()], &mut StdRng::seed_from_u64(0))
        .unwrap();
    let y = forward(k.as_mut(), &x, false);
    assert_eq!(y.shape(), &[3, 2, 2]);
    let x3 = Activation::sequence(random(&[3, 3, 3], 6), None).unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    let err = k
        .forward(
            &[&x3],
            &mut ForwardCtx {
                mode: Mode::Inference,
                stateful: false,
                rng: &mut rng,
                target: None,
            },
        )
        .unwrap_err();
    assert!(
        matches!(&err, Error::LayerConfig { layer, setting: "HiddenState", .. } if layer == "l"),
        "{err}"
    );
    let wrong = Activation::sequence(random(&[3, 2, 4], 6), None).unwrap();
    let err = k
        .forward(
            &[&wrong],
            &mut ForwardCtx {
                mode: Mode::Inference,
                stateful: false,
                rng: &mut rng,
                target: None,
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("'l'"), "{err}");
}

#[test]
fn serde_uses_matlab_names_and_defaults() {
    let l: Layer =
        serde_json::from_str(r#"{"type": "lstm", "name": "l", "numHiddenUnits": 10}"#).unwrap();
    assert_eq!(l, Layer::from(Lstm::new(10).name("l")));
    let b: Layer = serde_json::from_str(r#"{"type": "bilstm", "numHiddenUnits": 3, "outputMode": "last", "gateActivation": "hard-sigmoid", "stateActivation": "softsign", "hiddenState": [1, 2, 3, 4, 5, 6]}"#).unwrap();
    assert_eq!(
        b,
        Layer::from(
            BiLstm::new(3)
                .output_mode(OutputMode::Last)
                .gate_activation(GateActivation::HardSigmoid)
                .state_activation(StateActivation::Softsign)
                .hidden_state(vec![1., 2., 3., 4., 5., 6.])
        )
    );
    let g = Layer::from(
        Gru::new(7)
            .output_mode(OutputMode::Last)
            .bias_l2_factor(0.5)
            .name("g"),
    );
    let json = serde_json::to_string(&g).unwrap();
    assert!(
        json.contains(r#""type":"gru""#)
            && json.contains(r#""outputMode":"last""#)
            && json.contains(r#""biasL2Factor":0.5"#),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), g);
    assert_eq!(Layer::from(Lstm::new(1)).def().type_name(), "LSTM");
    assert_eq!(Layer::from(BiLstm::new(1)).def().type_name(), "BiLSTM");
    assert_eq!(Layer::from(Gru::new(1)).def().type_name(), "GRU");
}

#[test]
fn a_network_of_recurrent_layers_trains_forward_and_backward() {
    let graph = LayerGraph::from_layers([
        SequenceInput::new(3).into(),
        BiLstm::new(4).into(),
        Gru::new(5).into(),
        Lstm::new(4).output_mode(OutputMode::Last).into(),
        FullyConnected::new(2).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap();
    let mut net = Network::new(&graph, 1).unwrap();
    let lengths = SeqLengths::new(vec![5, 3], 5, PaddingDirection::Left).unwrap();
    let x = Activation::sequence(random(&[5, 2, 3], 7), Some(lengths)).unwrap();
    let t = Activation::features(ArrayD::from_shape_vec(vec![2, 2], vec![1., 0., 0., 1.]).unwrap())
        .unwrap();
    let y = net
        .forward(std::slice::from_ref(&x), Some(&[t]), Mode::Training, false)
        .unwrap();
    assert_eq!(y[0].data.shape(), &[2, 2]);
    net.backward().unwrap();
    for (layer, p) in net.learnables() {
        assert!(p.grad.iter().all(|v| v.is_finite()), "{layer}/{}", p.name);
        assert_eq!(p.grad.shape(), p.value.shape());
    }
    let dx = net.input_gradients()[0].as_ref().unwrap();
    assert!(
        dx.slice(s![0..2, 1, ..]).iter().all(|&v| v == 0.0),
        "left padding gets no gradient"
    );
    assert!(dx.iter().any(|&v| v != 0.0));
    // Stateful prediction keeps moving; reset brings the first answer back.
    let a = net
        .forward(std::slice::from_ref(&x), None, Mode::Inference, true)
        .unwrap()[0]
        .data
        .to_owned();
    let b = net
        .forward(std::slice::from_ref(&x), None, Mode::Inference, true)
        .unwrap()[0]
        .data
        .to_owned();
    assert!(!close(&a, &b));
    net.reset_state();
    let c = net.forward(&[x], None, Mode::Inference, true).unwrap()[0]
        .data
        .to_owned();
    assert!(close(&a, &c));
    let summary = graph.summary().unwrap();
    let row = summary.rows.iter().find(|r| r.name == "bilstm").unwrap();
    assert_eq!(row.activations[0].1, "8×B×T");
}

#[test]
fn malformed_activations_are_errors_not_panics() {
    use std::sync::Arc;
    let x = Activation::sequence(random(&[3, 2, 3], 8), None).unwrap();
    let layers: Vec<Layer> = vec![
        Lstm::new(2).name("l").into(),
        BiLstm::new(2).name("b").into(),
        Gru::new(2).name("g").into(),
    ];
    for layer in layers {
        let mut k = layer
            .def()
            .build_kernel(&[x.shape()], &mut StdRng::seed_from_u64(0))
            .unwrap();
        let bad_lengths = Activation {
            lengths: Some(Arc::new(SeqLengths {
                lengths: vec![3, 9],
                time: 3,
                direction: PaddingDirection::Right,
            })),
            ..x.clone()
        };
        let wrong_batch = Activation {
            lengths: Some(Arc::new(SeqLengths::full(5, 3))),
            ..x.clone()
        };
        let flat = Activation {
            data: random(&[3, 6], 9).into_shared(),
            ..x.clone()
        };
        let features = Activation::features(random(&[2, 3], 9)).unwrap();
        for bad in [bad_lengths, wrong_batch, flat, features] {
            let mut rng = StdRng::seed_from_u64(0);
            let err = k
                .forward(
                    &[&bad],
                    &mut ForwardCtx {
                        mode: Mode::Training,
                        stateful: false,
                        rng: &mut rng,
                        target: None,
                    },
                )
                .unwrap_err();
            assert!(
                err.to_string().contains(&format!("'{}'", layer.name())),
                "{err}"
            );
        }
        // Backward before any forward, and with a gradient of the wrong shape.
        assert!(k.backward(vec![None]).is_err());
        forward(k.as_mut(), &x, false);
        assert!(k.backward(vec![Some(random(&[2, 2], 1))]).is_err());
        assert!(k.backward(vec![None]).is_ok());
        // Learnables set to the wrong shape.
        k.learnables_mut()[1].value = (random(&[3, 3], 1)).into();
        let mut rng = StdRng::seed_from_u64(0);
        let err = k
            .forward(
                &[&x],
                &mut ForwardCtx {
                    mode: Mode::Training,
                    stateful: false,
                    rng: &mut rng,
                    target: None,
                },
            )
            .unwrap_err();
        assert!(matches!(err, Error::Learnable { .. }), "{err}");
    }
}

/// Batches large enough for the recurrent passes to share their rows between
/// two threads (GRU and LSTM, 24 observations of lengths 1–9, padded on
/// either side) give each sequence what it gives alone, where one thread runs
/// the pass (within 1e-5: the GRU's input projection, one `gemm` call over
/// all steps, may sum in another order for another number of rows).
#[test]
fn rows_shared_between_threads_give_each_sequence_what_it_gives_alone() {
    let (t, b, c, h) = (9, 24, 5, 64);
    let lengths: Vec<usize> = (0..b).map(|i| 1 + (i * 5) % t).collect();
    let data = random(&[t, b, c], 21);
    let mut rng = StdRng::seed_from_u64(4);
    let kernels: Vec<Box<dyn LayerKernel>> = vec![
        Box::new(
            Gru::new(h)
                .output_mode(OutputMode::Last)
                .kernel(&[ActShape::sequence(c)], &mut rng)
                .unwrap(),
        ),
        Box::new(
            Lstm::new(h)
                .output_mode(OutputMode::Last)
                .kernel(&[ActShape::sequence(c)], &mut rng)
                .unwrap(),
        ),
    ];
    for mut k in kernels {
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            let whole = Activation::sequence(
                data.clone(),
                Some(SeqLengths::new(lengths.clone(), t, direction).unwrap()),
            )
            .unwrap();
            let batch = forward(k.as_mut(), &whole, false);
            for (bi, &len) in lengths.iter().enumerate() {
                let steps = match direction {
                    PaddingDirection::Right => 0..len,
                    PaddingDirection::Left => t - len..t,
                };
                let alone = data.slice(s![steps, bi..bi + 1, ..]).to_owned().into_dyn();
                let alone = forward(
                    k.as_mut(),
                    &Activation::sequence(alone, None).unwrap(),
                    false,
                );
                let (got, want) = (
                    batch.index_axis(Axis(0), bi).to_owned().into_dyn(),
                    alone.index_axis(Axis(0), 0).to_owned().into_dyn(),
                );
                assert!(close(&got, &want), "observation {bi}, {direction:?}");
            }
        }
    }
}

#[test]
fn gru_reset_gate_mode_defaults_new_layers_to_matlab_and_old_files_to_pytorch() {
    assert_eq!(
        Gru::new(3).reset_gate_mode,
        ResetGateMode::AfterMultiplication
    );
    // A file written before the option existed had a RecurrentBias: it must
    // still load, as the layer it was.
    let old = r#"{"type":"gru","name":"g","numHiddenUnits":3}"#;
    let l: Layer = serde_json::from_str(old).unwrap();
    let g = l.downcast_ref::<Gru>().unwrap();
    assert_eq!(
        g.reset_gate_mode,
        ResetGateMode::RecurrentBiasAfterMultiplication
    );
    let names = |l: &dyn LayerDef| -> Vec<&'static str> {
        l.learnables(&[ActShape::sequence(2)])
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(
        names(g),
        ["InputWeights", "RecurrentWeights", "Bias", "RecurrentBias"]
    );
    for mode in [
        ResetGateMode::AfterMultiplication,
        ResetGateMode::BeforeMultiplication,
    ] {
        let l = Layer::from(Gru::new(3).reset_gate_mode(mode).name("g"));
        let json = serde_json::to_string(&l).unwrap();
        assert!(
            json.contains(&format!(r#""resetGateMode":"{}""#, mode.label())),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), l);
        assert_eq!(names(l.def()), ["InputWeights", "RecurrentWeights", "Bias"]);
        assert!(l.def().torch_layout().is_none(), "{mode:?}");
    }
    let bi = Layer::from(BiGru::new(2).name("b"));
    let json = serde_json::to_string(&bi).unwrap();
    assert!(json.contains(r#""type":"bigru""#), "{json}");
    assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), bi);
    assert_eq!(bi.def().type_name(), "BiGRU");
}

/// One step of a one-unit GRU on one channel, in f64 from the formulas of
/// MATLAB's documentation, against the layer in each mode.
#[test]
fn gru_one_step_matches_the_formula_of_each_reset_gate_mode() {
    let (w, r, b, rb) = (
        [0.3f32, -0.7, 1.1],
        [0.9f32, 0.4, -1.3],
        [0.2f32, -0.1, 0.5],
        [0.6f32, -0.4, 0.8],
    );
    let (x0, h0) = (0.8f32, -0.6f32);
    let sig = |v: f64| 1.0 / (1.0 + (-v).exp());
    let f = |i: usize, a: &[f32; 3]| a[i] as f64;
    for mode in [
        ResetGateMode::AfterMultiplication,
        ResetGateMode::BeforeMultiplication,
        ResetGateMode::RecurrentBiasAfterMultiplication,
    ] {
        let with_rb = mode == ResetGateMode::RecurrentBiasAfterMultiplication;
        let rbv = |i| if with_rb { f(i, &rb) } else { 0.0 };
        let (x, h) = (x0 as f64, h0 as f64);
        let rg = sig(f(0, &w) * x + f(0, &b) + f(0, &r) * h + rbv(0));
        let zg = sig(f(1, &w) * x + f(1, &b) + f(1, &r) * h + rbv(1));
        let n = match mode {
            ResetGateMode::BeforeMultiplication => {
                (f(2, &w) * x + f(2, &b) + f(2, &r) * (rg * h)).tanh()
            }
            _ => (f(2, &w) * x + f(2, &b) + rg * (f(2, &r) * h + rbv(2))).tanh(),
        };
        let want = (1.0 - zg) * n + zg * h;

        let mut k = Gru::new(1)
            .reset_gate_mode(mode)
            .hidden_state(vec![h0])
            .name("g")
            .kernel(&[ActShape::sequence(1)], &mut StdRng::seed_from_u64(0))
            .unwrap();
        for p in k.learnables_mut() {
            let v: &[f32] = match p.name {
                "InputWeights" => &w,
                "RecurrentWeights" => &r,
                "Bias" => &b,
                "RecurrentBias" => &rb,
                other => panic!("unexpected learnable {other}"),
            };
            p.value = ArrayD::from_shape_vec(p.value.shape().to_vec(), v.to_vec())
                .unwrap()
                .into();
        }
        let x = Activation::sequence(
            ArrayD::from_shape_vec(vec![1, 1, 1], vec![x0]).unwrap(),
            None,
        )
        .unwrap();
        let y = forward(&mut k, &x, false);
        assert!(
            (y[[0, 0, 0]] as f64 - want).abs() < 1e-6,
            "{mode:?}: {} vs {want}",
            y[[0, 0, 0]]
        );
    }
}

#[test]
fn lstm_projection_shapes_json_and_errors() {
    let seq = ActShape::sequence(3);
    let l = BiLstm::new(5).projection_size(2).name("b");
    assert_eq!(l.infer(&[seq]).unwrap(), vec![ActShape::sequence(4)]);
    let shapes: Vec<_> = l
        .learnables(&[seq])
        .into_iter()
        .map(|s| (s.name, s.shape))
        .collect();
    assert_eq!(
        shapes,
        vec![
            ("InputWeights", vec![40, 3]),
            ("RecurrentWeights", vec![40, 2]),
            ("Bias", vec![40]),
            ("ProjectorWeights", vec![4, 5]),
        ]
    );
    let layer = Layer::from(l);
    let json = serde_json::to_string(&layer).unwrap();
    assert!(json.contains(r#""projectionSize":2"#), "{json}");
    assert_eq!(serde_json::from_str::<Layer>(&json).unwrap(), layer);
    // Unprojected layers write no field, and files without it load unprojected.
    let plain = serde_json::to_string(&Layer::from(Lstm::new(5).name("l"))).unwrap();
    assert!(!plain.contains("projection"), "{plain}");
    for p in [0, 5, 9] {
        let e = Lstm::new(5)
            .projection_size(p)
            .name("l")
            .kernel(&[seq], &mut StdRng::seed_from_u64(0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'l'") && e.contains("ProjectionSize"), "{e}");
    }
    // The hidden state is P wide, the cell state H.
    assert!(Lstm::new(5)
        .projection_size(2)
        .hidden_state(vec![0.0; 2])
        .cell_state(vec![0.0; 5])
        .kernel(&[seq], &mut StdRng::seed_from_u64(0))
        .is_ok());
}

/// A GRU large enough for its passes to share the observations between two
/// threads (`B ≥ 8`, `B·H·3H ≥ 2¹⁸`) gives each padded observation what it
/// gives alone (one thread): outputs, input gradients, and learnable
/// gradients summing to the batch's.
#[test]
fn a_gru_sharing_rows_between_threads_gives_each_observation_its_lone_result() {
    let (t, b, c, h) = (4, 9, 3, 128);
    let lens = vec![4, 1, 3, 4, 2, 0, 4, 3, 1];
    let train = |k: &mut dyn LayerKernel, x: &Activation, g: ArrayD<f32>| {
        let mut rng = StdRng::seed_from_u64(0);
        let y = k
            .forward(
                &[x],
                &mut ForwardCtx {
                    mode: Mode::Training,
                    stateful: false,
                    rng: &mut rng,
                    target: None,
                },
            )
            .unwrap()
            .remove(0)
            .data
            .to_owned();
        let dx = k.backward(vec![Some(g)]).unwrap().remove(0).unwrap();
        let grads: Vec<ArrayD<f32>> = k.learnables().iter().map(|p| p.grad.clone()).collect();
        (y, dx, grads)
    };
    for mode in [
        ResetGateMode::AfterMultiplication,
        ResetGateMode::RecurrentBiasAfterMultiplication,
    ] {
        let layer = Gru::new(h)
            .reset_gate_mode(mode)
            .bias_initializer(BiasInitializer::NarrowNormal)
            .name("g");
        let seq = SeqLengths::new(lens.clone(), t, PaddingDirection::Right).unwrap();
        let x = Activation::sequence(random(&[t, b, c], 40), Some(seq.clone())).unwrap();
        let g = random(&[t, b, h], 41);
        let build = || {
            layer
                .kernel(&[x.shape()], &mut StdRng::seed_from_u64(42))
                .unwrap()
        };
        let (y, dx, grads) = train(&mut build(), &x, g.clone());
        let mut sum: Vec<ArrayD<f32>> = grads.iter().map(|a| ArrayD::zeros(a.raw_dim())).collect();
        for (bi, &len) in lens.iter().enumerate() {
            let lone_x = x
                .data
                .slice(s![..len, bi..bi + 1, ..])
                .to_owned()
                .into_dyn();
            let lone_g = g.slice(s![..len, bi..bi + 1, ..]).to_owned().into_dyn();
            let (y1, dx1, g1) = train(
                &mut build(),
                &Activation::sequence(lone_x, None).unwrap(),
                lone_g,
            );
            assert!(close(
                &y.slice(s![..len, bi..bi + 1, ..]).to_owned().into_dyn(),
                &y1
            ));
            assert!(
                close(
                    &dx.slice(s![..len, bi..bi + 1, ..]).to_owned().into_dyn(),
                    &dx1
                ),
                "{mode:?}: input gradient of observation {bi}"
            );
            for (s, a) in sum.iter_mut().zip(&g1) {
                *s += a;
            }
        }
        for (a, s) in grads.iter().zip(&sum) {
            let err = a
                .iter()
                .zip(s)
                .map(|(p, q)| (p - q).abs())
                .fold(0.0f32, f32::max);
            assert!(err <= 1e-4, "{mode:?}: learnable gradient off by {err}");
        }
    }
}

/// The fused GRU pass keeps no gates in inference: a backward after an
/// inference forward gives what it gives after a training forward (in every
/// mode, one and two directions, padded batch, a batch large enough for the
/// input to be folded into the step product), and weights changed between
/// forwards through `learnables_mut` are the ones the next forward uses.
#[test]
fn gru_backward_after_inference_forward_and_changed_weights() {
    let (t, b, c, h) = (5, 9, 4, 6);
    let lengths =
        SeqLengths::new(vec![5, 3, 5, 1, 4, 5, 2, 5, 3], 5, PaddingDirection::Right).unwrap();
    let x = Activation::sequence(random(&[t, b, c], 8), Some(lengths)).unwrap();
    let g = random(&[t, b, 2 * h], 9);
    let run = |k: &mut dyn LayerKernel, mode: Mode| {
        let mut rng = StdRng::seed_from_u64(0);
        let mut ctx = ForwardCtx {
            mode,
            stateful: false,
            rng: &mut rng,
            target: None,
        };
        let y = k
            .forward(&[&x], &mut ctx)
            .unwrap()
            .remove(0)
            .data
            .to_owned();
        let dx = k
            .backward(vec![Some(g.clone())])
            .unwrap()
            .remove(0)
            .unwrap();
        let grads: Vec<ArrayD<f32>> = k.learnables().iter().map(|p| p.grad.clone()).collect();
        (y, dx, grads)
    };
    for mode in [
        ResetGateMode::AfterMultiplication,
        ResetGateMode::BeforeMultiplication,
        ResetGateMode::RecurrentBiasAfterMultiplication,
    ] {
        let def = BiGru::new(h).reset_gate_mode(mode).name("g");
        let kernel = || {
            def.kernel(&[x.shape()], &mut StdRng::seed_from_u64(1))
                .unwrap()
        };
        let (mut k1, mut k2) = (kernel(), kernel());
        let (y1, dx1, g1) = run(&mut k1, Mode::Training);
        let (y2, dx2, g2) = run(&mut k2, Mode::Inference);
        assert!(close(&y1, &y2), "{mode:?}: outputs");
        assert!(close(&dx1, &dx2), "{mode:?}: input gradients");
        for (a, b) in g1.iter().zip(&g2) {
            assert!(close(a, b), "{mode:?}: learnable gradients");
        }
        // Halved recurrent weights: the next forward must see them (a
        // fresh kernel with the same weights gives the same output).
        for p in k2.learnables_mut() {
            if p.name == "RecurrentWeights" {
                p.value = p.value.mapv(|v| v * 0.5).into();
            }
        }
        let (y3, _, _) = run(&mut k2, Mode::Inference);
        let mut k3 = kernel();
        for p in k3.learnables_mut() {
            if p.name == "RecurrentWeights" {
                p.value = p.value.mapv(|v| v * 0.5).into();
            }
        }
        let (y4, _, _) = run(&mut k3, Mode::Training);
        assert!(close(&y3, &y4), "{mode:?}: changed weights");
        assert!(!close(&y3, &y2), "{mode:?}: the weights' change shows");
    }
}
