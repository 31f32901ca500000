//! The checks of a layer graph (as MATLAB's `analyzeNetwork`) and its schedule.

use super::{LayerGraph, PortRef};
use crate::error::{Error, GraphProblem, GraphProblems, PortDirection, Result};
use crate::format::ActShape;
use crate::layers::{SequenceFolding, SequenceUnfolding};
use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::DiGraph;
use std::collections::{HashMap, HashSet};

/// A checked graph: the order to run the layers in, where each input port is
/// fed from, and every port's inferred shape.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Layer indices in topological order.
    pub order: Vec<usize>,
    /// For each layer, for each input port, the output port feeding it.
    pub sources: Vec<Vec<PortRef>>,
    /// For each layer, the shapes of its input ports.
    pub input_shapes: Vec<Vec<ActShape>>,
    /// For each layer, the shapes of its output ports.
    pub output_shapes: Vec<Vec<ActShape>>,
    /// For each layer, for each output port, the input ports it feeds.
    pub consumers: Vec<Vec<Vec<PortRef>>>,
}

/// For each layer, for each input port, the output port feeding it (if any).
type Sources = Vec<Vec<Option<PortRef>>>;

/// The inferred shapes: per layer, its input shapes and (when inferred) its outputs.
struct Shapes {
    inputs: Vec<Vec<ActShape>>,
    outputs: Vec<Option<Vec<ActShape>>>,
}

impl LayerGraph {
    /// Checks the graph and reports every problem at once, each naming its layer
    /// and port; on success returns the schedule.
    pub fn check(&self) -> Result<Plan> {
        let mut problems = self.name_problems();
        let (sources, edges) = self.resolve_connections(&mut problems);
        let g = self.digraph(&edges);
        let on_cycle = self.cycles(&g, &mut problems);
        self.open_ends(&sources, &mut problems);
        // Shape inference over the acyclic part, in topological order.
        let mut sub = g.clone();
        sub.retain_nodes(|gr, v| !on_cycle[gr[v]]);
        let order: Vec<usize> = toposort(&sub, None)
            .map(|o| o.into_iter().map(|v| sub[v]).collect())
            .unwrap_or_default();
        let shapes = self.infer_shapes(&order, &sources, &mut problems);
        self.folding_problems(&sources, &mut problems);
        if !problems.is_empty() {
            return Err(Error::InvalidGraph(GraphProblems(problems)));
        }
        Ok(self.plan(order, sources, shapes))
    }

    /// Empty and duplicate layer names.
    fn name_problems(&self) -> Vec<GraphProblem> {
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        for layer in &self.layers {
            if layer.name().is_empty() {
                problems.push(GraphProblem::EmptyLayerName);
            } else if !seen.insert(layer.name()) {
                problems.push(GraphProblem::DuplicateLayerName {
                    name: layer.name().to_string(),
                });
            }
        }
        problems
    }

    /// Each input port's source and the layer-to-layer edges; unknown ports
    /// and ports fed twice (the first source is kept) are problems.
    fn resolve_connections(
        &self,
        problems: &mut Vec<GraphProblem>,
    ) -> (Sources, Vec<(usize, usize)>) {
        let mut sources: Sources = self
            .layers
            .iter()
            .map(|l| vec![None; l.def().input_ports().len()])
            .collect();
        let mut first_source: HashMap<PortRef, String> = HashMap::new();
        let mut edges = Vec::new();
        for c in &self.connections {
            let src = self.resolve(&c.source, PortDirection::Output);
            let dst = self.resolve(&c.destination, PortDirection::Input);
            let (src, dst) = match (src, dst) {
                (Ok(s), Ok(d)) => (s, d),
                (s, d) => {
                    problems.extend(s.err());
                    problems.extend(d.err());
                    continue;
                }
            };
            if let Some(first) = first_source.get(&dst) {
                let name = self.port_name(dst, PortDirection::Input);
                let (layer, port) = name.split_once('/').expect("port names have a '/'");
                problems.push(GraphProblem::InputFedTwice {
                    layer: layer.into(),
                    port: port.into(),
                    first: first.clone(),
                    second: c.source.clone(),
                });
                continue;
            }
            first_source.insert(dst, c.source.clone());
            sources[dst.layer][dst.port] = Some(src);
            edges.push((src.layer, dst.layer));
        }
        (sources, edges)
    }

    /// The layers as a petgraph graph (node weight: layer index).
    fn digraph(&self, edges: &[(usize, usize)]) -> DiGraph<usize, ()> {
        let n = self.layers.len();
        let mut g = DiGraph::<usize, ()>::with_capacity(n, edges.len());
        let nodes: Vec<_> = (0..n).map(|i| g.add_node(i)).collect();
        for &(a, b) in edges {
            g.add_edge(nodes[a], nodes[b], ());
        }
        g
    }

    /// Every cycle (Tarjan's strongly connected components) as a problem;
    /// returns which layers lie on one.
    fn cycles(&self, g: &DiGraph<usize, ()>, problems: &mut Vec<GraphProblem>) -> Vec<bool> {
        let mut on_cycle = vec![false; self.layers.len()];
        for scc in tarjan_scc(g) {
            let cyclic = scc.len() > 1 || scc.iter().any(|&v| g.contains_edge(v, v));
            if cyclic {
                let mut members: Vec<usize> = scc.iter().map(|v| g[*v]).collect();
                members.sort_unstable();
                for &m in &members {
                    on_cycle[m] = true;
                }
                problems.push(GraphProblem::Cycle {
                    layers: members
                        .iter()
                        .map(|&m| self.layers[m].name().to_string())
                        .collect(),
                });
            }
        }
        on_cycle
    }

    /// Unconnected input ports, and a graph without an input or output layer.
    fn open_ends(&self, sources: &Sources, problems: &mut Vec<GraphProblem>) {
        for (i, layer) in self.layers.iter().enumerate() {
            for (p, port) in layer.def().input_ports().iter().enumerate() {
                if sources[i][p].is_none() {
                    problems.push(GraphProblem::UnconnectedInput {
                        layer: layer.name().to_string(),
                        port: port.to_string(),
                    });
                }
            }
        }
        if !self.layers.iter().any(|l| l.def().is_input()) {
            problems.push(GraphProblem::NoInputLayer);
        }
        if !self.layers.iter().any(|l| l.def().is_output()) {
            problems.push(GraphProblem::NoOutputLayer);
        }
    }

    /// Infers every layer's shapes in `order`; a layer whose inputs are not
    /// all known (downstream of a problem) is skipped.
    fn infer_shapes(
        &self,
        order: &[usize],
        sources: &Sources,
        problems: &mut Vec<GraphProblem>,
    ) -> Shapes {
        let n = self.layers.len();
        let mut shapes = Shapes {
            inputs: vec![Vec::new(); n],
            outputs: vec![None; n],
        };
        for &i in order {
            let ins: Option<Vec<ActShape>> = sources[i]
                .iter()
                .map(|s| {
                    s.and_then(|s| {
                        shapes.outputs[s.layer]
                            .as_ref()
                            .and_then(|o| o.get(s.port).copied())
                    })
                })
                .collect();
            let Some(ins) = ins else { continue };
            match self.layers[i].def().infer(&ins) {
                Ok(outs) if outs.iter().any(|o| o.elements() > ActShape::MAX_ELEMENTS) => {
                    problems.push(self.too_large(i, &outs))
                }
                Ok(outs) => shapes.outputs[i] = Some(outs),
                Err(e) => problems.push(self.shape_problem(i, e)),
            }
            shapes.inputs[i] = ins;
        }
        shapes
    }

    /// Layer `i`'s outputs are too large to allocate.
    fn too_large(&self, i: usize, outs: &[ActShape]) -> GraphProblem {
        GraphProblem::SizeMismatch {
            layer: self.layers[i].name().to_string(),
            port: "(output)".to_string(),
            message: format!(
                "its output {} has more than {} elements per step",
                outs.iter()
                    .map(|o| o.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                ActShape::MAX_ELEMENTS
            ),
        }
    }

    /// A shape error of layer `i`, at the port it names.
    fn shape_problem(&self, i: usize, e: crate::layer::ShapeError) -> GraphProblem {
        let def = self.layers[i].def();
        GraphProblem::SizeMismatch {
            layer: def.name().to_string(),
            port: def
                .input_ports()
                .get(e.port)
                .copied()
                .unwrap_or("(layer)")
                .to_string(),
            message: e.message,
        }
    }

    /// A folding layer whose `miniBatchSize` does not reach an unfolding layer.
    fn folding_problems(&self, sources: &Sources, problems: &mut Vec<GraphProblem>) {
        for (i, layer) in self.layers.iter().enumerate() {
            if layer.is::<SequenceFolding>() {
                let reaches = sources.iter().enumerate().any(|(j, srcs)| {
                    self.layers[j].is::<SequenceUnfolding>()
                        && srcs.get(1) == Some(&Some(PortRef { layer: i, port: 1 }))
                });
                if !reaches {
                    problems.push(GraphProblem::FoldingNotUnfolded {
                        layer: layer.name().to_string(),
                    });
                }
            }
        }
    }

    /// The plan of a graph that passed every check.
    fn plan(&self, order: Vec<usize>, sources: Sources, shapes: Shapes) -> Plan {
        let sources: Vec<Vec<PortRef>> = sources
            .into_iter()
            .map(|s| {
                s.into_iter()
                    .map(|p| p.expect("checked: every input is connected"))
                    .collect()
            })
            .collect();
        let mut consumers: Vec<Vec<Vec<PortRef>>> = self
            .layers
            .iter()
            .map(|l| vec![Vec::new(); l.def().output_ports().len()])
            .collect();
        for (j, srcs) in sources.iter().enumerate() {
            for (p, s) in srcs.iter().enumerate() {
                consumers[s.layer][s.port].push(PortRef { layer: j, port: p });
            }
        }
        Plan {
            order,
            sources,
            input_shapes: shapes.inputs,
            output_shapes: shapes
                .outputs
                .into_iter()
                .map(|o| o.expect("checked: every shape inferred"))
                .collect(),
            consumers,
        }
    }
}
