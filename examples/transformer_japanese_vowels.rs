//! Japanese Vowels (or another UCR/UEA set in `data/`, `--data <set>`)
//! classified by a pre-LN transformer encoder (the `transformer` template,
//! what `seqnet new transformer --normalization zscore --model-dim 64 --heads
//! 4 --blocks 2 --ffn-dim 128 --max-position 32` writes for Japanese Vowels):
//! sequence input (z-score), fully connected 64 plus a learned position
//! embedding (as many positions as the set's longest sequence; 32 for
//! Japanese Vowels), two blocks of [layer norm → self-attention (4 heads) →
//! +, layer norm → fc 128 → ReLU → fc 64 → +], global average pooling over
//! each sequence's real steps, fully connected (classes), softmax,
//! classification. Adam (learning rate 1e-3), L2 1e-4, shuffled every epoch;
//! mini-batch 27 and 60 epochs on Japanese Vowels (the other sets' sizes are
//! in `examples/common/mod.rs`). `bench/transformer_vowels.py` trains the same
//! network with the same options in PyTorch.
//!
//! Run: `cargo run --release --example transformer_japanese_vowels [-- --data JapaneseVowels|BasicMotions|GunPoint --seed N --epochs N]`

mod common;

use seqnet::core::templates::transformer::TransformerSizes;
use seqnet::core::templates::{Template, TemplateOptions};
use seqnet::prelude::*;

fn main() -> Result<()> {
    let set = common::data_set();
    let seed = common::arg("--seed", 0);
    let epochs = common::arg("--epochs", set.epochs as u64) as usize;
    let (train, test) = set.load()?;

    let graph = Template::Transformer.graph(&TemplateOptions {
        input: Some(InputSize::Features(set.features)),
        outputs: Some(set.classes),
        normalization: Normalization::Zscore,
        transformer: TransformerSizes {
            model_dim: Some(64),
            heads: Some(4),
            blocks: Some(2),
            ffn_dim: Some(128),
            max_position: Some(set.max_length),
        },
        ..Default::default()
    })?;
    println!("{}: {}\n", set.name, graph.summary()?);

    let options = common::adam_options(&set, epochs, seed);
    common::train_and_report(&graph, (train, test), &options)?;
    Ok(())
}
