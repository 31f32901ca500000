//! `seqnet summary` and `seqnet graph`: a graph JSON's or a model file's
//! layer table, and its graph as DOT or JSON.

use super::{graph_from_text, in_file, io_error, out, shown};
use super::{CliError, Result};
use clap::ValueEnum;
use seqnet_core::LayerGraph;
use seqnet_train::Model;
use std::io::Read;
use std::path::{Path, PathBuf};

/// `seqnet summary`'s arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Example: seqnet new video > net.json && seqnet summary net.json")]
pub struct SummaryArgs {
    /// A graph JSON or a model file (.safetensors); - reads standard input.
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
    /// A graph JSON or a model file (.safetensors); - reads standard input.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "dot")]
    pub format: GraphFormat,
}

/// The graph of a graph JSON or of a model file, and the model if it is one.
/// `-` reads standard input. The file is read once (so a pipe works): a
/// `.safetensors` name or contents that do not start with `{` are a model.
fn open(path: &Path) -> Result<(LayerGraph, Option<Model>)> {
    let (bytes, name) = if path.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::stdin()
            .read_to_end(&mut b)
            .map_err(|e| io_error(Path::new("standard input"), e))?;
        (b, "standard input".to_string())
    } else {
        if path.is_dir() {
            return Err(CliError::NotWhatIsNeeded {
                path: shown(path),
                problem: "is a folder, expected a graph JSON or a model file".into(),
            });
        }
        (
            std::fs::read(path).map_err(|e| io_error(path, e))?,
            shown(path),
        )
    };
    let named_model = path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
    let first = bytes.iter().find(|c| !c.is_ascii_whitespace()).copied();
    if named_model || first.is_some_and(|c| c != b'{') {
        let model =
            Model::from_bytes(&bytes, &name).map_err(|e| in_file(Path::new(&name), e.into()))?;
        return Ok((model.network.graph().clone(), Some(model)));
    }
    let text = String::from_utf8(bytes).map_err(|e| CliError::NotText {
        path: name.clone(),
        byte: e.utf8_error().valid_up_to(),
    })?;
    Ok((graph_from_text(&text, &name)?, None))
}

/// Runs `seqnet summary`.
pub fn run_summary(args: SummaryArgs) -> Result<()> {
    let (graph, model) = open(&args.file)?;
    let summary = graph.summary().map_err(|e| in_file(&args.file, e.into()))?;
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
