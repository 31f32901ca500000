//! [`FolderDatastore`]: a folder with a `labels.csv` and one `.npy` file per
//! observation, read from disk when asked (with read-ahead on a background
//! thread when read through an [`crate::Epoch`]).
//!
//! ```text
//! folder/
//!   labels.csv      file,label          or  file,response[,response2…]
//!                   seq0001.npy,cat          seq0001.npy,12.5
//!   seq0001.npy     [T, C] or [T, H, W, C]; float32, float64 or uint8 (scaled to [0, 1])
//!   …
//! ```
//!
//! Opening the folder reads `labels.csv` and every `.npy` header (not the
//! data), so a missing file, a wrong shape or a frame shape that differs
//! from the first file's is an error at once, naming the CSV line.

use crate::datastore::Datastore;
use crate::labels_csv::{parse_labels_csv, CsvTargets};
use crate::npy::{read_info, read_sequence};
use crate::observation::{FrameShape, Observation, Target, TargetKind};
use seqnet_core::{Error, Result};
use std::path::{Path, PathBuf};

/// Options of [`FolderDatastore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderOptions {
    /// The class names in index order (e.g. those of the training set, for
    /// a test set). `None`: the distinct labels of `labels.csv`, sorted
    /// (byte-wise, as MATLAB's `categorical` sorts them). A label not in a
    /// given list is an error.
    pub classes: Option<Vec<String>>,
    /// How many observations an [`crate::Epoch`] reads ahead on its
    /// background thread (0: none). Memory held is about `read_ahead + 2`
    /// observations.
    pub read_ahead: usize,
}

impl Default for FolderOptions {
    /// Classes from the labels, read-ahead 4.
    fn default() -> Self {
        FolderOptions {
            classes: None,
            read_ahead: 4,
        }
    }
}

/// One row of `labels.csv`.
#[derive(Debug, Clone)]
struct Entry {
    path: PathBuf,
    line: usize,
    len: usize,
    target: Target,
}

/// Observations stored as `.npy` files listed in a `labels.csv`.
#[derive(Debug, Clone)]
pub struct FolderDatastore {
    csv: String,
    entries: Vec<Entry>,
    frame: FrameShape,
    classes: Option<Vec<String>>,
    response_names: Option<Vec<String>>,
    read_ahead: usize,
}

impl FolderDatastore {
    /// Opens `dir/labels.csv` with the default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FolderOptions::default())
    }

    /// Opens `dir/labels.csv`, checking every listed `.npy` file's header.
    pub fn open_with(dir: impl AsRef<Path>, options: FolderOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let csv_path = dir.join("labels.csv");
        let csv = csv_path.display().to_string();
        let text = crate::text::read_text(&csv_path)?;
        let table = parse_labels_csv(&text, &csv)?;
        let at = |line: usize, message: String| Error::Parse {
            file: csv.clone(),
            line,
            message,
        };
        let (targets, classes, response_names): (Vec<Target>, _, _) = match table.targets {
            CsvTargets::Labels(labels) => {
                let classes = match options.classes {
                    Some(c) => c,
                    None => {
                        let mut c = labels.clone();
                        c.sort();
                        c.dedup();
                        c
                    }
                };
                let mut targets = Vec::with_capacity(labels.len());
                for (label, &line) in labels.iter().zip(&table.lines) {
                    match classes.iter().position(|c| c == label) {
                        Some(k) => targets.push(Target::Class(k)),
                        None => {
                            return Err(at(
                                line,
                                format!(
                                    "label '{label}' is not one of the classes ({})",
                                    classes.join(", ")
                                ),
                            ))
                        }
                    }
                }
                (targets, Some(classes), None)
            }
            CsvTargets::Responses { names, values } => (
                values
                    .outer_iter()
                    .map(|r| Target::Response(r.to_owned()))
                    .collect(),
                None,
                Some(names),
            ),
        };
        let mut entries = Vec::with_capacity(targets.len());
        let mut first: Option<(FrameShape, &str, usize)> = None;
        for ((file, &line), target) in table.files.iter().zip(&table.lines).zip(targets) {
            let path = dir.join(file);
            let info = read_info(&path)
                .map_err(|e| at(line, format!("{file}: {}", strip_file(&e, &path))))?;
            let frame = info.frame_shape();
            match first {
                None => first = Some((frame, file, line)),
                Some((f, ffile, fline)) if f != frame => {
                    return Err(at(
                        line,
                        format!(
                            "{file} has time steps of {frame}, but {ffile} (line {fline}) has {f}: all files must have the same frame shape"
                        ),
                    ))
                }
                Some(_) => {}
            }
            entries.push(Entry {
                path,
                line,
                len: info.len(),
                target,
            });
        }
        let frame = first.map_or(FrameShape::Features(0), |f| f.0);
        Ok(FolderDatastore {
            csv,
            entries,
            frame,
            classes,
            response_names,
            read_ahead: options.read_ahead,
        })
    }

    /// The response column names of a regression `labels.csv`, `[R]`.
    pub fn response_names(&self) -> Option<&[String]> {
        self.response_names.as_deref()
    }

    /// The `.npy` path of observation `i`.
    pub fn path(&self, i: usize) -> Option<&Path> {
        self.entries.get(i).map(|e| e.path.as_path())
    }
}

/// An error's message without the leading "path:" of its own file.
fn strip_file(e: &Error, path: &Path) -> String {
    match e {
        Error::Parse { message, .. } => message.clone(),
        Error::Io { source, .. } => format!("cannot read {}: {source}", path.display()),
        other => other.to_string(),
    }
}

impl Datastore for FolderDatastore {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Reads the `.npy` file of observation `i`. Errors name the file, and
    /// the `labels.csv` line that lists it.
    fn read(&self, i: usize) -> Result<Observation> {
        let e = self.entries.get(i).ok_or_else(|| {
            Error::InvalidInput(format!(
                "observation {i} asked of a folder datastore of {}",
                self.entries.len()
            ))
        })?;
        let listed = |m: String| Error::Parse {
            file: e.path.display().to_string(),
            line: 0,
            message: format!("{m} (listed on line {} of {})", e.line, self.csv),
        };
        let data = read_sequence(&e.path).map_err(|err| match err {
            Error::Parse { message, .. } => listed(message),
            other => other,
        })?;
        if data.frame_shape() != self.frame {
            return Err(listed(format!(
                "time steps of {}, expected {} as when the folder was opened",
                data.frame_shape(),
                self.frame
            )));
        }
        Ok(Observation::new(data, e.target.clone()))
    }

    fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// The lengths from the `.npy` headers read when the folder was opened.
    fn sequence_lengths(&self) -> Result<Vec<usize>> {
        Ok(self.entries.iter().map(|e| e.len).collect())
    }

    fn frame_shape(&self) -> Result<Option<FrameShape>> {
        Ok((!self.entries.is_empty()).then_some(self.frame))
    }

    fn target_kind(&self) -> Result<Option<TargetKind>> {
        Ok(self.entries.first().map(|e| e.target.kind()))
    }

    fn read_ahead(&self) -> usize {
        self.read_ahead
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::Epoch;
    use crate::observation::Sequence;
    use ndarray::{Array2, Array4};
    use ndarray_npy::write_npy;
    use std::sync::Arc;

    fn folder(csv: &str, files: &[(&str, Array2<f32>)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
        for (name, a) in files {
            write_npy(dir.path().join(name), a).unwrap();
        }
        dir
    }

    fn seq(t: usize, c: usize, v: f32) -> Array2<f32> {
        Array2::from_elem((t, c), v)
    }

    #[test]
    fn classification_folder() {
        let dir = folder(
            "file,label\na.npy,dog\nb.npy,cat\nc.npy,dog\n",
            &[
                ("a.npy", seq(3, 2, 1.)),
                ("b.npy", seq(5, 2, 2.)),
                ("c.npy", seq(1, 2, 3.)),
            ],
        );
        let ds = FolderDatastore::open(dir.path()).unwrap();
        assert_eq!(ds.len(), 3);
        assert_eq!(ds.classes().unwrap(), ["cat", "dog"]);
        assert_eq!(ds.sequence_lengths().unwrap(), vec![3, 5, 1]);
        assert_eq!(ds.frame_shape().unwrap(), Some(FrameShape::Features(2)));
        assert_eq!(ds.target_kind().unwrap(), Some(TargetKind::Class));
        let o = ds.read(1).unwrap();
        assert_eq!(o.target, Target::Class(0));
        assert_eq!(o.data, Sequence::Features(seq(5, 2, 2.)));
        let order: Vec<usize> = Epoch::new(Arc::new(ds), vec![2, 0, 1])
            .unwrap()
            .map(|r| r.unwrap().0)
            .collect();
        assert_eq!(order, vec![2, 0, 1]);
        // Pinned classes.
        let opts = FolderOptions {
            classes: Some(vec!["dog".into(), "cat".into(), "cow".into()]),
            read_ahead: 0,
        };
        let ds = FolderDatastore::open_with(dir.path(), opts).unwrap();
        assert_eq!(ds.read(1).unwrap().target, Target::Class(1));
        let opts = FolderOptions {
            classes: Some(vec!["dog".into()]),
            read_ahead: 0,
        };
        let e = FolderDatastore::open_with(dir.path(), opts).unwrap_err();
        assert!(matches!(e, Error::Parse { line: 3, .. }), "{e}");
    }

    #[test]
    fn regression_and_image_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("labels.csv"), "file,fat,water\nv.npy,1,2\n").unwrap();
        write_npy(
            dir.path().join("v.npy"),
            &Array4::<u8>::from_elem((2, 3, 4, 1), 255),
        )
        .unwrap();
        let ds = FolderDatastore::open(dir.path()).unwrap();
        assert_eq!(ds.response_names().unwrap(), ["fat", "water"]);
        assert!(ds.classes().is_none());
        assert_eq!(
            ds.frame_shape().unwrap(),
            Some(FrameShape::Image {
                height: 3,
                width: 4,
                channels: 1
            })
        );
        assert_eq!(ds.target_kind().unwrap(), Some(TargetKind::Response(2)));
        let o = ds.read(0).unwrap();
        assert_eq!(o.target, Target::Response(ndarray::array![1.0, 2.0]));
        assert_eq!(o.data, Sequence::Images(Array4::ones((2, 3, 4, 1))));
    }

    #[test]
    fn errors_name_the_csv_line_or_the_file() {
        let dir = folder(
            "file,label\na.npy,x\nmissing.npy,y\n",
            &[("a.npy", seq(2, 2, 0.))],
        );
        let e = FolderDatastore::open(dir.path()).unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(e, Error::Parse { line: 3, .. })
                && m.contains("labels.csv")
                && m.contains("missing.npy"),
            "{m}"
        );

        let dir = folder(
            "file,label\na.npy,x\nb.npy,y\n",
            &[("a.npy", seq(2, 2, 0.)), ("b.npy", seq(2, 3, 0.))],
        );
        let m = FolderDatastore::open(dir.path()).unwrap_err().to_string();
        assert!(
            m.contains(":3:")
                && m.contains("3 features")
                && m.contains("a.npy (line 2) has 2 features"),
            "{m}"
        );

        let e = FolderDatastore::open(tempfile::tempdir().unwrap().path()).unwrap_err();
        assert!(
            matches!(e, Error::Io { .. }) && e.to_string().contains("labels.csv"),
            "{e}"
        );

        // A file corrupted after opening: the error names it and its CSV line.
        let dir = folder(
            "file,label\na.npy,x\nb.npy,y\n",
            &[("a.npy", seq(2, 2, 0.)), ("b.npy", seq(2, 2, 0.))],
        );
        let ds = FolderDatastore::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("b.npy"), b"garbage").unwrap();
        let m = ds.read(1).unwrap_err().to_string();
        assert!(
            m.contains("b.npy: ") && m.contains("line 3 of") && m.contains("not a .npy"),
            "{m}"
        );
        write_npy(dir.path().join("b.npy"), &seq(2, 5, 0.)).unwrap();
        let m = ds.read(1).unwrap_err().to_string();
        assert!(m.contains("expected 2 features"), "{m}");
        let mut epoch = Epoch::new(Arc::new(ds), vec![0, 1, 0]).unwrap();
        assert!(epoch.next().unwrap().is_ok());
        assert!(epoch.next().unwrap().is_err());
        assert!(epoch.next().is_none());
    }
}
