//! A trained model serves predictions from many threads at once: each thread
//! takes a cheap share of the model (weights shared, not copied) and gets
//! exactly what one thread gets.

use seqnet::data::{InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::PredictOptions;
use std::sync::Arc;

fn vowels(file: &str) -> Arc<InMemoryDatastore> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    Arc::new(InMemoryDatastore::open_ts(format!("{dir}/{file}"), &TsOptions::default()).unwrap())
}

#[test]
fn eight_threads_predict_what_one_thread_predicts() {
    let graph = LayerGraph::from_layers([
        SequenceInput::new(12).name("in").into(),
        Lstm::new(40)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ])
    .unwrap();
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(3)
        .mini_batch_size(27)
        .seed(3);
    let (mut model, _) = train_network(
        &graph,
        vowels("JapaneseVowels_TRAIN.ts"),
        None,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let test = vowels("JapaneseVowels_TEST.ts");
    let opts = PredictOptions {
        mini_batch_size: 16,
        ..Default::default()
    };
    let alone = model.predict(test.clone(), &opts).unwrap();

    let shares: Vec<Model> = (0..8).map(|_| model.share().unwrap()).collect();
    // The shares hold the model's arrays, not copies.
    for share in &shares {
        for ((_, a), (_, b)) in share
            .network
            .learnables()
            .iter()
            .zip(model.network.learnables())
        {
            assert_eq!(a.value.as_ptr(), b.value.as_ptr(), "{} is copied", a.name);
        }
    }
    let results: Vec<_> = std::thread::scope(|s| {
        let handles: Vec<_> = shares
            .into_iter()
            .enumerate()
            .map(|(i, mut share)| {
                let test = test.clone();
                s.spawn(move || {
                    // Each thread predicts several times, interleaving with the others.
                    let mut last = None;
                    for _ in 0..3 + i % 2 {
                        last = Some(share.predict(test.clone(), &opts).unwrap());
                    }
                    last.unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (i, r) in results.iter().enumerate() {
        assert_eq!(r, &alone, "thread {i} predicted otherwise");
    }
}

#[test]
fn training_a_share_leaves_the_original_unchanged() {
    let graph = LayerGraph::from_layers([
        SequenceInput::new(12).name("in").into(),
        Gru::new(8).output_mode(OutputMode::Last).name("gru").into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ])
    .unwrap();
    let network = Network::new(&graph, 5).unwrap();
    let before: Vec<_> = network
        .learnables()
        .iter()
        .map(|(_, p)| p.value.to_owned())
        .collect();
    let mut share = network.share().unwrap();
    for (_, p) in share.learnables_mut() {
        // A write to a shared array copies it first (copy-on-write).
        p.value.mapv_inplace(|v| v + 1.0);
    }
    for ((_, p), b) in network.learnables().iter().zip(&before) {
        assert_eq!(&p.value.to_owned(), b, "{} changed", p.name);
    }
    for ((_, p), b) in share.learnables().iter().zip(&before) {
        assert_eq!(p.value.to_owned(), b + 1.0);
    }
}
