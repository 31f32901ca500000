//! What a `Trainer` tells its observers, in which order, and why training
//! stopped: the end of the epochs, an observer's request, the stop flag.

use ndarray::Array3;
use seqnet_core::layers::*;
use seqnet_core::{Activation, LayerGraph, Network};
use seqnet_data::{Chunk, MiniBatch};
use seqnet_train::*;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

/// Three mini-batches of one chunk each: a regression per step.
fn batches(shift: f32) -> Vec<MiniBatch> {
    (0..3)
        .map(|k| {
            let x = Array3::from_shape_fn((2, 4, 2), |(t, b, c)| {
                ((t + 2 * b + 3 * c + k) % 5) as f32 * 0.2 - 0.4 + shift
            });
            let y = Array3::from_shape_fn((2, 4, 1), |(t, b, _)| x[[t, b, 0]] - x[[t, b, 1]]);
            MiniBatch {
                indices: (0..4).collect(),
                chunks: vec![Chunk {
                    inputs: Activation::sequence(x.into_dyn(), None).unwrap(),
                    targets: Some(Activation::sequence(y.into_dyn(), None).unwrap()),
                }],
            }
        })
        .collect()
}

fn net() -> Network {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(2).into(),
        FullyConnected::new(1).into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    Network::new(&g, 1).unwrap()
}

fn tmp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seqnet-events-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Each event as a short word: `I3` iteration 3, `V3` validated after it,
/// `E1` epoch 1 ended, `C3` checkpoint after iteration 3, …
#[derive(Default)]
struct Log(Vec<String>);

impl TrainingObserver for Log {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        let word = match event {
            TrainingEvent::Started {
                max_epochs,
                validating,
                iterations_done,
            } => format!("Start({max_epochs},{validating},{iterations_done})"),
            TrainingEvent::Iteration(i) => format!("I{}", i.iteration),
            TrainingEvent::Validated { iteration, .. } => format!("V{iteration}"),
            TrainingEvent::EpochFinished { epoch, .. } => format!("E{epoch}"),
            TrainingEvent::CheckpointWritten { path, iteration } => {
                assert!(path.is_file(), "{} is written", path.display());
                format!("C{iteration}")
            }
            TrainingEvent::Stopped { reason, record } => {
                format!("Stop({reason}, {} iterations)", record.iterations.len())
            }
            _ => "?".into(),
        };
        self.0.push(word);
    }
}

fn options(dir: &std::path::Path) -> TrainingOptions {
    TrainingOptions::new(Solver::Adam)
        .max_epochs(2)
        .validation_frequency(3)
        .checkpoint_path(dir)
        .seed(5)
}

#[test]
fn observers_see_every_event_in_order() {
    let dir = tmp("order");
    let mut log = Log::default();
    let mut closure_saw = 0;
    let mut n = net();
    let record = Trainer::new(options(&dir))
        .observer(&mut log)
        .on_event(|_| closure_saw += 1)
        .fit(
            &mut n,
            &mut InMemoryBatches(batches(0.0)),
            Some(&mut InMemoryBatches(batches(0.1))),
        )
        .unwrap();
    // 3 iterations per epoch; validations at the first iteration, every
    // third, and the last; a checkpoint after each epoch.
    let want = [
        "Start(2,true,0)",
        "I1",
        "V1",
        "I2",
        "I3",
        "V3",
        "E1",
        "C3",
        "I4",
        "I5",
        "I6",
        "V6",
        "E2",
        "C6",
        "Stop(max epochs completed, 6 iterations)",
    ];
    assert_eq!(log.0, want);
    assert_eq!(
        closure_saw,
        want.len(),
        "a second observer sees them all too"
    );
    assert_eq!(record.stop_reason, Some(StopReason::MaxEpochs));
    assert_eq!(record.checkpoint, None);
    assert!(record.final_validation.is_some());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "checkpoint_epoch0001.safetensors",
            "checkpoint_epoch0002.safetensors"
        ]
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Asks to stop once it has seen `after` iterations.
struct StopAfter {
    after: usize,
    seen: usize,
}

impl TrainingObserver for StopAfter {
    fn on_event(&mut self, event: &TrainingEvent<'_>) {
        if let TrainingEvent::Iteration(_) = event {
            self.seen += 1;
        }
    }
    fn wants_stop(&self) -> bool {
        self.seen >= self.after
    }
}

#[test]
fn an_observer_can_stop_training_between_mini_batches() {
    let mut log = Log::default();
    let mut n = net();
    let record = Trainer::new(TrainingOptions::new(Solver::Adam).max_epochs(5))
        .observer(&mut log)
        .observer(StopAfter { after: 4, seen: 0 })
        .fit(
            &mut n,
            &mut InMemoryBatches(batches(0.0)),
            Some(&mut InMemoryBatches(batches(0.1))),
        )
        .unwrap();
    assert_eq!(record.stop_reason, Some(StopReason::StopRequested));
    assert_eq!(record.iterations.len(), 4);
    // A normal end: the network that is returned is validated once more.
    assert!(record.final_validation.is_some());
    assert_eq!(
        log.0.last().map(String::as_str),
        Some("Stop(stopped by an observer, 4 iterations)")
    );
}

#[test]
fn the_stop_flag_interrupts_with_a_checkpoint_to_resume_from() {
    let dir = tmp("interrupt");
    let stop = AtomicBool::new(false);
    let mut log = Log::default();
    let mut n = net();
    let record = Trainer::new(options(&dir))
        .on_event(|e| {
            if let TrainingEvent::Iteration(i) = e {
                if i.iteration == 4 {
                    stop.store(true, Ordering::SeqCst);
                }
            }
        })
        .observer(&mut log)
        .stop_flag(&stop)
        .fit(&mut n, &mut InMemoryBatches(batches(0.0)), None)
        .unwrap();
    assert_eq!(record.stop_reason, Some(StopReason::Interrupted));
    let want = [
        "Start(2,false,0)",
        "I1",
        "I2",
        "I3",
        "E1",
        "C3",
        "I4",
        "C4",
        "Stop(interrupted, 4 iterations)",
    ];
    assert_eq!(log.0, want);
    let checkpoint = record.checkpoint.expect("named in the record");
    assert_eq!(
        checkpoint.file_name().unwrap(),
        "checkpoint_iteration000004.safetensors"
    );
    let (_, state) = checkpoint::load_checkpoint(&checkpoint).unwrap();
    assert_eq!(
        (state.epoch, state.batches_done, state.iteration),
        (1, 1, 4)
    );
    assert_eq!(state.record.stop_reason, None, "a checkpoint is mid-run");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_stop_flag_without_a_checkpoint_folder_is_refused() {
    let stop = AtomicBool::new(false);
    let mut n = net();
    let err = Trainer::new(TrainingOptions::new(Solver::Adam).max_epochs(1))
        .stop_flag(&stop)
        .fit(&mut n, &mut InMemoryBatches(batches(0.0)), None)
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::InvalidOption {
                option: "CheckpointPath",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn verbose_output_follows_the_verbose_options() {
    let run = |verbose: bool| {
        let mut out = Vec::new();
        let options = TrainingOptions::new(Solver::Adam)
            .max_epochs(2)
            .verbose(verbose)
            .verbose_frequency(4);
        Trainer::new(options)
            .verbose_output(&mut out)
            .fit(&mut net(), &mut InMemoryBatches(batches(0.0)), None)
            .unwrap();
        String::from_utf8(out).unwrap()
    };
    let table = run(true);
    // Rows at iterations 1 and 4 (every 4th), and the last one (6).
    let rows: Vec<&str> = table
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains("e-"))
        .collect();
    assert_eq!(rows.len(), 3, "{table}");
    for (row, iteration) in rows.iter().zip([1, 4, 6]) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        assert_eq!(cells[2], iteration.to_string(), "{row}");
    }
    assert!(table.ends_with("Training finished: max epochs completed.\n"));
    assert_eq!(run(false), "", "Verbose off: nothing written");
}
