//! Japanese Vowels (or another UCR/UEA set in `data/`, `--data <set>`)
//! classified by a 1-D convolutional network: Wang et al.'s FCN (the `cnn1d`
//! template, what `seqnet new cnn1d --normalization zscore` writes): sequence
//! input (z-score), three blocks of 1-D convolution ('same'; 128, 256, 128
//! filters of 8, 5, 3 steps) → batch normalization → ReLU, global average
//! pooling over each sequence's real steps, fully connected (classes),
//! softmax, classification. Adam (learning rate 1e-3), L2 1e-4, shuffled
//! every epoch; mini-batch 27 and 60 epochs on Japanese Vowels (the other
//! sets' sizes are in `examples/common/mod.rs`); batch normalization predicts
//! with its running statistics. `bench/cnn1d_vowels.py` trains the same
//! network with the same options in PyTorch.
//!
//! Run: `cargo run --release --example cnn1d_japanese_vowels [-- --data JapaneseVowels|BasicMotions|GunPoint --seed N --epochs N]`

mod common;

use seqnet::core::templates::{Template, TemplateOptions};
use seqnet::prelude::*;

fn main() -> Result<()> {
    let set = common::data_set();
    let seed = common::arg("--seed", 0);
    let epochs = common::arg("--epochs", set.epochs as u64) as usize;
    let (train, test) = set.load()?;

    let graph = Template::Cnn1d.graph(&TemplateOptions {
        input: Some(InputSize::Features(set.features)),
        outputs: Some(set.classes),
        normalization: Normalization::Zscore,
        ..Default::default()
    })?;
    println!("{}: {}\n", set.name, graph.summary()?);

    let options = common::adam_options(&set, epochs, seed);
    common::train_and_report(&graph, (train, test), &options)?;
    Ok(())
}
