//! Reads one `.csv` file as a feature sequence `[T, C]`: a header of `C`
//! feature names, then one row of `C` numbers per time step.
//!
//! ```text
//! x,y,z
//! 0.1,0.2,0.3
//! 0.4,0.5,0.6
//! ```
//!
//! Fields follow `labels.csv`'s rules (quotes, trimmed spaces, blank lines
//! skipped, a byte-order mark and `\r\n` accepted). Every problem is an
//! [`Error::Parse`] naming the file and the 1-based line: a ragged row, a
//! value that is not a finite number (naming its column), no header or no row.

use crate::error::{Error, Result};
use crate::labels_csv::{csv_lines, split_fields};
use ndarray::Array2;
use std::path::Path;

/// A feature sequence read from a `.csv` file.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvSequence {
    /// The header's feature names, `[C]`.
    pub names: Vec<String>,
    /// The values, `[T, C]`.
    pub values: Array2<f32>,
}

/// Reads and checks the `.csv` sequence file at `path`.
pub fn read_csv_sequence(path: impl AsRef<Path>) -> Result<CsvSequence> {
    let path = path.as_ref();
    let text = crate::text::read_text(path)?;
    parse_csv_sequence(&text, &path.display().to_string())
}

/// Parses the text of a `.csv` sequence file; `file` names it in errors.
pub fn parse_csv_sequence(text: &str, file: &str) -> Result<CsvSequence> {
    let err = |line: usize, message: String| Error::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = csv_lines(text);
    let Some((hline, header)) = lines.next() else {
        return Err(err(
            1,
            "the file is empty: expected a header of feature names, then one row per time step"
                .into(),
        ));
    };
    let names = split_fields(header).map_err(|m| err(hline, m))?;
    if let Some(i) = names.iter().position(String::is_empty) {
        return Err(err(hline, format!("header column {} has no name", i + 1)));
    }
    if let Some(v) = names.iter().find(|n| n.parse::<f64>().is_ok()) {
        return Err(err(
            hline,
            format!("the header holds the number '{v}': the first line names the features"),
        ));
    }
    let mut values = Vec::new();
    let mut steps = 0;
    for (line, row) in lines {
        let fields = split_fields(row).map_err(|m| err(line, m))?;
        if fields.len() != names.len() {
            return Err(err(
                line,
                format!(
                    "the row has {} field{}, the header has {} ({})",
                    fields.len(),
                    if fields.len() == 1 { "" } else { "s" },
                    names.len(),
                    names.join(",")
                ),
            ));
        }
        for (name, v) in names.iter().zip(&fields) {
            match v.parse::<f32>() {
                Ok(x) if x.is_finite() => values.push(x),
                _ => {
                    return Err(err(
                        line,
                        format!("feature '{name}': '{v}' is not a finite number"),
                    ))
                }
            }
        }
        steps += 1;
    }
    if steps == 0 {
        return Err(err(
            hline,
            "no rows after the header: the sequence has no time step".into(),
        ));
    }
    let values = Array2::from_shape_vec((steps, names.len()), values)
        .map_err(|e| err(hline, format!("internal: {e}")))?;
    Ok(CsvSequence { names, values })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, String) {
        match parse_csv_sequence(text, "s.csv") {
            Err(Error::Parse {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "s.csv");
                (line, message)
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn reads_steps_as_rows() {
        let s = parse_csv_sequence("\u{feff}x, \"y\"\r\n1,2\r\n\r\n3.5,-4e1\n", "s.csv").unwrap();
        assert_eq!(s.names, vec!["x", "y"]);
        assert_eq!(s.values, ndarray::array![[1.0, 2.0], [3.5, -40.0]]);
    }

    #[test]
    fn malformed_files_name_the_line() {
        assert_eq!(err("").0, 1);
        let (line, m) = err("a,b\n1,2\n3\n");
        assert_eq!(line, 3);
        assert!(m.contains("1 field, the header has 2"), "{m}");
        let (line, m) = err("a,b\n1,2\n\n3,x\n");
        assert_eq!(line, 4);
        assert!(m.contains("feature 'b': 'x'"), "{m}");
        assert_eq!(err("a,b\n1,inf\n").0, 2);
        let (line, m) = err("a,b\n");
        assert_eq!(line, 1);
        assert!(m.contains("no time step"), "{m}");
        let (line, m) = err("1,2\n3,4\n");
        assert_eq!(line, 1);
        assert!(m.contains("number '1'"), "{m}");
        assert!(err("a,,c\n1,2,3\n").1.contains("column 2 has no name"));
    }

    #[test]
    fn never_panics() {
        use proptest::prelude::*;
        proptest!(|(s in "[a-z0-9 .,\"\\n\\r-]{0,80}")| {
            let _ = parse_csv_sequence(&s, "s.csv");
            let _ = parse_csv_sequence(&format!("a,b\n{s}"), "s.csv");
        });
    }
}
