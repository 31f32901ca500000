//! The summary table (as MATLAB's `analyzeNetwork`) and the DOT export.

use super::LayerGraph;
use crate::error::{PortDirection, Result};
use std::fmt;

/// One row of the summary: a layer, its output activations and its learnables.
#[derive(Debug, Clone, PartialEq)]
pub struct SummaryRow {
    pub name: String,
    pub type_name: &'static str,
    /// Each output port's activation size with its format, e.g. `"28×28×1×B×T"`.
    pub activations: Vec<(String, String)>,
    /// Each learnable's name and shape.
    pub learnables: Vec<(&'static str, Vec<usize>)>,
}

/// The summary of a checked graph, rows in schedule order.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub rows: Vec<SummaryRow>,
}

impl Summary {
    /// The number of learnable values in the network.
    pub fn total_learnables(&self) -> usize {
        self.rows
            .iter()
            .flat_map(|r| &r.learnables)
            .map(|(_, s)| s.iter().fold(1usize, |a, &d| a.saturating_mul(d)))
            .fold(0usize, usize::saturating_add)
    }
}

impl LayerGraph {
    /// Checks the graph and summarises it.
    pub fn summary(&self) -> Result<Summary> {
        let plan = self.check()?;
        let rows = plan
            .order
            .iter()
            .map(|&i| {
                let def = self.layers[i].def();
                SummaryRow {
                    name: def.name().to_string(),
                    type_name: def.type_name(),
                    activations: def
                        .output_ports()
                        .iter()
                        .zip(&plan.output_shapes[i])
                        .map(|(p, s)| (p.to_string(), s.to_string()))
                        .collect(),
                    learnables: def
                        .learnables(&plan.input_shapes[i])
                        .into_iter()
                        .map(|l| (l.name, l.shape))
                        .collect(),
                }
            })
            .collect();
        Ok(Summary { rows })
    }

    /// The graph in Graphviz DOT, each edge labelled `output port → input port`.
    pub fn to_dot(&self) -> String {
        let mut s = String::from(
            "digraph seqnet {\n  rankdir=TB;\n  node [shape=box, fontname=\"Helvetica\"];\n",
        );
        for l in &self.layers {
            s.push_str(&format!(
                "  \"{}\" [label=\"{}\\n{}\"];\n",
                l.name(),
                l.name(),
                l.def().type_name()
            ));
        }
        for c in &self.connections {
            let (src, dst) = (
                self.resolve(&c.source, PortDirection::Output),
                self.resolve(&c.destination, PortDirection::Input),
            );
            let split = |p: &str| {
                p.split_once('/')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .unwrap_or((p.to_string(), String::new()))
            };
            let ((sl, sp), (dl, dp)) = (split(&c.source), split(&c.destination));
            let style = if src.is_err() || dst.is_err() {
                ", color=red"
            } else {
                ""
            };
            s.push_str(&format!(
                "  \"{sl}\" -> \"{dl}\" [label=\"{sp} → {dp}\"{style}];\n"
            ));
        }
        s.push_str("}\n");
        s
    }
}

fn shape_text(shape: &[usize]) -> String {
    shape
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("×")
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<[String; 5]> = self
            .rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let acts = match r.activations.len() {
                    0 => "-".to_string(),
                    1 => r.activations[0].1.clone(),
                    _ => r
                        .activations
                        .iter()
                        .map(|(p, s)| format!("{p}: {s}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                };
                let learn = r
                    .learnables
                    .iter()
                    .map(|(n, s)| format!("{n} {}", shape_text(s)))
                    .collect::<Vec<_>>()
                    .join(", ");
                [
                    (i + 1).to_string(),
                    r.name.clone(),
                    r.type_name.to_string(),
                    acts,
                    learn,
                ]
            })
            .collect();
        let header = ["#", "Name", "Type", "Activations", "Learnables"];
        let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for r in &rows {
            for (w, c) in width.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let line = |f: &mut fmt::Formatter<'_>, cells: &[String]| -> fmt::Result {
            let text: Vec<String> = cells
                .iter()
                .zip(&width)
                .map(|(c, w)| format!("{c}{}", " ".repeat(w - c.chars().count())))
                .collect();
            writeln!(f, "{}", text.join("  ").trim_end())
        };
        line(f, &header.map(String::from))?;
        line(f, &width.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>())?;
        for r in &rows {
            line(f, r)?;
        }
        write!(f, "Total learnables: {}", self.total_learnables())
    }
}
