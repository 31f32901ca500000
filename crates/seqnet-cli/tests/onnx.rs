//! `seqnet import-onnx`, `export-onnx` and `predict --input` end to end: a
//! PyTorch export imports, reads like a hand-built graph, predicts PyTorch's
//! output from raw `.npy` tensors, and exports again; bad files and options
//! are one-line errors that write nothing.

use ndarray::{ArrayD, IxDyn};
use ndarray_npy::{read_npy, write_npy};
use std::path::{Path, PathBuf};

mod common;
use common::{fails, ok, tmp};

fn fixture(case: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../../tests/fixtures/onnx/{case}"))
}

/// `input` and `output` of a fixture's `.safetensors`.
fn reference(case: &str) -> (ArrayD<f32>, ArrayD<f32>) {
    let bytes = std::fs::read(fixture(&format!("{case}.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let get = |n: &str| {
        let t = st.tensor(n).unwrap();
        let v = t
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        ArrayD::from_shape_vec(IxDyn(t.shape()), v.collect()).unwrap()
    };
    (get("input"), get("output"))
}

#[test]
fn import_summary_predict_and_export() {
    let d = tmp("roundtrip");
    let model = d.join("video.safetensors");
    let m = model.to_str().unwrap();
    let onnx = fixture("video_net_bn.onnx");
    ok(&["import-onnx", onnx.to_str().unwrap(), "--out", m]);
    let summary = ok(&["summary", m]);
    for layer in [
        "Sequence Folding",
        "Convolution",
        "Batch Normalization",
        "LSTM",
        "Softmax",
    ] {
        assert!(summary.contains(layer), "{layer} missing from\n{summary}");
    }
    let (x, y) = reference("video_net_bn");
    let (xi, yo, li) = (d.join("x.npy"), d.join("y.npy"), d.join("l.npy"));
    write_npy(&xi, &x).unwrap();
    let lengths: ndarray::Array1<i64> =
        ndarray::Array1::from_elem(x.shape()[0], x.shape()[1] as i64);
    write_npy(&li, &lengths).unwrap();
    let args = ["predict", "--model", m, "--input", xi.to_str().unwrap()];
    ok(&[
        &args[..],
        &[
            "--lengths",
            li.to_str().unwrap(),
            "--out",
            yo.to_str().unwrap(),
        ],
    ]
    .concat());
    let got: ArrayD<f32> = read_npy(&yo).unwrap();
    assert_eq!(got.shape(), y.shape());
    let worst = got
        .iter()
        .zip(&y)
        .fold(0f32, |w, (a, b)| w.max((a - b).abs()));
    assert!(worst <= 1e-4, "predict --input against PyTorch: {worst}");
    let out = d.join("again.onnx");
    ok(&[
        "export-onnx",
        "--model",
        m,
        "--out",
        out.to_str().unwrap(),
        "--opset",
        "18",
    ]);
    assert!(std::fs::metadata(&out).unwrap().len() > 1000);
}

#[test]
fn bad_files_and_options_are_one_line_errors_that_write_nothing() {
    let d = tmp("errors");
    let model = d.join("m.safetensors");
    let m = model.to_str().unwrap();
    // Not an ONNX file: the README.
    let readme = fixture("README.md");
    let e = fails(&["import-onnx", readme.to_str().unwrap(), "--out", m]);
    assert!(
        e.contains("README.md") && e.contains("not an ONNX model"),
        "{e}"
    );
    assert!(!model.exists());
    ok(&[
        "import-onnx",
        fixture("lstm_last.onnx").to_str().unwrap(),
        "--out",
        m,
    ]);
    let out = d.join("m.onnx");
    let e = fails(&[
        "export-onnx",
        "--model",
        m,
        "--out",
        out.to_str().unwrap(),
        "--opset",
        "9",
    ]);
    assert!(e.contains("opset 9"), "{e}");
    assert!(!out.exists());
    // A batch of the wrong frame size.
    let xi = d.join("x.npy");
    write_npy(&xi, &ArrayD::<f32>::zeros(IxDyn(&[2, 3, 7]))).unwrap();
    let e = fails(&[
        "predict",
        "--model",
        m,
        "--input",
        xi.to_str().unwrap(),
        "--out",
        d.join("y.npy").to_str().unwrap(),
    ]);
    assert!(e.contains("x.npy"), "{e}");
    assert!(!d.join("y.npy").exists());
}
