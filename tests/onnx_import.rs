//! ONNX import: every model in `tests/fixtures/onnx/` (written by
//! `torch.onnx.export`; every `*.onnx` with its `.safetensors` beside it is
//! a case, so more dropped in are tested with no code change) imports and
//! reproduces PyTorch's output within `1e-4 · max(1, max|output|)`, and
//! round-trips: exported again, it gives the same in ONNX Runtime.

#[path = "onnx/helpers.rs"]
mod helpers;

use helpers::{compare, python, run_ort, run_seqnet};
use ndarray::{ArrayD, IxDyn};
use safetensors::SafeTensors;
use seqnet_onnx::{export_onnx_bytes, import_onnx, import_onnx_bytes, ExportOptions};
use std::path::{Path, PathBuf};

fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "onnx"))
        .filter(|p| p.with_extension("safetensors").exists())
        .collect();
    cases.sort();
    assert!(!cases.is_empty(), "no ONNX fixtures in {}", dir.display());
    cases
}

/// `input` and `output` of a case's `.safetensors`.
fn reference(onnx: &Path) -> (ArrayD<f32>, ArrayD<f32>) {
    let bytes = std::fs::read(onnx.with_extension("safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let get = |name: &str| {
        let t = st.tensor(name).unwrap();
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        ArrayD::from_shape_vec(IxDyn(t.shape()), v).unwrap()
    };
    (get("input"), get("output"))
}

#[test]
fn every_fixture_imports_and_reproduces_pytorch() {
    let py = python();
    for case in fixtures() {
        let tag = case.file_stem().unwrap().to_string_lossy().to_string();
        let mut model = import_onnx(&case).unwrap_or_else(|e| panic!("{tag}: {e}"));
        let (x, y) = reference(&case);
        let lengths = vec![x.shape()[1]; x.shape()[0]];
        let ours = run_seqnet(&mut model.network, &x, &lengths);
        compare(
            &y,
            &ours,
            &lengths,
            &format!("{tag}: seqnet against PyTorch"),
        );
        let Some(py) = &py else { continue };
        let bytes = export_onnx_bytes(&model.network, &ExportOptions::default()).unwrap();
        let theirs = run_ort(py, &bytes, &x, Some(&lengths), &format!("{tag}_roundtrip"));
        compare(
            &y,
            &theirs,
            &lengths,
            &format!("{tag}: round trip in ONNX Runtime"),
        );
    }
}

/// The README's table: each known case's layer types in order.
const EXPECTED_GRAPHS: &[(&str, &[&str])] = &[
    (
        "lstm_last",
        &[
            "sequenceInput",
            "lstm",
            "fullyConnected",
            "softmax",
            "classification",
        ],
    ),
    (
        "bilstm_seq",
        &["sequenceInput", "bilstm", "fullyConnected", "regression"],
    ),
    (
        "gru_last",
        &["sequenceInput", "gru", "fullyConnected", "regression"],
    ),
    (
        "lstm_stack2",
        &[
            "sequenceInput",
            "lstm",
            "lstm",
            "fullyConnected",
            "softmax",
            "classification",
        ],
    ),
    (
        "video_net",
        &[
            "sequenceInput",
            "sequenceFolding",
            "convolution2d",
            "relu",
            "sequenceUnfolding",
            "flatten",
            "lstm",
            "fullyConnected",
            "softmax",
            "classification",
        ],
    ),
    (
        "video_net_bn",
        &[
            "sequenceInput",
            "sequenceFolding",
            "convolution2d",
            "batchNormalization",
            "relu",
            "sequenceUnfolding",
            "flatten",
            "lstm",
            "fullyConnected",
            "softmax",
            "classification",
        ],
    ),
    (
        "cnn1d",
        &[
            "sequenceInput",
            "convolution1d",
            "relu",
            "globalAveragePooling1d",
            "fullyConnected",
            "regression",
        ],
    ),
];

/// The README's table: each known case becomes the seqnet graph a person
/// would build (layer types in order).
#[test]
fn known_fixtures_become_matlab_style_graphs() {
    let expected = EXPECTED_GRAPHS;
    for (case, tags) in expected {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/onnx")
            .join(format!("{case}.onnx"));
        let model = import_onnx(&path).unwrap();
        let got: Vec<&str> = model
            .network
            .graph()
            .layers
            .iter()
            .map(|l| l.tag())
            .collect();
        assert_eq!(&got, tags, "{case}");
    }
}

/// An op outside the supported set is an error naming the node, its op
/// type and what is supported.
#[test]
fn an_unsupported_op_names_the_node() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/lstm_last.onnx");
    let bytes = std::fs::read(path).unwrap();
    // Rename the Softmax node's op type (and name) in the encoded model.
    let mut changed = bytes.clone();
    let mut n = 0;
    while let Some(at) = changed.windows(7).position(|w| w == b"Softmax") {
        changed[at..at + 7].copy_from_slice(b"Hardmax");
        n += 1;
    }
    assert!(n > 0, "lstm_last has a Softmax node");
    let Err(e) = import_onnx_bytes(&changed) else {
        panic!("an unknown op type imported")
    };
    let e = e.to_string();
    assert!(e.contains("Hardmax") && e.contains("supported:"), "{e}");
    assert!(e.contains("node '"), "{e}");
}
