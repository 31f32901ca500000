//! The lean streaming path of `predict_and_update_state` (`Network::forward_step`)
//! gives what the batched path gives: same outputs, same kept state.

use ndarray::{Array2, ArrayD, IxDyn};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet_core::layers::*;
use seqnet_core::{Activation, Layer, LayerGraph, Mode, Network};
use seqnet_data::Sequence;
use seqnet_train::predict_and_update_state;

fn network(mode: OutputMode, norm: Normalization) -> Network {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(5).normalization(norm).name("in").into(),
        Lstm::new(7).output_mode(mode).name("lstm").into(),
        FullyConnected::new(4).name("fc").into(),
        Relu::new().name("relu").into(),
        FullyConnected::new(3).name("fc2").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ];
    Network::new(&LayerGraph::from_layers(layers).unwrap(), 5).unwrap()
}

fn close(a: &Array2<f32>, b: &Array2<f32>) {
    assert_eq!(a.shape(), b.shape());
    for (x, y) in a.iter().zip(b) {
        assert!((x - y).abs() < 1e-5, "{x} vs {y}");
    }
}

#[test]
fn lean_streaming_matches_the_batched_forward() {
    let mut rng = StdRng::seed_from_u64(2);
    for mode in [OutputMode::Sequence, OutputMode::Last] {
        for norm in [Normalization::None, Normalization::Zscore] {
            let mut lean = network(mode, norm);
            if norm == Normalization::Zscore {
                lean.set_state("in", "Mean", ArrayD::from_elem(IxDyn(&[5]), 0.3))
                    .unwrap();
            }
            assert!(lean.can_step());
            let mut full = network(mode, norm);
            if norm == Normalization::Zscore {
                full.set_state("in", "Mean", ArrayD::from_elem(IxDyn(&[5]), 0.3))
                    .unwrap();
            }
            for chunk in [3usize, 1, 1, 4, 1] {
                let x = Array2::from_shape_simple_fn((chunk, 5), || rng.random_range(-1.0f32..1.0));
                let got =
                    predict_and_update_state(&mut lean, &[Sequence::Features(x.clone())]).unwrap();
                // The batched path: a [T, 1, C] sequence, stateful.
                let data = x
                    .clone()
                    .into_shape_with_order((chunk, 1, 5))
                    .unwrap()
                    .into_dyn();
                let y = full
                    .forward(
                        &[Activation::sequence(data, None).unwrap()],
                        None,
                        Mode::Inference,
                        true,
                    )
                    .unwrap();
                let y = &y[0].data;
                let k = *y.shape().last().unwrap();
                let want =
                    Array2::from_shape_vec((y.len() / k, k), y.iter().copied().collect()).unwrap();
                close(&got[0], &want);
            }
        }
    }
}

#[test]
fn networks_without_a_streaming_step_take_the_batched_path() {
    let layers: Vec<Layer> = vec![
        SequenceInput::new(2).name("in").into(),
        BiLstm::new(3).name("bilstm").into(),
        FullyConnected::new(2).name("fc").into(),
        RegressionOutput::new().name("out").into(),
    ];
    let mut net = Network::new(&LayerGraph::from_layers(layers).unwrap(), 1).unwrap();
    assert!(!net.can_step());
    assert!(net.forward_step(&[0.0, 1.0]).is_err());
    let x = Array2::from_shape_fn((3, 2), |(i, j)| (i + j) as f32 * 0.1);
    let y = predict_and_update_state(&mut net, &[Sequence::Features(x)]).unwrap();
    assert_eq!(y[0].shape(), &[3, 2]);
}

#[test]
fn new_weights_reach_the_streaming_step() {
    let mut lean = network(OutputMode::Sequence, Normalization::None);
    let mut full = network(OutputMode::Sequence, Normalization::None);
    let x = Array2::from_shape_fn((1, 5), |(_, j)| j as f32 * 0.2 - 0.4);
    let run = |net: &mut Network, batched: bool| -> Array2<f32> {
        if batched {
            let data = x
                .clone()
                .into_shape_with_order((1, 1, 5))
                .unwrap()
                .into_dyn();
            let y = net
                .forward(
                    &[Activation::sequence(data, None).unwrap()],
                    None,
                    Mode::Inference,
                    true,
                )
                .unwrap();
            Array2::from_shape_vec((1, 3), y[0].data.iter().copied().collect()).unwrap()
        } else {
            predict_and_update_state(net, &[Sequence::Features(x.clone())])
                .unwrap()
                .remove(0)
        }
    };
    close(&run(&mut lean, false), &run(&mut full, true));
    for net in [&mut lean, &mut full] {
        let w = ArrayD::from_shape_fn(IxDyn(&[28, 7]), |i| {
            ((i[0] * 7 + i[1]) % 5) as f32 * 0.1 - 0.2
        });
        net.set_learnable("lstm", "RecurrentWeights", w).unwrap();
    }
    close(&run(&mut lean, false), &run(&mut full, true));
}

/// Streaming a sequence in chunks through a projected LSTM or a GRU (no lean
/// step: the stateful batched path) gives what the whole sequence gives in
/// one forward.
#[test]
fn projected_lstm_and_gru_stream_as_the_whole_sequence() {
    let recurrent: Vec<Layer> = vec![
        Lstm::new(6).projection_size(3).name("rnn").into(),
        Gru::new(5).name("rnn").into(),
        Gru::new(5)
            .reset_gate_mode(ResetGateMode::BeforeMultiplication)
            .name("rnn")
            .into(),
    ];
    let mut rng = StdRng::seed_from_u64(9);
    for rnn in recurrent {
        let layers: Vec<Layer> = vec![
            SequenceInput::new(4).name("in").into(),
            rnn,
            FullyConnected::new(2).name("fc").into(),
            RegressionOutput::new().name("out").into(),
        ];
        let graph = LayerGraph::from_layers(layers).unwrap();
        let mut streamed = Network::new(&graph, 3).unwrap();
        let mut whole = Network::new(&graph, 3).unwrap();
        assert!(!streamed.can_step());
        let x = Array2::from_shape_simple_fn((7, 4), || rng.random_range(-1.0f32..1.0));
        let mut got = Vec::new();
        for (a, b) in [(0, 3), (3, 4), (4, 7)] {
            let chunk = x.slice(ndarray::s![a..b, ..]).to_owned();
            let y = predict_and_update_state(&mut streamed, &[Sequence::Features(chunk)]).unwrap();
            got.extend(y[0].iter().copied());
        }
        let data = x
            .clone()
            .into_shape_with_order((7, 1, 4))
            .unwrap()
            .into_dyn();
        let y = whole
            .forward(
                &[Activation::sequence(data, None).unwrap()],
                None,
                Mode::Inference,
                false,
            )
            .unwrap();
        let want = Array2::from_shape_vec((7, 2), y[0].data.iter().copied().collect()).unwrap();
        close(&Array2::from_shape_vec((7, 2), got).unwrap(), &want);
    }
}
