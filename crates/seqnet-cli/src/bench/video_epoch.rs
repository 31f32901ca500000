//! `video-epoch`: whole training epochs of the seed's video network (the
//! network of [`super::video`], 4 classes) as a user runs them: 400 generated
//! videos of 8–14 frames of 28×28×1 (the `seqnet generate-videos` generator,
//! seed 7) written to a datastore folder, read back through a
//! [`FolderDatastore`], `train_network` with mini-batch 16, adam (learning rate
//! 1e-3), shuffling every epoch, global L2 gradient clipping at 2, no
//! validation, no checkpoints, no verbose output. One repetition is one epoch
//! (25 iterations); the first epoch is the warm-up.
//!
//! PyTorch's side is `bench/video_epoch.py` (packed sequences, 2 threads) on the
//! same folder, which [`write_videos`] leaves at the path the line prints.

use super::{line, Timings};
use crate::{CliError, Result};
use seqnet_core::layers::InputSize;
use seqnet_core::templates::{Template, TemplateOptions};
use seqnet_data::synthetic::SyntheticVideos;
use seqnet_data::{Datastore, FolderDatastore};
use seqnet_train::TrainingOptions;
use seqnet_train::{GradientThresholdMethod, Shuffle, Solver, Trainer, TrainingEvent};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Epochs timed after the warm-up epoch.
const REPS: usize = 5;

/// The generator settings of the workload's videos.
pub fn videos() -> SyntheticVideos {
    SyntheticVideos {
        count: 400,
        classes: 4,
        min_frames: 8,
        max_frames: 14,
        size: 28,
        seed: 7,
        ..SyntheticVideos::default()
    }
}

/// Writes the workload's videos to `dir` (labels.csv and one `.npy` per
/// video) unless a previous run left them there.
pub fn write_videos(dir: &Path) -> Result<()> {
    if dir.join("labels.csv").is_file() {
        return Ok(());
    }
    videos().write(dir)?;
    Ok(())
}

/// The folder the workload's videos go to: `$SEQNET_BENCH_DIR/video-epoch`,
/// or the system's temporary folder.
pub fn folder() -> PathBuf {
    std::env::var_os("SEQNET_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join("seqnet-bench-video-epoch")
}

/// The training options of the workload, training for `epochs` epochs.
pub fn options(epochs: usize) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .initial_learn_rate(1e-3)
        .mini_batch_size(16)
        .max_epochs(epochs)
        .shuffle(Shuffle::EveryEpoch)
        .gradient_threshold(2.0)
        .gradient_threshold_method(GradientThresholdMethod::GlobalL2norm)
        .verbose(false)
        .seed(0)
}

/// Times the workload and returns its result line.
pub fn run() -> Result<String> {
    let dir = folder();
    write_videos(&dir)?;
    let train: Arc<dyn Datastore> = Arc::new(FolderDatastore::open(&dir)?);
    let graph = Template::Video.graph(&TemplateOptions {
        input: Some(InputSize::Image([28, 28, 1])),
        hidden: Some(200),
        outputs: Some(4),
        ..Default::default()
    })?;
    let mut marks = Vec::with_capacity(REPS + 2);
    Trainer::new(options(REPS + 1))
        .on_event(|e| {
            if matches!(
                e,
                TrainingEvent::Started { .. } | TrainingEvent::EpochFinished { .. }
            ) {
                marks.push(Instant::now());
            }
        })
        .train(&graph, train, None)
        .map_err(CliError::from)?;
    // marks[0] is the start, marks[1] the end of the warm-up epoch.
    let epochs: Vec<f64> = marks
        .windows(2)
        .skip(1)
        .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3)
        .collect();
    let t = Timings(epochs);
    Ok(line(
        "video-epoch",
        &t,
        None,
        &format!("videos={}", dir.display()),
    ))
}
