//! One test per row of `docs/ERRORS.md`: malformed input of every reader and
//! entry point gets a typed error whose message names the file and line (or the
//! layer and port, or the option) and what was expected.

use ndarray::{Array2, Array3};
use seqnet::data::{
    parse_ts, FolderDatastore, InMemoryDatastore, Observation, Sequence, TsOptions,
};
use seqnet::prelude::*;
use seqnet::train::{predict, Model, PredictOptions};
use std::path::PathBuf;
use std::sync::Arc;

fn ts(text: &str) -> String {
    parse_ts(text, "bad.ts", &TsOptions::default())
        .err()
        .map(|e| e.to_string())
        .unwrap_or_else(|| "accepted".into())
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    println!("message: {msg}");
    for p in parts {
        assert!(msg.contains(p), "message lacks '{p}': {msg}");
    }
}

const HEADER: &str = "@problemName t\n@timeStamps false\n@missing false\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n";

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("seqnet-errors-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn ts_empty_file() {
    assert_mentions(&ts(""), &["bad.ts", "@data"]);
}

#[test]
fn ts_truncated_header() {
    assert_mentions(
        &ts("@problemName t\n@dimensions 2\n"),
        &["bad.ts:", "@data"],
    );
}

#[test]
fn ts_wrong_dimension_count() {
    let msg = ts(&format!("{HEADER}1,2,3:4,5,6:a\n1,2:3,4:5,6:b\n"));
    assert_mentions(&msg, &["bad.ts:10:", "dimension"]);
}

#[test]
fn ts_missing_value() {
    assert_mentions(
        &ts(&format!("{HEADER}1,?,3:4,5,6:a\n")),
        &["bad.ts:9:", "missing"],
    );
}

#[test]
fn ts_infinite_value() {
    assert_mentions(&ts(&format!("{HEADER}1,inf,3:4,5,6:a\n")), &["bad.ts:9:"]);
}

#[test]
fn ts_unknown_label() {
    assert_mentions(&ts(&format!("{HEADER}1,2:4,5:c\n")), &["bad.ts:9:", "c"]);
}

#[test]
fn ts_non_numeric_value() {
    assert_mentions(&ts(&format!("{HEADER}1,x2:4,5:a\n")), &["bad.ts:9:", "x2"]);
}

#[test]
fn labels_csv_missing_file_column() {
    let d = tmp("csv");
    std::fs::write(d.join("labels.csv"), "name,label\nx.npy,a\n").unwrap();
    let msg = FolderDatastore::open(&d).expect_err("refused").to_string();
    assert_mentions(&msg, &["labels.csv:1:", "file"]);
}

#[test]
fn labels_csv_names_a_missing_npy() {
    let d = tmp("missing-npy");
    std::fs::write(d.join("labels.csv"), "file,label\nnothere.npy,a\n").unwrap();
    let msg = FolderDatastore::open(&d).expect_err("refused").to_string();
    assert_mentions(&msg, &["nothere.npy"]);
}

#[test]
fn npy_truncated() {
    let d = tmp("npy");
    let path = d.join("x.npy");
    ndarray_npy::write_npy(&path, &Array2::<f32>::zeros((10, 3))).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    std::fs::write(d.join("labels.csv"), "file,label\nx.npy,a\n").unwrap();
    let msg = FolderDatastore::open(&d).expect_err("refused").to_string();
    assert_mentions(&msg, &["x.npy"]);
}

#[test]
fn npy_wrong_dimensions() {
    let d = tmp("npy-dims");
    ndarray_npy::write_npy(d.join("x.npy"), &ndarray::Array1::<f32>::zeros(5)).unwrap();
    std::fs::write(d.join("labels.csv"), "file,label\nx.npy,a\n").unwrap();
    let msg = FolderDatastore::open(&d).expect_err("refused").to_string();
    assert_mentions(&msg, &["x.npy"]);
}

#[test]
fn graph_json_malformed() {
    let msg = LayerGraph::from_json(
        "{\n  \"layers\": [\n    {\"type\": \"lstm\", \"name\": \"a\",}\n  ]\n}",
        "net.json",
    )
    .unwrap_err()
    .to_string();
    assert_mentions(&msg, &["net.json:3:"]);
}

#[test]
fn graph_json_unknown_layer_type() {
    let msg = LayerGraph::from_json(
        "{\"layers\": [{\"type\": \"lsmt\", \"name\": \"a\"}], \"connections\": []}",
        "net.json",
    )
    .unwrap_err()
    .to_string();
    assert_mentions(&msg, &["net.json:1:", "lsmt"]);
}

#[test]
fn graph_duplicate_and_missing_layer_names() {
    let json = r#"{"layers": [{"type": "sequenceInput", "name": "in", "inputSize": 3}, {"type": "relu", "name": "in"}, {"type": "regression", "name": ""}], "connections": [{"source": "in/out", "destination": "nope/in"}]}"#;
    let g = LayerGraph::from_json(json, "net.json").unwrap();
    let msg = g.check().unwrap_err().to_string();
    assert_mentions(
        &msg,
        &[
            "two layers are named 'in'",
            "empty name",
            "unknown layer 'nope'",
        ],
    );
}

#[test]
fn options_json_bad_value() {
    let msg = seqnet::train::TrainingOptions::from_json(
        "{\n  \"solver\": \"adam\",\n  \"miniBatchSize\": -3\n}",
        "options.json",
    )
    .unwrap_err()
    .to_string();
    assert_mentions(&msg, &["options.json:3:"]);
    let msg =
        seqnet::train::TrainingOptions::from_json("{\"initialLearnRate\": 0}", "options.json")
            .unwrap_err()
            .to_string();
    assert_mentions(&msg, &["InitialLearnRate"]);
}

fn small_model() -> Model {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(3).name("in").into(),
        Lstm::new(4).output_mode(OutputMode::Last).into(),
        FullyConnected::new(2).into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap();
    Model {
        network: Network::new(&g, 0).unwrap(),
        classes: vec!["a".into(), "b".into()],
        options: None,
    }
}

#[test]
fn model_file_truncated() {
    let bytes = small_model().to_bytes().unwrap();
    let msg = Model::from_bytes(&bytes[..bytes.len() - 10], "m.safetensors")
        .err()
        .expect("refused")
        .to_string();
    assert_mentions(&msg, &["m.safetensors"]);
}

#[test]
fn model_file_metadata_and_tensors_disagree() {
    let bytes = small_model().to_bytes().unwrap();
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = header.metadata().clone().unwrap();
    let graph = meta["seqnet.graph"].replace("\"numHiddenUnits\": 4", "\"numHiddenUnits\": 5");
    meta.insert("seqnet.graph".into(), graph);
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let spliced = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    let msg = Model::from_bytes(&spliced, "m.safetensors")
        .err()
        .expect("refused")
        .to_string();
    assert_mentions(&msg, &["m.safetensors", "lstm.InputWeights"]);
}

#[test]
fn feature_count_does_not_match_the_network() {
    let mut m = small_model();
    let x = Activation::sequence(Array3::<f32>::zeros((4, 2, 5)).into_dyn(), None).unwrap();
    let msg = m
        .network
        .forward(&[x], None, Mode::Inference, false)
        .unwrap_err()
        .to_string();
    assert_mentions(&msg, &["'in'", "3×B×T", "5×B×T"]);
}

#[test]
fn sequence_of_length_zero() {
    let mut m = small_model();
    let obs = vec![Observation::new(
        Sequence::Features(Array2::zeros((0, 3))),
        Target::None,
    )];
    let store =
        InMemoryDatastore::new(obs, None).map(|s| Arc::new(s) as Arc<dyn seqnet::data::Datastore>);
    let msg = match store {
        Err(e) => e.to_string(),
        Ok(s) => predict(&mut m.network, s, &PredictOptions::default())
            .expect_err("refused")
            .to_string(),
    };
    assert_mentions(&msg, &["0"]);
}

#[test]
fn nan_in_data_is_refused_with_the_observation_named() {
    let obs = vec![
        Observation::new(Sequence::Features(Array2::ones((3, 3))), Target::Class(0)),
        Observation::new(
            Sequence::Features(Array2::from_elem((3, 3), f32::NAN)),
            Target::Class(1),
        ),
    ];
    let msg = InMemoryDatastore::new(obs, Some(vec!["a".into(), "b".into()]))
        .err()
        .map(|e| e.to_string());
    let msg = msg.unwrap_or_else(|| "accepted".into());
    assert_mentions(&msg, &["1"]);
    assert!(
        msg.to_lowercase().contains("nan") || msg.contains("finite"),
        "{msg}"
    );
}

#[test]
fn unknown_label_at_prediction() {
    let d = tmp("unknown-label");
    ndarray_npy::write_npy(d.join("x.npy"), &Array2::<f32>::zeros((4, 3))).unwrap();
    std::fs::write(d.join("labels.csv"), "file,label\nx.npy,zebra\n").unwrap();
    let opts = seqnet::data::FolderOptions {
        classes: Some(vec!["a".into(), "b".into()]),
        ..Default::default()
    };
    let msg = FolderDatastore::open_with(&d, opts)
        .expect_err("refused")
        .to_string();
    assert_mentions(&msg, &["labels.csv:2:", "zebra"]);
}
