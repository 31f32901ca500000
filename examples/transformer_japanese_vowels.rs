//! Japanese Vowels classified by a pre-LN transformer encoder (the
//! `transformer` template, what `seqnet new transformer --normalization zscore
//! --model-dim 64 --heads 4 --blocks 2 --ffn-dim 128 --max-position 32`
//! writes): sequence input 12 (z-score), fully connected 64 plus a learned
//! position embedding, two blocks of [layer norm → self-attention (4 heads)
//! → +, layer norm → fc 128 → ReLU → fc 64 → +], global average pooling over
//! each sequence's real steps, fully connected 9, softmax, classification.
//! Adam (learning rate 1e-3), L2 1e-4, mini-batch 27, shuffled every epoch,
//! 60 epochs. `bench/transformer_vowels.py` trains the same network with the
//! same options in PyTorch.
//!
//! Run: `cargo run --release --example transformer_japanese_vowels [-- --seed N --epochs N]`

use seqnet::core::templates::transformer::TransformerSizes;
use seqnet::core::templates::{Template, TemplateOptions};
use seqnet::data::{Datastore, InMemoryDatastore, TsOptions};
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
    let epochs = arg("--epochs", 60) as usize;
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    let train = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TRAIN.ts"),
        &TsOptions::default(),
    )?;
    let test = InMemoryDatastore::open_ts(
        format!("{dir}/JapaneseVowels_TEST.ts"),
        &TsOptions::default(),
    )?;

    let graph = Template::Transformer.graph(&TemplateOptions {
        input: Some(InputSize::Features(12)),
        outputs: Some(9),
        normalization: Normalization::Zscore,
        transformer: TransformerSizes {
            model_dim: Some(64),
            heads: Some(4),
            blocks: Some(2),
            ffn_dim: Some(128),
            max_position: Some(32),
        },
        ..Default::default()
    })?;
    println!("{}\n", graph.summary()?);

    let options = TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(1e-3)
        .l2_regularization(1e-4)
        .max_epochs(epochs)
        .mini_batch_size(27)
        .sequence_length(SequenceLength::Longest)
        .shuffle(Shuffle::EveryEpoch)
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
