//! Custom layers defined outside seqnet (`examples/custom_layers/`: MATLAB's
//! PReLU and weighted-addition examples) work everywhere a built-in layer
//! does: graph checks, summary, DOT, graph JSON, gradient checks, training,
//! model files, predict, activations and predict_and_update_state.

#[path = "../examples/custom_layers/mod.rs"]
mod custom_layers;

use custom_layers::{PRelu, WeightedAddition};
use ndarray::{Array2, Array3};
use seqnet::core::gradcheck::{check_layer, GradCheck};
use seqnet::core::{register_layer, Activation, LayerDef, LayerType, Mode};
use seqnet::data::{InMemoryDatastore, TsOptions};
use seqnet::prelude::*;
use seqnet::train::{predict_and_update_state, PredictOptions};
use std::sync::Arc;

fn register() {
    register_layer::<PRelu>().unwrap();
    register_layer::<WeightedAddition>().unwrap();
}

/// in → lstm(last) → fc1 → prelu → fc2 ─┐
///                 └→ skip ─────────────┴→ wadd → softmax → out
fn graph() -> LayerGraph {
    let mut g = LayerGraph::from_layers([
        SequenceInput::new(12)
            .normalization(Normalization::Zscore)
            .name("in")
            .into(),
        Lstm::new(32)
            .output_mode(OutputMode::Last)
            .name("lstm")
            .into(),
        FullyConnected::new(16).name("fc1").into(),
        PRelu::new("prelu").into(),
        FullyConnected::new(9).name("fc2").into(),
        WeightedAddition::new("wadd", 2).into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("out").into(),
    ])
    .unwrap();
    g.add_layers([FullyConnected::new(9).name("skip").into()])
        .unwrap();
    g.connect("lstm", "skip").unwrap();
    g.connect("skip", "wadd/in2").unwrap();
    g
}

fn vowels(file: &str) -> InMemoryDatastore {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/data/japanese_vowels");
    InMemoryDatastore::open_ts(format!("{dir}/{file}"), &TsOptions::default()).unwrap()
}

/// A `[T, B, C]` sequence away from PReLU's kink at 0.
fn away_from_zero(t: usize, b: usize, c: usize, k: f32) -> Activation {
    let data = Array3::from_shape_fn((t, b, c), |(i, j, l)| {
        let v = ((i * 7 + j * 3 + l) as f32 * k).sin();
        v + 0.1 * v.signum()
    });
    Activation::sequence(data.into_dyn(), None).unwrap()
}

#[test]
fn gradients_of_both_layers_match_central_differences() {
    let cfg = GradCheck::default();
    let prelu = check_layer(
        &PRelu::new("p").into(),
        vec![away_from_zero(4, 3, 5, 0.37)],
        None,
        cfg,
    )
    .unwrap();
    assert!(prelu.probes.iter().any(|p| p.0 == "Alpha"));
    assert!(prelu.failures(cfg.tolerance).is_empty(), "{prelu:?}");
    let wadd = check_layer(
        &WeightedAddition::new("w", 3).into(),
        vec![
            away_from_zero(4, 2, 3, 0.37),
            away_from_zero(4, 2, 3, 0.71),
            away_from_zero(4, 2, 3, 1.13),
        ],
        None,
        cfg,
    )
    .unwrap();
    assert!(wadd.probes.iter().any(|p| p.0 == "Weights"));
    assert!(wadd.probes.iter().any(|p| p.0 == "input 2"));
    assert!(wadd.failures(cfg.tolerance).is_empty(), "{wadd:?}");
}

#[test]
fn checks_summary_dot_and_json_treat_them_as_built_in_layers() {
    register();
    let g = graph();
    let summary = g.summary().unwrap().to_string();
    assert!(
        summary.contains("PReLU") && summary.contains("Alpha 16"),
        "{summary}"
    );
    assert!(summary.contains("Weighted Addition") && summary.contains("Weights 2"));
    let dot = g.to_dot();
    assert!(dot.contains("wadd"), "{dot}");
    // Graph JSON names the registered type and loads back equal.
    let json = g.to_json();
    assert!(json.contains("\"type\": \"prelu\""), "{json}");
    assert!(json.contains("\"type\": \"weightedAddition\""), "{json}");
    assert_eq!(LayerGraph::from_json(&json, "g.json").unwrap(), g);

    // A mismatch at a custom layer's second port is named by layer and port.
    let mut bad = g.clone();
    bad.replace_layer("skip", FullyConnected::new(5).name("skip").into())
        .unwrap();
    let e = bad.check().unwrap_err().to_string();
    assert!(e.contains("'wadd'") && e.contains("in2"), "{e}");
    // An unfed port of a custom layer.
    let mut unfed = g.clone();
    unfed.disconnect("skip", "wadd/in2").unwrap();
    let e = unfed.check().unwrap_err().to_string();
    assert!(
        e.contains("wadd/in2") || (e.contains("wadd") && e.contains("in2")),
        "{e}"
    );
}

#[test]
fn an_unregistered_type_is_an_error_naming_type_and_layer() {
    let json = r#"{"layers": [{"type": "noSuchLayer", "name": "mystery"}], "connections": []}"#;
    let e = LayerGraph::from_json(json, "g.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("noSuchLayer") && e.contains("mystery") && e.contains("g.json"),
        "{e}"
    );
}

/// An identity layer type `$ty` under tag `$tag` (for the registry's tests).
macro_rules! identity_layer {
    ($ty:ident, $tag:literal, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        struct $ty {
            name: String,
        }

        impl LayerType for $ty {
            const TYPE: &'static str = $tag;
        }

        impl LayerDef for $ty {
            fn name(&self) -> &str {
                &self.name
            }
            fn set_name(&mut self, name: String) {
                self.name = name;
            }
            fn type_name(&self) -> &'static str {
                stringify!($ty)
            }
            fn infer(
                &self,
                inputs: &[seqnet::core::ActShape],
            ) -> std::result::Result<Vec<seqnet::core::ActShape>, seqnet::core::ShapeError> {
                Ok(inputs.to_vec())
            }
            fn build(
                &self,
                _: &[seqnet::core::ActShape],
                _: seqnet::core::Params,
            ) -> seqnet::core::Result<Box<dyn seqnet::core::LayerKernel>> {
                Ok(Box::new(Identity))
            }
        }
    };
}

identity_layer!(
    Unregistered,
    "unregisteredIdentity",
    "A layer type nobody registers."
);
identity_layer!(Impostor, "prelu", "Another type claiming PReLU's tag.");

/// Passes its input through.
struct Identity;

impl seqnet::core::LayerKernel for Identity {
    fn forward(
        &mut self,
        inputs: &[&Activation],
        _: &mut seqnet::core::ForwardCtx,
    ) -> seqnet::core::Result<Vec<Activation>> {
        Ok(vec![inputs[0].clone()])
    }
    fn backward(
        &mut self,
        grads: Vec<Option<ndarray::ArrayD<f32>>>,
    ) -> seqnet::core::Result<Vec<Option<ndarray::ArrayD<f32>>>> {
        Ok(grads)
    }
}

#[test]
fn saving_an_unregistered_type_is_refused_and_writes_nothing() {
    let graph = LayerGraph::from_layers([
        SequenceInput::new(3).name("in").into(),
        FullyConnected::new(2).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ])
    .unwrap();
    let mut graph_with = graph.clone();
    graph_with
        .replace_layer("sm", Unregistered { name: "odd".into() }.into())
        .unwrap();
    // The graph is fine to check and summarise; its file would not load back.
    let json = graph_with.to_json();
    let e = LayerGraph::from_json(&json, "g.json")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unregisteredIdentity") && e.contains("'odd'"),
        "{e}"
    );
    // It builds and runs; a model holding it is refused at save, and no file appears.
    let model = Model {
        network: Network::new(&graph_with, 0).unwrap(),
        classes: vec![],
        options: None,
    };
    let path = std::env::temp_dir().join(format!(
        "seqnet_unregistered_{}.safetensors",
        std::process::id()
    ));
    let e = model.save(&path).unwrap_err().to_string();
    assert!(
        e.contains("'odd'") && e.contains("unregisteredIdentity"),
        "{e}"
    );
    assert!(!path.exists());
    // The graph without it saves.
    let plain = Model {
        network: Network::new(&graph, 0).unwrap(),
        classes: vec![],
        options: None,
    };
    plain.save(&path).unwrap();
    std::fs::remove_file(&path).ok();
}

#[test]
fn a_tag_taken_by_another_type_is_refused() {
    register();
    let e = register_layer::<Impostor>().unwrap_err().to_string();
    assert!(e.contains("'prelu'") && e.contains("Impostor"), "{e}");
    // Registering the same type again is fine.
    register_layer::<PRelu>().unwrap();
}

#[test]
fn a_network_with_them_trains_saves_loads_and_predicts() {
    register();
    let options = TrainingOptions::new(Solver::Adam)
        .max_epochs(25)
        .mini_batch_size(27)
        .gradient_threshold(1.0)
        .seed(1);
    let (mut model, record) = train_network(
        &graph(),
        Arc::new(vowels("JapaneseVowels_TRAIN.ts")),
        None,
        &options,
        &mut |_| {},
    )
    .unwrap();
    let first = record.iterations.first().unwrap().loss;
    let last = record.iterations.last().unwrap().loss;
    assert!(last < 0.5 * first, "loss {first} -> {last}");
    // The learnables moved from their declared initial values.
    let alpha = &model
        .network
        .learnables()
        .into_iter()
        .find(|(l, p)| *l == "prelu" && p.name == "Alpha")
        .unwrap()
        .1
        .value;
    assert!(alpha.iter().any(|&a| (a - 0.25).abs() > 1e-3));

    let test = Arc::new(vowels("JapaneseVowels_TEST.ts"));
    let opts = PredictOptions::default();
    let scores = model.predict(test.clone(), &opts).unwrap();
    let labels: Vec<usize> = (0..test.len())
        .map(|i| match test.read(i).unwrap().target {
            Target::Class(c) => c,
            _ => unreachable!(),
        })
        .collect();
    let correct = scores
        .iter()
        .zip(&labels)
        .filter(|(s, &l)| {
            let row = s.row(0);
            let best = (0..row.len())
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap();
            best == l
        })
        .count();
    assert!(
        correct as f64 / labels.len() as f64 > 0.85,
        "{correct}/{}",
        labels.len()
    );

    let dir = std::env::temp_dir().join(format!("seqnet_custom_layer_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m.safetensors");
    model.save(&path).unwrap();
    let mut loaded = Model::load(&path).unwrap();
    assert_eq!(loaded.network.graph(), model.network.graph());
    assert_eq!(loaded.predict(test.clone(), &opts).unwrap(), scores);
    std::fs::remove_dir_all(&dir).ok();

    // activations of the custom layer, after a forward.
    let x = test.read(0).unwrap();
    let Sequence::Features(feats) = &x.data else {
        unreachable!()
    };
    let seq = Array3::from_shape_fn((feats.nrows(), 1, feats.ncols()), |(t, _, c)| feats[[t, c]]);
    let act = Activation::sequence(seq.into_dyn(), None).unwrap();
    model
        .network
        .forward(&[act], None, Mode::Inference, false)
        .unwrap();
    let a = model.network.activations("prelu").unwrap();
    assert_eq!(a.data.shape(), &[1, 16]);

    // predict_and_update_state on a network holding them: steps one at a time
    // end where the whole sequence does (the layers are stateless; the LSTM
    // keeps its state).
    model.network.reset_state();
    let whole =
        predict_and_update_state(&mut model.network, std::slice::from_ref(&x.data)).unwrap();
    model.network.reset_state();
    let mut last_row = None;
    for t in 0..feats.nrows() {
        let step = Array2::from_shape_fn((1, feats.ncols()), |(_, c)| feats[[t, c]]);
        let out =
            predict_and_update_state(&mut model.network, &[Sequence::Features(step)]).unwrap();
        last_row = Some(out[0].row(0).to_owned());
    }
    let last_row = last_row.unwrap();
    for (a, b) in whole[0].row(0).iter().zip(last_row.iter()) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
}
