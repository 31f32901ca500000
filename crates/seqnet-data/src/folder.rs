//! [`FolderDatastore`]: a folder with a `labels.csv` and one sequence file
//! per observation, read from disk when asked (with read-ahead on a
//! background thread when read through an [`crate::Epoch`]).
//!
//! ```text
//! folder/
//!   labels.csv      file,label      file,response[,response2…]      file,target
//!                   a.npy,cat       a.npy,12.5                      sequences/a.npy,targets/a.npy
//!   a.npy           [T, C] or [T, H, W, C]; float32, float64 or uint8 (scaled to [0, 1])
//!   b.csv           or a .csv sequence: a header of C feature names, one row per step
//!   targets/a.npy   per-step targets (file,target): int64 class indices [T], or
//!                   float32 responses [T] or [T, R] (see crate::targets)
//!   classes.txt     the class names of int64 targets, in index order, one per line
//! ```
//!
//! Opening the folder reads `labels.csv`, every `.npy` sequence's header
//! (not its data), every `.csv` sequence, and every per-step target file
//! (targets are small: they are kept in memory). So a missing file, a wrong
//! shape, a frame shape unlike the first file's, a target of the wrong
//! type, length or class index is an error at once, naming the files (and
//! the `labels.csv` line that lists them).

use crate::datastore::Datastore;
use crate::error::{Error, Result};
use crate::labels_csv::{parse_labels_csv, CsvTargets, LabelsCsv};
use crate::observation::{FrameShape, Observation, Target, TargetKind};
use crate::sequence_file::{read_sequence_file, sequence_info};
use crate::targets::{read_classes, read_target, read_target_info, ClassList, StepTargetKind};
use std::path::{Path, PathBuf};

/// Options of [`FolderDatastore::open_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FolderOptions {
    /// The class names in index order (e.g. those of the training set, for
    /// a test set). `None`: the distinct labels of `labels.csv`, sorted
    /// (byte-wise, as MATLAB's `categorical` sorts them), or the names of
    /// `classes.txt` for per-step class targets. A label (or a
    /// `classes.txt` name) not in a given list is an error; per-step class
    /// indices are renumbered into the given list by name.
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
    /// The sequence file's path.
    path: PathBuf,
    /// The sequence file as `labels.csv` writes it.
    file: String,
    line: usize,
    len: usize,
    target: Target,
    /// The per-step target file's path (`file,target` folders).
    target_path: Option<PathBuf>,
}

/// Observations stored as sequence files listed in a `labels.csv`.
#[derive(Debug, Clone)]
pub struct FolderDatastore {
    csv: String,
    entries: Vec<Entry>,
    frame: FrameShape,
    classes: Option<Vec<String>>,
    response_names: Option<Vec<String>>,
    read_ahead: usize,
}

/// The targets of every row, with the class or response names.
struct Targets {
    targets: Vec<Target>,
    classes: Option<Vec<String>>,
    response_names: Option<Vec<String>>,
    paths: Vec<Option<PathBuf>>,
}

impl FolderDatastore {
    /// Opens `dir/labels.csv` with the default options.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::open_with(dir, FolderOptions::default())
    }

    /// Opens `dir/labels.csv`, checking every listed file as the module docs say.
    pub fn open_with(dir: impl AsRef<Path>, options: FolderOptions) -> Result<Self> {
        let dir = dir.as_ref();
        let csv_path = dir.join("labels.csv");
        let csv = csv_path.display().to_string();
        let text = crate::text::read_text(&csv_path)?;
        let table = parse_labels_csv(&text, &csv)?;
        let (lengths, frame) = sequence_lengths(dir, &csv, &table)?;
        let found = match &table.targets {
            CsvTargets::Labels(labels) => label_targets(&csv, &table, labels, options.classes)?,
            CsvTargets::Responses { names, values } => Targets {
                targets: values
                    .outer_iter()
                    .map(|r| Target::Response(r.to_owned()))
                    .collect(),
                classes: None,
                response_names: Some(names.clone()),
                paths: vec![None; table.len()],
            },
            CsvTargets::Files(files) => {
                StepTargets::new(dir, &csv, &table).read(files, &lengths, options.classes)?
            }
        };
        let entries = table
            .files
            .iter()
            .zip(&table.lines)
            .zip(lengths)
            .zip(found.targets.into_iter().zip(found.paths))
            .map(|(((file, &line), len), (target, target_path))| Entry {
                path: dir.join(file),
                file: file.clone(),
                line,
                len,
                target,
                target_path,
            })
            .collect();
        Ok(FolderDatastore {
            csv,
            entries,
            frame,
            classes: found.classes,
            response_names: found.response_names,
            read_ahead: options.read_ahead,
        })
    }

    /// The response column names of a regression `labels.csv`, `[R]`.
    pub fn response_names(&self) -> Option<&[String]> {
        self.response_names.as_deref()
    }

    /// The sequence file path of observation `i`.
    pub fn path(&self, i: usize) -> Option<&Path> {
        self.entries.get(i).map(|e| e.path.as_path())
    }

    /// The per-step target file path of observation `i` (`file,target` folders).
    pub fn target_path(&self, i: usize) -> Option<&Path> {
        self.entries.get(i).and_then(|e| e.target_path.as_deref())
    }
}

/// A problem with `file`, listed on `line` of `csv`.
fn listed(csv: &str, line: usize, file: &str, message: String) -> Error {
    Error::Listed {
        csv: csv.to_string(),
        line,
        file: file.to_string(),
        message,
    }
}

/// A file's error as one of the `labels.csv` line that lists it; errors
/// that name a line of the file itself (a `.csv` sequence) stay as they are.
fn as_listed(csv: &str, line: usize, file: &str, e: Error) -> Error {
    match e {
        Error::Parse { line: l, .. } if l > 0 => e,
        other => listed(csv, line, file, other.message_without_file()),
    }
}

/// Every row's sequence length, and the frame shape they all share.
fn sequence_lengths(dir: &Path, csv: &str, table: &LabelsCsv) -> Result<(Vec<usize>, FrameShape)> {
    let mut lengths = Vec::with_capacity(table.len());
    let mut first: Option<(FrameShape, &str, usize)> = None;
    for (file, &line) in table.files.iter().zip(&table.lines) {
        let (len, frame) =
            sequence_info(dir.join(file)).map_err(|e| as_listed(csv, line, file, e))?;
        match first {
            None => first = Some((frame, file, line)),
            Some((f, ffile, fline)) if f != frame => {
                return Err(listed(
                    csv,
                    line,
                    file,
                    format!(
                        "time steps of {frame}, but {ffile} (line {fline}) has {f}: all files must have the same frame shape"
                    ),
                ))
            }
            Some(_) => {}
        }
        lengths.push(len);
    }
    Ok((lengths, first.map_or(FrameShape::Features(0), |f| f.0)))
}

/// Class targets from the labels of `file,label` rows, numbered by `wanted`
/// or by the sorted distinct labels.
fn label_targets(
    csv: &str,
    table: &LabelsCsv,
    labels: &[String],
    wanted: Option<Vec<String>>,
) -> Result<Targets> {
    let classes = wanted.unwrap_or_else(|| {
        let mut c = labels.to_vec();
        c.sort();
        c.dedup();
        c
    });
    let mut targets = Vec::with_capacity(labels.len());
    for (label, &line) in labels.iter().zip(&table.lines) {
        match classes.iter().position(|c| c == label) {
            Some(k) => targets.push(Target::Class(k)),
            None => {
                return Err(Error::Parse {
                    file: csv.to_string(),
                    line,
                    message: format!(
                        "label '{label}' is not one of the classes ({})",
                        classes.join(", ")
                    ),
                })
            }
        }
    }
    Ok(Targets {
        targets,
        classes: Some(classes),
        response_names: None,
        paths: vec![None; table.len()],
    })
}

/// Reads the per-step target files of a `file,target` folder.
struct StepTargets<'a> {
    dir: &'a Path,
    csv: &'a str,
    table: &'a LabelsCsv,
}

impl<'a> StepTargets<'a> {
    fn new(dir: &'a Path, csv: &'a str, table: &'a LabelsCsv) -> Self {
        StepTargets { dir, csv, table }
    }

    /// Checks every target's header (kind, and length against `lengths`),
    /// then reads them all; class indices are checked against `classes.txt`
    /// and renumbered into `wanted` when given.
    fn read(
        &self,
        files: &[String],
        lengths: &[usize],
        wanted: Option<Vec<String>>,
    ) -> Result<Targets> {
        let kind = self.check_headers(files, lengths)?;
        let list = match kind {
            Some(StepTargetKind::Classes) => Some(self.class_list()?),
            _ => None,
        };
        let mut targets = Vec::with_capacity(files.len());
        let mut paths = Vec::with_capacity(files.len());
        for (file, &line) in files.iter().zip(&self.table.lines) {
            let path = self.dir.join(file);
            let target = read_target(&path, list.as_ref()).map_err(|e| match e {
                Error::ClassIndex { .. } => e,
                other => as_listed(self.csv, line, file, other),
            })?;
            targets.push(target);
            paths.push(Some(path));
        }
        let classes = match (list, wanted) {
            (None, _) => None,
            (Some(list), None) => Some(list.names),
            (Some(list), Some(wanted)) => {
                renumber(&mut targets, &list, &wanted)?;
                Some(wanted)
            }
        };
        Ok(Targets {
            targets,
            classes,
            response_names: None,
            paths,
        })
    }

    /// Checks each target file's header: all of one kind, each as long as
    /// its sequence. Returns the kind.
    fn check_headers(&self, files: &[String], lengths: &[usize]) -> Result<Option<StepTargetKind>> {
        let mut first: Option<(StepTargetKind, &str, usize)> = None;
        for (i, (file, &line)) in files.iter().zip(&self.table.lines).enumerate() {
            let info = read_target_info(self.dir.join(file))
                .map_err(|e| as_listed(self.csv, line, file, e))?;
            match first {
                None => first = Some((info.kind, file, line)),
                Some((k, ffile, fline)) if k != info.kind => {
                    return Err(listed(
                        self.csv,
                        line,
                        file,
                        format!(
                            "holds {}, but {ffile} (line {fline}) holds {k}: all targets must be of one kind",
                            info.kind
                        ),
                    ))
                }
                Some(_) => {}
            }
            if info.steps != lengths[i] {
                return Err(Error::TargetLength {
                    csv: self.csv.to_string(),
                    line,
                    sequence: self.table.files[i].clone(),
                    sequence_steps: lengths[i],
                    target: file.clone(),
                    target_steps: info.steps,
                });
            }
        }
        Ok(first.map(|f| f.0))
    }

    /// The folder's `classes.txt`, which class-index targets need.
    fn class_list(&self) -> Result<ClassList> {
        let path = self.dir.join("classes.txt");
        if !path.is_file() {
            return Err(Error::Parse {
                file: path.display().to_string(),
                line: 0,
                message: format!(
                    "missing: the targets listed in {} are class indices, so the folder needs a classes.txt naming the classes in index order, one per line",
                    self.csv
                ),
            });
        }
        read_classes(&path)
    }
}

/// Renumbers class indices of `list` into `wanted` by name.
fn renumber(targets: &mut [Target], list: &ClassList, wanted: &[String]) -> Result<()> {
    let map = list
        .names
        .iter()
        .map(|c| {
            wanted
                .iter()
                .position(|w| w == c)
                .ok_or_else(|| Error::Parse {
                    file: list.file.clone(),
                    line: 0,
                    message: format!(
                        "class '{c}' is not one of the classes ({})",
                        wanted.join(", ")
                    ),
                })
        })
        .collect::<Result<Vec<usize>>>()?;
    for t in targets {
        if let Target::ClassSequence(cs) = t {
            cs.iter_mut().for_each(|c| *c = map[*c]);
        }
    }
    Ok(())
}

impl Datastore for FolderDatastore {
    fn len(&self) -> usize {
        self.entries.len()
    }

    /// Reads the sequence file of observation `i`. Errors name the file, and
    /// the `labels.csv` line that lists it.
    fn read(&self, i: usize) -> Result<Observation> {
        let e = self.entries.get(i).ok_or(Error::Index {
            index: i,
            len: self.entries.len(),
        })?;
        let data = read_sequence_file(&e.path)
            .map_err(|err| as_listed(&self.csv, e.line, &e.file, err))?;
        if data.frame_shape() != self.frame {
            return Err(listed(
                &self.csv,
                e.line,
                &e.file,
                format!(
                    "time steps of {}, expected {} as when the folder was opened",
                    data.frame_shape(),
                    self.frame
                ),
            ));
        }
        if data.len() != e.len {
            return Err(listed(
                &self.csv,
                e.line,
                &e.file,
                format!(
                    "{} time steps, but {} when the folder was opened",
                    data.len(),
                    e.len
                ),
            ));
        }
        Ok(Observation::new(data, e.target.clone()))
    }

    fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    /// The lengths found when the folder was opened.
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
            matches!(e, Error::Listed { line: 3, .. })
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
            m.contains("labels.csv:3: b.npy: ") && m.contains("not a .npy"),
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

    /// A `file,target` folder: sequences under `seq/`, targets under `tgt/`.
    fn step_folder(
        csv: &str,
        classes: Option<&str>,
        sequences: &[(&str, Array2<f32>)],
    ) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for sub in ["seq", "tgt"] {
            std::fs::create_dir(dir.path().join(sub)).unwrap();
        }
        std::fs::write(dir.path().join("labels.csv"), csv).unwrap();
        if let Some(c) = classes {
            std::fs::write(dir.path().join("classes.txt"), c).unwrap();
        }
        for (name, a) in sequences {
            write_npy(dir.path().join(name), a).unwrap();
        }
        dir
    }

    #[test]
    fn per_step_class_targets() {
        let dir = step_folder(
            "file,target\nseq/a.npy,tgt/a.npy\nseq/b.csv,tgt/b.npy\n",
            Some("up\ndown\nflat\n"),
            &[("seq/a.npy", seq(3, 2, 1.))],
        );
        std::fs::write(dir.path().join("seq/b.csv"), "x,y\n1,2\n3,4\n").unwrap();
        write_npy(dir.path().join("tgt/a.npy"), &ndarray::array![2i64, 0, 1]).unwrap();
        write_npy(dir.path().join("tgt/b.npy"), &ndarray::array![1i64, 1]).unwrap();
        let ds = FolderDatastore::open(dir.path()).unwrap();
        assert_eq!(ds.classes().unwrap(), ["up", "down", "flat"]);
        assert_eq!(ds.target_kind().unwrap(), Some(TargetKind::ClassSequence));
        assert_eq!(ds.sequence_lengths().unwrap(), vec![3, 2]);
        assert_eq!(
            ds.read(0).unwrap().target,
            Target::ClassSequence(vec![2, 0, 1])
        );
        let b = ds.read(1).unwrap();
        assert_eq!(
            b.data,
            Sequence::Features(ndarray::array![[1., 2.], [3., 4.]])
        );
        assert_eq!(b.target, Target::ClassSequence(vec![1, 1]));
        assert!(ds.target_path(1).unwrap().ends_with("tgt/b.npy"));

        // Renumbered into a model's classes by name.
        let opts = FolderOptions {
            classes: Some(vec!["flat".into(), "up".into(), "down".into()]),
            read_ahead: 0,
        };
        let ds = FolderDatastore::open_with(dir.path(), opts).unwrap();
        assert_eq!(
            ds.read(0).unwrap().target,
            Target::ClassSequence(vec![0, 1, 2])
        );
        let opts = FolderOptions {
            classes: Some(vec!["flat".into(), "up".into()]),
            read_ahead: 0,
        };
        let m = FolderDatastore::open_with(dir.path(), opts)
            .unwrap_err()
            .to_string();
        assert!(m.contains("classes.txt") && m.contains("'down'"), "{m}");
    }

    #[test]
    fn per_step_response_targets_batch_with_masks() {
        let dir = step_folder(
            "file,target\nseq/a.npy,tgt/a.npy\nseq/b.npy,tgt/b.npy\n",
            None,
            &[("seq/a.npy", seq(3, 1, 1.)), ("seq/b.npy", seq(1, 1, 2.))],
        );
        write_npy(
            dir.path().join("tgt/a.npy"),
            &ndarray::array![0.5f32, 1.5, 2.5],
        )
        .unwrap();
        write_npy(dir.path().join("tgt/b.npy"), &ndarray::array![[7.0f32]]).unwrap();
        let ds = Arc::new(FolderDatastore::open(dir.path()).unwrap());
        assert_eq!(
            ds.target_kind().unwrap(),
            Some(TargetKind::ResponseSequence(1))
        );
        assert!(ds.classes().is_none());
        let batcher = crate::Batcher::for_datastore(Default::default(), ds.as_ref()).unwrap();
        let batch = batcher
            .epoch(ds.clone(), &[0, 1], 2, crate::LastBatch::Keep)
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let y = batch.chunks[0].targets.as_ref().unwrap();
        assert_eq!(y.data.shape(), &[3, 2, 1]);
        assert_eq!(y.seq_lengths().lengths, vec![3, 1]);
        let column = |b: usize| (0..3).map(|t| y.data[[t, b, 0]]).collect::<Vec<f32>>();
        assert_eq!(column(0), vec![0.5, 1.5, 2.5]);
        assert_eq!(column(1), vec![7.0, 0.0, 0.0]); // zero at padding
    }

    #[test]
    fn bad_target_files_name_the_files() {
        let files = [("seq/a.npy", seq(3, 1, 0.)), ("seq/b.npy", seq(2, 1, 0.))];
        let csv = "file,target\nseq/a.npy,tgt/a.npy\nseq/b.npy,tgt/b.npy\n";
        let open = |classes: Option<&str>, a: &dyn Fn(&Path), b: &dyn Fn(&Path)| {
            let dir = step_folder(csv, classes, &files);
            a(&dir.path().join("tgt/a.npy"));
            b(&dir.path().join("tgt/b.npy"));
            FolderDatastore::open(dir.path()).unwrap_err()
        };
        let ints =
            |v: Vec<i64>| move |p: &Path| write_npy(p, &ndarray::Array1::from(v.clone())).unwrap();
        let nothing = |_: &Path| {};

        // A target one step short: both files and the line.
        let e = open(Some("a\nb\n"), &ints(vec![0, 1, 0]), &ints(vec![1]));
        let m = e.to_string();
        assert!(
            matches!(
                e,
                Error::TargetLength {
                    line: 3,
                    sequence_steps: 2,
                    target_steps: 1,
                    ..
                }
            ),
            "{m}"
        );
        assert!(
            m.contains("tgt/b.npy") && m.contains("seq/b.npy") && m.contains("labels.csv:3:"),
            "{m}"
        );

        // A class index beyond classes.txt: the file and the step.
        let e = open(Some("a\nb\n"), &ints(vec![0, 1, 0]), &ints(vec![1, 2]));
        let m = e.to_string();
        assert!(
            matches!(
                e,
                Error::ClassIndex {
                    step: 2,
                    index: 2,
                    count: 2,
                    ..
                }
            ),
            "{m}"
        );
        assert!(m.contains("tgt/b.npy") && m.contains("classes.txt"), "{m}");

        // A wrong element type.
        let bytes = |p: &Path| write_npy(p, &ndarray::Array1::<u8>::zeros(2)).unwrap();
        let m = open(Some("a\n"), &ints(vec![0, 0, 0]), &bytes).to_string();
        assert!(
            m.contains("labels.csv:3: tgt/b.npy: element type uint8"),
            "{m}"
        );

        // Classes in one file, responses in the other.
        let floats = |p: &Path| write_npy(p, &ndarray::Array1::<f32>::zeros(2)).unwrap();
        let m = open(Some("a\n"), &ints(vec![0, 0, 0]), &floats).to_string();
        assert!(
            m.contains("tgt/b.npy: holds 1 response per step") && m.contains("tgt/a.npy (line 2)"),
            "{m}"
        );

        // A missing target file; a missing classes.txt.
        let m = open(Some("a\n"), &ints(vec![0, 0, 0]), &nothing).to_string();
        assert!(m.contains("labels.csv:3: tgt/b.npy: cannot read"), "{m}");
        let e = open(None, &ints(vec![0, 0, 0]), &ints(vec![0, 0]));
        assert!(
            e.to_string().contains("classes.txt") && e.to_string().contains("missing"),
            "{e}"
        );
    }

    #[test]
    fn csv_sequences_name_their_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("labels.csv"),
            "file,label\na.csv,x\nb.csv,y\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("a.csv"), "f1,f2\n1,2\n").unwrap();
        std::fs::write(dir.path().join("b.csv"), "f1,f2\n1,2\n3,4,5\n").unwrap();
        let e = FolderDatastore::open(dir.path()).unwrap_err();
        let m = e.to_string();
        assert!(
            matches!(e, Error::Parse { line: 3, .. }) && m.contains("b.csv:3:"),
            "{m}"
        );
        std::fs::write(dir.path().join("b.csv"), "f1\n1\n").unwrap();
        let m = FolderDatastore::open(dir.path()).unwrap_err().to_string();
        assert!(
            m.contains("labels.csv:3: b.csv: time steps of 1 features"),
            "{m}"
        );
        std::fs::write(dir.path().join("b.txt"), "f1\n1\n").unwrap();
        std::fs::write(dir.path().join("labels.csv"), "file,label\nb.txt,y\n").unwrap();
        let m = FolderDatastore::open(dir.path()).unwrap_err().to_string();
        assert!(
            m.contains("b.txt: a sequence file must be a .npy or a .csv file"),
            "{m}"
        );
    }
}
