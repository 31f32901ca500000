//! A reader for the `.ts` format of the UEA/UCR time-series archive (as
//! written by sktime).
//!
//! A file is a header of `@keyword value` lines, `@data`, then one
//! observation per line: the dimensions separated by `:`, the values of a
//! dimension by `,`, and — when `@classLabel true …` or `@targetLabel true` —
//! a last field with the class label or the regression target(s):
//!
//! ```text
//! # a comment
//! @problemName Example
//! @univariate false
//! @dimensions 2
//! @equalLength false
//! @classLabel true a b
//! @data
//! 1.0,2.0,3.0:4.0,5.0,6.0:a
//! 1.5,2.5:3.5,4.5:b
//! ```
//!
//! Keywords and `true`/`false` are case-insensitive; `#` starts a comment
//! line; blank lines are skipped; lines may end in `\r\n`. The supported
//! keywords are `@problemName`, `@timeStamps` (only `false`), `@missing`,
//! `@univariate`, `@dimensions`, `@equalLength`, `@seriesLength`,
//! `@classLabel` and `@targetLabel`. A regression target field may hold
//! several comma-separated values (one observation's response vector).
//!
//! Missing values are written `?` (or `NaN`); what happens to them is the
//! caller's [`MissingPolicy`] — by default an error. Every malformed input is
//! an [`Error::Parse`] naming the file and the 1-based line.

use crate::error::{Error, Result};
use ndarray::Array2;
use std::path::Path;

/// What to do with a missing value (`?` or `NaN`) in a series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingPolicy {
    /// A missing value is an error naming the file and line (the default).
    #[default]
    Error,
    /// A missing value becomes 0.
    Zero,
    /// A missing value is interpolated linearly from its dimension's nearest
    /// known values before and after it; leading and trailing missing values
    /// take the nearest known value. A dimension with no known value is an error.
    Interpolate,
}

/// Options of [`read_ts`] and [`parse_ts`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TsOptions {
    /// What to do with missing values.
    pub missing: MissingPolicy,
}

/// The labels or targets of a `.ts` file.
#[derive(Debug, Clone, PartialEq)]
pub enum TsLabels {
    /// Neither `@classLabel true` nor `@targetLabel true`.
    None,
    /// Classification (`@classLabel true <names…>`).
    Classes {
        /// The class names in the header's order; class `k` is `names[k]`.
        names: Vec<String>,
        /// The class index of each observation, `[N]`.
        labels: Vec<usize>,
    },
    /// Regression (`@targetLabel true`): `[N, R]`, one row of `R` targets per observation.
    Targets(Array2<f32>),
}

/// The contents of a `.ts` file.
#[derive(Debug, Clone, PartialEq)]
pub struct TsDataset {
    /// `@problemName`, if given.
    pub problem_name: Option<String>,
    /// One `[T, C]` array per observation (`T` may differ between observations).
    pub series: Vec<Array2<f32>>,
    /// Class labels or regression targets.
    pub labels: TsLabels,
    /// The 1-based line of each observation in the file, `[N]`.
    pub lines: Vec<usize>,
}

impl TsDataset {
    /// The number of observations `N`.
    pub fn len(&self) -> usize {
        self.series.len()
    }

    /// Whether there is no observation (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.series.is_empty()
    }

    /// The number of dimensions (channels) `C`.
    pub fn dimensions(&self) -> usize {
        self.series.first().map_or(0, |s| s.shape()[1])
    }

    /// The length `T` of each series, `[N]`.
    pub fn lengths(&self) -> Vec<usize> {
        self.series.iter().map(|s| s.shape()[0]).collect()
    }

    /// Each observation's class name, `[N]`, for classification files.
    pub fn label_names(&self) -> Option<Vec<&str>> {
        match &self.labels {
            TsLabels::Classes { names, labels } => Some(
                labels
                    .iter()
                    .map(|&k| names.get(k).map_or("", String::as_str))
                    .collect(),
            ),
            _ => None,
        }
    }
}

/// Reads a `.ts` file.
pub fn read_ts(path: impl AsRef<Path>, options: &TsOptions) -> Result<TsDataset> {
    let path = path.as_ref();
    let text = crate::text::read_text(path)?;
    parse_ts(&text, &path.display().to_string(), options)
}

/// Parses the text of a `.ts` file; `file` names it in errors.
pub fn parse_ts(text: &str, file: &str, options: &TsOptions) -> Result<TsDataset> {
    Parser::new(file, *options).run(text)
}

/// The header, keyword by keyword (`None` when absent).
#[derive(Default)]
struct Header {
    problem_name: Option<String>,
    timestamps: Option<bool>,
    missing: Option<bool>,
    univariate: Option<bool>,
    dimensions: Option<usize>,
    equal_length: Option<bool>,
    series_length: Option<usize>,
    /// `Some(None)` for `@classLabel false`.
    class_labels: Option<Option<Vec<String>>>,
    target_label: Option<bool>,
}

impl Header {
    fn classes(&self) -> Option<&[String]> {
        self.class_labels.as_ref().and_then(|c| c.as_deref())
    }
    fn has_label_field(&self) -> bool {
        self.classes().is_some() || self.target_label == Some(true)
    }
}

/// What the data rows must agree on, fixed by the header or the first row.
struct RowShape {
    dimensions: usize,
    /// Where the count came from, for messages.
    source: String,
}

struct Parser<'a> {
    file: &'a str,
    options: TsOptions,
    line: usize,
    header: Header,
    shape: Option<RowShape>,
    /// The length of the first row and its line, for `@equalLength true`.
    first_length: Option<(usize, usize)>,
    /// The target count of the first row and its line.
    target_count: Option<(usize, usize)>,
    series: Vec<Array2<f32>>,
    classes: Vec<usize>,
    targets: Vec<f32>,
    lines: Vec<usize>,
}

impl<'a> Parser<'a> {
    fn new(file: &'a str, options: TsOptions) -> Self {
        Parser {
            file,
            options,
            line: 0,
            header: Header::default(),
            shape: None,
            first_length: None,
            target_count: None,
            series: Vec::new(),
            classes: Vec::new(),
            targets: Vec::new(),
            lines: Vec::new(),
        }
    }

    fn err<T>(&self, message: impl Into<String>) -> Result<T> {
        Err(Error::Parse {
            file: self.file.to_string(),
            line: self.line.max(1),
            message: message.into(),
        })
    }

    fn run(mut self, text: &str) -> Result<TsDataset> {
        if text.trim().is_empty() {
            self.line = 1;
            return self.err("the file is empty (no header and no @data)");
        }
        let mut data_line = None;
        for (i, raw) in text.split('\n').enumerate() {
            self.line = i + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw).trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            match data_line {
                None => {
                    if self.header_line(line)? {
                        data_line = Some(self.line);
                    }
                }
                Some(_) => {
                    if line.starts_with('@') {
                        return self.err(format!(
                            "header keyword '{}' after @data",
                            line.split_whitespace().next().unwrap_or(line)
                        ));
                    }
                    self.data_row(line)?;
                }
            }
        }
        match data_line {
            None => self.err("the file ends without an @data line"),
            Some(l) if self.series.is_empty() => self.err(format!(
                "no data rows after @data (line {l}); the file may be truncated"
            )),
            Some(_) => Ok(self.finish()),
        }
    }

    fn finish(self) -> TsDataset {
        let labels = if let Some(names) = self.header.classes() {
            TsLabels::Classes {
                names: names.to_vec(),
                labels: self.classes,
            }
        } else if self.header.target_label == Some(true) {
            let r = self.target_count.map_or(1, |(r, _)| r);
            let n = self.series.len();
            // Every row was checked to have `r` targets.
            Array2::from_shape_vec((n, r), self.targets)
                .map(TsLabels::Targets)
                .unwrap_or(TsLabels::None)
        } else {
            TsLabels::None
        };
        TsDataset {
            problem_name: self.header.problem_name,
            series: self.series,
            labels,
            lines: self.lines,
        }
    }

    /// One header line; returns whether it was `@data`.
    fn header_line(&mut self, line: &str) -> Result<bool> {
        if !line.starts_with('@') {
            return self.err(format!(
                "expected a header line (@keyword) or @data before the data, found '{}'",
                preview(line)
            ));
        }
        let mut tokens = line.split_whitespace();
        let keyword = tokens.next().unwrap_or(line);
        let rest: Vec<&str> = tokens.collect();
        let lower = keyword.to_ascii_lowercase();
        let duplicate = |set: bool| -> Result<()> {
            if set {
                self.err(format!("{keyword} is given twice"))
            } else {
                Ok(())
            }
        };
        match lower.as_str() {
            "@problemname" => {
                duplicate(self.header.problem_name.is_some())?;
                if rest.is_empty() {
                    return self.err("@problemName needs a name");
                }
                self.header.problem_name = Some(rest.join(" "));
            }
            "@timestamps" => {
                duplicate(self.header.timestamps.is_some())?;
                let v = self.boolean(keyword, &rest)?;
                if v {
                    return self.err(
                        "@timeStamps true is not supported (only series without time stamps)",
                    );
                }
                self.header.timestamps = Some(v);
            }
            "@missing" => {
                duplicate(self.header.missing.is_some())?;
                self.header.missing = Some(self.boolean(keyword, &rest)?);
            }
            "@univariate" => {
                duplicate(self.header.univariate.is_some())?;
                self.header.univariate = Some(self.boolean(keyword, &rest)?);
            }
            "@dimensions" => {
                duplicate(self.header.dimensions.is_some())?;
                self.header.dimensions = Some(self.count(keyword, &rest)?);
            }
            "@equallength" => {
                duplicate(self.header.equal_length.is_some())?;
                self.header.equal_length = Some(self.boolean(keyword, &rest)?);
            }
            "@serieslength" => {
                duplicate(self.header.series_length.is_some())?;
                self.header.series_length = Some(self.count(keyword, &rest)?);
            }
            "@classlabel" => {
                duplicate(self.header.class_labels.is_some())?;
                let (flag, names) = match rest.split_first() {
                    Some((f, names)) => (self.boolean(keyword, &[f])?, names),
                    None => {
                        return self
                            .err("@classLabel needs true (followed by the class names) or false")
                    }
                };
                if !flag {
                    if !names.is_empty() {
                        return self.err("@classLabel false takes no class names");
                    }
                    self.header.class_labels = Some(None);
                } else {
                    if names.is_empty() {
                        return self.err("@classLabel true needs the class names after it");
                    }
                    for (i, n) in names.iter().enumerate() {
                        if names[..i].contains(n) {
                            return self.err(format!("class '{n}' is listed twice in @classLabel"));
                        }
                    }
                    self.header.class_labels =
                        Some(Some(names.iter().map(|s| s.to_string()).collect()));
                }
            }
            "@targetlabel" => {
                duplicate(self.header.target_label.is_some())?;
                self.header.target_label = Some(self.boolean(keyword, &rest)?);
            }
            "@data" => {
                if !rest.is_empty() {
                    return self.err("@data takes nothing after it on its line");
                }
                self.check_header()?;
                return Ok(true);
            }
            _ => return self.err(format!("unknown header keyword '{keyword}'")),
        }
        Ok(false)
    }

    fn boolean(&self, keyword: &str, rest: &[&str]) -> Result<bool> {
        match rest {
            [v] if v.eq_ignore_ascii_case("true") => Ok(true),
            [v] if v.eq_ignore_ascii_case("false") => Ok(false),
            _ => self.err(format!(
                "{keyword} needs true or false, found '{}'",
                rest.join(" ")
            )),
        }
    }

    fn count(&self, keyword: &str, rest: &[&str]) -> Result<usize> {
        match rest {
            [v] => match v.parse::<usize>() {
                Ok(n) if n > 0 => Ok(n),
                _ => self.err(format!(
                    "{keyword} needs a positive whole number, found '{v}'"
                )),
            },
            _ => self.err(format!(
                "{keyword} needs one positive whole number, found '{}'",
                rest.join(" ")
            )),
        }
    }

    /// Checks the header as a whole at `@data`.
    fn check_header(&mut self) -> Result<()> {
        let h = &self.header;
        if h.classes().is_some() && h.target_label == Some(true) {
            return self.err("both @classLabel true and @targetLabel true: a file has class labels or targets, not both");
        }
        match (h.univariate, h.dimensions) {
            (Some(true), Some(d)) if d != 1 => {
                return self.err(format!("@univariate true but @dimensions {d}"));
            }
            (Some(true), _) => {
                self.shape = Some(RowShape {
                    dimensions: 1,
                    source: "@univariate true".into(),
                })
            }
            (_, Some(d)) => {
                self.shape = Some(RowShape {
                    dimensions: d,
                    source: format!("@dimensions {d}"),
                })
            }
            _ => {}
        }
        Ok(())
    }

    fn data_row(&mut self, line: &str) -> Result<()> {
        let mut fields: Vec<&str> = line.split(':').collect();
        let label = if self.header.has_label_field() {
            if fields.len() < 2 {
                return self.err(
                    "the row has no label field: expected the dimensions, then ':' and the label or target",
                );
            }
            fields.pop()
        } else {
            None
        };
        match &self.shape {
            Some(s) if s.dimensions != fields.len() => {
                return self.err(format!(
                    "the row has {} dimension{}, expected {} (from {})",
                    fields.len(),
                    plural(fields.len()),
                    s.dimensions,
                    s.source
                ));
            }
            Some(_) => {}
            None => {
                self.shape = Some(RowShape {
                    dimensions: fields.len(),
                    source: format!("the first data row, line {}", self.line),
                })
            }
        }
        let channels = fields.len();
        let mut columns: Vec<Vec<Option<f32>>> = Vec::with_capacity(channels);
        for (d, field) in fields.iter().enumerate() {
            let col = self.dimension(d + 1, field)?;
            if let Some(first) = columns.first() {
                if first.len() != col.len() {
                    return self.err(format!(
                        "dimension {} has {} values but dimension 1 has {}: the dimensions of one observation must have the same length",
                        d + 1,
                        col.len(),
                        first.len()
                    ));
                }
            }
            columns.push(col);
        }
        let t = columns.first().map_or(0, Vec::len);
        self.check_length(t)?;
        let mut data = Array2::<f32>::zeros((t, channels));
        for (c, col) in columns.iter().enumerate() {
            let filled = self.fill_missing(c + 1, col)?;
            for (step, v) in filled.into_iter().enumerate() {
                data[[step, c]] = v;
            }
        }
        if let Some(label) = label {
            self.label(label.trim())?;
        }
        self.series.push(data);
        self.lines.push(self.line);
        Ok(())
    }

    /// The values of one dimension; `None` for a missing value.
    fn dimension(&self, d: usize, field: &str) -> Result<Vec<Option<f32>>> {
        if field.trim().is_empty() {
            return self.err(format!(
                "dimension {d} is empty: a series needs at least one value"
            ));
        }
        let mut out = Vec::new();
        for (p, tok) in field.split(',').enumerate() {
            let tok = tok.trim();
            let at = || format!("dimension {d}, value {}", p + 1);
            if tok.is_empty() {
                return self.err(format!("{}: empty value", at()));
            }
            if tok == "?" || tok.eq_ignore_ascii_case("nan") {
                if self.options.missing == MissingPolicy::Error {
                    return self.err(format!(
                        "{}: missing value '{tok}' (choose a MissingPolicy to accept missing values)",
                        at()
                    ));
                }
                out.push(None);
                continue;
            }
            match tok.parse::<f32>() {
                Ok(v) if v.is_finite() => out.push(Some(v)),
                Ok(_) => {
                    return self.err(format!(
                        "{}: '{}' is not a finite number",
                        at(),
                        preview(tok)
                    ))
                }
                Err(_) => return self.err(format!("{}: '{}' is not a number", at(), preview(tok))),
            }
        }
        Ok(out)
    }

    fn check_length(&mut self, t: usize) -> Result<()> {
        if self.header.equal_length != Some(true) {
            return Ok(());
        }
        if let Some(n) = self.header.series_length {
            if t != n {
                return self.err(format!(
                    "the series has {t} values per dimension, @seriesLength is {n}"
                ));
            }
        }
        match self.first_length {
            Some((n, l)) if n != t => self.err(format!(
                "the series has {t} values per dimension, but the first row (line {l}) has {n} and @equalLength is true"
            )),
            Some(_) => Ok(()),
            None => {
                self.first_length = Some((t, self.line));
                Ok(())
            }
        }
    }

    fn fill_missing(&self, d: usize, col: &[Option<f32>]) -> Result<Vec<f32>> {
        if col.iter().all(Option::is_some) {
            return Ok(col.iter().map(|v| v.unwrap_or(0.0)).collect());
        }
        match self.options.missing {
            MissingPolicy::Zero => Ok(col.iter().map(|v| v.unwrap_or(0.0)).collect()),
            // A missing value under `Error` was rejected when read.
            MissingPolicy::Error | MissingPolicy::Interpolate => {
                let known: Vec<(usize, f32)> = col
                    .iter()
                    .enumerate()
                    .filter_map(|(i, v)| v.map(|v| (i, v)))
                    .collect();
                if known.is_empty() {
                    return self.err(format!(
                        "dimension {d} has only missing values: nothing to interpolate from"
                    ));
                }
                Ok(interpolate(col.len(), &known))
            }
        }
    }

    fn label(&mut self, label: &str) -> Result<()> {
        if let Some(names) = self.header.classes() {
            match names.iter().position(|n| n == label) {
                Some(k) => self.classes.push(k),
                None => {
                    return self.err(format!(
                        "class label '{}' is not in the @classLabel list ({})",
                        preview(label),
                        names.join(" ")
                    ))
                }
            }
            return Ok(());
        }
        if label.is_empty() {
            return self.err("the target field is empty");
        }
        let mut values = Vec::new();
        for (p, tok) in label.split(',').enumerate() {
            let tok = tok.trim();
            match tok.parse::<f32>() {
                Ok(v) if v.is_finite() => values.push(v),
                _ => {
                    return self.err(format!(
                        "target {}: '{}' is not a finite number",
                        p + 1,
                        preview(tok)
                    ))
                }
            }
        }
        match self.target_count {
            Some((r, l)) if r != values.len() => {
                return self.err(format!(
                    "the row has {} target{}, the first row (line {l}) has {r}",
                    values.len(),
                    plural(values.len())
                ))
            }
            Some(_) => {}
            None => self.target_count = Some((values.len(), self.line)),
        }
        self.targets.extend(values);
        Ok(())
    }
}

/// Linear interpolation of `len` values from the `known` `(index, value)`
/// pairs (ascending, non-empty); constant beyond the first and last.
fn interpolate(len: usize, known: &[(usize, f32)]) -> Vec<f32> {
    let mut out = vec![0.0; len];
    let mut k = 0;
    for (i, o) in out.iter_mut().enumerate() {
        while k + 1 < known.len() && known[k + 1].0 <= i {
            k += 1;
        }
        let (i0, v0) = known[k];
        *o = if i <= i0 || k + 1 >= known.len() {
            v0
        } else {
            let (i1, v1) = known[k + 1];
            let w = (i - i0) as f32 / (i1 - i0) as f32;
            v0 + w * (v1 - v0)
        };
    }
    out
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// At most 40 characters of `s`, for messages.
fn preview(s: &str) -> String {
    let mut out: String = s.chars().take(40).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<TsDataset> {
        parse_ts(text, "t.ts", &TsOptions::default())
    }

    /// The error's line, asserting that it is a parse error of `t.ts`
    /// whose message contains `needle`.
    fn err_line(text: &str, needle: &str) -> usize {
        match parse(text) {
            Err(Error::Parse {
                file,
                line,
                message,
            }) => {
                assert_eq!(file, "t.ts");
                assert!(
                    message.contains(needle),
                    "message '{message}' lacks '{needle}'"
                );
                line
            }
            other => panic!("expected a parse error containing '{needle}', got {other:?}"),
        }
    }

    const GOOD: &str = "# comment\n@problemName Ex\n@univariate false\n@dimensions 2\n@equalLength false\n@classLabel true a b\n@data\n1,2,3:4,5,6:a\n\n1.5,2.5:3.5,4.5:b\n";

    #[test]
    fn parses_multivariate_unequal_length() {
        let d = parse(GOOD).unwrap();
        assert_eq!(d.problem_name.as_deref(), Some("Ex"));
        assert_eq!(d.len(), 2);
        assert_eq!(d.lengths(), vec![3, 2]);
        assert_eq!(d.series[0], ndarray::array![[1., 4.], [2., 5.], [3., 6.]]);
        assert_eq!(d.lines, vec![8, 10]);
        assert_eq!(d.label_names().unwrap(), vec!["a", "b"]);
        match d.labels {
            TsLabels::Classes { names, labels } => {
                assert_eq!(names, vec!["a", "b"]);
                assert_eq!(labels, vec![0, 1]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn keywords_are_case_insensitive_and_crlf_is_fine() {
        let text = "@PROBLEMNAME x\r\n@UniVariate TRUE\r\n@TargetLabel True\r\n@DATA\r\n1,2:0.5\r\n3,4:1.5,2.5\r\n";
        assert_eq!(err_line(text, "2 targets"), 6);
        let d = parse("@PROBLEMNAME x\r\n@UniVariate TRUE\r\n@TargetLabel True\r\n@DATA\r\n1,2:0.5\r\n3,4:1.5\r\n").unwrap();
        match d.labels {
            TsLabels::Targets(t) => assert_eq!(t, ndarray::array![[0.5], [1.5]]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn multiple_targets() {
        let d = parse("@targetLabel true\n@data\n1,2:0.5,1\n3,4:1.5,2\n").unwrap();
        match d.labels {
            TsLabels::Targets(t) => assert_eq!(t, ndarray::array![[0.5, 1.], [1.5, 2.]]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn no_label_field() {
        let d = parse("@classLabel false\n@data\n1,2:3,4\n5:6\n").unwrap();
        assert_eq!(d.labels, TsLabels::None);
        assert_eq!(d.dimensions(), 2);
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        assert_eq!(err_line("", "empty"), 1);
        assert_eq!(err_line("\n\n  \n", "empty"), 1);
        assert_eq!(
            err_line("@problemName x\n@classLabel true a\n", "without an @data"),
            3
        );
        assert_eq!(err_line("@classLabel true a\n@data\n", "no data rows"), 3);
        assert_eq!(
            err_line(
                "@classLabel true a\n@data\n# only a comment",
                "no data rows"
            ),
            3
        );
        // Dimension count mismatch with @dimensions and between rows.
        assert_eq!(
            err_line(
                "@dimensions 2\n@classLabel true a\n@data\n1,2:a\n",
                "expected 2"
            ),
            4
        );
        assert_eq!(
            err_line(
                "@classLabel true a\n@data\n1:2:a\n1:2:3:a\n",
                "first data row, line 3"
            ),
            4
        );
        assert_eq!(
            err_line(
                "@univariate true\n@classLabel true a\n@data\n1:2:a\n",
                "@univariate"
            ),
            4
        );
        assert_eq!(
            err_line("@univariate true\n@dimensions 3\n@data\n", "@dimensions 3"),
            3
        );
        // Values.
        assert_eq!(
            err_line(
                "@classLabel true a\n@data\n1,x,3:a\n",
                "'x' is not a number"
            ),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,inf,3:a\n", "finite"),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,1e39:a\n", "finite"),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,NaN:a\n", "missing"),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,?:a\n", "missing value '?'"),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,,2:a\n", "empty value"),
            3
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n:a\n", "dimension 1 is empty"),
            3
        );
        assert_eq!(
            err_line(
                "@classLabel true a\n@data\n1,2:3:a\n",
                "dimension 2 has 1 values"
            ),
            3
        );
        // Labels.
        assert_eq!(
            err_line(
                "@classLabel true a b\n@data\n1:a\n1:c\n",
                "'c' is not in the @classLabel list"
            ),
            4
        );
        assert_eq!(
            err_line("@classLabel true a\n@data\n1,2\n", "no label field"),
            3
        );
        assert_eq!(
            err_line("@targetLabel true\n@data\n1,2:x\n", "not a finite number"),
            3
        );
        assert_eq!(err_line("@targetLabel true\n@data\n1,2:\n", "empty"), 3);
        // Header.
        assert_eq!(
            err_line(
                "@problemName x\n@dimension 3\n@data\n1\n",
                "unknown header keyword"
            ),
            2
        );
        assert_eq!(err_line("@missing maybe\n", "true or false"), 1);
        assert_eq!(err_line("@dimensions 0\n", "positive"), 1);
        assert_eq!(err_line("@dimensions two\n", "positive"), 1);
        assert_eq!(err_line("@classLabel true\n", "class names"), 1);
        assert_eq!(err_line("@classLabel true a a\n", "twice"), 1);
        assert_eq!(err_line("@classLabel\n", "true"), 1);
        assert_eq!(err_line("@missing false\n@missing true\n", "twice"), 2);
        assert_eq!(err_line("@timeStamps true\n", "not supported"), 1);
        assert_eq!(
            err_line("@classLabel true a\n@targetLabel true\n@data\n", "not both"),
            3
        );
        assert_eq!(err_line("1,2,3\n", "expected a header line"), 1);
        assert_eq!(err_line("@data\n1:2\n@dimensions 2\n", "after @data"), 3);
        assert_eq!(err_line("@data extra\n", "nothing after"), 1);
        // Equal length.
        let eq = "@equalLength true\n@classLabel true a\n@data\n1,2:a\n1,2,3:a\n";
        assert_eq!(err_line(eq, "first row (line 4)"), 5);
        let sl = "@equalLength true\n@seriesLength 3\n@classLabel true a\n@data\n1,2:a\n";
        assert_eq!(err_line(sl, "@seriesLength is 3"), 5);
    }

    #[test]
    fn truncated_file_is_an_error() {
        // Cut in the middle of the last row: the label field is lost.
        let cut = &GOOD[..GOOD.len() - 6];
        assert!(parse(cut).is_err());
        // Cut right after a ':' or ','.
        for end in (GOOD.find("@data").unwrap_or(0) + 6)..GOOD.len() {
            let _ = parse(&GOOD[..end]); // never panics
        }
    }

    #[test]
    fn missing_policies() {
        let text = "@missing true\n@classLabel true a\n@data\n?,2,?,6,?:1,?,3,4,5:a\n";
        let zero = parse_ts(
            text,
            "t.ts",
            &TsOptions {
                missing: MissingPolicy::Zero,
            },
        )
        .unwrap();
        assert_eq!(zero.series[0].column(0).to_vec(), vec![0., 2., 0., 6., 0.]);
        let interp = parse_ts(
            text,
            "t.ts",
            &TsOptions {
                missing: MissingPolicy::Interpolate,
            },
        )
        .unwrap();
        assert_eq!(
            interp.series[0].column(0).to_vec(),
            vec![2., 2., 4., 6., 6.]
        );
        assert_eq!(
            interp.series[0].column(1).to_vec(),
            vec![1., 2., 3., 4., 5.]
        );
        let all = "@classLabel true a\n@data\n?,?:1,2:a\n";
        match parse_ts(
            all,
            "t.ts",
            &TsOptions {
                missing: MissingPolicy::Interpolate,
            },
        ) {
            Err(Error::Parse {
                line: 3, message, ..
            }) => assert!(message.contains("only missing")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        use proptest::prelude::*;
        proptest!(|(s in "[@a-zA-Z0-9 .,:?#\\n\\r-]{0,120}")| {
            let _ = parse(&s);
            let _ = parse(&format!("@classLabel true a b\n@data\n{s}"));
            let _ = parse(&format!("@targetLabel true\n@equalLength true\n@data\n{s}"));
        });
    }
}
