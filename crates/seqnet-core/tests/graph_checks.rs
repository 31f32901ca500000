//! Every check of `LayerGraph::check` on a broken graph, asserting that the
//! error names the culprit layer and port; and all problems reported at once.

use seqnet_core::error::{GraphProblem, PortDirection};
use seqnet_core::layers::*;
use seqnet_core::{Connection, Error, Layer, LayerGraph};

fn problems(g: &LayerGraph) -> Vec<GraphProblem> {
    match g.check() {
        Err(Error::InvalidGraph(p)) => p.0,
        Err(e) => panic!("expected graph problems, got {e}"),
        Ok(_) => panic!("expected the check to fail"),
    }
}

fn chain() -> Vec<Layer> {
    vec![
        SequenceInput::new(12).name("in").into(),
        FullyConnected::new(9).name("fc").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ]
}

fn conn(s: &str, d: &str) -> Connection {
    Connection {
        source: s.into(),
        destination: d.into(),
    }
}

#[test]
fn a_good_chain_passes_and_is_scheduled_in_order() {
    let g = LayerGraph::from_layers(chain()).unwrap();
    let plan = g.check().unwrap();
    let names: Vec<_> = plan.order.iter().map(|&i| g.layers[i].name()).collect();
    assert_eq!(names, ["in", "fc", "sm", "out"]);
    assert_eq!(g.input_names(), ["in"]);
    assert_eq!(g.output_names(), ["out"]);
}

#[test]
fn unnamed_layers_get_names_from_their_type() {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(3).into(),
        FullyConnected::new(2).into(),
        FullyConnected::new(2).into(),
        RegressionOutput::new().into(),
    ])
    .unwrap();
    let names: Vec<_> = g.layers.iter().map(|l| l.name()).collect();
    assert_eq!(
        names,
        [
            "sequenceInput",
            "fullyConnected",
            "fullyConnected_1",
            "regression"
        ]
    );
}

#[test]
fn duplicate_names() {
    let err = LayerGraph::from_layers(vec![
        SequenceInput::new(3).name("a").into(),
        Relu::new().name("a").into(),
    ])
    .unwrap_err();
    assert_eq!(
        err.graph_problems(),
        [GraphProblem::DuplicateLayerName { name: "a".into() }]
    );
    // A graph edited by hand (or loaded from JSON) is caught by the check.
    let mut g = LayerGraph::from_layers(chain()).unwrap();
    g.layers.push(Relu::new().name("fc").into());
    assert!(problems(&g).contains(&GraphProblem::DuplicateLayerName { name: "fc".into() }));
}

#[test]
fn unknown_layer_and_port_when_connecting_and_when_checking() {
    let mut g = LayerGraph::from_layers(chain()).unwrap();
    let e = g.connect("nope", "fc").unwrap_err();
    assert_eq!(e.graph_problems()[0].layer(), Some("nope"));
    let e = g.connect("in/bogus", "fc").unwrap_err();
    let p = &e.graph_problems()[0];
    assert_eq!((p.layer(), p.port()), (Some("in"), Some("bogus")));
    assert!(matches!(
        p,
        GraphProblem::UnknownPort {
            direction: PortDirection::Output,
            ..
        }
    ));
    assert!(
        p.to_string().contains("out"),
        "lists the available ports: {p}"
    );

    g.connections.push(conn("ghost/out", "fc/in"));
    g.connections.push(conn("in/out", "sm/side"));
    let ps = problems(&g);
    assert!(
        ps.contains(&GraphProblem::UnknownLayer {
            layer: "ghost".into()
        }),
        "{ps:?}"
    );
    assert!(
        ps.iter()
            .any(|p| p.layer() == Some("sm") && p.port() == Some("side")),
        "{ps:?}"
    );
}

#[test]
fn an_input_port_fed_twice() {
    let mut g = LayerGraph::from_layers(chain()).unwrap();
    let e = g.connect("in", "sm").unwrap_err();
    assert!(
        matches!(&e.graph_problems()[0], GraphProblem::InputFedTwice { layer, port, .. } if layer == "sm" && port == "in"),
        "{e}"
    );
    g.connections.push(conn("in/out", "sm/in"));
    let ps = problems(&g);
    assert!(ps.iter().any(|p| matches!(p, GraphProblem::InputFedTwice { layer, port, first, second } if layer == "sm" && port == "in" && first == "fc/out" && second == "in/out")), "{ps:?}");
}

#[test]
fn a_cycle_names_its_layers() {
    let mut g = LayerGraph::from_layers(vec![
        SequenceInput::new(4).name("in").into(),
        Addition::new(2).name("add").into(),
        Relu::new().name("relu").into(),
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    g.connect("relu", "add/in2").unwrap();
    let ps = problems(&g);
    let cycle = ps.iter().find_map(|p| match p {
        GraphProblem::Cycle { layers } => Some(layers.clone()),
        _ => None,
    });
    let mut cycle = cycle.expect("a cycle is reported");
    cycle.sort();
    assert_eq!(cycle, ["add", "relu"]);
}

#[test]
fn an_unconnected_input_port() {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::new(4).name("in").into(),
        Addition::new(2).name("add").into(),
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    assert_eq!(
        problems(&g),
        [GraphProblem::UnconnectedInput {
            layer: "add".into(),
            port: "in2".into()
        }]
    );
}

#[test]
fn no_input_layer_and_no_output_layer() {
    let g = LayerGraph::from_layers(vec![
        FullyConnected::new(3).name("fc").into(),
        Softmax::new().name("sm").into(),
    ])
    .unwrap();
    let ps = problems(&g);
    assert!(ps.contains(&GraphProblem::NoInputLayer), "{ps:?}");
    assert!(ps.contains(&GraphProblem::NoOutputLayer), "{ps:?}");
    assert!(
        ps.contains(&GraphProblem::UnconnectedInput {
            layer: "fc".into(),
            port: "in".into()
        }),
        "{ps:?}"
    );
}

#[test]
fn a_size_mismatch_found_by_shape_inference() {
    let mut g = LayerGraph::from_layers(vec![
        SequenceInput::new(12).name("in").into(),
        FullyConnected::new(5).name("fc").into(),
        Addition::new(2).name("add").into(),
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    g.connect("in", "add/in2").unwrap();
    let ps = problems(&g);
    assert_eq!(ps.len(), 1, "{ps:?}");
    assert_eq!((ps[0].layer(), ps[0].port()), (Some("add"), Some("in2")));
    assert!(
        ps[0].to_string().contains("12×B×T") && ps[0].to_string().contains("5×B×T"),
        "{}",
        ps[0]
    );
}

#[test]
fn a_format_mismatch_found_by_shape_inference() {
    // Softmax takes features, not image sequences.
    let g = LayerGraph::from_layers(vec![
        SequenceInput::image([8, 8, 1]).name("in").into(),
        Softmax::new().name("sm").into(),
        ClassificationOutput::new().name("out").into(),
    ])
    .unwrap();
    let ps = problems(&g);
    assert_eq!((ps[0].layer(), ps[0].port()), (Some("sm"), Some("in")));
    assert!(ps[0].to_string().contains("8×8×1×B×T"), "{}", ps[0]);
}

#[test]
fn folding_whose_mini_batch_size_does_not_reach_unfolding() {
    let g = LayerGraph::from_layers(vec![
        SequenceInput::image([8, 8, 1]).name("in").into(),
        SequenceFolding::new().name("fold").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flat").into(),
        FullyConnected::new(2).name("fc").into(),
        RegressionOutput::new().name("out").into(),
    ])
    .unwrap();
    let ps = problems(&g);
    assert!(
        ps.contains(&GraphProblem::FoldingNotUnfolded {
            layer: "fold".into()
        }),
        "{ps:?}"
    );
    assert!(
        ps.contains(&GraphProblem::UnconnectedInput {
            layer: "unfold".into(),
            port: "miniBatchSize".into()
        }),
        "{ps:?}"
    );
    let mut g = g;
    g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    g.check().expect("connected folding passes");
}

#[test]
fn every_problem_is_reported_at_once() {
    let mut g = LayerGraph::from_layers(chain()).unwrap();
    g.layers.push(Addition::new(2).name("add").into());
    g.connections.push(conn("fc/out", "add/in1"));
    g.connections.push(conn("ghost", "sm"));
    g.layers.push(Relu::new().name("fc").into());
    let ps = problems(&g);
    assert!(ps.len() >= 3, "{ps:?}");
    let text = Error::InvalidGraph(seqnet_core::error::GraphProblems(ps)).to_string();
    assert!(
        text.contains("ghost") && text.contains("add/in2") && text.contains("'fc'"),
        "{text}"
    );
}

#[test]
fn editing_remove_replace_disconnect() {
    let mut g = LayerGraph::from_layers(chain()).unwrap();
    g.replace_layer("fc", FullyConnected::new(4).into())
        .unwrap();
    assert_eq!(
        g.layer("fc"),
        Some(&Layer::from(FullyConnected::new(4).name("fc")))
    );
    g.check().unwrap();
    g.disconnect("fc", "sm").unwrap();
    assert!(g.disconnect("fc", "sm").is_err());
    assert_eq!(
        problems(&g),
        [GraphProblem::UnconnectedInput {
            layer: "sm".into(),
            port: "in".into()
        }]
    );
    g.remove_layers(&["fc"]).unwrap();
    g.connect("in", "sm").unwrap();
    g.check().unwrap();
    assert!(g.remove_layers(&["fc"]).is_err());
}

#[test]
fn graph_json_round_trips_and_bad_json_names_the_line() {
    let mut g = LayerGraph::from_layers(vec![
        SequenceInput::image([28, 28, 1]).name("input").into(),
        SequenceFolding::new().name("fold").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        FullyConnected::new(10).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classification").into(),
    ])
    .unwrap();
    g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    let json = g.to_json();
    let back = LayerGraph::from_json(&json, "net.json").unwrap();
    assert_eq!(back, g);
    let broken = json.replacen("\"numHidden", "\"x", 1).replacen(
        "\"type\": \"flatten\"",
        "\"type\": \"flattn\"",
        1,
    );
    let e = LayerGraph::from_json(&broken, "net.json").unwrap_err();
    match e {
        Error::Parse {
            file,
            line,
            message,
        } => {
            assert_eq!(file, "net.json");
            assert!(line > 1, "the line of the bad layer, got {line}");
            assert!(message.contains("flattn"), "{message}");
        }
        other => panic!("expected a parse error, got {other}"),
    }
}

#[test]
fn summary_lists_formats_and_learnables_and_dot_labels_ports() {
    let mut g = LayerGraph::from_layers(vec![
        SequenceInput::image([28, 28, 1]).name("input").into(),
        SequenceFolding::new().name("fold").into(),
        Relu::new().name("relu").into(),
        SequenceUnfolding::new().name("unfold").into(),
        Flatten::new().name("flatten").into(),
        FullyConnected::new(10).name("fc").into(),
        Softmax::new().name("softmax").into(),
        ClassificationOutput::new().name("classification").into(),
    ])
    .unwrap();
    g.connect("fold/miniBatchSize", "unfold/miniBatchSize")
        .unwrap();
    let s = g.summary().unwrap();
    assert_eq!(s.total_learnables(), 10 * 784 + 10);
    let text = s.to_string();
    for want in [
        "28×28×1×B×T",
        "out: 28×28×1×B",
        "784×B×T",
        "Weights 10×784",
        "Total learnables: 7850",
    ] {
        assert!(text.contains(want), "summary lacks {want}:\n{text}");
    }
    let dot = g.to_dot();
    assert!(
        dot.contains("\"fold\" -> \"unfold\" [label=\"miniBatchSize → miniBatchSize\"]"),
        "{dot}"
    );
}
