//! Custom layers, as MATLAB's "Define Custom Deep Learning Layers" pages do
//! them: a PReLU layer (a learnable slope per channel) and a weighted
//! addition layer (several inputs, a learnable weight each), defined outside
//! seqnet (in `examples/custom_layers/`), registered, checked with the
//! finite-difference helper, trained on Japanese Vowels, saved and loaded.
//!
//! Run: `cargo run --release --example custom_layer`

#[path = "custom_layers/mod.rs"]
mod custom_layers;

use custom_layers::{PRelu, WeightedAddition};
use seqnet::core::gradcheck::{check_layer, GradCheck};
use seqnet::core::{register_layer, Activation};
use seqnet::data::{InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::PredictOptions;
use std::sync::Arc;

fn main() -> Result<()> {
    // 1. Register the types, so that graph JSON and model files can name them.
    register_layer::<PRelu>()?;
    register_layer::<WeightedAddition>()?;

    // 2. Check their gradients against central differences.
    // Inputs kept away from PReLU's kink at 0, where central differences
    // with step 0.01 cannot agree with any one-sided derivative.
    let x = || {
        let data = ndarray::Array3::from_shape_fn((5, 3, 4), |(t, b, c)| {
            let v = ((t * 7 + b * 3 + c) as f32 * 0.37).sin();
            v + 0.1 * v.signum()
        });
        Activation::sequence(data.into_dyn(), None)
    };
    for (layer, inputs) in [
        (Layer::from(PRelu::new("prelu")), vec![x()?]),
        (
            Layer::from(WeightedAddition::new("wadd", 2)),
            vec![
                x()?,
                x()?.like(x()?.data.mapv(|v| v * 0.5 - 0.1).into_owned()),
            ],
        ),
    ] {
        let report = check_layer(&layer, inputs, None, GradCheck::default())?;
        let failures = report.failures(GradCheck::default().tolerance);
        println!(
            "gradient check {}: {} probes, {} failures",
            layer.name(),
            report.probes.len(),
            failures.len()
        );
        assert!(failures.is_empty(), "{failures:?}");
    }

    // 3. A network holding them: two branches from the LSTM, weighted and added.
    let mut graph = LayerGraph::from_layers([
        SequenceInput::new(12)
            .normalization(Normalization::Zscore)
            .name("in")
            .into(),
        Lstm::new(64)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(32).name("fc1").into(),
        PRelu::new("prelu").into(),
        FullyConnected::new(9).name("fc2").into(),
        WeightedAddition::new("wadd", 2).into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("out").into(),
    ])?;
    graph.add_layers([FullyConnected::new(9).name("skip").into()])?;
    graph.connect("lstm", "skip")?;
    graph.connect("skip", "wadd/in2")?;
    println!("{}", graph.summary()?);

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    let open = |f: &str| InMemoryDatastore::open_ts(format!("{dir}/{f}"), &TsOptions::default());
    let (train, test) = (
        open("JapaneseVowels_TRAIN.ts")?,
        open("JapaneseVowels_TEST.ts")?,
    );
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(30)
        .mini_batch_size(27)
        .gradient_threshold(1.0)
        .seed(0);
    let (model, _) = train_network(&graph, Arc::new(train), None, &options, &mut |_| {})?;

    // 4. Save, load back, and classify the test set with both.
    let path = std::env::temp_dir().join("seqnet_custom_layer_example.safetensors");
    model.save(&path)?;
    let mut loaded = Model::load(&path)?;
    let mut model = model;
    let test = Arc::new(test);
    let opts = PredictOptions::default();
    let a = model.classify(test.clone(), &opts)?;
    let b = loaded.classify(test.clone(), &opts)?;
    assert_eq!(a, b, "the loaded model classifies as the trained one");
    let labels: Vec<usize> = (0..test.len())
        .map(|i| match test.read(i).map(|o| o.target) {
            Ok(Target::Class(c)) => c,
            _ => usize::MAX,
        })
        .collect();
    let correct = a
        .iter()
        .zip(&labels)
        .filter(|(p, l)| p.classes[0] == **l)
        .count();
    println!(
        "test accuracy {:.2}% ({correct}/{}), saved and loaded from {}",
        100.0 * correct as f64 / labels.len() as f64,
        labels.len(),
        path.display()
    );
    std::fs::remove_file(&path).ok();
    Ok(())
}
