//! Sequence-to-label classification of the Japanese Vowels data (MATLAB's
//! "Sequence Classification Using Deep Learning" example): sequence input 12,
//! lstm 100 'last', fully connected 9, softmax, classification; adam, gradient
//! threshold 1, 100 epochs, mini-batch 27, sorted by length, no shuffling.
//! `--data <set>` trains the same network and options on another UCR/UEA set
//! in `data/` (with that set's features, classes and mini-batch size, see
//! `examples/common/mod.rs`). `bench/lstm_vowels.py` trains the same network
//! with the same options in PyTorch.
//!
//! Run: `cargo run --release --example japanese_vowels [-- --data JapaneseVowels|BasicMotions|GunPoint --seed N --epochs N]`

mod common;

use seqnet::data::sort_by_length;
use seqnet::prelude::*;
use seqnet::train::Shuffle;

fn main() -> Result<()> {
    let set = common::data_set();
    let seed = common::arg("--seed", 0);
    let epochs = common::arg("--epochs", 100) as usize;
    let (train, test) = set.load()?;

    // Sort the training sequences by length, as the MATLAB example does, so that
    // mini-batches hold sequences of similar length.
    let order = sort_by_length(&train.sequence_lengths()?);
    let classes = train.classes().map(<[String]>::to_vec);
    let mut obs = train.into_observations();
    let sorted = order.iter().map(|&i| obs[i].clone()).collect();
    obs.clear();
    let train = InMemoryDatastore::new(sorted, classes)?;

    let layers: Vec<Layer> = vec![
        SequenceInput::new(set.features)
            .name("sequenceinput")
            .into(),
        Lstm::new(100)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(set.classes).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classoutput").into(),
    ];
    let graph = LayerGraph::from_layers(layers)?;
    println!("{}: {}\n", set.name, graph.summary()?);

    let options = TrainingOptions::new(Solver::Adam)
        .gradient_threshold(1.0)
        .max_epochs(epochs)
        .mini_batch_size(set.mini_batch)
        .sequence_length(SequenceLength::Longest)
        .shuffle(Shuffle::Never)
        .verbose_frequency(100)
        .seed(seed);
    common::train_and_report(&graph, (train, test), &options)?;
    Ok(())
}
