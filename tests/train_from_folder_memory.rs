//! Training streams from a folder datastore larger than memory allows: 200 MiB of
//! `.npy` files are trained on while the whole process stays under 120 MiB.
//! (This file holds one test so that its process measures only itself.)

use ndarray::Array2;
use ndarray_npy::write_npy;
use seqnet::data::FolderDatastore;
use seqnet::prelude::*;
use seqnet::train::Shuffle;
use std::sync::Arc;

const FILES: usize = 200;
const STEPS: usize = 64;
const CHANNELS: usize = 4096; // one file: 64 × 4096 f32 = 1 MiB
const BOUND_MIB: f64 = 120.0;

/// The process's peak resident memory (VmHWM), in MiB.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmHWM line");
    kib / 1024.0
}

#[test]
fn training_from_a_folder_larger_than_the_memory_bound() {
    let dir = std::env::temp_dir().join(format!("seqnet-folder-train-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut csv = String::from("file,label\n");
    for i in 0..FILES {
        let class = i % 2;
        let x = Array2::from_shape_fn((STEPS, CHANNELS), |(t, c)| {
            ((t * 31 + c * 7 + i * 13) % 97) as f32 / 97.0 - 0.5 + class as f32 * 0.3
        });
        let name = format!("obs_{i:04}.npy");
        write_npy(dir.join(&name), &x).unwrap();
        csv.push_str(&format!(
            "{name},{}\n",
            if class == 0 { "low" } else { "high" }
        ));
    }
    std::fs::write(dir.join("labels.csv"), csv).unwrap();
    let data_mib = (FILES * STEPS * CHANNELS * 4) as f64 / (1024.0 * 1024.0);

    let store = FolderDatastore::open(&dir).unwrap();
    let graph = LayerGraph::from_layers(vec![
        SequenceInput::new(CHANNELS).into(),
        Lstm::new(8).output_mode(OutputMode::Last).into(),
        FullyConnected::new(2).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap();
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(2)
        .mini_batch_size(4)
        .shuffle(Shuffle::EveryEpoch)
        .seed(1);
    let (_, record) = train_network(&graph, Arc::new(store), None, &options, &mut |_| {}).unwrap();
    let peak = peak_rss_mib();
    std::fs::remove_dir_all(&dir).unwrap();
    println!("data {data_mib:.0} MiB, peak resident memory {peak:.1} MiB (bound {BOUND_MIB} MiB)");
    assert_eq!(record.iterations.len(), 2 * FILES / 4);
    assert!(record.iterations.iter().all(|i| i.loss.is_finite()));
    assert!(
        BOUND_MIB < data_mib,
        "the bound must be smaller than the data"
    );
    assert!(
        peak < BOUND_MIB,
        "peak resident memory {peak:.1} MiB exceeds {BOUND_MIB} MiB"
    );
}
