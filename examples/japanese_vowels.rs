//! Sequence-to-label classification of the Japanese Vowels data (MATLAB's
//! "Sequence Classification Using Deep Learning" example): sequence input 12,
//! lstm 100 'last', fully connected 9, softmax, classification; adam, gradient
//! threshold 1, 100 epochs, mini-batch 27, sorted by length, no shuffling.
//!
//! Run: `cargo run --release --example japanese_vowels [-- --seed N --epochs N]`

use seqnet::data::{sort_by_length, Datastore, InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{PredictOptions, Shuffle};
use std::sync::Arc;
use std::time::Instant;

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let seed = arg("--seed", 0);
    let epochs = arg("--epochs", 100) as usize;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    let train = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TRAIN.ts"),
        &TsOptions::default(),
    )?;
    let test = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TEST.ts"),
        &TsOptions::default(),
    )?;

    // Sort the training sequences by length, as the MATLAB example does, so that
    // mini-batches hold sequences of similar length.
    let order = sort_by_length(&train.sequence_lengths()?);
    let classes = train.classes().map(<[String]>::to_vec);
    let mut obs = train.into_observations();
    let sorted = order.iter().map(|&i| obs[i].clone()).collect();
    obs.clear();
    let train = InMemoryDatastore::new(sorted, classes)?;

    let layers: Vec<Layer> = vec![
        SequenceInput::new(12).name("sequenceinput").into(),
        Lstm::new(100)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ];
    let graph = LayerGraph::from_layers(layers)?;
    println!("{}\n", graph.summary()?);

    let options = TrainingOptions::new(Solver::Adam)
        .gradient_threshold(1.0)
        .max_epochs(epochs)
        .mini_batch_size(27)
        .sequence_length(SequenceLength::Longest)
        .shuffle(Shuffle::Never)
        .verbose_frequency(100)
        .seed(seed);
    let start = Instant::now();
    let (mut model, record) = train_network(&graph, Arc::new(train), None, &options, &mut |_| {})?;
    let train_time = start.elapsed().as_secs_f64();

    let labels: Vec<usize> = (0..test.len())
        .map(|i| {
            test.read(i).map(|o| match o.target {
                Target::Class(c) => c,
                _ => usize::MAX,
            })
        })
        .collect::<seqnet::data::Result<_>>()?;
    let predictions = model.classify(
        Arc::new(test),
        &PredictOptions {
            mini_batch_size: 27,
            ..Default::default()
        },
    )?;
    let correct = predictions
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p.classes[0] == **l)
        .count();
    let last = record.iterations.last().map(|i| i.loss).unwrap_or(f32::NAN);
    println!("final mini-batch loss {last:.4}");
    println!(
        "training time {train_time:.2} s ({} iterations)",
        record.iterations.len()
    );
    println!(
        "test accuracy {:.2}% ({correct}/{})",
        100.0 * correct as f64 / labels.len() as f64,
        labels.len()
    );
    Ok(())
}
