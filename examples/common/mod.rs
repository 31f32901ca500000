//! What the examples training classifiers on the UCR/UEA data sets in `data/`
//! share: the command line (`--data <set> --seed N --epochs N`), the data
//! sets and their per-set options, loading, and the test accuracy report.
//! `bench/ucr.py` is its PyTorch counterpart: the two must agree on the
//! per-set options below, so that both sides train with the same ones.
//!
//! Used with `mod common;` from each example.

use seqnet::data::{Datastore, InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{Model, PredictOptions, Shuffle, TrainingRecord};
use std::sync::Arc;
use std::time::Instant;

/// A classification set of the UCR/UEA archive shipped in `data/`, and the
/// options every example trains it with.
// Each example reads the fields it needs (the LSTM neither epochs nor max_length).
#[allow(dead_code)]
#[derive(Debug, Clone, Copy)]
pub struct DataSet {
    /// The name `--data` takes (the archive's problem name).
    pub name: &'static str,
    /// The folder under `data/`.
    pub folder: &'static str,
    /// Features per time step (the archive's dimensions).
    pub features: usize,
    /// Number of classes.
    pub classes: usize,
    /// The longest sequence of the train and test files: the transformer's
    /// learned position embedding needs a position for each step.
    pub max_length: usize,
    /// Mini-batch size for training and prediction.
    pub mini_batch: usize,
    /// Epochs of the convolutional and transformer networks.
    pub epochs: usize,
}

/// The sets, the default first. Japanese Vowels keeps the options its
/// examples always had (mini-batch 27 as MATLAB's example, 60 epochs, 32
/// positions); the two small sets get mini-batches of 10 (four or five per
/// epoch) and 100 epochs, so that they see about as many updates.
pub const DATA_SETS: [DataSet; 3] = [
    DataSet {
        name: "JapaneseVowels",
        folder: "japanese_vowels",
        features: 12,
        classes: 9,
        max_length: 32,
        mini_batch: 27,
        epochs: 60,
    },
    DataSet {
        name: "BasicMotions",
        folder: "basic_motions",
        features: 6,
        classes: 4,
        max_length: 100,
        mini_batch: 10,
        epochs: 100,
    },
    DataSet {
        name: "GunPoint",
        folder: "gun_point",
        features: 1,
        classes: 2,
        max_length: 150,
        mini_batch: 10,
        epochs: 100,
    },
];

/// The value following `name` on the command line, if any.
pub fn arg_text(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

/// The number following `name` on the command line, or `default`; exits
/// with a message when the value is not a number.
pub fn arg(name: &str, default: u64) -> u64 {
    match arg_text(name) {
        None => default,
        Some(v) => v.parse().unwrap_or_else(|_| {
            eprintln!("{name} takes a whole number, not '{v}'");
            std::process::exit(2)
        }),
    }
}

/// The set `--data` names (case-insensitive; Japanese Vowels without it);
/// exits with the list of known sets when it names none.
pub fn data_set() -> DataSet {
    let Some(name) = arg_text("--data") else {
        return DATA_SETS[0];
    };
    DATA_SETS
        .iter()
        .find(|d| d.name.eq_ignore_ascii_case(&name) || d.folder == name)
        .copied()
        .unwrap_or_else(|| {
            let known: Vec<&str> = DATA_SETS.iter().map(|d| d.name).collect();
            eprintln!("--data {name}: not a data set in data/ (known: {known:?})");
            std::process::exit(2)
        })
}

impl DataSet {
    /// The training and test datastores, `[features]` sequences with class
    /// labels, read from `data/<folder>/<name>_{TRAIN,TEST}.ts`.
    pub fn load(&self) -> Result<(InMemoryDatastore, InMemoryDatastore)> {
        let dir = format!("{}/data/{}", env!("CARGO_MANIFEST_DIR"), self.folder);
        let open = |part: &str| {
            InMemoryDatastore::open_ts(
                format!("{dir}/{}_{part}.ts", self.name),
                &TsOptions::default(),
            )
        };
        Ok((open("TRAIN")?, open("TEST")?))
    }
}

/// The share of `data`'s observations `model` classifies right, in percent,
/// and how many there are.
pub fn accuracy(
    model: &mut Model,
    data: Arc<dyn Datastore>,
    mini_batch: usize,
) -> Result<(f64, usize)> {
    let labels: Vec<usize> = (0..data.len())
        .map(|i| {
            data.read(i).map(|o| match o.target {
                Target::Class(c) => c,
                _ => usize::MAX,
            })
        })
        .collect::<seqnet::data::Result<_>>()?;
    let predictions = model.classify(
        data,
        &PredictOptions {
            mini_batch_size: mini_batch,
            ..Default::default()
        },
    )?;
    let correct = predictions
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p.classes[0] == **l)
        .count();
    Ok((100.0 * correct as f64 / labels.len() as f64, labels.len()))
}

/// The options the FCN and the transformer examples train with on `set`
/// (as `bench/ucr.py` does): Adam at 1e-3, L2 1e-4, shuffled every epoch,
/// padded to the longest sequence of each mini-batch.
// The LSTM example trains with MATLAB's example options instead.
#[allow(dead_code)]
pub fn adam_options(set: &DataSet, epochs: usize, seed: u64) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(1e-3)
        .l2_regularization(1e-4)
        .max_epochs(epochs)
        .mini_batch_size(set.mini_batch)
        .sequence_length(SequenceLength::Longest)
        .shuffle(Shuffle::EveryEpoch)
        .verbose_frequency(100)
        .seed(seed)
}

/// Trains `graph` on `train` with `options`, timing it, then [`report`]s
/// on both sets. Returns the test accuracy in percent.
pub fn train_and_report(
    graph: &LayerGraph,
    (train, test): (InMemoryDatastore, InMemoryDatastore),
    options: &TrainingOptions,
) -> Result<f64> {
    let start = Instant::now();
    let train: Arc<dyn Datastore> = Arc::new(train);
    let (mut model, record) = train_network(graph, train.clone(), None, options, &mut |_| {})?;
    let seconds = start.elapsed().as_secs_f64();
    report(
        &mut model,
        &record,
        seconds,
        (train, test),
        options.mini_batch_size,
    )
}

/// Prints the last mini-batch loss, the training time, the accuracy on the
/// training set (in prediction mode: a network that fits its training data
/// but predicts badly there has a prediction-mode problem, such as batch
/// normalization's running statistics) and the test accuracy (the line
/// `bench/accuracy.sh` reads). Returns the test accuracy in percent.
pub fn report(
    model: &mut Model,
    record: &TrainingRecord,
    train_seconds: f64,
    (train, test): (Arc<dyn Datastore>, InMemoryDatastore),
    mini_batch: usize,
) -> Result<f64> {
    let last = record.iterations.last().map(|i| i.loss).unwrap_or(f32::NAN);
    println!("final mini-batch loss {last:.4}");
    println!(
        "training time {train_seconds:.2} s ({} iterations)",
        record.iterations.len()
    );
    let (on_train, _) = accuracy(model, train, mini_batch)?;
    println!("training-set accuracy {on_train:.2}%");
    let (on_test, n) = accuracy(model, Arc::new(test), mini_batch)?;
    let correct = (on_test * n as f64 / 100.0).round() as usize;
    println!("test accuracy {on_test:.2}% ({correct}/{n})");
    Ok(on_test)
}
