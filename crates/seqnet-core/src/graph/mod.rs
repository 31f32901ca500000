//! `LayerGraph`: named layers joined port to port, as MATLAB's `layerGraph`.
//!
//! A port is addressed as `"layer/port"`; a layer with one input (or output)
//! port may be addressed by its name alone (`"lstm"` means `"lstm/in"` as a
//! destination and `"lstm/out"` as a source).

mod check;
mod summary;

pub use check::Plan;
pub use summary::Summary;

use crate::error::{Error, GraphProblem, GraphProblems, PortDirection, Result};
use crate::layers::Layer;
use serde::{Deserialize, Serialize};

/// One edge: from an output port to an input port, each as `"layer/port"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub source: String,
    pub destination: String,
}

/// A resolved port: layer index and port index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortRef {
    pub layer: usize,
    pub port: usize,
}

/// A graph of named layers. Edit it freely; [`LayerGraph::check`] reports every
/// problem at once and [`crate::Network::new`] compiles a checked graph.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LayerGraph {
    pub layers: Vec<Layer>,
    pub connections: Vec<Connection>,
}

impl LayerGraph {
    /// An empty graph.
    pub fn new() -> Self {
        Self::default()
    }

    /// The graph of a layer array, each layer connected to the next as MATLAB's
    /// `layerGraph(layers)` does: the first output port of a layer feeds the first
    /// input port of the next. Unnamed layers get names from their type
    /// (`lstm`, `lstm_1`, …).
    pub fn from_layers(layers: impl IntoIterator<Item = Layer>) -> Result<Self> {
        let mut graph = LayerGraph::new();
        graph.add_layers(layers)?;
        for i in 1..graph.layers.len() {
            let (prev, next) = (graph.layers[i - 1].def(), graph.layers[i].def());
            if let (Some(out), Some(inp)) =
                (prev.output_ports().first(), next.input_ports().first())
            {
                graph.connections.push(Connection {
                    source: format!("{}/{}", prev.name(), out),
                    destination: format!("{}/{}", next.name(), inp),
                });
            }
        }
        Ok(graph)
    }

    /// Adds layers unconnected, naming unnamed ones. A name already taken is an error.
    pub fn add_layers(&mut self, layers: impl IntoIterator<Item = Layer>) -> Result<()> {
        let mut problems = Vec::new();
        for mut layer in layers {
            if layer.name().is_empty() {
                let name = self.fresh_name(layer.tag());
                layer.set_name(name);
            } else if self.index(layer.name()).is_some() {
                problems.push(GraphProblem::DuplicateLayerName {
                    name: layer.name().to_string(),
                });
                continue;
            } else if layer.name().contains('/') {
                return Err(Error::InvalidLayerName {
                    name: layer.name().to_string(),
                });
            }
            self.layers.push(layer);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidGraph(GraphProblems(problems)))
        }
    }

    fn fresh_name(&self, stem: &str) -> String {
        if self.index(stem).is_none() {
            return stem.to_string();
        }
        (1..)
            .map(|i| format!("{stem}_{i}"))
            .find(|n| self.index(n).is_none())
            .expect("some suffix is free")
    }

    /// Removes layers and every connection touching them.
    pub fn remove_layers(&mut self, names: &[&str]) -> Result<()> {
        for name in names {
            if self.index(name).is_none() {
                return Err(Error::InvalidGraph(GraphProblems(vec![
                    GraphProblem::UnknownLayer {
                        layer: name.to_string(),
                    },
                ])));
            }
        }
        self.layers.retain(|l| !names.contains(&l.name()));
        self.connections.retain(|c| {
            let touches = |p: &str| names.contains(&p.split('/').next().unwrap_or(""));
            !touches(&c.source) && !touches(&c.destination)
        });
        Ok(())
    }

    /// Replaces layer `name` with `layer` (renamed to `name` if unnamed), keeping
    /// the connections whose ports the new layer also has.
    pub fn replace_layer(&mut self, name: &str, mut layer: Layer) -> Result<()> {
        let i = self.index(name).ok_or_else(|| {
            Error::InvalidGraph(GraphProblems(vec![GraphProblem::UnknownLayer {
                layer: name.to_string(),
            }]))
        })?;
        if layer.name().is_empty() {
            layer.set_name(name);
        }
        let new_name = layer.name().to_string();
        if new_name != name && self.index(&new_name).is_some() {
            return Err(Error::InvalidGraph(GraphProblems(vec![
                GraphProblem::DuplicateLayerName { name: new_name },
            ])));
        }
        let (ins, outs) = (layer.def().input_ports(), layer.def().output_ports());
        self.layers[i] = layer;
        let rename = |p: &str, ports: &[&str]| -> Option<String> {
            let (l, port) = p.split_once('/')?;
            if l != name {
                return Some(p.to_string());
            }
            ports.contains(&port).then(|| format!("{new_name}/{port}"))
        };
        self.connections = self
            .connections
            .iter()
            .filter_map(|c| {
                Some(Connection {
                    source: rename(&c.source, outs)?,
                    destination: rename(&c.destination, ins)?,
                })
            })
            .collect();
        Ok(())
    }

    /// Connects an output port to an input port (MATLAB's `connectLayers`).
    /// Fails at once, naming the layer and port, when either end is unknown or
    /// the input port is already fed.
    pub fn connect(&mut self, source: &str, destination: &str) -> Result<()> {
        let src = self.resolve(source, PortDirection::Output).map_err(one)?;
        let dst = self
            .resolve(destination, PortDirection::Input)
            .map_err(one)?;
        let (s, d) = (
            self.port_name(src, PortDirection::Output),
            self.port_name(dst, PortDirection::Input),
        );
        if let Some(c) = self
            .connections
            .iter()
            .find(|c| self.resolve(&c.destination, PortDirection::Input).ok() == Some(dst))
        {
            let (layer, port) = d.split_once('/').expect("resolved names have a port");
            return Err(one(GraphProblem::InputFedTwice {
                layer: layer.into(),
                port: port.into(),
                first: c.source.clone(),
                second: s,
            }));
        }
        self.connections.push(Connection {
            source: s,
            destination: d,
        });
        Ok(())
    }

    /// Removes the connection between two ports (MATLAB's `disconnectLayers`).
    pub fn disconnect(&mut self, source: &str, destination: &str) -> Result<()> {
        let src = self.resolve(source, PortDirection::Output).map_err(one)?;
        let dst = self
            .resolve(destination, PortDirection::Input)
            .map_err(one)?;
        let before = self.connections.len();
        let resolved: Vec<_> = self
            .connections
            .iter()
            .map(|c| {
                (
                    self.resolve(&c.source, PortDirection::Output).ok(),
                    self.resolve(&c.destination, PortDirection::Input).ok(),
                )
            })
            .collect();
        let mut keep = resolved
            .iter()
            .map(|&(s, d)| !(s == Some(src) && d == Some(dst)));
        self.connections.retain(|_| keep.next().unwrap_or(true));
        if self.connections.len() == before {
            return Err(Error::NoConnection {
                from: source.to_string(),
                destination: destination.to_string(),
            });
        }
        Ok(())
    }

    /// The layer called `name`.
    pub fn layer(&self, name: &str) -> Option<&Layer> {
        self.index(name).map(|i| &self.layers[i])
    }

    /// The index of layer `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.layers.iter().position(|l| l.name() == name)
    }

    /// Names of the input layers, in order.
    pub fn input_names(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.def().is_input())
            .map(|l| l.name().to_string())
            .collect()
    }

    /// Names of the output layers, in order.
    pub fn output_names(&self) -> Vec<String> {
        self.layers
            .iter()
            .filter(|l| l.def().is_output())
            .map(|l| l.name().to_string())
            .collect()
    }

    /// Resolves `"layer/port"` (or `"layer"` for a layer with one such port).
    pub fn resolve(&self, spec: &str, direction: PortDirection) -> Result<PortRef, GraphProblem> {
        let (layer_name, port_name) = match spec.split_once('/') {
            Some((l, p)) => (l, Some(p)),
            None => (spec, None),
        };
        let layer = self
            .index(layer_name)
            .ok_or_else(|| GraphProblem::UnknownLayer {
                layer: layer_name.to_string(),
            })?;
        let def = self.layers[layer].def();
        let ports = match direction {
            PortDirection::Input => def.input_ports(),
            PortDirection::Output => def.output_ports(),
        };
        let unknown = |port: &str| GraphProblem::UnknownPort {
            layer: layer_name.to_string(),
            port: port.to_string(),
            direction,
            available: if ports.is_empty() {
                "no such ports".to_string()
            } else {
                ports.join(", ")
            },
        };
        let port = match port_name {
            Some(p) => ports
                .iter()
                .position(|q| *q == p)
                .ok_or_else(|| unknown(p))?,
            None if ports.len() == 1 => 0,
            None => {
                return Err(unknown(if ports.is_empty() {
                    "(any)"
                } else {
                    "(which one?)"
                }))
            }
        };
        Ok(PortRef { layer, port })
    }

    /// `"layer/port"` for a resolved port.
    pub fn port_name(&self, p: PortRef, direction: PortDirection) -> String {
        let def = self.layers[p.layer].def();
        let ports = match direction {
            PortDirection::Input => def.input_ports(),
            PortDirection::Output => def.output_ports(),
        };
        format!("{}/{}", def.name(), ports[p.port])
    }

    /// The graph as JSON (architecture only, no weights).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a LayerGraph always serialises")
    }

    /// A graph from JSON; `origin` names the source (a file path) in errors.
    pub fn from_json(json: &str, origin: &str) -> Result<Self> {
        serde_json::from_str(json).map_err(|e| Error::Parse {
            file: origin.to_string(),
            line: e.line(),
            message: format!("not a layer graph: {e}"),
        })
    }
}

fn one(p: GraphProblem) -> Error {
    Error::InvalidGraph(GraphProblems(vec![p]))
}
