//! What the ONNX tests share: ONNX Runtime through `tests/onnx/ort_run.py`,
//! seqnet's prediction of a batch-first batch, and the comparison within the
//! issue's tolerance `1e-4 · max(1, max|y|)`.

#![allow(dead_code)]

use ndarray::{ArrayD, Axis};
use ndarray_npy::{read_npy, write_npy};
use seqnet::prelude::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that runs ONNX Runtime, or `None` (locally) to skip.
pub fn python() -> Option<PathBuf> {
    match std::env::var_os("SEQNET_ONNX_PYTHON") {
        Some(p) => Some(PathBuf::from(p)),
        None if std::env::var_os("CI").is_some() => {
            panic!(
                "CI is set but SEQNET_ONNX_PYTHON is not: .ci/run must make the ONNX Runtime venv"
            )
        }
        None => {
            eprintln!("SEQNET_ONNX_PYTHON is not set: ONNX Runtime tests skipped");
            None
        }
    }
}

pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seqnet-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `model` in ONNX Runtime on the batch-first `x` (and `lengths`).
pub fn run_ort(
    py: &Path,
    model: &[u8],
    x: &ArrayD<f32>,
    lengths: Option<&[usize]>,
    tag: &str,
) -> ArrayD<f32> {
    let (m, xi, out) = (
        scratch(&format!("{tag}.onnx")),
        scratch(&format!("{tag}_x.npy")),
        scratch(&format!("{tag}_y.npy")),
    );
    std::fs::write(&m, model).unwrap();
    write_npy(&xi, x).unwrap();
    let mut cmd = Command::new(py);
    cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/onnx/ort_run.py"))
        .args([&m, &xi, &out]);
    if let Some(l) = lengths {
        let li = scratch(&format!("{tag}_l.npy"));
        let l: ndarray::Array1<i32> = l.iter().map(|&v| v as i32).collect();
        write_npy(&li, &l).unwrap();
        cmd.arg(&li);
    }
    let o = cmd.output().expect("run the ONNX Runtime helper");
    assert!(
        o.status.success(),
        "{tag}: ONNX Runtime failed:\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let y = read_npy(&out).unwrap();
    // The files stay behind only when a run fails (above), to look at.
    for f in [m, xi, out, scratch(&format!("{tag}_l.npy"))] {
        let _ = std::fs::remove_file(f);
    }
    y
}

/// seqnet's prediction for the batch-first `x` with `lengths` (right padding), batch first.
pub fn run_seqnet(net: &mut Network, x: &ArrayD<f32>, lengths: &[usize]) -> ArrayD<f32> {
    seqnet_onnx::predict_batch_first(net, x, Some(lengths)).unwrap()
}

/// Checks `theirs` against the reference `ours` on real steps, within the
/// issue's tolerance (from the reference's largest value).
pub fn compare(ours: &ArrayD<f32>, theirs: &ArrayD<f32>, lengths: &[usize], tag: &str) {
    assert_eq!(ours.shape(), theirs.shape(), "{tag}: output shapes");
    let max = ours.iter().fold(0f32, |m, v| m.max(v.abs()));
    let tol = 1e-4 * max.max(1.0);
    let mut worst = 0f32;
    for (b, &len) in lengths.iter().enumerate() {
        let (o, t) = (ours.index_axis(Axis(0), b), theirs.index_axis(Axis(0), b));
        let (o, t) = if ours.ndim() == 3 {
            (
                o.slice_axis(Axis(0), (0..len).into()).to_owned(),
                t.slice_axis(Axis(0), (0..len).into()).to_owned(),
            )
        } else {
            (o.to_owned(), t.to_owned())
        };
        for (a, c) in o.iter().zip(t.iter()) {
            worst = worst.max((a - c).abs());
        }
    }
    assert!(
        worst <= tol,
        "{tag}: max |seqnet − ORT| = {worst:e} > {tol:e}"
    );
    eprintln!("{tag}: max |difference| = {worst:e} (tolerance {tol:e})");
}
