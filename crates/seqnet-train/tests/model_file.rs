//! Model files round-trip exactly, and a file whose metadata and tensors disagree
//! is refused with a message naming the file and the tensor.

use ndarray::Array3;
use seqnet_core::layers::*;
use seqnet_core::{Activation, LayerGraph, Mode, Network};
use seqnet_train::Model;

fn model() -> Model {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(3)
            .normalization(Normalization::Zscore)
            .name("in")
            .into(),
        FullyConnected::new(4).name("fc").into(),
        Softmax::new().into(),
        ClassificationOutput::new().into(),
    ])
    .unwrap();
    let mut network = Network::new(&g, 11).unwrap();
    network
        .set_state("in", "Mean", ndarray::arr1(&[0.5f32, -1.0, 2.0]).into_dyn())
        .unwrap();
    Model {
        network,
        classes: vec!["a".into(), "b".into(), "c".into(), "d".into()],
        options: None,
    }
}

fn predict(m: &mut Model) -> Vec<f32> {
    let x = Array3::from_shape_fn((5, 2, 3), |(t, b, c)| {
        (t * 7 + b * 3 + c) as f32 * 0.1 - 1.0
    });
    let out = m
        .network
        .forward(
            &[Activation::sequence(x.into_dyn(), None).unwrap()],
            None,
            Mode::Inference,
            false,
        )
        .unwrap();
    out[0].data.iter().copied().collect()
}

#[test]
fn save_and_load_give_bit_identical_predictions() {
    let dir = std::env::temp_dir().join(format!("seqnet-model-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    let mut m = model();
    m.save(&path).unwrap();
    let mut back = Model::load(&path).unwrap();
    assert_eq!(back.classes, m.classes);
    assert_eq!(back.network.graph(), m.network.graph());
    let (a, b) = (predict(&mut m), predict(&mut back));
    assert_eq!(
        a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // No temporary file is left behind.
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn metadata_and_tensors_that_disagree_are_refused() {
    let m = model();
    let bytes = m.to_bytes().unwrap();
    // A graph whose fc layer is wider than the stored weights.
    let (_, header) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let graph = header.metadata().as_ref().unwrap()["seqnet.graph"]
        .replace("\"outputSize\": 4", "\"outputSize\": 5");
    let other = Model {
        network: Network::new(&LayerGraph::from_json(&graph, "x").unwrap(), 1).unwrap(),
        classes: vec![],
        options: None,
    };
    let wide = other.to_bytes().unwrap();
    // Splice the narrow model's tensors under the wide model's graph.
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let views: Vec<(String, safetensors::tensor::TensorView)> = st.tensors();
    let mut meta = header.metadata().clone().unwrap();
    meta.insert("seqnet.graph".into(), graph);
    let spliced = safetensors::serialize(views, Some(meta)).unwrap();
    let err = Model::from_bytes(&spliced, "bad.safetensors")
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.starts_with("bad.safetensors:") && text.contains("fc.Weights"),
        "{text}"
    );
    assert!(Model::from_bytes(&wide, "ok.safetensors").is_ok());
    let err = Model::from_bytes(&bytes[..bytes.len() / 2], "cut.safetensors")
        .err()
        .expect("truncated file refused");
    assert!(err.to_string().starts_with("cut.safetensors:"), "{err}");
    let err = Model::from_bytes(b"", "empty.safetensors")
        .err()
        .expect("empty file refused");
    assert!(err.to_string().contains("empty.safetensors"), "{err}");
}

#[test]
fn a_graph_larger_than_its_tensors_is_refused_before_allocating() {
    // 2^47 weights declared, none stored: refused without trying to allocate them.
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(1 << 27).name("in").into(),
        FullyConnected::new(1 << 20).name("fc").into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    let mut meta = std::collections::HashMap::new();
    meta.insert("seqnet.graph".to_string(), g.to_json());
    let empty: Vec<(String, safetensors::tensor::TensorView)> = Vec::new();
    let bytes = safetensors::serialize(empty, Some(meta)).unwrap();
    let err = Model::from_bytes(&bytes, "huge.safetensors")
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("fc.Weights") && err.to_string().contains("missing"),
        "{err}"
    );
    // A single step too large to hold is refused by the graph checks.
    let g = LayerGraph::from_layers(vec![
        SequenceInput::image([1 << 20, 1 << 20, 3])
            .name("in")
            .into(),
        Flatten::new().into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    assert!(g.check().is_err());
}
