//! The seed's "deeper networks" section: two LSTM layers with dropout, on the
//! Japanese Vowels data: lstm 'sequence' → dropout → lstm 'last' → dropout →
//! fully connected → softmax → classification.
//!
//! Run: `cargo run --release --example deeper_lstm [-- --seed N]`

use seqnet::data::{sort_by_length, Datastore, InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{PredictOptions, Shuffle};
use std::sync::Arc;
use std::time::Instant;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0u64);
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    let train = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TRAIN.ts"),
        &TsOptions::default(),
    )?;
    let test = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TEST.ts"),
        &TsOptions::default(),
    )?;
    let order = sort_by_length(&train.sequence_lengths()?);
    let classes = train.classes().map(<[String]>::to_vec);
    let obs = train.into_observations();
    let train = InMemoryDatastore::new(order.iter().map(|&i| obs[i].clone()).collect(), classes)?;

    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(12).into(),
        Lstm::new(125)
            .output_mode(OutputMode::Sequence)
            .name("lstm1")
            .into(),
        Dropout::new(0.2).name("dropout1").into(),
        Lstm::new(100)
            .output_mode(OutputMode::Last)
            .name("lstm2")
            .into(),
        Dropout::new(0.2).name("dropout2").into(),
        FullyConnected::new(9).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])?;
    println!("{}\n", graph.summary()?);
    let options = TrainingOptions::new(Solver::Adam)
        .gradient_threshold(1.0)
        .max_epochs(100)
        .mini_batch_size(27)
        .shuffle(Shuffle::Never)
        .seed(seed);
    let start = Instant::now();
    let (mut model, _) = train_network(&graph, Arc::new(train), None, &options, &mut |_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    let labels: Vec<usize> = (0..test.len())
        .map(|i| {
            test.read(i).map(|o| {
                if let Target::Class(c) = o.target {
                    c
                } else {
                    usize::MAX
                }
            })
        })
        .collect::<seqnet::data::Result<_>>()?;
    let predicted = model.classify(Arc::new(test), &PredictOptions::default())?;
    let correct = predicted
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p.classes[0] == **l)
        .count();
    println!(
        "two-layer LSTM with dropout: test accuracy {:.2}% ({correct}/{}), training {seconds:.1} s",
        100.0 * correct as f64 / labels.len() as f64,
        labels.len()
    );
    Ok(())
}
