//! One sequence file of a datastore folder, read by its extension: `.npy`
//! ([`crate::npy`]: `[T, C]` or `[T, H, W, C]`) or `.csv`
//! ([`crate::csv_sequence`]: a header of feature names, one row per step).

use crate::error::{Error, Result};
use crate::observation::{FrameShape, Sequence};
use std::path::Path;

/// The kinds of sequence file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Npy,
    Csv,
}

fn kind(path: &Path) -> Result<Kind> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    match ext.as_deref() {
        Some("npy") => Ok(Kind::Npy),
        Some("csv") => Ok(Kind::Csv),
        _ => Err(Error::Parse {
            file: path.display().to_string(),
            line: 0,
            message: "a sequence file must be a .npy or a .csv file".into(),
        }),
    }
}

/// The number of time steps and the shape of one step of the sequence in
/// `path`. A `.npy` file's header is read (not its data); a `.csv` file is
/// read whole, so that a malformed row is an error now.
pub fn sequence_info(path: impl AsRef<Path>) -> Result<(usize, FrameShape)> {
    let path = path.as_ref();
    match kind(path)? {
        Kind::Npy => crate::npy::read_info(path).map(|i| (i.len(), i.frame_shape())),
        Kind::Csv => crate::csv_sequence::read_csv_sequence(path)
            .map(|s| (s.values.nrows(), FrameShape::Features(s.values.ncols()))),
    }
}

/// Reads the sequence in `path`: `[T, C]` or `[T, H, W, C]`.
pub fn read_sequence_file(path: impl AsRef<Path>) -> Result<Sequence> {
    let path = path.as_ref();
    match kind(path)? {
        Kind::Npy => crate::npy::read_sequence(path),
        Kind::Csv => {
            crate::csv_sequence::read_csv_sequence(path).map(|s| Sequence::Features(s.values))
        }
    }
}
