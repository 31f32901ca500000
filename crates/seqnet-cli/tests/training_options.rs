//! The `seqnet` binary's training options of issue 15's second part: the
//! last partial mini-batch, metrics, learn-rate schedules, the live progress
//! picture, the confusion matrix of `predict`, and checkpoints that keep only
//! the latest K files (and resume to the same weights).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    fails, new_net, ok_both as ok, p, png_size, root, run, tmp, train_args, weights, BIN,
};

fn vowels(split: &str) -> String {
    root()
        .join(format!("data/japanese_vowels/JapaneseVowels_{split}.ts"))
        .display()
        .to_string()
}

/// A small Japanese Vowels network (12 features, 9 classes) in `dir`.
fn vowels_net(dir: &Path) -> String {
    new_net(&dir.join("net.json"), "seq2label --hidden 16")
}

/// `seqnet train` on the Japanese Vowels training set with `extra` flags.
fn train_vowels(net: &str, out: &Path, extra: &[&str]) -> (String, String) {
    let mut args = vec!["train", "--net", net, "--out", out.to_str().unwrap()];
    let data = vowels("TRAIN");
    args.extend(["--data", &data, "--seed", "3", "--shuffle", "every-epoch"]);
    args.extend(extra);
    ok(&args)
}

/// The rows of MATLAB's verbose table: its cells, trimmed.
fn table_rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|="))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect()
}

#[test]
fn the_last_partial_mini_batch_is_kept_unless_discarded() {
    let dir = tmp("last");
    let net = vowels_net(&dir);
    let out = dir.join("m.safetensors");
    // 270 observations in mini-batches of 100: 100, 100 and 70.
    let flags = ["--epochs", "2", "--mini-batch-size", "100", "--quiet"];
    let (kept, _) = train_vowels(&net, &out, &flags);
    assert!(
        kept.starts_with("trained 2 epochs (6 iterations)"),
        "{kept}"
    );
    let mut discard = flags.to_vec();
    discard.extend(["--last-mini-batch", "discard"]);
    let (discarded, _) = train_vowels(&net, &out, &discard);
    assert!(
        discarded.starts_with("trained 2 epochs (4 iterations)"),
        "{discarded}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metrics_reach_the_table_and_the_results() {
    let dir = tmp("metrics");
    let net = vowels_net(&dir);
    let out = dir.join("m.safetensors");
    let test = vowels("TEST");
    let (results, table) = train_vowels(
        &net,
        &out,
        &[
            "--epochs",
            "2",
            "--mini-batch-size",
            "54",
            "--validation",
            &test,
            "--metrics",
            "accuracy,precision,recall,fscore,auc",
            "--verbose",
        ],
    );
    let rows = table_rows(&table);
    let titles: Vec<String> = rows[0]
        .iter()
        .zip(&rows[1])
        .map(|(a, b)| format!("{a} {b}"))
        .collect();
    for want in [
        "Mini-batch F-Score",
        "Validation F-Score",
        "Mini-batch AUC",
        "Validation Precision",
        "Mini-batch Recall",
    ] {
        assert!(
            titles.iter().any(|t| t == want),
            "no column {want}: {titles:?}"
        );
    }
    // Accuracy is not shown twice.
    assert_eq!(
        titles.iter().filter(|t| t.ends_with("Accuracy")).count(),
        2,
        "{titles:?}"
    );
    let validation = results
        .lines()
        .find(|l| l.starts_with("validation loss"))
        .unwrap_or_else(|| panic!("no validation line: {results}"));
    for name in ["precision", "recall", "fscore", "auc"] {
        let value: f64 = validation
            .split(", ")
            .find_map(|f| f.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}: {validation}"))
            .parse()
            .unwrap();
        assert!((0.0..=1.0).contains(&value), "{validation}");
    }
    // A regression metric for a classifier, and an unknown name.
    let err = fails(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&out),
        &["--metrics", "mae"],
    ));
    assert!(err.contains("Metrics") && err.contains("'mae'"), "{err}");
    let o = run(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&out),
        &["--metrics", "r2"],
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown metric 'r2'"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn regression_metrics_on_forecasting_data() {
    let dir = tmp("regress");
    let data = dir.join("series");
    ok(&[
        "generate-series",
        "--out",
        &p(&data),
        "--count",
        "8",
        "--steps",
        "40",
        "--seed",
        "1",
    ]);
    let net = dir.join("net.json");
    new_net(
        &net,
        "seq2seq-regress --features 1 --responses 1 --hidden 8",
    );
    let (results, _) = ok(&train_args(
        &p(&net),
        &p(&data),
        &p(&dir.join("m.safetensors")),
        &[
            "--epochs",
            "2",
            "--mini-batch-size",
            "4",
            "--metrics",
            "rmse,mae,mape",
            "--quiet",
        ],
    ));
    let last = results.lines().nth(1).unwrap();
    let value = |name: &str| -> f64 {
        last.split(", ")
            .find_map(|f| f.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("no {name}: {last}"))
            .trim_end_matches('%')
            .parse()
            .unwrap()
    };
    // MAE ≤ RMSE always; both positive.
    assert!(
        value("mae") > 0.0 && value("mae") <= value("rmse") + 1e-4,
        "{last}"
    );
    assert!(value("mape") > 0.0, "{last}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The base learning rate of each iteration, from a verbose table with a row per iteration.
fn rates(table: &str) -> Vec<f64> {
    table_rows(table)
        .iter()
        .skip(2)
        .map(|r| r.last().unwrap().parse().unwrap())
        .collect()
}

#[test]
fn learn_rate_schedules_follow_their_formulas() {
    let dir = tmp("schedules");
    let net = vowels_net(&dir);
    let out = dir.join("m.safetensors");
    let options = dir.join("options.json");
    std::fs::write(&options, r#"{"verboseFrequency": 1}"#).unwrap();
    let flags = |schedule: &'static str| {
        vec![
            "--options".to_string(),
            p(&options),
            "--learn-rate".into(),
            "0.001".into(),
            "--mini-batch-size".into(),
            "90".into(),
            "--epochs".into(),
            "4".into(),
            "--verbose".into(),
            "--learn-rate-schedule".into(),
            schedule.into(),
        ]
    };
    let train = |schedule: &'static str| {
        let f = flags(schedule);
        let f: Vec<&str> = f.iter().map(String::as_str).collect();
        rates(&train_vowels(&net, &out, &f).1)
    };
    let close = |got: &[f64], want: &[f64]| {
        assert_eq!(got.len(), want.len(), "{got:?}");
        for (g, w) in got.iter().zip(want) {
            assert!(
                (g - w).abs() <= 1e-4 * w.abs().max(1e-7),
                "{got:?} != {want:?}"
            );
        }
    };
    // 3 iterations per epoch, 12 in all.
    // Warm-up over 4 iterations from 0: 0, ¼, ½, ¾ of the rate, then all of it.
    let mut want = vec![0.0, 0.25e-3, 0.5e-3, 0.75e-3];
    want.extend([1e-3; 8]);
    close(&train("warmup:numSteps=4"), &want);
    // Exponential by epoch, halving every 2 epochs: 0.5^(e/2).
    let per_epoch = |f: [f64; 4]| f.iter().flat_map(|v| [v * 1e-3; 3]).collect::<Vec<f64>>();
    close(
        &train("exponential:dropFactor=0.5,period=2"),
        &per_epoch([1.0, 0.5f64.sqrt(), 0.5, 0.5f64.powf(1.5)]),
    );
    // Cosine over MaxEpochs = 4: ½(1 + cos(πe/4)).
    close(
        &train("cosine"),
        &per_epoch([
            1.0,
            0.5 + 0.5 * 0.5f64.sqrt(),
            0.5,
            0.5 - 0.5 * 0.5f64.sqrt(),
        ]),
    );
    // Polynomial, power 2, to 0 over 4 epochs: (1 − e/4)².
    close(
        &train("polynomial:power=2"),
        &per_epoch([1.0, 0.5625, 0.25, 0.0625]),
    );
    // Cyclical by iteration, 1 → 3 over 1 of 4 steps, back over 3.
    close(
        &train("cyclical:maxFactor=3,period=4,stepRatio=0.25,frequencyUnit=iteration"),
        &[1.0, 3.0, 3.0 - 2.0 / 3.0, 3.0 - 4.0 / 3.0]
            .repeat(3)
            .iter()
            .map(|f| f * 1e-3)
            .collect::<Vec<f64>>(),
    );
    let o = run(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&out),
        &["--learn-rate-schedule", "warmup:numSteps=0"],
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("NumSteps"));
    // In an options file too, named by MATLAB's property name.
    std::fs::write(
        &options,
        r#"{"learnRateSchedule": {"type": "cyclical", "stepRatio": 2}}"#,
    )
    .unwrap();
    let err = fails(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&out),
        &["--options", &p(&options)],
    ));
    assert!(err.contains("StepRatio"), "{err}");
    let o = run(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&out),
        &["--learn-rate-schedule", "cosine:perod=3"],
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no property 'perod'"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_progress_picture_is_drawn_while_training_runs() {
    let dir = tmp("live");
    let net = vowels_net(&dir);
    let plot = dir.join("pictures/progress.png");
    let data = vowels("TRAIN");
    let mut child = Command::new(BIN)
        .args([
            "train",
            "--net",
            &net,
            "--data",
            &data,
            "--out",
            &p(&dir.join("m.safetensors")),
            "--epochs",
            "150",
            "--mini-batch-size",
            "27",
            "--quiet",
            "--plot",
            &p(&plot),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let mut seen_while_running = false;
    while child.try_wait().unwrap().is_none() {
        if plot.exists() {
            seen_while_running = true;
            // A whole picture, never a half-written one.
            let bytes = std::fs::read(&plot).unwrap();
            assert!(bytes.starts_with(b"\x89PNG") && bytes.ends_with(b"IEND\xaeB`\x82"));
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "training did not start"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = child.wait().unwrap();
    assert!(status.success());
    assert!(
        seen_while_running,
        "the picture appeared only after training"
    );
    // Only the picture is left in its folder: no temporary files.
    let names: Vec<String> = std::fs::read_dir(plot.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["progress.png"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn predict_draws_the_confusion_matrix_of_any_classification() {
    let dir = tmp("confusion");
    // Sequence to label.
    let net = vowels_net(&dir);
    let model = dir.join("m.safetensors");
    train_vowels(
        &net,
        &model,
        &["--epochs", "2", "--mini-batch-size", "27", "--quiet"],
    );
    let picture = dir.join("vowels.png");
    let (out, _) = ok(&[
        "predict",
        "--model",
        &p(&model),
        "--data",
        &vowels("TEST"),
        "--out",
        &p(&dir.join("p.csv")),
        "--confusion",
        &p(&picture),
    ]);
    assert!(out.contains("confusion matrix drawn to"), "{out}");
    assert!(
        out.lines().last().unwrap().starts_with("accuracy="),
        "{out}"
    );
    let (w, h) = png_size(&picture);
    assert!(w > 300 && h > 300, "{w}x{h}");
    // Sequence to sequence: per step.
    let waves = dir.join("waves");
    ok(&[
        "generate-waveforms",
        "--out",
        &p(&waves),
        "--count",
        "12",
        "--seed",
        "1",
    ]);
    let net = dir.join("waves.json");
    new_net(&net, "seq2seq-class --features 1 --classes 3 --hidden 8");
    let model = dir.join("waves.safetensors");
    ok(&train_args(
        &p(&net),
        &p(&waves),
        &p(&model),
        &["--epochs", "1", "--mini-batch-size", "6", "--quiet"],
    ));
    let picture = dir.join("waves.svg");
    let (out, _) = ok(&[
        "predict",
        "--model",
        &p(&model),
        "--data",
        &p(&waves),
        "--out",
        &p(&dir.join("w.csv")),
        "--confusion",
        &p(&picture),
    ]);
    let steps: usize = out
        .lines()
        .last()
        .and_then(|l| l.split_whitespace().find_map(|w| w.strip_prefix("n=")))
        .unwrap()
        .parse()
        .unwrap();
    let svg = std::fs::read_to_string(&picture).unwrap();
    // The matrix's cells hold every step: the three class names and the total.
    for name in ["sine", "square", "sawtooth"] {
        assert!(svg.contains(name), "no {name} in the picture");
    }
    assert!(steps > 12, "{out}");
    // No picture for a name that is no picture.
    let err = fails(&[
        "predict",
        "--model",
        &p(&model),
        "--data",
        &p(&waves),
        "--out",
        &p(&dir.join("w.csv")),
        "--confusion",
        &p(&dir.join("c.jpg")),
    ]);
    assert!(err.contains("--confusion"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The file names in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn checkpoints_keep_the_latest_k_and_resume_to_the_same_weights() {
    let dir = tmp("checkpoints");
    let net = vowels_net(&dir);
    let flags = ["--epochs", "5", "--mini-batch-size", "90", "--quiet"];
    // The default: the latest checkpoint only.
    let whole = dir.join("whole.safetensors");
    train_vowels(&net, &whole, &flags);
    assert_eq!(
        files(&dir.join("whole.safetensors.checkpoints")),
        ["checkpoint_epoch0005.safetensors"]
    );
    // The two latest.
    let two = dir.join("two.safetensors");
    let mut keep2 = flags.to_vec();
    keep2.extend(["--checkpoint-keep", "2"]);
    train_vowels(&net, &two, &keep2);
    let folder = dir.join("two.safetensors.checkpoints");
    assert_eq!(
        files(&folder),
        [
            "checkpoint_epoch0004.safetensors",
            "checkpoint_epoch0005.safetensors"
        ]
    );
    // Resuming from the older one ends where the uninterrupted run did.
    let resumed = dir.join("resumed.safetensors");
    ok(&[
        "train",
        "--resume",
        &p(&folder.join("checkpoint_epoch0004.safetensors")),
        "--data",
        &vowels("TRAIN"),
        "--out",
        &p(&resumed),
        "--quiet",
    ]);
    assert_eq!(weights(&resumed), weights(&whole), "resumed weights differ");
    // Every second epoch, all kept.
    let every2 = dir.join("every2.safetensors");
    let mut f = flags.to_vec();
    f.extend(["--checkpoint-frequency", "2", "--checkpoint-keep", "all"]);
    train_vowels(&net, &every2, &f);
    assert_eq!(
        files(&dir.join("every2.safetensors.checkpoints")),
        [
            "checkpoint_epoch0002.safetensors",
            "checkpoint_epoch0004.safetensors"
        ]
    );
    // Every 4 iterations (a mini-batch each): after iterations 4, 8 and 12,
    // the latest 2 kept.
    let iterations = dir.join("iterations.safetensors");
    let mut f = flags.to_vec();
    f.extend([
        "--checkpoint-frequency",
        "4",
        "--checkpoint-frequency-unit",
        "iteration",
        "--checkpoint-keep",
        "2",
    ]);
    train_vowels(&net, &iterations, &f);
    assert_eq!(
        files(&dir.join("iterations.safetensors.checkpoints")),
        [
            "checkpoint_iteration000008.safetensors",
            "checkpoint_iteration000012.safetensors"
        ]
    );
    // Iteration 8 is in the middle of epoch 3: resuming there ends where the
    // uninterrupted run did too.
    let from_iteration = dir.join("from_iteration.safetensors");
    ok(&[
        "train",
        "--resume",
        &p(&dir.join("iterations.safetensors.checkpoints/checkpoint_iteration000008.safetensors")),
        "--data",
        &vowels("TRAIN"),
        "--out",
        &p(&from_iteration),
        "--quiet",
    ]);
    assert_eq!(
        weights(&from_iteration),
        weights(&whole),
        "resumed weights differ"
    );
    let o = run(&train_args(
        &net,
        &vowels("TRAIN"),
        &p(&whole),
        &["--checkpoint-keep", "0"],
    ));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--checkpoint-keep"));
    std::fs::remove_dir_all(&dir).unwrap();
}
