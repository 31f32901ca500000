//! Reading a text file with errors that name it.

use crate::error::{Error, Result};
use std::path::Path;

/// Reads `path` as UTF-8 text; an I/O failure is [`Error::Io`], invalid
/// UTF-8 an [`Error::Parse`] naming the first bad line.
pub(crate) fn read_text(path: &Path) -> Result<String> {
    let file = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|source| Error::Io {
        path: file.clone(),
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        Error::Parse {
            file,
            line: 1 + good.iter().filter(|&&b| b == b'\n').count(),
            message: "the line is not valid UTF-8 text".into(),
        }
    })
}
