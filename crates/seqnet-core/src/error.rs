//! The one error type of seqnet's core. Every variant names what is at fault:
//! the layer, the port, the file and line, or the option.

use std::fmt;

/// A problem found while checking a [`crate::LayerGraph`]. The checks collect
/// every problem at once into [`Error::InvalidGraph`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GraphProblem {
    #[error("two layers are named '{name}'")]
    DuplicateLayerName { name: String },
    #[error("a layer has an empty name")]
    EmptyLayerName,
    #[error("connection names unknown layer '{layer}'")]
    UnknownLayer { layer: String },
    #[error("layer '{layer}' has no {direction} port '{port}' (it has: {available})")]
    UnknownPort {
        layer: String,
        port: String,
        direction: PortDirection,
        available: String,
    },
    #[error("input port '{layer}/{port}' is fed twice, by '{first}' and by '{second}'")]
    InputFedTwice {
        layer: String,
        port: String,
        first: String,
        second: String,
    },
    #[error("the layers {layers:?} form a cycle")]
    Cycle { layers: Vec<String> },
    #[error("input port '{layer}/{port}' is not connected")]
    UnconnectedInput { layer: String, port: String },
    #[error("the graph has no input layer")]
    NoInputLayer,
    #[error("the graph has no output layer")]
    NoOutputLayer,
    #[error("layer '{layer}', input port '{port}': {message}")]
    SizeMismatch {
        layer: String,
        port: String,
        message: String,
    },
    #[error("sequence folding layer '{layer}': its output port 'miniBatchSize' does not reach a sequence unfolding layer's 'miniBatchSize' port")]
    FoldingNotUnfolded { layer: String },
}

impl GraphProblem {
    /// The layer this problem is about, where there is one.
    pub fn layer(&self) -> Option<&str> {
        match self {
            GraphProblem::DuplicateLayerName { name } => Some(name),
            GraphProblem::UnknownLayer { layer }
            | GraphProblem::UnknownPort { layer, .. }
            | GraphProblem::InputFedTwice { layer, .. }
            | GraphProblem::UnconnectedInput { layer, .. }
            | GraphProblem::SizeMismatch { layer, .. }
            | GraphProblem::FoldingNotUnfolded { layer } => Some(layer),
            GraphProblem::Cycle { layers } => layers.first().map(|s| s.as_str()),
            _ => None,
        }
    }

    /// The port this problem is about, where there is one.
    pub fn port(&self) -> Option<&str> {
        match self {
            GraphProblem::UnknownPort { port, .. }
            | GraphProblem::InputFedTwice { port, .. }
            | GraphProblem::UnconnectedInput { port, .. }
            | GraphProblem::SizeMismatch { port, .. } => Some(port),
            GraphProblem::FoldingNotUnfolded { .. } => Some("miniBatchSize"),
            _ => None,
        }
    }
}

/// Whether a port takes or gives an activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortDirection {
    Input,
    Output,
}

impl fmt::Display for PortDirection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PortDirection::Input => "input",
            PortDirection::Output => "output",
        })
    }
}

/// All problems of one graph, shown one per line.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphProblems(pub Vec<GraphProblem>);

impl fmt::Display for GraphProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        write!(
            f,
            "the layer graph has {n} problem{}:",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.0 {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// seqnet's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The graph failed its checks; every problem is listed.
    #[error("{0}")]
    InvalidGraph(GraphProblems),
    /// A layer met input it cannot take at run time (wrong size, format or length).
    #[error("layer '{layer}': {message}")]
    Layer { layer: String, message: String },
    /// A layer's configuration is invalid (e.g. zero hidden units).
    #[error("layer '{layer}': invalid setting {setting}: {message}")]
    LayerConfig {
        layer: String,
        setting: &'static str,
        message: String,
    },
    /// A named learnable or state is unknown or has the wrong size.
    #[error("layer '{layer}', learnable '{learnable}': {message}")]
    Learnable {
        layer: String,
        learnable: String,
        message: String,
    },
    /// A malformed file: the file and the line (1-based, 0 when not line-based).
    #[error("{}", located(file, *line, message))]
    Parse {
        file: String,
        line: usize,
        message: String,
    },
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// An option with a value it cannot take.
    #[error("option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
    /// Training cannot go on (a loss that is not finite, a failed checkpoint).
    #[error("training stopped at iteration {iteration}: {message}")]
    Training { iteration: usize, message: String },
    /// Graph JSON or a model file names a layer type nobody registered.
    #[error("layer '{layer}' has type '{tag}', which is not a registered layer type (register it with seqnet::register_layer::<YourLayer>() before loading; registered: {registered})")]
    UnknownLayerType {
        tag: String,
        layer: String,
        registered: String,
    },
    /// Two different Rust types registered under one layer type tag.
    #[error("layer type '{tag}' is already registered as {registered}; cannot register {new} under the same tag")]
    LayerTypeTaken {
        tag: String,
        registered: String,
        new: String,
    },
    /// The streaming path ([`crate::Network::forward_step`]) asked of a layer
    /// or network that has none.
    #[error("the network has no streaming step (it must be a chain of feature layers with streaming steps)")]
    NoStreamingStep,
    /// A layer name with a character that names cannot hold.
    #[error("layer name '{name}' contains '/', which separates layer and port")]
    InvalidLayerName { name: String },
    /// `disconnect` of two ports that are not connected.
    #[error("no connection from '{from}' to '{destination}'")]
    NoConnection { from: String, destination: String },
    /// A forward given another number of inputs or targets than the network has.
    #[error("the network has {expected} {what} layer(s), got {got} {what}(s)")]
    WrongCount {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    /// Data of another number of dimensions than its format has.
    #[error("a {format} activation needs {dims} dimensions, got shape {shape:?}")]
    ActivationShape {
        format: &'static str,
        dims: usize,
        shape: Vec<usize>,
    },
    /// Sequence lengths that do not fit their data.
    #[error("sequence lengths: {message}")]
    SequenceLengths { message: String },
    /// Data that does not fit what was asked of it (where no variant above says more).
    #[error("{0}")]
    InvalidInput(String),
}

impl Error {
    /// A run-time error of layer `layer`.
    pub fn layer(layer: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Layer {
            layer: layer.into(),
            message: message.into(),
        }
    }

    /// The graph problems, when this is [`Error::InvalidGraph`].
    pub fn graph_problems(&self) -> &[GraphProblem] {
        match self {
            Error::InvalidGraph(p) => &p.0,
            _ => &[],
        }
    }
}

/// `file:line: message`, or `file: message` for files without lines.
fn located(file: &str, line: usize, message: &str) -> String {
    if line == 0 {
        format!("{file}: {message}")
    } else {
        format!("{file}:{line}: {message}")
    }
}

/// seqnet's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
