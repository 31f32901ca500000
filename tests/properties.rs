//! Properties over random networks and data (proptest):
//! - a graph that passes the checks never fails at run time on inputs of its
//!   declared sizes (forward in both modes, backward);
//! - graph JSON and model files round-trip exactly;
//! - predictions do not depend on the mini-batch size or the padding direction.

use ndarray::Array2;
use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet::data::{Datastore, InMemoryDatastore, Observation, Sequence};
use seqnet::prelude::*;
use seqnet::train::{predict, Model, PredictOptions};
use std::sync::Arc;

/// A layer to put in a random chain (sizes kept small).
fn any_layer() -> impl Strategy<Value = Layer> {
    let mode = prop_oneof![Just(OutputMode::Sequence), Just(OutputMode::Last)];
    prop_oneof![
        (1usize..6, mode.clone()).prop_map(|(h, m)| Lstm::new(h).output_mode(m).into()),
        (1usize..6, mode.clone()).prop_map(|(h, m)| Gru::new(h).output_mode(m).into()),
        (1usize..4, mode).prop_map(|(h, m)| BiLstm::new(h).output_mode(m).into()),
        (1usize..6).prop_map(|n| FullyConnected::new(n).into()),
        Just(Relu::new().into()),
        Just(Tanh::new().into()),
        Just(Sigmoid::new().into()),
        Just(LeakyRelu::new(0.1).into()),
        (0.0f32..0.8).prop_map(|p| Dropout::new(p).into()),
        Just(BatchNormalization::new().into()),
        Just(Softmax::new().into()),
        Just(Flatten::new().into()),
        // 1-D layers with settings that give every sequence at least one step.
        (1usize..5, 1usize..5, 1usize..3, 1usize..3, any::<bool>()).prop_map(
            |(k, n, s, d, causal)| {
                let padding = if causal {
                    Padding1d::Causal
                } else {
                    Padding1d::Same
                };
                Convolution1d::new(k, n)
                    .stride(s)
                    .dilation_factor(d)
                    .padding(padding)
                    .into()
            }
        ),
        (1usize..4, 1usize..3, any::<bool>()).prop_map(|(k, s, max)| if max {
            MaxPooling1d::new(k)
                .stride(s)
                .padding(Padding1d::Same)
                .into()
        } else {
            AveragePooling1d::new(k)
                .stride(s)
                .padding(Padding1d::Same)
                .into()
        }),
        Just(GlobalAveragePooling1d::new().into()),
        Just(GlobalMaxPooling1d::new().into()),
        Just(LayerNormalization::new().into()),
        Just(SelfAttention::new(1, 2).into()),
    ]
}

/// A random chain: sequence input, 1 to 5 random layers, an output layer. Many fail the checks.
fn any_graph() -> impl Strategy<Value = LayerGraph> {
    (
        1usize..5,
        proptest::collection::vec(any_layer(), 1..6),
        any::<bool>(),
        prop_oneof![
            Just(Normalization::None),
            Just(Normalization::Zscore),
            Just(Normalization::RescaleSymmetric)
        ],
    )
        .prop_map(|(features, middle, classify, norm)| {
            let mut layers: Vec<Layer> =
                vec![SequenceInput::new(features).normalization(norm).into()];
            layers.extend(middle);
            layers.push(if classify {
                ClassificationOutput::new().into()
            } else {
                RegressionOutput::new().into()
            });
            LayerGraph::from_layers(layers).expect("unnamed layers get fresh names")
        })
}

fn random_batch(
    features: usize,
    lengths: &[usize],
    direction: PaddingDirection,
    seed: u64,
) -> Activation {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = lengths.iter().copied().max().unwrap_or(1);
    let data = ndarray::Array3::from_shape_fn((t, lengths.len(), features), |_| {
        rng.random_range(-2.0..2.0f32)
    });
    let l = SeqLengths::new(lengths.to_vec(), t, direction).unwrap();
    Activation::sequence(data.into_dyn(), Some(l)).unwrap()
}

fn input_features(g: &LayerGraph) -> usize {
    g.layers[0]
        .downcast_ref::<SequenceInput>()
        .expect("the chain starts with its input")
        .shape()
        .channels
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    #[test]
    fn a_checked_graph_runs_on_inputs_of_its_declared_sizes(
        g in any_graph(),
        lengths in proptest::collection::vec(1usize..7, 1..4),
        left in any::<bool>(),
        seed in 0u64..1000,
    ) {
        let Ok(plan) = g.check() else { return Ok(()) };
        let direction = if left { PaddingDirection::Left } else { PaddingDirection::Right };
        let x = random_batch(input_features(&g), &lengths, direction, seed);
        let mut net = Network::new(&g, seed).unwrap();
        let out_layer = g.layers.len() - 1;
        let pred_shape = plan.input_shapes[out_layer][0];
        let preds = net.forward(std::slice::from_ref(&x), None, Mode::Inference, false).unwrap();
        // Targets shaped like the prediction, with its mask.
        let target = preds[0].like(preds[0].data.mapv(|v| (v * 0.5).tanh().abs()).into_owned());
        prop_assert_eq!(target.shape(), pred_shape);
        net.forward(std::slice::from_ref(&x), Some(std::slice::from_ref(&target)), Mode::Training, false).unwrap();
        prop_assert!(net.loss().is_some());
        net.backward().unwrap();
        net.forward(std::slice::from_ref(&x), None, Mode::Inference, true).unwrap();
    }

    #[test]
    fn graph_json_and_model_files_round_trip_exactly(g in any_graph(), seed in 0u64..1000) {
        let back = LayerGraph::from_json(&g.to_json(), "p.json").unwrap();
        prop_assert_eq!(&back, &g);
        if g.check().is_err() { return Ok(()) }
        let mut model = Model { network: Network::new(&g, seed).unwrap(), classes: vec![], options: None };
        let mut loaded = Model::from_bytes(&model.to_bytes().unwrap(), "p.safetensors").unwrap();
        let x = random_batch(input_features(&g), &[3, 5], PaddingDirection::Right, seed);
        let a = model.network.forward(std::slice::from_ref(&x), None, Mode::Inference, false).unwrap();
        let b = loaded.network.forward(std::slice::from_ref(&x), None, Mode::Inference, false).unwrap();
        let bits = |v: &Activation| v.data.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
        prop_assert_eq!(bits(&a[0]), bits(&b[0]));
    }

    #[test]
    fn predictions_do_not_depend_on_mini_batch_size_or_padding(
        g in any_graph(),
        lengths in proptest::collection::vec(1usize..9, 1..7),
        size in 2usize..5,
        seed in 0u64..1000,
    ) {
        if g.check().is_err() { return Ok(()) }
        let mut rng = StdRng::seed_from_u64(seed);
        let f = input_features(&g);
        let obs: Vec<Observation> = lengths.iter().map(|&t| Observation::new(Sequence::Features(Array2::from_shape_fn((t, f), |_| rng.random_range(-1.0..1.0f32))), Target::None)).collect();
        let store: Arc<dyn Datastore> = Arc::new(InMemoryDatastore::new(obs, None).unwrap());
        let mut net = Network::new(&g, seed).unwrap();
        let alone = predict(&mut net, store.clone(), &PredictOptions { mini_batch_size: 1, ..Default::default() }).unwrap();
        for direction in [PaddingDirection::Right, PaddingDirection::Left] {
            let opts = PredictOptions { mini_batch_size: size, padding_direction: direction, padding_value: 3.0, ..Default::default() };
            let batched = predict(&mut net, store.clone(), &opts).unwrap();
            for (a, b) in alone.iter().zip(&batched) {
                prop_assert_eq!(a.shape(), b.shape());
                for (x, y) in a.iter().zip(b) {
                    prop_assert!((x - y).abs() <= 1e-5 * x.abs().max(1.0), "{} vs {}", x, y);
                }
            }
        }
    }
}
