//! Exported models run in ONNX Runtime (an independent runtime) and give
//! seqnet's own predictions within `1e-4 · max(1, max|y|)`, on batches of
//! equal and of different lengths: every template of `seqnet new`, the seed's
//! video network, and layers the templates do not use.
//!
//! ONNX Runtime runs in Python: `tests/onnx/ort_run.py`, with the Python named
//! by `SEQNET_ONNX_PYTHON` (a venv with `onnxruntime`, `onnx` and `numpy`;
//! `.ci/run` makes one). Without it the tests say so and pass, except under
//! CI (`CI` set), where they fail.

#[path = "../examples/video_network.rs"]
#[allow(dead_code)]
mod video;

use ndarray::{ArrayD, Axis, IxDyn};
use ndarray_npy::{read_npy, write_npy};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use seqnet::prelude::*;
use seqnet::templates::{RecurrentLayer, Template, TemplateOptions};
use seqnet_onnx::{export_onnx_bytes, ExportOptions};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that runs ONNX Runtime, or `None` (locally) to skip.
fn python() -> Option<PathBuf> {
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seqnet-onnx-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Runs `model` in ONNX Runtime on the batch-first `x` (and `lengths`).
fn run_ort(
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
    read_npy(&out).unwrap()
}

/// seqnet's prediction for the batch-first `x` with `lengths` (right padding), batch first.
fn run_seqnet(net: &mut Network, x: &ArrayD<f32>, lengths: &[usize]) -> ArrayD<f32> {
    let t = x.shape()[1];
    let mut perm: Vec<usize> = (0..x.ndim()).collect();
    perm.swap(0, 1);
    let tm = x
        .view()
        .permuted_axes(perm.clone())
        .as_standard_layout()
        .to_owned();
    let lens = SeqLengths::new(lengths.to_vec(), t, PaddingDirection::Right).unwrap();
    let a = if x.ndim() == 5 {
        Activation::image_sequence(tm, Some(lens))
    } else {
        Activation::sequence(tm, Some(lens))
    }
    .unwrap();
    let y = net
        .forward(&[a], None, Mode::Inference, false)
        .unwrap()
        .remove(0);
    if y.format.has_time() {
        y.data
            .view()
            .permuted_axes(perm)
            .as_standard_layout()
            .to_owned()
    } else {
        y.data.to_owned()
    }
}

/// Checks ORT against seqnet on real steps, within the tolerance.
fn compare(ours: &ArrayD<f32>, theirs: &ArrayD<f32>, lengths: &[usize], tag: &str) {
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
    eprintln!("{tag}: max |seqnet − ORT| = {worst:e} (tolerance {tol:e})");
}

/// Gives every learnable and statistic random values (trained-looking
/// statistics: positive variances and deviations, `Min < Max`).
fn randomize(net: &mut Network, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut states: Vec<(String, &'static str, Vec<usize>)> = net
        .states()
        .into_iter()
        .map(|(l, s)| (l.to_string(), s.name, s.value.shape().to_vec()))
        .collect();
    states.sort();
    for (layer, name, shape) in states {
        let v = ArrayD::from_shape_fn(IxDyn(&shape), |_| match name {
            "TrainedVariance" | "StandardDeviation" => rng.random_range(0.5..2.0),
            "Max" => rng.random_range(1.0..2.0),
            "Min" => rng.random_range(-1.0..0.0),
            _ => rng.random_range(-0.5..0.5),
        });
        net.set_learnable(&layer, name, v).unwrap();
    }
    for (_, l) in net.learnables_mut() {
        let v = l.value.mapv(|w| w + rng.random_range(-0.1..0.1));
        l.value = v.into();
    }
}

/// A batch-first batch `[B, T, …frame]` with `lengths`, padded with noise.
fn batch(frame: &[usize], lengths: &[usize], seed: u64) -> ArrayD<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let t = *lengths.iter().max().unwrap();
    let mut shape = vec![lengths.len(), t];
    shape.extend_from_slice(frame);
    ArrayD::from_shape_fn(IxDyn(&shape), |_| rng.random_range(-1.0..1.0))
}

/// Exports `graph` (random weights) and compares ORT with seqnet on an
/// equal-length batch (with and without `sequence_lens`) and a batch of
/// different lengths.
fn check_graph(graph: &LayerGraph, frame: &[usize], tag: &str) {
    let Some(py) = python() else { return };
    let mut net = Network::new(graph, 7).unwrap();
    randomize(&mut net, 11);
    let with = export_onnx_bytes(&net, &ExportOptions::default()).unwrap();
    let without = export_onnx_bytes(
        &net,
        &ExportOptions {
            sequence_lens: false,
            ..Default::default()
        },
    )
    .unwrap();
    let equal = [9, 9, 9];
    let x = batch(frame, &equal, 1);
    let ours = run_seqnet(&mut net, &x, &equal);
    let theirs = run_ort(&py, &without, &x, None, &format!("{tag}_equal"));
    compare(
        &ours,
        &theirs,
        &equal,
        &format!("{tag} equal lengths, no sequence_lens"),
    );
    let theirs = run_ort(&py, &with, &x, Some(&equal), &format!("{tag}_equal_lens"));
    compare(&ours, &theirs, &equal, &format!("{tag} equal lengths"));
    let varied = [9, 4, 1, 6];
    let x = batch(frame, &varied, 2);
    let ours = run_seqnet(&mut net, &x, &varied);
    let theirs = run_ort(&py, &with, &x, Some(&varied), &format!("{tag}_varied"));
    compare(&ours, &theirs, &varied, &format!("{tag} different lengths"));
}

fn template(t: Template, recurrent: RecurrentLayer, tag: &str) {
    let options = TemplateOptions {
        input: Some(match t {
            Template::Video => InputSize::Image([10, 10, 2]),
            _ => InputSize::Features(5),
        }),
        hidden: (t != Template::Cnn1d).then_some(6),
        recurrent,
        outputs: Some(4),
        normalization: Normalization::Zscore,
        filters: (t == Template::Cnn1d).then_some([6, 8, 5]),
        ..Default::default()
    };
    let frame: &[usize] = if t == Template::Video {
        &[2, 10, 10]
    } else {
        &[5]
    };
    check_graph(&t.graph(&options).unwrap(), frame, tag);
}

#[test]
fn every_template_with_an_lstm() {
    // The transformer's layers (layer norm, self-attention, position
    // embedding) have no ONNX export yet (docs/NEXT.md, "attention").
    for t in Template::ALL
        .into_iter()
        .filter(|&t| t != Template::Transformer)
    {
        template(t, RecurrentLayer::Lstm, t.name());
    }
}

#[test]
fn recurrent_templates_with_a_bilstm_and_a_gru() {
    for t in [
        Template::Seq2Label,
        Template::Seq2SeqClass,
        Template::DeepSeq2Label,
    ] {
        for (r, name) in [
            (RecurrentLayer::BiLstm, "bilstm"),
            (RecurrentLayer::Gru, "gru"),
        ] {
            template(t, r, &format!("{}_{name}", t.name()));
        }
    }
}

#[test]
fn the_seed_video_network() {
    check_graph(&video::network().unwrap(), &[1, 28, 28], "seed_video");
}
