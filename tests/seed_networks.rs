//! The seed's five layer arrays (the `examples/*_network.rs` files) check, and
//! their summaries show the sizes the seed's documentation shows.

#[path = "../examples/seq2label_network.rs"]
mod seq2label;
#[path = "../examples/seq2one_regression_network.rs"]
mod seq2one;
#[path = "../examples/seq2seq_classification_network.rs"]
mod seq2seq_class;
#[path = "../examples/seq2seq_regression_network.rs"]
mod seq2seq_regress;
#[path = "../examples/video_network.rs"]
mod video;

fn summary(graph: seqnet::core::Result<seqnet::LayerGraph>) -> String {
    graph
        .and_then(|g| g.summary())
        .map(|s| s.to_string())
        .unwrap_or_else(|e| panic!("{e}"))
}

fn assert_contains(text: &str, wanted: &[&str]) {
    for w in wanted {
        assert!(text.contains(w), "summary lacks '{w}':\n{text}");
    }
}

#[test]
fn video_network_summary_shows_the_seed_sizes() {
    let s = summary(video::network());
    assert_contains(
        &s,
        &[
            "28×28×1×B×T",
            "out: 28×28×1×B, miniBatchSize: B",
            "24×24×20×B",
            "24×24×20×B×T",
            "11520×B×T",
            "200×B",
            "10×B",
            "Weights 20×1×5×5",
            "InputWeights 800×11520",
        ],
    );
    let g = video::network().unwrap();
    assert!(g.to_dot().contains("miniBatchSize → miniBatchSize"));
}

#[test]
fn feature_networks_summaries() {
    assert_contains(
        &summary(seq2label::network()),
        &["12×B×T", "100×B", "9×B", "Total learnables: 46109"],
    );
    assert_contains(
        &summary(seq2seq_class::network()),
        &["3×B×T", "200×B×T", "5×B×T"],
    );
    assert_contains(&summary(seq2one::network()), &["12×B×T", "125×B", "1×B"]);
    assert_contains(
        &summary(seq2seq_regress::network()),
        &["17×B×T", "200×B×T", "50×B×T", "1×B×T"],
    );
}

#[test]
fn every_seed_graph_round_trips_through_json() {
    for g in [
        seq2label::network(),
        seq2seq_class::network(),
        seq2one::network(),
        seq2seq_regress::network(),
        video::network(),
    ] {
        let g = g.unwrap();
        let back = seqnet::LayerGraph::from_json(&g.to_json(), "test").unwrap();
        assert_eq!(back, g);
    }
}
