//! Parses a folder datastore's `labels.csv`.
//!
//! The header is `file,label` for classification, `file,target` for
//! per-step targets held in files of their own (see [`crate::targets`]), or
//! `file,<name>[,<name>…]` for regression with one response column per name
//! (e.g. `file,response` or `file,fat,moisture`). Each following row names
//! an observation's file (relative to the folder) and gives its class label,
//! its target file or its responses. Fields may be double-quoted
//! (`"a,b.npy"`, with `""` for a quote); spaces around unquoted fields are
//! trimmed; blank lines are skipped; a UTF-8 byte-order mark and `\r\n`
//! line ends are accepted.

use crate::error::{Error, Result};
use ndarray::Array2;

/// The targets of all rows.
#[derive(Debug, Clone, PartialEq)]
pub enum CsvTargets {
    /// `file,label`: one class label per row, `[N]`.
    Labels(Vec<String>),
    /// `file,target`: one target file per row (relative to the folder), `[N]`.
    Files(Vec<String>),
    /// `file,<names…>`: `values` is `[N, R]` for the `R` response `names`.
    Responses {
        /// The response column names, `[R]`.
        names: Vec<String>,
        /// `[N, R]`.
        values: Array2<f32>,
    },
}

/// A parsed `labels.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelsCsv {
    /// Each row's file name as written, `[N]`.
    pub files: Vec<String>,
    /// Each row's 1-based line in the CSV file, `[N]`.
    pub lines: Vec<usize>,
    /// The class labels, target files or responses of the rows.
    pub targets: CsvTargets,
}

impl LabelsCsv {
    /// The number of rows `N`.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether there is no row (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

/// The non-blank lines of a CSV text with their 1-based numbers (a leading
/// byte-order mark and `\r` line ends removed).
pub(crate) fn csv_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    text.split('\n')
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty())
}

/// What the second column of the header says the rows hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Label,
    TargetFile,
    Responses,
}

/// Parses the text of a `labels.csv`; `file` names it in errors.
pub fn parse_labels_csv(text: &str, file: &str) -> Result<LabelsCsv> {
    let err = |line: usize, message: String| Error::Parse {
        file: file.to_string(),
        line,
        message,
    };
    let mut lines = csv_lines(text);
    let Some((hline, header)) = lines.next() else {
        return Err(err(
            1,
            "the file is empty: expected a header 'file,label', 'file,target' or 'file,response[,…]'".into(),
        ));
    };
    let columns = split_fields(header).map_err(|m| err(hline, m))?;
    let layout = header_layout(&columns).map_err(|m| err(hline, m))?;
    let (mut files, mut row_lines, mut names, mut values) = (vec![], vec![], vec![], vec![]);
    for (line, text) in lines {
        let fields = split_fields(text).map_err(|m| err(line, m))?;
        check_row(&fields, &columns, layout).map_err(|m| err(line, m))?;
        if layout == Layout::Responses {
            for (name, v) in columns[1..].iter().zip(&fields[1..]) {
                match v.parse::<f32>() {
                    Ok(x) if x.is_finite() => values.push(x),
                    _ => {
                        return Err(err(
                            line,
                            format!("response '{name}': '{v}' is not a finite number"),
                        ))
                    }
                }
            }
        } else {
            names.push(fields[1].clone());
        }
        files.push(fields[0].clone());
        row_lines.push(line);
    }
    if files.is_empty() {
        return Err(err(hline, "no rows after the header".into()));
    }
    let targets = match layout {
        Layout::Label => CsvTargets::Labels(names),
        Layout::TargetFile => CsvTargets::Files(names),
        Layout::Responses => {
            let names = columns[1..].to_vec();
            let values = Array2::from_shape_vec((files.len(), names.len()), values)
                .map_err(|e| err(hline, format!("internal: {e}")))?;
            CsvTargets::Responses { names, values }
        }
    };
    Ok(LabelsCsv {
        files,
        lines: row_lines,
        targets,
    })
}

/// Checks the header's columns and tells what the rows hold.
fn header_layout(columns: &[String]) -> std::result::Result<Layout, String> {
    if columns.first().map(|c| c.to_ascii_lowercase()) != Some("file".into()) {
        return Err(format!(
            "the header must start with 'file', found '{}'",
            columns.first().map_or("", String::as_str)
        ));
    }
    if columns.len() < 2 {
        return Err(
            "the header needs a column after 'file': 'label', 'target', or response names".into(),
        );
    }
    for (i, c) in columns.iter().enumerate() {
        if c.is_empty() {
            return Err(format!("header column {} has no name", i + 1));
        }
        if columns[..i].contains(c) {
            return Err(format!("header column '{c}' appears twice"));
        }
    }
    let layout = if columns[1].eq_ignore_ascii_case("label") {
        Layout::Label
    } else if columns[1].eq_ignore_ascii_case("target") {
        Layout::TargetFile
    } else {
        return Ok(Layout::Responses);
    };
    if columns.len() > 2 {
        return Err(format!(
            "a '{}' column must be the only column after 'file' (regression columns are named otherwise)",
            columns[1]
        ));
    }
    Ok(layout)
}

/// Checks one row's field count and that its file, label or target is not empty.
fn check_row(
    fields: &[String],
    columns: &[String],
    layout: Layout,
) -> std::result::Result<(), String> {
    if fields.len() != columns.len() {
        return Err(format!(
            "the row has {} field{}, the header has {} ({})",
            fields.len(),
            if fields.len() == 1 { "" } else { "s" },
            columns.len(),
            columns.join(",")
        ));
    }
    if fields[0].is_empty() {
        return Err("the file name is empty".into());
    }
    match layout {
        Layout::Label if fields[1].is_empty() => Err("the label is empty".into()),
        Layout::TargetFile if fields[1].is_empty() => Err("the target file name is empty".into()),
        _ => Ok(()),
    }
}

/// Splits one CSV line into fields (quotes as documented in the module).
pub(crate) fn split_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next() {
                    None => {
                        return Err(format!("field {} has an unclosed quote", fields.len() + 1))
                    }
                    Some('"') if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    Some('"') => break,
                    Some(c) => field.push(c),
                }
            }
            while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                chars.next();
            }
            match chars.next() {
                None => {
                    fields.push(field);
                    return Ok(fields);
                }
                Some(',') => fields.push(field),
                Some(c) => {
                    return Err(format!(
                        "field {} has '{c}' after its closing quote",
                        fields.len() + 1
                    ))
                }
            }
        } else {
            loop {
                match chars.next() {
                    None => {
                        fields.push(field.trim().to_string());
                        return Ok(fields);
                    }
                    Some(',') => break,
                    Some(c) => field.push(c),
                }
            }
            fields.push(field.trim().to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err_line(text: &str, needle: &str) -> usize {
        match parse_labels_csv(text, "labels.csv") {
            Err(Error::Parse {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "labels.csv");
                assert!(message.contains(needle), "'{message}' lacks '{needle}'");
                line
            }
            other => panic!("expected an error with '{needle}', got {other:?}"),
        }
    }

    #[test]
    fn classification_and_regression() {
        let c = parse_labels_csv(
            "\u{feff}file,label\r\na.npy,cat\r\n\r\n\"b,1.npy\" , \"dog \"\"x\"\"\"\r\n",
            "l",
        )
        .unwrap();
        assert_eq!(c.files, vec!["a.npy", "b,1.npy"]);
        assert_eq!(c.lines, vec![2, 4]);
        assert_eq!(
            c.targets,
            CsvTargets::Labels(vec!["cat".into(), "dog \"x\"".into()])
        );
        let r = parse_labels_csv("File,fat,water\na.npy, 1.5 ,2\nb.npy,3,-4e1\n", "l").unwrap();
        match r.targets {
            CsvTargets::Responses { names, values } => {
                assert_eq!(names, vec!["fat", "water"]);
                assert_eq!(values, ndarray::array![[1.5, 2.0], [3.0, -40.0]]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn target_files() {
        let c = parse_labels_csv(
            "file,Target\nseq/a.npy,tgt/a.npy\nseq/b.csv , tgt/b.npy\n",
            "l",
        )
        .unwrap();
        assert_eq!(c.files, vec!["seq/a.npy", "seq/b.csv"]);
        assert_eq!(
            c.targets,
            CsvTargets::Files(vec!["tgt/a.npy".into(), "tgt/b.npy".into()])
        );
    }

    #[test]
    fn malformed_rows_name_the_line() {
        assert_eq!(err_line("", "empty"), 1);
        assert_eq!(err_line("name,label\n", "start with 'file'"), 1);
        assert_eq!(err_line("file\n", "column after 'file'"), 1);
        assert_eq!(err_line("file,label,extra\n", "only column"), 1);
        assert_eq!(err_line("file,target,extra\n", "only column"), 1);
        assert_eq!(
            err_line("file,target\na.npy,\n", "target file name is empty"),
            2
        );
        assert_eq!(err_line("file,a,a\n", "twice"), 1);
        assert_eq!(err_line("file,,a\n", "no name"), 1);
        assert_eq!(err_line("file,label\n", "no rows"), 1);
        assert_eq!(
            err_line("file,label\na.npy,x\nb.npy\n", "1 field, the header has 2"),
            3
        );
        assert_eq!(err_line("file,label\na.npy,x,y\n", "3 fields"), 2);
        assert_eq!(err_line("file,label\n,x\n", "file name is empty"), 2);
        assert_eq!(err_line("file,label\na.npy,\n", "label is empty"), 2);
        assert_eq!(
            err_line(
                "file,response\na.npy,1\n\nb.npy,abc\n",
                "'abc' is not a finite number"
            ),
            4
        );
        assert_eq!(err_line("file,response\na.npy,inf\n", "finite"), 2);
        assert_eq!(err_line("file,label\n\"a.npy,x\n", "unclosed quote"), 2);
        assert_eq!(
            err_line("file,label\n\"a\"b,x\n", "after its closing quote"),
            2
        );
    }

    #[test]
    fn never_panics() {
        use proptest::prelude::*;
        proptest!(|(s in "[a-z0-9 .,\"\\n\\r-]{0,80}")| {
            let _ = parse_labels_csv(&s, "l");
            let _ = parse_labels_csv(&format!("file,label\n{s}"), "l");
            let _ = parse_labels_csv(&format!("file,r1,r2\n{s}"), "l");
            let _ = parse_labels_csv(&format!("file,target\n{s}"), "l");
        });
    }
}
