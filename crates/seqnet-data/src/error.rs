//! seqnet-data's error: every variant names what is at fault — the file and
//! line, the file a `labels.csv` line lists, the observation, or the option.

/// What can go wrong between files on disk and mini-batches.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed line of a text file (`.ts`, `labels.csv`, `classes.txt`,
    /// a `.csv` sequence): the file and the 1-based line (0 when the whole
    /// file is at fault).
    #[error("{}", located(file, *line, message))]
    Parse {
        /// The file as named to the reader.
        file: String,
        /// 1-based; 0 for the file as a whole.
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
    /// A malformed or unsupported `.npy` file.
    #[error("{file}: {message}")]
    Npy {
        /// The file's path.
        file: String,
        /// What is wrong and what was expected.
        message: String,
    },
    /// An I/O failure on a named path.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
    /// A file listed on a line of a `labels.csv` is missing, malformed or
    /// does not fit the others.
    #[error("{csv}:{line}: {file}: {message}")]
    Listed {
        /// The `labels.csv` path.
        csv: String,
        /// The 1-based line that lists the file.
        line: usize,
        /// The file as the line writes it.
        file: String,
        /// What is wrong with it.
        message: String,
    },
    /// A per-step target whose number of time steps differs from its sequence's.
    #[error("{csv}:{line}: the target {target} has {target_steps} time step{}, but its sequence {sequence} has {sequence_steps}", plural(*target_steps))]
    TargetLength {
        /// The `labels.csv` path.
        csv: String,
        /// The 1-based line that lists both files.
        line: usize,
        /// The sequence file as the line writes it.
        sequence: String,
        /// Its number of time steps.
        sequence_steps: usize,
        /// The target file as the line writes it.
        target: String,
        /// Its number of time steps.
        target_steps: usize,
    },
    /// A class index in a per-step target file outside the class list.
    #[error("{file}: class index {index} at time step {step} is not one of the {count} classes of {classes} (indices 0 to {})", count.saturating_sub(1))]
    ClassIndex {
        /// The target file's path.
        file: String,
        /// The 1-based time step.
        step: usize,
        /// The index found.
        index: i64,
        /// The class list file (`classes.txt`).
        classes: String,
        /// The number of classes it lists.
        count: usize,
    },
    /// An observation that breaks the rules of a datastore: no time step,
    /// values that are not finite, a target that does not fit, a frame shape
    /// or target kind unlike the earlier observations'.
    #[error("observation {index}: {message}")]
    Observation {
        /// The 0-based index in the datastore.
        index: usize,
        /// What is wrong.
        message: String,
    },
    /// An observation that does not fit the mini-batch it was put in.
    #[error("mini-batch observation {position}: {message}")]
    MiniBatch {
        /// The 0-based position in the mini-batch.
        position: usize,
        /// What is wrong.
        message: String,
    },
    /// A mini-batch without observations.
    #[error("an empty mini-batch")]
    EmptyMiniBatch,
    /// An observation index at or beyond a datastore's length.
    #[error("observation {index} asked of a datastore of {len}")]
    Index {
        /// The index asked for.
        index: usize,
        /// The datastore's length.
        len: usize,
    },
    /// An option with a value it cannot take.
    #[error("option {option}: {message}")]
    InvalidOption {
        /// MATLAB's name of the option (e.g. `MiniBatchSize`).
        option: &'static str,
        /// What is wrong.
        message: String,
    },
    /// Normalization statistics that cannot be computed.
    #[error("normalization statistics: {0}")]
    Statistics(String),
    /// The background reader of an epoch stopped early.
    #[error("{0}")]
    ReadAhead(String),
    /// An error of seqnet's core (building a mini-batch's activations).
    #[error(transparent)]
    Core(#[from] seqnet_core::Error),
}

/// seqnet-data's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `file:line: message`, or `file: message` for line 0.
fn located(file: &str, line: usize, message: &str) -> String {
    if line == 0 {
        format!("{file}: {message}")
    } else {
        format!("{file}:{line}: {message}")
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

impl Error {
    /// An I/O error naming `path`.
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        Error::Io {
            path: path.display().to_string(),
            source,
        }
    }

    /// A `.npy` error naming `path`.
    pub(crate) fn npy(path: &std::path::Path, message: impl Into<String>) -> Self {
        Error::Npy {
            file: path.display().to_string(),
            message: message.into(),
        }
    }

    /// The message without the leading file (and line) this error names,
    /// for errors reported on behalf of the `labels.csv` line that lists the file.
    pub(crate) fn message_without_file(&self) -> String {
        match self {
            Error::Parse {
                line: 0, message, ..
            }
            | Error::Npy { message, .. } => message.clone(),
            Error::Parse { line, message, .. } => format!("line {line}: {message}"),
            Error::Io { path, source } => format!("cannot read {path}: {source}"),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_files() {
        let e = Error::TargetLength {
            csv: "d/labels.csv".into(),
            line: 3,
            sequence: "seq/a.npy".into(),
            sequence_steps: 5,
            target: "tgt/a.npy".into(),
            target_steps: 1,
        };
        assert_eq!(
            e.to_string(),
            "d/labels.csv:3: the target tgt/a.npy has 1 time step, but its sequence seq/a.npy has 5"
        );
        let e = Error::ClassIndex {
            file: "t.npy".into(),
            step: 2,
            index: 7,
            classes: "classes.txt".into(),
            count: 3,
        };
        assert_eq!(
            e.to_string(),
            "t.npy: class index 7 at time step 2 is not one of the 3 classes of classes.txt (indices 0 to 2)"
        );
        let p = Error::Parse {
            file: "a.csv".into(),
            line: 0,
            message: "m".into(),
        };
        assert_eq!(p.to_string(), "a.csv: m");
    }
}
