//! seqnet-train's error: every variant names what is at fault — the option,
//! the file and tensor, the checkpoint, the layer and PyTorch key of an
//! import, or the iteration of a training run. Errors of the core (graph
//! checks, layers) arrive as [`Error::Core`], those of the data (files,
//! datastores, mini-batches) as [`Error::Data`].
//!
//! I/O and JSON failures always concern a file, so they are `#[source]`s of
//! variants that name it rather than bare `#[from]` conversions, which would
//! lose the path.

use std::fmt;

/// seqnet-train's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error of the core: graph checks, layers, learnables.
    #[error(transparent)]
    Core(#[from] seqnet_core::Error),
    /// An error of the data: files, datastores, mini-batches.
    #[error(transparent)]
    Data(#[from] seqnet_data::Error),

    // --- Options -----------------------------------------------------------
    /// A training or prediction option with a value it cannot take
    /// (`option` is MATLAB's name, e.g. `MaxEpochs`).
    #[error("option {option}: {message}")]
    InvalidOption {
        option: &'static str,
        message: String,
    },
    /// Training options JSON that does not parse: the file and line.
    #[error("{file}:{line}: not training options: {source}")]
    OptionsJson {
        file: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },

    // --- Files -------------------------------------------------------------
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A path to write to that names no file (e.g. `/` or `..`).
    #[error("{path} is not a file path")]
    NotAFilePath { path: String },
    /// A file that should be UTF-8 text (graph or mapping JSON) is not.
    #[error("{file}: not UTF-8 text")]
    NotText { file: String },
    /// The tensors of a model could not be serialised.
    #[error("cannot serialise the model: {0}")]
    Serialize(#[from] safetensors::SafeTensorError),

    // --- Model files -------------------------------------------------------
    /// The bytes are not a safetensors file.
    #[error("{file}: not a safetensors file: {source}")]
    NotSafetensors {
        file: String,
        #[source]
        source: safetensors::SafeTensorError,
    },
    /// A metadata key the file needs is absent; `expected` says what the
    /// file is then ("not a seqnet model", "a model file, not a checkpoint").
    #[error("{file}: no '{key}' metadata: {expected}")]
    MissingMetadata {
        file: String,
        key: &'static str,
        expected: &'static str,
    },
    /// Saving a network holding a layer whose type is not registered (the
    /// file could not be loaded back).
    #[error("layer '{layer}' has type '{tag}', which is not registered; call seqnet::register_layer for its type before saving, so that the model file can be loaded back")]
    UnregisteredLayerType { layer: String, tag: &'static str },
    /// A metadata value that is not the JSON it should be.
    #[error("{file}: metadata {key}: {source}")]
    BadMetadata {
        file: String,
        key: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A tensor that the graph's layer needs is not in the file.
    #[error("{file}: tensor '{tensor}' is missing (the graph's layer '{layer}' needs it)")]
    MissingTensor {
        file: String,
        tensor: String,
        layer: String,
    },
    /// A tensor whose shape is not the one the graph's layer needs.
    #[error("{file}: tensor '{tensor}' has shape {found:?}, the graph's layer '{layer}' needs {expected:?}")]
    TensorShape {
        file: String,
        tensor: String,
        layer: String,
        found: Box<[usize]>,
        expected: Box<[usize]>,
    },
    /// A tensor of another element type than f32.
    #[error("{file}: tensor '{tensor}' is {dtype}, expected F32")]
    TensorType {
        file: String,
        tensor: String,
        dtype: String,
    },
    /// A tensor the network refused (e.g. statistics out of range).
    #[error("{file}: tensor '{tensor}' does not fit the graph: {source}")]
    TensorRefused {
        file: String,
        tensor: String,
        #[source]
        source: Box<seqnet_core::Error>,
    },
    /// Tensors that belong to no layer of the file's graph.
    #[error("{file}: tensors {tensors:?} belong to no layer of the graph")]
    UnusedTensors { file: String, tensors: Vec<String> },

    // --- Checkpoints -------------------------------------------------------
    /// A checkpoint that cannot be resumed from; `problem` says why.
    #[error("{file}: {problem}")]
    Checkpoint {
        file: String,
        problem: CheckpointProblem,
    },

    // --- Training ----------------------------------------------------------
    /// The loss became NaN or infinite at `iteration` (1-based).
    #[error("training stopped at iteration {iteration}: the loss became {loss} (try a lower learning rate or a gradient threshold)")]
    NonFiniteLoss { iteration: usize, loss: f32 },
    /// A mini-batch without targets where training or validation needs them;
    /// `data` is "training" or "validation".
    #[error("{data} data has no targets")]
    NoTargets { data: &'static str },
    /// A datastore without observations.
    #[error("the datastore has no observations")]
    EmptyDatastore,
    /// A classification layer whose class names are not the data's.
    #[error(
        "layer '{layer}': the layer's classes {layer_classes:?} differ from the data's {data:?}"
    )]
    ClassesDiffer {
        layer: String,
        layer_classes: Vec<String>,
        data: Vec<String>,
    },

    // --- Prediction --------------------------------------------------------
    /// A network that gives no output to predict with.
    #[error("the network has no output")]
    NoOutput,
    /// A sequence that gave nothing to run.
    #[error("the sequence has no time step to run")]
    EmptySequence,
    /// Closed-loop forecasting without a history.
    #[error("forecasting needs a history of at least one step")]
    EmptyHistory,
    /// Closed-loop forecasting of a network whose responses cannot be fed back.
    #[error("closed-loop forecasting needs as many responses as features, got {responses} responses for {features} features")]
    ForecastSize { responses: usize, features: usize },

    // --- PyTorch import ----------------------------------------------------
    /// A tensor the layer's learnable needs is not in the state dict.
    #[error("layer '{layer}', learnable {learnable}: tensor '{tensor}' is missing from {file}")]
    TorchMissingTensor {
        layer: String,
        learnable: &'static str,
        tensor: String,
        file: String,
    },
    /// One bias of a PyTorch pair (`bias_ih`, `bias_hh`) without the other.
    #[error(
        "layer '{layer}': tensor '{tensor}' is missing from {file} (its pair '{pair}' is there)"
    )]
    TorchMissingPair {
        layer: String,
        tensor: String,
        pair: String,
        file: String,
    },
    /// A state-dict tensor that is not floating point.
    #[error("layer '{layer}': tensor '{tensor}' of {file} is {dtype}; expected floating point")]
    TorchTensorType {
        layer: String,
        tensor: String,
        file: String,
        dtype: String,
    },
    /// A state-dict tensor whose shape is not the learnable's.
    #[error("layer '{layer}', learnable {learnable}: tensor '{tensor}' has shape {found:?}, but the layer needs {expected:?}")]
    TorchShape {
        layer: String,
        learnable: &'static str,
        tensor: String,
        found: Box<[usize]>,
        expected: Box<[usize]>,
    },
    /// A layer takes rows of a tensor that has fewer.
    #[error("layer '{layer}': tensor '{tensor}' has {rows} rows; the layer takes rows {}..{}", .wanted.start, .wanted.end)]
    TorchRows {
        layer: String,
        tensor: String,
        rows: usize,
        wanted: std::ops::Range<usize>,
    },
    /// A layer with learnables that the mapping leaves out.
    #[error("layer '{layer}': the layer has learnables ({}) but the mapping gives it no state-dict prefix", .learnables.join(", "))]
    TorchUnmappedLayer {
        layer: String,
        learnables: Vec<String>,
    },
    /// The mapping names a layer the graph does not have.
    #[error(
        "layer '{layer}': the mapping names this layer, but the graph has no layer of that name"
    )]
    TorchUnknownLayer { layer: String },
    /// A mapping value whose `@k` part is not a layer index.
    #[error("layer '{layer}': mapping '{spec}': the part after '@' must be a layer index such as 0 or 1")]
    TorchBadIndex { layer: String, spec: String },
    /// `@k` on a layer that is not recurrent.
    #[error("layer '{layer}': mapping '{spec}': '@k' selects a layer of a multi-layer nn.LSTM or nn.GRU, but this is a {kind} layer")]
    TorchIndexNotRecurrent {
        layer: String,
        spec: String,
        kind: String,
    },
    /// A mapped GRU or BiGRU whose `ResetGateMode` PyTorch does not have.
    #[error("layer '{layer}': PyTorch's nn.GRU is a {kind} with ResetGateMode recurrent-bias-after-multiplication, but this layer's mode is {mode}; set its reset gate mode to recurrent-bias-after-multiplication to import it")]
    TorchGruMode {
        layer: String,
        kind: String,
        mode: String,
    },
    /// A mapped layer of a type that takes no PyTorch parameters.
    #[error("layer '{layer}': the mapping gives this {kind} layer the prefix '{spec}', but it takes no PyTorch parameters (see each layer's PyTorch layout)")]
    TorchNotImportable {
        layer: String,
        kind: String,
        spec: String,
    },
    /// An input layer that normalizes, whose statistics a state dict lacks.
    #[error("layer '{layer}': the input layer normalizes its data, but a PyTorch state dict holds no normalization statistics; set its normalization to none")]
    TorchNormalizedInput { layer: String },
    /// A tensor under a mapped prefix that no layer takes.
    #[error("layer '{layer}': tensor '{tensor}' of {file} is under the prefix '{prefix}' but no layer uses it (map another layer to it, e.g. with '{prefix}@1' for the second layer of a multi-layer LSTM)")]
    TorchUnusedTensor {
        layer: String,
        tensor: String,
        file: String,
        prefix: String,
    },
    /// A mapping JSON that does not parse: the file and line.
    #[error("{file}:{line}: not a mapping from layer names to state-dict prefixes (a JSON object of strings): {source}")]
    MappingJson {
        file: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Why a checkpoint cannot be resumed from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum CheckpointProblem {
    /// The file holds no training options.
    NoOptions,
    /// A training-state tensor (`training.…`) is missing or malformed.
    Tensor { tensor: String, message: String },
    /// The solver state does not match the network's learnables.
    SolverArrays { arrays: usize, learnables: usize },
    /// The options given differ from those the checkpoint was trained with
    /// in `option` (camelCase), which decides the weights.
    OptionsDiffer { option: String },
    /// The checkpoint's class names are not the data's.
    ClassesDiffer {
        checkpoint: Vec<String>,
        data: Vec<String>,
    },
}

impl fmt::Display for CheckpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointProblem::NoOptions => f.write_str("the checkpoint holds no training options"),
            CheckpointProblem::Tensor { tensor, message } => {
                write!(f, "checkpoint tensor '{tensor}': {message}")
            }
            CheckpointProblem::SolverArrays { arrays, learnables } => {
                write!(f, "{arrays} solver arrays for {learnables} learnables")
            }
            CheckpointProblem::OptionsDiffer { option } => write!(
                f,
                "the checkpoint was trained with another {option}; resume with the options stored in it"
            ),
            CheckpointProblem::ClassesDiffer { checkpoint, data } => write!(
                f,
                "the checkpoint's classes {checkpoint:?} differ from the data's {data:?}"
            ),
        }
    }
}

impl Error {
    /// An I/O error on `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// seqnet-train's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    /// Results carry the error by value: keep it small enough that a
    /// `Result` wrapping it (the CLI's error holds one) stays cheap to move.
    #[test]
    fn the_error_stays_small() {
        let size = std::mem::size_of::<super::Error>();
        assert!(size <= 112, "{size} bytes");
    }
}
