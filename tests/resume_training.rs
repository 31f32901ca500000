//! Training stopped part way (as Ctrl-C does) and resumed from its checkpoint
//! reaches the same final weights, bit for bit, as an uninterrupted run with the
//! same seed; so does resuming from an end-of-epoch checkpoint.

use seqnet::data::{InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{resume_training, Shuffle, StopReason, Trainer, TrainingEvent};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn data(name: &str) -> Arc<InMemoryDatastore> {
    let path = format!(
        "{}/data/japanese_vowels/JapaneseVowels_{name}.ts",
        env!("CARGO_MANIFEST_DIR")
    );
    Arc::new(InMemoryDatastore::open_ts(path, &TsOptions::default()).unwrap())
}

fn graph() -> LayerGraph {
    LayerGraph::from_layers(vec![
        SequenceInput::new(12)
            .normalization(Normalization::Zscore)
            .into(),
        Lstm::new(20).output_mode(OutputMode::Sequence).into(),
        Dropout::new(0.3).into(),
        Gru::new(10).output_mode(OutputMode::Last).into(),
        FullyConnected::new(9).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap()
}

fn bits(model: &seqnet::train::Model) -> Vec<u32> {
    model
        .network
        .learnables()
        .iter()
        .flat_map(|(_, p)| p.value.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect()
}

fn options(dir: &PathBuf) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .max_epochs(4)
        .mini_batch_size(32)
        .shuffle(Shuffle::EveryEpoch)
        .gradient_threshold(1.0)
        .validation_frequency(5)
        .output_network(seqnet::train::OutputNetwork::BestValidationLoss)
        .verbose(false)
        .seed(3)
        .checkpoint_path(dir)
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let dir = std::env::temp_dir().join(format!("seqnet-resume-{}", std::process::id()));
    let opts = options(&dir);
    let (whole, whole_record) = Trainer::new(opts.clone())
        .train(&graph(), data("TRAIN"), Some(data("TEST")))
        .unwrap();

    let stop = AtomicBool::new(false);
    let (_, record) = Trainer::new(opts.clone())
        .on_event(|e| {
            if let TrainingEvent::Iteration(i) = e {
                if i.iteration == 13 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .stop_flag(&stop)
        .train(&graph(), data("TRAIN"), Some(data("TEST")))
        .unwrap();
    assert_eq!(record.stop_reason, Some(StopReason::Interrupted));
    assert_eq!(record.iterations.len(), 13);
    let checkpoint = record.checkpoint.clone().expect("a checkpoint was written");
    let (resumed, resumed_record) = resume_training(
        &checkpoint,
        data("TRAIN"),
        Some(data("TEST")),
        &mut |_| {},
        None,
    )
    .unwrap();
    assert_eq!(
        resumed_record.iterations.len(),
        whole_record.iterations.len()
    );
    assert_eq!(
        bits(&resumed),
        bits(&whole),
        "resumed weights differ from the uninterrupted run's"
    );

    // From the end of epoch 2.
    let epoch2 = dir.join("checkpoint_epoch0002.safetensors");
    let (from_epoch, _) = resume_training(
        &epoch2,
        data("TRAIN"),
        Some(data("TEST")),
        &mut |_| {},
        None,
    )
    .unwrap();
    assert_eq!(bits(&from_epoch), bits(&whole));

    // Other options would not reach the same weights: refused, naming one.
    let err = Trainer::new(opts.clone().seed(4))
        .resume(&epoch2, data("TRAIN"), Some(data("TEST")))
        .err()
        .expect("other options refused");
    assert!(
        err.to_string().contains("epoch0002") && err.to_string().contains("seed"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_model_file_is_not_a_checkpoint() {
    let dir = std::env::temp_dir().join(format!("seqnet-resume-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let opts = TrainingOptions::new(Solver::Adam)
        .max_epochs(1)
        .mini_batch_size(64)
        .verbose(false);
    let (model, _) =
        seqnet::train::train_network(&graph(), data("TRAIN"), None, &opts, &mut |_| {}).unwrap();
    let path = dir.join("model.safetensors");
    model.save(&path).unwrap();
    let err = resume_training(&path, data("TRAIN"), None, &mut |_| {}, None)
        .err()
        .expect("refused");
    assert!(err.to_string().contains("not a checkpoint"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
