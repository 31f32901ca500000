//! The graph JSON loader and the checks must answer any text with a graph or an
//! error, never a panic; a graph that passes the checks summarises and exports.
#![no_main]
use libfuzzer_sys::fuzz_target;
use seqnet_core::LayerGraph;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(graph) = LayerGraph::from_json(&text, "fuzz.json") {
        let _ = graph.to_dot();
        if graph.check().is_ok() {
            let _ = graph.summary().map(|s| s.to_string());
            let back = LayerGraph::from_json(&graph.to_json(), "again").expect("a loaded graph reloads");
            assert_eq!(back, graph);
        }
    }
});
