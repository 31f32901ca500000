//! `vowels-epoch`: one training epoch of MATLAB's Japanese Vowels network
//! (sequenceInput(12) → lstm(100, last) → fc(9) → softmax → classification) on
//! the 270 training sequences in file order: mini-batch 27, `SequenceLength`
//! longest, no shuffling, adam with learning rate 1e-3, gradient threshold 1
//! (L2 norm per learnable), no L2 regularization. One repetition is a whole
//! epoch through [`seqnet_train::fit`]: 10 iterations of padding, forward,
//! backward and update.

use super::{line, lstm_forward_flop, time_reps};
use crate::{CliError, Result};
use seqnet_core::layers::{
    ClassificationOutput, FullyConnected, Lstm, OutputMode, SequenceInput, Softmax,
};
use seqnet_core::{Layer, LayerGraph, Network};
use seqnet_data::{Datastore, InMemoryDatastore, TsOptions};
use seqnet_train::{fit, DatastoreBatches, SequenceLength, Shuffle, Solver, TrainingOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The Japanese Vowels folder: `data/japanese_vowels` under the current
/// directory, else the repository's (where this crate was built).
pub fn data_dir() -> Result<PathBuf> {
    let candidates = [
        PathBuf::from("data/japanese_vowels"),
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../data/japanese_vowels"
        )),
    ];
    candidates
        .into_iter()
        .find(|p| p.join("JapaneseVowels_TRAIN.ts").is_file())
        .ok_or(CliError::MissingBenchData {
            what: "Japanese Vowels data",
            path: "data/japanese_vowels/JapaneseVowels_TRAIN.ts".into(),
        })
}

/// The network of the workload.
pub fn graph() -> Result<LayerGraph> {
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
    Ok(LayerGraph::from_layers(layers)?)
}

/// The training options of the workload (one epoch).
pub fn options() -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(1e-3)
        .gradient_threshold(1.0)
        .l2_regularization(0.0)
        .max_epochs(1)
        .mini_batch_size(27)
        .sequence_length(SequenceLength::Longest)
        .shuffle(Shuffle::Never)
        .verbose(false)
}

/// Times the workload and returns its result line.
pub fn run() -> Result<String> {
    let path = data_dir()?.join("JapaneseVowels_TRAIN.ts");
    let store = InMemoryDatastore::open_ts(&path, &TsOptions::default())?;
    let lengths = store.sequence_lengths()?;
    let classes = store.classes().map(<[String]>::to_vec);
    let store: Arc<dyn Datastore> = Arc::new(store);
    let mut graph = graph()?;
    for l in &mut graph.layers {
        if let Some(c) = l.downcast_mut::<ClassificationOutput>() {
            c.classes = classes.clone().unwrap_or_default();
        }
    }
    let mut network = Network::new(&graph, 0)?;
    let options = options();
    // FLOPs: each mini-batch of 27 is padded to its longest sequence.
    let flop: f64 = lengths
        .chunks(27)
        .filter(|c| c.len() == 27)
        .map(|c| 3.0 * lstm_forward_flop(*c.iter().max().unwrap_or(&0), 27, 12, 100))
        .sum();
    let t = time_reps(2, 15, || {
        let mut source = DatastoreBatches::training(store.clone(), &options)?;
        fit(&mut network, &mut source, None, &options, &mut |_| {})?;
        Ok(())
    })?;
    Ok(line("vowels-epoch", &t, Some(flop), "iterations=10"))
}
