//! `seqnet summary` and `seqnet graph`: a graph JSON's or a model file's
//! layer table, and its graph as DOT or JSON.

use super::predict::load_model;
use super::{in_file, is_model_file, load_graph, out};
use clap::ValueEnum;
use seqnet_core::{LayerGraph, Result};
use seqnet_train::Model;
use std::path::{Path, PathBuf};

/// `seqnet summary`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: seqnet new video > net.json && seqnet summary net.json")]
pub struct SummaryArgs {
    /// A graph JSON or a model file (.safetensors).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

/// Output formats of `seqnet graph`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GraphFormat {
    /// Graphviz DOT, each edge labelled with its ports (render with `dot -Tpng`)
    Dot,
    /// the graph JSON (architecture only; takes it out of a model file)
    Json,
}

/// `seqnet graph`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: seqnet graph net.json --format dot | dot -Tpng -o net.png")]
pub struct GraphArgs {
    /// A graph JSON or a model file (.safetensors).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// The graph of a graph JSON or of a model file, and the model if it is one.
fn open(path: &Path) -> Result<(LayerGraph, Option<Model>)> {
    if is_model_file(path) {
        let model = load_model(path)?;
        Ok((model.network.graph().clone(), Some(model)))
    } else {
        Ok((load_graph(path)?, None))
    }
}

/// Runs `seqnet summary`.
pub fn run_summary(args: SummaryArgs) -> Result<()> {
    let (graph, model) = open(&args.file)?;
    let summary = graph.summary().map_err(|e| in_file(&args.file, e))?;
    let mut text = format!("{summary}\n");
    if let Some(m) = model {
        if !m.classes.is_empty() {
            text.push_str(&format!(
                "Classes ({}): {}\n",
                m.classes.len(),
                m.classes.join(", ")
            ));
        }
        if let Some(o) = &m.options {
            text.push_str(&format!(
                "Trained with: solver {:?}, {} epochs, mini-batch {}, learning rate {}, seed {}\n",
                o.solver,
                o.max_epochs,
                o.mini_batch_size,
                o.learn_rate(),
                o.seed
            ));
        }
    }
    out(&text)
}

/// Runs `seqnet graph`.
pub fn run_graph(args: GraphArgs) -> Result<()> {
    let (graph, _) = open(&args.file)?;
    match args.format {
        GraphFormat::Dot => out(&graph.to_dot()),
        GraphFormat::Json => out(&format!("{}\n", graph.to_json())),
    }
}
