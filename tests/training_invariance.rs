//! Masking at the level of training and prediction: the loss, the gradients and
//! every prediction are the same for left and right padding, any padding value
//! and any mini-batch size; split sequences carry their state between chunks.

use ndarray::ArrayD;
use seqnet::data::{
    BatchOptions, Batcher, Datastore, InMemoryDatastore, Observation, SequenceLength, TsOptions,
};
use seqnet::prelude::*;
use seqnet::train::{predict, PredictOptions};
use std::sync::Arc;

fn vowels(n: usize) -> (Vec<Observation>, Vec<String>) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/japanese_vowels/JapaneseVowels_TRAIN.ts"
    );
    let store = InMemoryDatastore::open_ts(path, &TsOptions::default()).unwrap();
    let classes = store.classes().unwrap().to_vec();
    // Every 29th observation: a mix of lengths and speakers.
    let obs = store
        .into_observations()
        .into_iter()
        .step_by(29)
        .take(n)
        .collect();
    (obs, classes)
}

fn graph(mode: OutputMode, recurrent: &str) -> LayerGraph {
    let rec: Layer = match recurrent {
        "lstm" => Lstm::new(8).output_mode(mode).into(),
        "bilstm" => BiLstm::new(5).output_mode(mode).into(),
        _ => Gru::new(7).output_mode(mode).into(),
    };
    LayerGraph::from_layers(vec![
        SequenceInput::new(12)
            .normalization(Normalization::Zscore)
            .into(),
        rec,
        FullyConnected::new(9).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap()
}

/// Loss and every learnable's gradient for one batch of `obs`.
fn loss_and_grads(
    net: &mut Network,
    obs: &[Observation],
    options: BatchOptions,
) -> (f32, Vec<ArrayD<f32>>) {
    let chunks = Batcher::new(options)
        .unwrap()
        .with_classes(9)
        .batch(obs)
        .unwrap();
    assert_eq!(chunks.len(), 1);
    let c = &chunks[0];
    net.forward(
        std::slice::from_ref(&c.inputs),
        Some(std::slice::from_ref(c.targets.as_ref().unwrap())),
        Mode::Training,
        false,
    )
    .unwrap();
    let loss = net.loss().unwrap();
    net.backward().unwrap();
    (
        loss,
        net.learnables()
            .iter()
            .map(|(_, p)| p.grad.clone())
            .collect(),
    )
}

fn close(a: &ArrayD<f32>, b: &ArrayD<f32>, tol: f32) -> bool {
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    a.shape() == b.shape() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * scale)
}

/// The same observations with a class target at every step (the speaker at
/// the first half of the steps, speaker + 1 after), for sequence-to-sequence.
fn per_step(obs: &[Observation]) -> Vec<Observation> {
    obs.iter()
        .map(|o| {
            let Target::Class(c) = o.target else {
                panic!("class targets")
            };
            let t = o.len();
            let classes = (0..t)
                .map(|s| if s < t / 2 { c } else { (c + 1) % 9 })
                .collect();
            Observation::new(o.data.clone(), Target::ClassSequence(classes))
        })
        .collect()
}

#[test]
fn left_and_right_padding_give_the_same_loss_and_gradients() {
    let (obs, _) = vowels(8);
    for recurrent in ["lstm", "bilstm", "gru"] {
        for mode in [OutputMode::Last, OutputMode::Sequence] {
            let obs = if mode == OutputMode::Last {
                obs.clone()
            } else {
                per_step(&obs)
            };
            let g = graph(mode, recurrent);
            let mut net = Network::new(&g, 1).unwrap();
            let right = BatchOptions {
                sequence_length: SequenceLength::Longest,
                direction: PaddingDirection::Right,
                padding_value: 0.0,
            };
            let left = BatchOptions {
                direction: PaddingDirection::Left,
                padding_value: -3.5,
                ..right
            };
            let (l1, g1) = loss_and_grads(&mut net, &obs, right);
            let (l2, g2) = loss_and_grads(&mut net, &obs, left);
            assert!(
                (l1 - l2).abs() <= 1e-5 * l1.abs().max(1.0),
                "{recurrent}: loss {l1} vs {l2}"
            );
            for (a, b) in g1.iter().zip(&g2) {
                assert!(close(a, b, 1e-4), "{recurrent}: gradients differ");
            }
        }
    }
}

#[test]
fn a_batch_gradient_is_the_mean_of_the_lone_gradients() {
    let (obs, _) = vowels(6);
    let mut net = Network::new(&graph(OutputMode::Last, "lstm"), 2).unwrap();
    let opts = BatchOptions::default();
    let (loss, grads) = loss_and_grads(&mut net, &obs, opts);
    let mut mean_loss = 0.0;
    let mut mean: Vec<ArrayD<f32>> = grads.iter().map(|g| ArrayD::zeros(g.raw_dim())).collect();
    for o in &obs {
        let (l, g) = loss_and_grads(&mut net, std::slice::from_ref(o), opts);
        mean_loss += l / obs.len() as f32;
        for (m, g) in mean.iter_mut().zip(g) {
            *m += &(g / obs.len() as f32);
        }
    }
    assert!(
        (loss - mean_loss).abs() < 1e-5 * loss.max(1.0),
        "{loss} vs {mean_loss}"
    );
    for (a, b) in grads.iter().zip(&mean) {
        assert!(close(a, b, 1e-4));
    }
}

#[test]
fn predictions_do_not_depend_on_mini_batch_size_or_padding() {
    let (obs, classes) = vowels(10);
    let store: Arc<dyn Datastore> = Arc::new(InMemoryDatastore::new(obs, Some(classes)).unwrap());
    for recurrent in ["lstm", "bilstm", "gru"] {
        for mode in [OutputMode::Last, OutputMode::Sequence] {
            let mut g = graph(mode, recurrent);
            if mode == OutputMode::Sequence {
                // Per-step scores: drop the output layer's class check by using regression.
                g.replace_layer("classification", RegressionOutput::new().into())
                    .unwrap();
            }
            let mut net = Network::new(&g, 3).unwrap();
            let base = predict(
                &mut net,
                store.clone(),
                &PredictOptions {
                    mini_batch_size: 1,
                    ..Default::default()
                },
            )
            .unwrap();
            for (size, direction, value) in [
                (3, PaddingDirection::Right, 0.0),
                (10, PaddingDirection::Left, 9.0),
                (4, PaddingDirection::Left, -1.0),
            ] {
                let opts = PredictOptions {
                    mini_batch_size: size,
                    padding_direction: direction,
                    padding_value: value,
                    ..Default::default()
                };
                let other = predict(&mut net, store.clone(), &opts).unwrap();
                for (a, b) in base.iter().zip(&other) {
                    assert_eq!(a.shape(), b.shape());
                    assert!(
                        close(&a.clone().into_dyn(), &b.clone().into_dyn(), 1e-5),
                        "{recurrent} {mode:?} size {size} {direction:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn split_sequences_carry_their_state_between_chunks() {
    // Predicting in chunks of 5 steps with the state carried must equal predicting whole.
    let (obs, classes) = vowels(7);
    let store: Arc<dyn Datastore> = Arc::new(InMemoryDatastore::new(obs, Some(classes)).unwrap());
    for recurrent in ["lstm", "gru"] {
        for mode in [OutputMode::Last, OutputMode::Sequence] {
            let mut g = graph(mode, recurrent);
            if mode == OutputMode::Sequence {
                g.replace_layer("classification", RegressionOutput::new().into())
                    .unwrap();
            }
            let mut net = Network::new(&g, 4).unwrap();
            let whole = predict(
                &mut net,
                store.clone(),
                &PredictOptions {
                    mini_batch_size: 4,
                    ..Default::default()
                },
            )
            .unwrap();
            for direction in [PaddingDirection::Right, PaddingDirection::Left] {
                let opts = PredictOptions {
                    mini_batch_size: 4,
                    sequence_length: SequenceLength::Fixed(5),
                    padding_direction: direction,
                    ..Default::default()
                };
                let split = predict(&mut net, store.clone(), &opts).unwrap();
                for (a, b) in whole.iter().zip(&split) {
                    assert!(
                        close(&a.clone().into_dyn(), &b.clone().into_dyn(), 1e-5),
                        "{recurrent} {mode:?} {direction:?}:\n{a}\n{b}"
                    );
                }
            }
        }
    }
}
