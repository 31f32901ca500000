//! The command line's error: what the commands, the pictures and the
//! benchmarks can fail with, each naming the flag, file, data or layer at
//! fault. Errors of the library arrive as [`CliError::Core`],
//! [`CliError::Data`] and [`CliError::Train`]. `seqnet`'s `main` shows any of them as one line.

use std::io;

/// The command line's error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// An error of seqnet's core (graphs, layers).
    #[error(transparent)]
    Core(#[from] seqnet_core::Error),
    /// An error of the data (files, datastores, mini-batches).
    #[error(transparent)]
    Data(#[from] seqnet_data::Error),
    /// An error of training, model files, import or prediction.
    #[error(transparent)]
    Train(#[from] seqnet_train::Error),
    /// An error of ONNX export or import.
    #[error(transparent)]
    Onnx(#[from] seqnet_onnx::Error),

    /// A flag with a value it cannot take (`flag` as typed, e.g. `--epochs`).
    #[error("option {flag}: {message}")]
    Flag { flag: &'static str, message: String },
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A file or folder given on the command line that is not what the
    /// command takes (a folder for a file, an unknown kind of data, …).
    #[error("{path}: {problem}")]
    NotWhatIsNeeded { path: String, problem: String },
    /// A text file that is not UTF-8; `byte` is where the text stops being valid.
    #[error("{path}: not UTF-8 text (byte {byte})")]
    NotText { path: String, byte: usize },
    /// A graph JSON file with nothing in it.
    #[error("{path}:1: the file is empty; expected a layer graph (JSON)")]
    EmptyGraphFile { path: String },
    /// An error about a file that does not name it: the file, then the error.
    #[error("{path}: {source}")]
    InFile {
        path: String,
        #[source]
        source: Box<CliError>,
    },

    // --- Data against a network ---------------------------------------------
    /// A data set without observations.
    #[error("{data}: the data has no observations")]
    NoObservations { data: String },
    /// A class label of the data that the model does not know.
    #[error("{data}: class '{class}' is not one of the model's classes ({})", .classes.join(", "))]
    UnknownClass {
        data: String,
        class: String,
        classes: Vec<String>,
    },
    /// Time steps of another size than the input layer takes.
    #[error("{data}: the data has time steps of {has}, but the network's input layer '{layer}' takes {takes}")]
    InputMismatch {
        data: String,
        layer: String,
        has: String,
        takes: String,
    },
    /// Training data without targets.
    #[error("{data}: the data has no labels or targets to train on")]
    NoTargets { data: String },
    /// Targets of another kind than the output layer predicts.
    #[error("{data}: the data has {has} per observation, but the network's output layer '{layer}' predicts {predicts}")]
    TargetMismatch {
        data: String,
        layer: String,
        has: String,
        predicts: String,
    },
    /// A class count that is not the network's output size.
    #[error("{data}: the data has {classes} classes, but the network predicts {predicts} (layer '{layer}' has output size {predicts}); set the fully connected layer's outputSize to {classes}")]
    ClassCount {
        data: String,
        classes: usize,
        predicts: usize,
        layer: String,
    },
    /// A network without the layer a command needs (`what`: "sequence
    /// input", "output").
    #[error("the network has no {what} layer")]
    MissingLayer { what: &'static str },

    // --- Pictures -------------------------------------------------------------
    /// A picture file name that is neither `.png` nor `.svg`.
    #[error(
        "option plot file: cannot write '{path}': {problem}; pictures are written as .png or .svg"
    )]
    PictureFormat { path: String, problem: String },
    /// Nothing to draw (`what`: "the training progress", …).
    #[error("cannot plot {what} to '{path}': {reason}")]
    NothingToPlot {
        what: &'static str,
        path: String,
        reason: String,
    },
    /// The drawing itself failed.
    #[error("cannot draw the picture '{path}': {message}")]
    Drawing { path: String, message: String },

    // --- Benchmarks -----------------------------------------------------------
    /// A workload name `seqnet bench` does not know.
    #[error("unknown workload '{name}'; the workloads are {}", .known.join(", "))]
    UnknownWorkload {
        name: String,
        known: Vec<&'static str>,
    },
    /// The data a workload needs is not there.
    #[error("the {what} ({path}) was not found: run from the repository")]
    MissingBenchData { what: &'static str, path: String },
}

impl CliError {
    /// An I/O error on `path`.
    pub fn io(path: &std::path::Path, source: io::Error) -> Self {
        CliError::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// The path and the I/O failure, when this is one (at any depth).
    pub fn io_failure(&self) -> Option<(&str, &io::Error)> {
        match self {
            CliError::Io { path, source }
            | CliError::Core(seqnet_core::Error::Io { path, source })
            | CliError::Data(seqnet_data::Error::Io { path, source })
            | CliError::Train(seqnet_train::Error::Io { path, source })
            | CliError::Train(seqnet_train::Error::Data(seqnet_data::Error::Io { path, source }))
            | CliError::Train(seqnet_train::Error::Core(seqnet_core::Error::Io { path, source })) => {
                Some((path, source))
            }
            CliError::InFile { source, .. } => source.io_failure(),
            _ => None,
        }
    }

    /// A library error from writing a file, its I/O failure as [`CliError::Io`].
    pub fn from_write(e: seqnet_train::Error) -> Self {
        match e {
            seqnet_train::Error::Io { path, source } => CliError::Io { path, source },
            other => other.into(),
        }
    }
}

/// The command line's result.
pub type Result<T, E = CliError> = std::result::Result<T, E>;
