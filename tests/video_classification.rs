//! Video classification end to end, on a smaller and faster configuration than
//! `examples/video_classification.rs`: the seed's folding, convolution, batch
//! normalization, unfolding, flatten and LSTM network, trained on synthetic
//! videos whose class only motion reveals (4 directions, 8 to 12 frames,
//! 640 training videos, 2 epochs), must classify new videos far above chance;
//! and the trained network must give a video the same scores alone as inside
//! a padded mini-batch of longer and shorter videos (batch normalization
//! predicts with its running statistics, so the other videos cannot matter).
//!
//! Run: `cargo test --release --test video_classification` (about 15–30 s,
//! most of it training, once for both tests).

use seqnet::data::synthetic::SyntheticVideos;
use seqnet::data::FolderOptions;
use seqnet::prelude::*;
use seqnet::train::{predict_sequences, PredictOptions, Shuffle};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

const CLASSES: usize = 4;

/// The seed's video network, exactly as `examples/video_classification.rs` builds it.
fn video_network(classes: usize) -> LayerGraph {
    let layers: Vec<Layer> = vec![
        SequenceInput::image([28, 28, 1]).name("input").into(),
        SequenceFolding::new().name("fold").into(),
        Convolution2d::new([5, 5], 20).name("conv").into(),
        BatchNormalization::new().name("bn").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        Lstm::new(200)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(classes).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classification").into(),
    ];
    let mut graph = LayerGraph::from_layers(layers).unwrap();
    graph
        .connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    graph
}

/// A fresh folder under Cargo's temporary directory for integration tests.
fn folder(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("video_classification_{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// The small configuration: 4 directions, 8 to 12 frames.
fn videos(count: usize, seed: u64) -> SyntheticVideos {
    SyntheticVideos {
        count,
        classes: CLASSES,
        min_frames: 8,
        max_frames: 12,
        seed,
        ..Default::default()
    }
}

/// The trained model and its test accuracy, trained once for all tests.
fn trained() -> &'static Mutex<(Model, f64)> {
    static MODEL: OnceLock<Mutex<(Model, f64)>> = OnceLock::new();
    MODEL.get_or_init(|| {
        let (train_dir, test_dir) = (folder("train"), folder("test"));
        let names = videos(640, 1).write(&train_dir).unwrap();
        videos(200, 2).write(&test_dir).unwrap();
        let options = FolderOptions {
            classes: Some(names),
            ..Default::default()
        };
        let train = FolderDatastore::open_with(&train_dir, options.clone()).unwrap();
        let test = FolderDatastore::open_with(&test_dir, options).unwrap();
        let training = TrainingOptions::new(Solver::Adam)
            .initial_learn_rate(2e-4)
            .gradient_threshold(1.0)
            .max_epochs(2)
            .mini_batch_size(16)
            .shuffle(Shuffle::EveryEpoch)
            .verbose(false)
            .seed(0);
        let (mut model, record) = train_network(
            &video_network(CLASSES),
            Arc::new(train),
            None,
            &training,
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(record.iterations.len(), 80);
        let labels: Vec<usize> = (0..test.len())
            .map(|i| match test.read(i).unwrap().target {
                Target::Class(c) => c,
                t => panic!("{t:?}"),
            })
            .collect();
        let predicted = model
            .classify(Arc::new(test), &PredictOptions::default())
            .unwrap();
        let correct = predicted
            .iter()
            .zip(&labels)
            .filter(|(p, l)| p.classes[0] == **l)
            .count();
        let _ = std::fs::remove_dir_all(train_dir.parent().unwrap());
        Mutex::new((model, correct as f64 / labels.len() as f64))
    })
}

#[test]
fn classifies_motion_far_above_chance() {
    let accuracy = trained().lock().unwrap().1;
    eprintln!("test accuracy {:.2}%", 100.0 * accuracy);
    // Chance is 25%; this configuration reaches 96% (seed 0).
    assert!(accuracy >= 0.85, "test accuracy {accuracy}");
}

#[test]
fn a_video_scores_the_same_alone_and_inside_a_padded_mini_batch() {
    let mut guard = trained().lock().unwrap();
    let network = &mut guard.0.network;
    // Videos of 8 to 20 frames: shorter and longer than those seen in training.
    let set = SyntheticVideos {
        count: 7,
        classes: CLASSES,
        seed: 3,
        ..Default::default()
    };
    let sequences: Vec<Sequence> = set
        .generate()
        .unwrap()
        .into_iter()
        .map(|v| Sequence::Images(v.frames))
        .collect();
    let lengths: Vec<usize> = sequences.iter().map(Sequence::len).collect();
    assert!(
        lengths.iter().min() < lengths.iter().max(),
        "videos of different lengths: {lengths:?}"
    );
    let alone: Vec<_> = sequences
        .iter()
        .map(|s| {
            predict_sequences(network, std::slice::from_ref(s), &PredictOptions::default())
                .unwrap()
                .remove(0)
        })
        .collect();
    for direction in [PaddingDirection::Right, PaddingDirection::Left] {
        let options = PredictOptions {
            mini_batch_size: sequences.len(),
            padding_direction: direction,
            padding_value: 0.5,
            ..Default::default()
        };
        let batched = predict_sequences(network, &sequences, &options).unwrap();
        for (i, (a, b)) in alone.iter().zip(&batched).enumerate() {
            assert_eq!(a.shape(), [1, CLASSES]);
            assert_eq!(a.shape(), b.shape());
            let diff = (a - b).mapv(f32::abs).fold(0f32, |m, &v| m.max(v));
            assert!(
                diff <= 1e-5,
                "video {i} ({} frames, {direction:?} padding): scores {a} alone, {b} in the batch",
                lengths[i]
            );
        }
    }
}
