//! Training on real data: the seed's Japanese Vowels network reaches the
//! accuracy floor, and training is bit-for-bit repeatable with the same seed.

use seqnet::data::{sort_by_length, Datastore, InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{PredictOptions, Shuffle};
use std::sync::Arc;

fn open(name: &str) -> InMemoryDatastore {
    let path = format!(
        "{}/data/japanese_vowels/JapaneseVowels_{name}.ts",
        env!("CARGO_MANIFEST_DIR")
    );
    InMemoryDatastore::open_ts(path, &TsOptions::default()).unwrap()
}

fn sorted_train() -> InMemoryDatastore {
    let train = open("TRAIN");
    let order = sort_by_length(&train.sequence_lengths().unwrap());
    let classes = train.classes().map(<[String]>::to_vec);
    let obs = train.into_observations();
    InMemoryDatastore::new(order.iter().map(|&i| obs[i].clone()).collect(), classes).unwrap()
}

fn graph() -> LayerGraph {
    LayerGraph::from_layers(vec![
        SequenceInput::new(12).into(),
        Lstm::new(100).output_mode(OutputMode::Last).into(),
        FullyConnected::new(9).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap()
}

fn options(epochs: usize, seed: u64) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .gradient_threshold(1.0)
        .max_epochs(epochs)
        .mini_batch_size(27)
        .shuffle(Shuffle::Never)
        .seed(seed)
}

#[test]
fn the_seed_network_reaches_92_percent_test_accuracy() {
    let (mut model, record) = train_network(
        &graph(),
        Arc::new(sorted_train()),
        None,
        &options(100, 0),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(record.iterations.len(), 1000);
    let test = open("TEST");
    let labels: Vec<usize> = (0..test.len())
        .map(|i| match test.read(i).unwrap().target {
            Target::Class(c) => c,
            _ => panic!("class targets"),
        })
        .collect();
    let predicted = model
        .classify(Arc::new(test), &PredictOptions::default())
        .unwrap();
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p.classes[0] == **l)
        .count();
    let accuracy = correct as f64 / labels.len() as f64;
    println!("test accuracy {:.2}%", accuracy * 100.0);
    assert!(accuracy >= 0.92, "test accuracy {accuracy}");
}

#[test]
fn training_with_the_same_seed_gives_bit_identical_weights() {
    let run = |seed| {
        let opts = options(3, seed)
            .shuffle(Shuffle::EveryEpoch)
            .l2_regularization(1e-3);
        let (model, _) =
            train_network(&graph(), Arc::new(sorted_train()), None, &opts, &mut |_| {}).unwrap();
        model
            .network
            .learnables()
            .iter()
            .flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect::<Vec<u32>>()
    };
    let (a, b, c) = (run(5), run(5), run(6));
    assert_eq!(a, b, "same seed, same weights");
    assert_ne!(a, c, "another seed, other weights");
}
