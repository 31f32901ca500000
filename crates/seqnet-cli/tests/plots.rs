//! The pictures: written as PNG and SVG, of the right size, with the expected
//! text, and clear errors for bad paths and bad input.
//!
//! Set `SEQNET_PLOTS_DIR` to a folder to keep the pictures for a look.

use std::path::{Path, PathBuf};

use ndarray::Array2;
use seqnet_cli::plots::{activations_heatmap, confusion_matrix, training_progress};
use seqnet_cli::CliError;
use seqnet_train::{IterationInfo, Metrics, StopReason, TrainingRecord};

/// A fresh folder for one test's pictures.
fn out_dir(test: &str) -> PathBuf {
    let dir = match std::env::var_os("SEQNET_PLOTS_DIR") {
        Some(d) => PathBuf::from(d).join(test),
        None => std::env::temp_dir().join(format!("seqnet-plots-{}-{test}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Removes the folder unless the pictures are kept.
fn done(dir: &Path) {
    if std::env::var_os("SEQNET_PLOTS_DIR").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A deterministic pseudo-random number in [0, 1).
fn noise(i: usize) -> f32 {
    let x = (i as u64 + 1)
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((x >> 33) % 10_000) as f32 / 10_000.0
}

/// `epochs` × `per_epoch` iterations with a falling loss, validating every
/// `validate_every` iterations (0: never).
fn record(
    epochs: usize,
    per_epoch: usize,
    validate_every: usize,
    classification: bool,
) -> TrainingRecord {
    let mut iterations = Vec::new();
    for e in 1..=epochs {
        for k in 1..=per_epoch {
            let it = (e - 1) * per_epoch + k;
            let t = it as f32 / (epochs * per_epoch) as f32;
            let loss = 2.2 * (-3.0 * t).exp() + 0.1 + 0.35 * (noise(it) - 0.5);
            let accuracy = (1.0 - 0.9 * (-3.5 * t).exp() - 0.15 * noise(it + 7)).clamp(0.0, 1.0);
            let validation = (validate_every > 0
                && (it == 1 || (it / validate_every) * validate_every == it))
                .then(|| Metrics {
                    loss: 2.0 * (-2.8 * t).exp() + 0.2,
                    accuracy: classification.then_some(1.0 - 0.85 * (-3.0 * t).exp() - 0.05),
                    rmse: (!classification).then_some(1.5 * (-2.5 * t).exp() + 0.3),
                    metrics: Default::default(),
                });
            iterations.push(IterationInfo {
                epoch: e,
                iteration: it,
                loss,
                accuracy: classification.then_some(accuracy),
                rmse: (!classification).then_some(loss.max(0.0).sqrt()),
                learn_rate: 1e-3 * 0.5f32.powi((e / 2) as i32),
                elapsed: it as f64 * 0.37,
                validation,
                metrics: Default::default(),
            });
        }
    }
    let final_validation = iterations.iter().rev().find_map(|i| i.validation);
    TrainingRecord {
        iterations,
        iterations_per_epoch: per_epoch,
        stop_reason: Some(StopReason::MaxEpochs),
        final_validation,
        ..Default::default()
    }
}

fn class_names(n: usize) -> Vec<String> {
    let base = [
        "walking",
        "running",
        "sitting",
        "standing",
        "lying",
        "cycling",
        "climbing stairs",
    ];
    (0..n)
        .map(|i| {
            if i < base.len() {
                base[i].to_string()
            } else {
                format!("class {}", i + 1)
            }
        })
        .collect()
}

/// A confusion matrix of `n` classes with most counts on the diagonal.
fn counts(n: usize) -> Vec<Vec<usize>> {
    (0..n)
        .map(|r| {
            (0..n)
                .map(|c| {
                    if r == c {
                        40 + (noise(r * 31) * 60.0) as usize
                    } else if (r + 1) % n == c || noise(r * 97 + c) > 0.85 {
                        (noise(r * 13 + c * 7) * 12.0) as usize
                    } else {
                        0
                    }
                })
                .collect()
        })
        .collect()
}

/// `t` × `c` activations: waves of both signs.
fn activations(t: usize, c: usize) -> Array2<f32> {
    Array2::from_shape_fn((t, c), |(i, j)| {
        let phase = j as f32 * 0.7;
        (i as f32 * 0.15 + phase).sin() * (1.0 - j as f32 / (c as f32 * 1.5)) * 1.3
    })
}

/// The width and height of a PNG file, checking its signature and decoding it.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).unwrap();
    assert_eq!(
        &bytes[..8],
        b"\x89PNG\r\n\x1a\n",
        "{} is not a PNG",
        path.display()
    );
    let img = image::load_from_memory_with_format(&bytes, image::ImageFormat::Png).unwrap();
    (img.width(), img.height())
}

fn svg_text(path: &Path) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(
        s.starts_with("<svg") || s.starts_with("<?xml"),
        "{} is not an SVG",
        path.display()
    );
    assert!(s.trim_end().ends_with("</svg>"));
    s
}

/// No temporary files are left beside the pictures.
fn no_leftovers(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().to_string();
        assert!(!name.contains(".tmp"), "temporary file left behind: {name}");
    }
}

#[test]
fn training_progress_png_and_svg() {
    let dir = out_dir("progress");
    let rec = record(3, 10, 5, true);
    let png = dir.join("progress.png");
    training_progress(&rec, &png).unwrap();
    assert_eq!(png_size(&png), (1200, 800));
    let svg = dir.join("progress.svg");
    training_progress(&rec, &svg).unwrap();
    let s = svg_text(&svg);
    for want in [
        "Training Progress",
        "Iteration",
        "Accuracy (%)",
        "Loss",
        "Epoch 1",
        "Epoch 3",
        "Validation accuracy",
    ] {
        assert!(s.contains(want), "the SVG lacks '{want}'");
    }
    // Upper-case extensions are fine too.
    training_progress(&rec, &dir.join("upper.PNG")).unwrap();
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn training_progress_regression_and_odd_records() {
    let dir = out_dir("progress-odd");
    // Regression with validation.
    let rec = record(4, 25, 20, false);
    training_progress(&rec, &dir.join("regression.png")).unwrap();
    let s = {
        training_progress(&rec, &dir.join("regression.svg")).unwrap();
        svg_text(&dir.join("regression.svg"))
    };
    assert!(s.contains("RMSE") && !s.contains("Accuracy (%)"));

    // Many epochs, no validation.
    let rec = record(60, 8, 0, true);
    training_progress(&rec, &dir.join("many-epochs.png")).unwrap();
    assert_eq!(png_size(&dir.join("many-epochs.png")), (1200, 800));

    // A single iteration.
    let rec = record(1, 1, 1, true);
    training_progress(&rec, &dir.join("single.png")).unwrap();
    assert_eq!(png_size(&dir.join("single.png")), (1200, 800));

    // NaN and infinite values, no metric at all, iterations_per_epoch 0.
    let mut rec = record(2, 15, 6, true);
    rec.iterations_per_epoch = 0;
    rec.stop_reason = Some(StopReason::ValidationPatience { validations: 5 });
    for (k, it) in rec.iterations.iter_mut().enumerate() {
        it.accuracy = None;
        if k % 4 == 1 {
            it.loss = f32::NAN;
        }
        if k == 20 {
            it.loss = f32::INFINITY;
        }
        if let Some(v) = &mut it.validation {
            v.accuracy = None;
        }
    }
    rec.final_validation = None;
    training_progress(&rec, &dir.join("nan-loss-only.png")).unwrap();
    training_progress(&rec, &dir.join("nan-loss-only.svg")).unwrap();

    // Everything NaN.
    for it in &mut rec.iterations {
        it.loss = f32::NAN;
        it.validation = None;
        it.elapsed = f64::NAN;
    }
    training_progress(&rec, &dir.join("all-nan.png")).unwrap();
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn training_progress_errors() {
    let dir = out_dir("progress-errors");
    let rec = record(1, 5, 0, true);

    let bad = dir.join("progress.jpg");
    let e = training_progress(&rec, &bad).unwrap_err();
    assert!(matches!(e, CliError::PictureFormat { .. }), "{e:?}");
    assert!(e.to_string().contains("progress.jpg"), "{e}");
    let e = training_progress(&rec, &dir.join("progress")).unwrap_err();
    assert!(e.to_string().contains("no extension"), "{e}");
    assert!(!bad.exists());

    let e = training_progress(&TrainingRecord::default(), &dir.join("empty.png")).unwrap_err();
    assert!(matches!(e, CliError::NothingToPlot { .. }), "{e:?}");
    assert!(
        e.to_string().contains("empty.png") && e.to_string().contains("no iterations"),
        "{e}"
    );

    let missing = dir.join("no-such-folder").join("progress.png");
    let e = training_progress(&rec, &missing).unwrap_err();
    match &e {
        CliError::Io { path, .. } => assert!(path.contains("progress.png"), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    done(&dir);
}

#[cfg(unix)]
#[test]
fn unwritable_folder_is_an_io_error_and_keeps_the_old_picture() {
    use std::os::unix::fs::PermissionsExt;
    let dir = out_dir("readonly");
    let target = dir.join("cm.png");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    // root may write anyway; only check the error when the folder is really read-only.
    let probe = dir.join("probe");
    let really_read_only = std::fs::write(&probe, b"x").is_err();
    let _ = std::fs::remove_file(&probe);
    let result = confusion_matrix(&counts(3), &class_names(3), &target);
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    if really_read_only {
        let e = result.unwrap_err();
        assert!(matches!(e, CliError::Io { .. }), "{e:?}");
        assert!(e.to_string().contains("cm.png"), "{e}");
        assert_eq!(std::fs::read(&target).unwrap(), b"old");
    } else {
        result.unwrap();
    }
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn a_file_in_place_of_the_folder_is_an_io_error() {
    // Fails even for root, unlike a read-only folder.
    let dir = out_dir("not-a-folder");
    let file = dir.join("plain.txt");
    std::fs::write(&file, b"x").unwrap();
    let target = file.join("progress.svg");
    let e = training_progress(&record(1, 3, 0, true), &target).unwrap_err();
    match &e {
        CliError::Io { path, .. } => assert!(path.contains("progress.svg"), "{e}"),
        other => panic!("expected an I/O error, got {other:?}"),
    }
    done(&dir);
}

#[test]
fn writing_over_a_folder_is_an_io_error() {
    let dir = out_dir("over-folder");
    let target = dir.join("taken.svg");
    std::fs::create_dir(&target).unwrap();
    let e = activations_heatmap(activations(10, 4).view(), "x", &target).unwrap_err();
    assert!(matches!(e, CliError::Io { .. }), "{e:?}");
    assert!(e.to_string().contains("taken.svg"), "{e}");
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn confusion_matrix_png_and_svg() {
    let dir = out_dir("confusion");
    for n in [2, 3, 7, 12, 20] {
        let png = dir.join(format!("cm-{n}.png"));
        confusion_matrix(&counts(n), &class_names(n), &png).unwrap();
        let (w, h) = png_size(&png);
        assert!(w >= 400 && h >= 400, "{n} classes: {w}x{h}");
        let svg = dir.join(format!("cm-{n}.svg"));
        confusion_matrix(&counts(n), &class_names(n), &svg).unwrap();
        let s = svg_text(&svg);
        for want in [
            "True class",
            "Predicted class",
            "Accuracy",
            "Recall",
            "Precision",
        ] {
            assert!(s.contains(want), "{n} classes: the SVG lacks '{want}'");
        }
        for name in class_names(n).iter().take(n.min(7)) {
            assert!(
                s.contains(name.as_str()),
                "{n} classes: the SVG lacks class '{name}'"
            );
        }
    }
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn confusion_matrix_edge_cases() {
    let dir = out_dir("confusion-odd");
    // One class, all zero counts, huge counts, long names.
    confusion_matrix(&[vec![5]], &["only".to_string()], &dir.join("one.png")).unwrap();
    confusion_matrix(
        &[vec![0, 0], vec![0, 0]],
        &class_names(2),
        &dir.join("zeros.png"),
    )
    .unwrap();
    let big = vec![vec![1_234_567, 89_012], vec![3, 9_876_543]];
    let long = vec![
        "a class with a very very long name indeed".to_string(),
        String::new(),
    ];
    confusion_matrix(&big, &long, &dir.join("big-long.png")).unwrap();
    confusion_matrix(&counts(40), &class_names(40), &dir.join("forty.png")).unwrap();

    // Errors: no classes, wrong shapes.
    let e = confusion_matrix(&[], &[], &dir.join("none.png")).unwrap_err();
    assert!(
        matches!(e, CliError::NothingToPlot { .. }) && e.to_string().contains("none.png"),
        "{e:?}"
    );
    let e = confusion_matrix(&counts(3), &class_names(2), &dir.join("names.png")).unwrap_err();
    assert!(e.to_string().contains("names.png"), "{e}");
    let e = confusion_matrix(
        &[vec![1, 2], vec![3]],
        &class_names(2),
        &dir.join("ragged.png"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("ragged.png"), "{e}");
    let e = confusion_matrix(&counts(2), &class_names(2), &dir.join("cm.gif")).unwrap_err();
    assert!(matches!(e, CliError::PictureFormat { .. }), "{e:?}");
    assert!(!dir.join("none.png").exists() && !dir.join("names.png").exists());
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn activations_heatmap_png_and_svg() {
    let dir = out_dir("activations");
    let a = activations(120, 16);
    let png = dir.join("act.png");
    activations_heatmap(a.view(), "lstm_1 hidden state", &png).unwrap();
    let (w, h) = png_size(&png);
    assert!(w >= 600 && h >= 300, "{w}x{h}");
    let svg = dir.join("act.svg");
    activations_heatmap(a.view(), "lstm_1 hidden state", &svg).unwrap();
    let s = svg_text(&svg);
    for want in ["lstm_1 hidden state", "Time step", "Channel"] {
        assert!(s.contains(want), "the SVG lacks '{want}'");
    }
    no_leftovers(&dir);
    done(&dir);
}

#[test]
fn activations_heatmap_edge_cases() {
    let dir = out_dir("activations-odd");
    // One step of one channel, all zeros, NaNs, a large array, positive only.
    activations_heatmap(
        Array2::from_elem((1, 1), 0.5f32).view(),
        "single",
        &dir.join("single.png"),
    )
    .unwrap();
    activations_heatmap(
        Array2::<f32>::zeros((30, 3)).view(),
        "zeros",
        &dir.join("zeros.png"),
    )
    .unwrap();
    let mut a = activations(50, 8);
    a[[3, 2]] = f32::NAN;
    a[[10, 5]] = f32::INFINITY;
    activations_heatmap(a.view(), "with NaN", &dir.join("nan.png")).unwrap();
    activations_heatmap(
        Array2::from_elem((4, 4), f32::NAN).view(),
        "all NaN",
        &dir.join("all-nan.png"),
    )
    .unwrap();
    let big = activations(3000, 300);
    activations_heatmap(big.view(), "large", &dir.join("large.png")).unwrap();
    activations_heatmap(big.view(), "large", &dir.join("large.svg")).unwrap();
    assert!(std::fs::metadata(dir.join("large.svg")).unwrap().len() < 20_000_000);
    let pos = activations(200, 64).mapv(f32::abs);
    activations_heatmap(pos.view(), "", &dir.join("positive.png")).unwrap();
    // A non-contiguous view (transposed) works too.
    let t = activations(12, 40);
    activations_heatmap(t.t(), "transposed view", &dir.join("transposed.png")).unwrap();

    let e = activations_heatmap(
        Array2::<f32>::zeros((0, 4)).view(),
        "empty",
        &dir.join("empty.png"),
    )
    .unwrap_err();
    assert!(
        matches!(e, CliError::NothingToPlot { .. }) && e.to_string().contains("empty.png"),
        "{e:?}"
    );
    let e = activations_heatmap(
        Array2::<f32>::zeros((4, 0)).view(),
        "empty",
        &dir.join("empty.svg"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("empty.svg"), "{e}");
    let e = activations_heatmap(a.view(), "bad", &dir.join("a.pdf")).unwrap_err();
    assert!(matches!(e, CliError::PictureFormat { .. }), "{e:?}");
    no_leftovers(&dir);
    done(&dir);
}
