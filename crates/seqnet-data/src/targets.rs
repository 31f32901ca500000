//! Per-step targets of sequence-to-sequence data, each in a `.npy` file of
//! its own (named by a `labels.csv` with the header `file,target`), and the
//! `classes.txt` that names their class indices.
//!
//! | target file | shape | element type | becomes |
//! |---|---|---|---|
//! | class indices | `[T]` | `int64` (or `int32`) | [`Target::ClassSequence`] |
//! | responses | `[T]` or `[T, R]` | `float32` (or `float64`) | [`Target::ResponseSequence`] `[T, R]` (`R = 1` for `[T]`) |
//!
//! `classes.txt` lists the class names in index order, one per line (blank
//! lines skipped, surrounding spaces trimmed): index `k` is line `k + 1`'s
//! name among the non-blank lines.

use crate::error::{Error, Result};
use crate::npy::{NpyFile, NpyType};
use crate::observation::Target;
use ndarray::Array2;
use std::path::Path;

/// The kind and length of a per-step target file, from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetInfo {
    /// The number of time steps `T`.
    pub steps: usize,
    /// Class indices or `R` responses per step.
    pub kind: StepTargetKind,
}

/// What a per-step target file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepTargetKind {
    /// One class index per step.
    Classes,
    /// `R` responses per step.
    Responses(usize),
}

impl std::fmt::Display for StepTargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepTargetKind::Classes => f.write_str("class indices (int64)"),
            StepTargetKind::Responses(1) => f.write_str("1 response per step (float32)"),
            StepTargetKind::Responses(r) => write!(f, "{r} responses per step (float32)"),
        }
    }
}

/// The class list of per-step class targets: its file (for messages) and names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassList {
    /// The `classes.txt` path.
    pub file: String,
    /// The class names in index order, `[K]`.
    pub names: Vec<String>,
}

/// Reads a `classes.txt`: one class name per non-blank line, in index
/// order. An empty list or a name given twice is an [`Error::Parse`]
/// naming the line.
pub fn read_classes(path: impl AsRef<Path>) -> Result<ClassList> {
    let path = path.as_ref();
    let file = path.display().to_string();
    let text = crate::text::read_text(path)?;
    let err = |line: usize, message: String| Error::Parse {
        file: file.clone(),
        line,
        message,
    };
    let mut names: Vec<String> = Vec::new();
    let mut lines: Vec<usize> = Vec::new();
    for (line, name) in crate::labels_csv::csv_lines(&text) {
        let name = name.trim();
        if let Some(k) = names.iter().position(|n| n == name) {
            return Err(err(
                line,
                format!("class '{name}' is listed twice (also on line {})", lines[k]),
            ));
        }
        names.push(name.to_string());
        lines.push(line);
    }
    if names.is_empty() {
        return Err(err(
            1,
            "no class names: list one class name per line, in index order".into(),
        ));
    }
    Ok(ClassList { file, names })
}

/// Opens a target file and checks its element type and shape.
fn open_target(path: &Path) -> Result<(NpyFile, TargetInfo)> {
    let file = NpyFile::open(path)?;
    let shape = file.info.shape.clone();
    let dtype = file.info.dtype;
    let kind = match (dtype, &shape[..]) {
        (NpyType::I64 | NpyType::I32, [_]) => StepTargetKind::Classes,
        (NpyType::F32 | NpyType::F64, [_]) => StepTargetKind::Responses(1),
        (NpyType::F32 | NpyType::F64, [_, r]) if *r > 0 => StepTargetKind::Responses(*r),
        (NpyType::U8, _) => {
            return Err(Error::npy(
                path,
                "element type uint8 is not supported for a target: expected int64 class indices or float32 responses",
            ))
        }
        (NpyType::I64 | NpyType::I32, _) => {
            return Err(Error::npy(
                path,
                format!("class indices of shape {shape:?}: expected [T], one index per time step"),
            ))
        }
        _ => {
            return Err(Error::npy(
                path,
                format!("responses of shape {shape:?}: expected [T] or [T, R]"),
            ))
        }
    };
    if shape[0] == 0 {
        return Err(Error::npy(
            path,
            format!("shape {shape:?}: the target has no time step"),
        ));
    }
    let steps = shape[0];
    Ok((file, TargetInfo { steps, kind }))
}

/// Reads only the header of a per-step target file (and checks its size).
pub fn read_target_info(path: impl AsRef<Path>) -> Result<TargetInfo> {
    open_target(path.as_ref()).map(|(_, info)| info)
}

/// Reads a per-step target file. Class indices must lie in `0..K` for the
/// `K` classes of `classes` ([`Error::ClassIndex`] otherwise, naming the step);
/// a class file without `classes` is an error. Responses must be finite.
pub fn read_target(path: impl AsRef<Path>, classes: Option<&ClassList>) -> Result<Target> {
    let path = path.as_ref();
    let (file, info) = open_target(path)?;
    match info.kind {
        StepTargetKind::Classes => {
            let Some(list) = classes else {
                return Err(Error::npy(
                    path,
                    "class indices need a classes.txt in the folder listing the class names in index order",
                ));
            };
            let k = list.names.len();
            let indices = file.values_i64(path)?;
            let mut out = Vec::with_capacity(indices.len());
            for (t, &c) in indices.iter().enumerate() {
                match usize::try_from(c) {
                    Ok(c) if c < k => out.push(c),
                    _ => {
                        return Err(Error::ClassIndex {
                            file: path.display().to_string(),
                            step: t + 1,
                            index: c,
                            classes: list.file.clone(),
                            count: k,
                        })
                    }
                }
            }
            Ok(Target::ClassSequence(out))
        }
        StepTargetKind::Responses(r) => {
            let values = file.values_f32(path, false)?;
            if let Some(p) = values.iter().position(|v| !v.is_finite()) {
                return Err(Error::npy(
                    path,
                    format!(
                        "the response at time step {}, column {} is NaN or infinite as float32",
                        p / r + 1,
                        p % r + 1
                    ),
                ));
            }
            let a = Array2::from_shape_vec((info.steps, r), values)
                .map_err(|e| Error::npy(path, format!("internal: {e}")))?;
            Ok(Target::ResponseSequence(a))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{array, Array1};
    use ndarray_npy::write_npy;

    fn classes(names: &[&str]) -> ClassList {
        ClassList {
            file: "classes.txt".into(),
            names: names.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn reads_classes_and_responses() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        write_npy(&p, &array![2i64, 0, 1]).unwrap();
        assert_eq!(
            read_target_info(&p).unwrap(),
            TargetInfo {
                steps: 3,
                kind: StepTargetKind::Classes
            }
        );
        let t = read_target(&p, Some(&classes(&["a", "b", "c"]))).unwrap();
        assert_eq!(t, Target::ClassSequence(vec![2, 0, 1]));
        write_npy(&p, &array![1i32, 1]).unwrap();
        let t = read_target(&p, Some(&classes(&["a", "b"]))).unwrap();
        assert_eq!(t, Target::ClassSequence(vec![1, 1]));

        write_npy(&p, &array![0.5f32, 1.5]).unwrap();
        let t = read_target(&p, None).unwrap();
        assert_eq!(t, Target::ResponseSequence(array![[0.5], [1.5]]));
        write_npy(&p, &array![[1.0f64, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        assert_eq!(
            read_target_info(&p).unwrap().kind,
            StepTargetKind::Responses(2)
        );
        let t = read_target(&p, None).unwrap();
        assert_eq!(
            t,
            Target::ResponseSequence(array![[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
        );
    }

    #[test]
    fn bad_targets_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.npy");
        let msg = |r: Result<Target>| r.unwrap_err().to_string();
        write_npy(&p, &array![0i64, 3, 1]).unwrap();
        let e = read_target(&p, Some(&classes(&["a", "b", "c"]))).unwrap_err();
        assert!(
            matches!(
                e,
                Error::ClassIndex {
                    step: 2,
                    index: 3,
                    count: 3,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("t.npy"), "{e}");
        write_npy(&p, &array![0i64, -1]).unwrap();
        assert!(msg(read_target(&p, Some(&classes(&["a"])))).contains("class index -1"));
        write_npy(&p, &array![0i64]).unwrap();
        assert!(msg(read_target(&p, None)).contains("classes.txt"));
        write_npy(&p, &Array1::<u8>::zeros(3)).unwrap();
        assert!(msg(read_target(&p, None)).contains("uint8 is not supported for a target"));
        write_npy(&p, &Array1::<i16>::zeros(3)).unwrap();
        let m = msg(read_target(&p, None));
        assert!(m.contains("t.npy") && m.contains("not supported"), "{m}");
        write_npy(&p, &ndarray::Array2::<i64>::zeros((3, 2))).unwrap();
        assert!(msg(read_target(&p, None)).contains("expected [T]"));
        write_npy(&p, &ndarray::Array3::<f32>::zeros((3, 2, 1))).unwrap();
        assert!(msg(read_target(&p, None)).contains("expected [T] or [T, R]"));
        write_npy(&p, &Array1::<f32>::zeros(0)).unwrap();
        assert!(msg(read_target(&p, None)).contains("no time step"));
        write_npy(&p, &array![[0.0f32, 1.0], [f32::NAN, 0.0]]).unwrap();
        assert!(msg(read_target(&p, None)).contains("time step 2, column 1"));
        let e = read_target(dir.path().join("none.npy"), None).unwrap_err();
        assert!(matches!(e, Error::Io { .. }), "{e}");
    }

    #[test]
    fn class_lists() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("classes.txt");
        std::fs::write(&p, "sine\n\n square \r\nsawtooth\n").unwrap();
        assert_eq!(
            read_classes(&p).unwrap().names,
            ["sine", "square", "sawtooth"]
        );
        std::fs::write(&p, "a\nb\na\n").unwrap();
        let e = read_classes(&p).unwrap_err();
        assert!(matches!(e, Error::Parse { line: 3, .. }), "{e}");
        std::fs::write(&p, "\n").unwrap();
        assert!(read_classes(&p).is_err());
    }
}
