//! Writes observations as a datastore folder that [`crate::FolderDatastore`]
//! reads back: sequences under `sequences/`, per-step targets under
//! `targets/`, a `labels.csv`, and `classes.txt` for per-step classes.
//!
//! | targets | `labels.csv` | also written |
//! |---|---|---|
//! | [`Target::Class`] | `file,label` | — |
//! | [`Target::Response`] `[R]` | `file,response_1[,…]` | — |
//! | [`Target::ClassSequence`] | `file,target` | `targets/*.npy` (`int64` `[T]`), `classes.txt` |
//! | [`Target::ResponseSequence`] `[T, R]` | `file,target` | `targets/*.npy` (`float32` `[T, R]`) |

use crate::error::{Error, Result};
use crate::observation::{Observation, Sequence, Signature, Target, TargetKind};
use ndarray::Array1;
use ndarray_npy::{write_npy, WritableElement};
use std::fmt::Write as _;
use std::path::Path;

/// How [`write_folder`] stores the sequences.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SequenceFormat {
    /// `float32` `.npy` files (`[T, C]` or `[T, H, W, C]`).
    #[default]
    Npy,
    /// `.csv` files with a header `x1,…,xC` (feature sequences only).
    Csv,
}

/// Writes `observations` into `dir` (created if missing) as the module docs
/// say; observation `i` (0-based) becomes `sequences/seq_{i+1:05}.npy` (or
/// `.csv`) and, for per-step targets, `targets/seq_{i+1:05}.npy`. `classes`
/// names the class indices of class targets. All observations must have one
/// frame shape and one kind of target (not [`Target::None`]).
pub fn write_folder(
    dir: impl AsRef<Path>,
    observations: &[Observation],
    classes: Option<&[String]>,
    format: SequenceFormat,
) -> Result<()> {
    let dir = dir.as_ref();
    let kind = check(observations, classes, format)?;
    for sub in ["sequences", "targets"] {
        let needed = sub == "sequences"
            || matches!(
                kind,
                TargetKind::ClassSequence | TargetKind::ResponseSequence(_)
            );
        if needed {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
        }
    }
    let mut csv = match kind {
        TargetKind::Class => "file,label\n".to_string(),
        TargetKind::Response(r) => {
            let names: Vec<String> = (1..=r).map(|k| format!("response_{k}")).collect();
            format!("file,{}\n", names.join(","))
        }
        _ => "file,target\n".to_string(),
    };
    let names = classes.unwrap_or(&[]);
    for (i, o) in observations.iter().enumerate() {
        let ext = match format {
            SequenceFormat::Npy => "npy",
            SequenceFormat::Csv => "csv",
        };
        let file = format!("sequences/seq_{:05}.{ext}", i + 1);
        write_sequence(&dir.join(&file), &o.data)?;
        let _ = write!(csv, "{file},");
        match &o.target {
            Target::Class(k) => csv.push_str(&csv_field(&names[*k])),
            Target::Response(r) => {
                let values: Vec<String> = r.iter().map(f32::to_string).collect();
                csv.push_str(&values.join(","));
            }
            Target::ClassSequence(cs) => {
                let target = format!("targets/seq_{:05}.npy", i + 1);
                let indices: Array1<i64> = cs.iter().map(|&c| c as i64).collect();
                npy(&dir.join(&target), &indices)?;
                csv.push_str(&target);
            }
            Target::ResponseSequence(r) => {
                let target = format!("targets/seq_{:05}.npy", i + 1);
                npy(&dir.join(&target), r)?;
                csv.push_str(&target);
            }
            Target::None => {}
        }
        csv.push('\n');
    }
    if kind == TargetKind::ClassSequence {
        let p = dir.join("classes.txt");
        let text: String = names.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&p, text).map_err(|e| Error::io(&p, e))?;
    }
    let p = dir.join("labels.csv");
    std::fs::write(&p, csv).map_err(|e| Error::io(&p, e))
}

/// Checks the observations; returns their target kind.
fn check(
    observations: &[Observation],
    classes: Option<&[String]>,
    format: SequenceFormat,
) -> Result<TargetKind> {
    let mut sig = None;
    let k = classes.map(<[String]>::len);
    for (i, o) in observations.iter().enumerate() {
        let bad = |message: String| Error::Observation { index: i, message };
        o.validate(i, k)?;
        Signature::check(&mut sig, o).map_err(bad)?;
        match (&o.target, classes) {
            (Target::None, _) => {
                return Err(bad(
                    "has no target: a datastore folder holds labels or targets".into(),
                ))
            }
            (Target::Class(_) | Target::ClassSequence(_), None) => {
                return Err(bad("class targets need the list of class names".into()))
            }
            _ => {}
        }
        if let (Sequence::Images(_), SequenceFormat::Csv) = (&o.data, format) {
            return Err(bad(
                "an image sequence cannot be written as .csv: use .npy".into()
            ));
        }
    }
    if let Some(names) = classes {
        if let Some(n) = names
            .iter()
            .find(|n| n.is_empty() || n.contains(['\n', '\r']) || n.trim() != n.as_str())
        {
            return Err(Error::InvalidOption {
                option: "classes",
                message: format!(
                    "class name '{n}' cannot be written to classes.txt (empty, surrounding spaces or a line break)"
                ),
            });
        }
    }
    sig.map(|s| s.target).ok_or(Error::InvalidOption {
        option: "observations",
        message: "there is nothing to write".into(),
    })
}

fn npy<A, D>(path: &Path, a: &ndarray::ArrayBase<A, D>) -> Result<()>
where
    A: ndarray::Data,
    A::Elem: WritableElement,
    D: ndarray::Dimension,
{
    write_npy(path, a).map_err(|e| Error::io(path, std::io::Error::other(e.to_string())))
}

fn write_sequence(path: &Path, data: &Sequence) -> Result<()> {
    match (data, path.extension().and_then(|e| e.to_str())) {
        (Sequence::Features(x), Some("csv")) => {
            let mut text: String = (1..=x.ncols())
                .map(|c| format!("x{c}"))
                .collect::<Vec<_>>()
                .join(",");
            text.push('\n');
            for row in x.rows() {
                let values: Vec<String> = row.iter().map(f32::to_string).collect();
                text.push_str(&values.join(","));
                text.push('\n');
            }
            std::fs::write(path, text).map_err(|e| Error::io(path, e))
        }
        (Sequence::Features(x), _) => npy(path, x),
        (Sequence::Images(x), _) => npy(path, x),
    }
}

/// A CSV field, quoted when it needs to be.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) || s.trim() != s {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datastore::Datastore;
    use crate::folder::FolderDatastore;
    use ndarray::{array, Array2};

    fn feat(t: usize, v: f32) -> Sequence {
        Sequence::Features(Array2::from_shape_fn((t, 2), |(i, c)| {
            v + i as f32 + 0.5 * c as f32
        }))
    }

    #[test]
    fn round_trips_every_target_kind() {
        let names: Vec<String> = vec!["a".into(), "b, c".into(), "d".into()];
        let sets = vec![
            vec![
                Observation::new(feat(3, 0.), Target::ClassSequence(vec![0, 2, 1])),
                Observation::new(feat(2, 1.), Target::ClassSequence(vec![1, 1])),
            ],
            vec![
                Observation::new(feat(2, 0.), Target::ResponseSequence(array![[1.], [2.]])),
                Observation::new(feat(1, 1.), Target::ResponseSequence(array![[3.]])),
            ],
            vec![
                Observation::new(feat(3, 0.), Target::Class(1)),
                Observation::new(feat(2, 1.), Target::Class(2)),
            ],
            vec![Observation::new(
                feat(3, 0.),
                Target::Response(array![1.5, -2.]),
            )],
        ];
        for format in [SequenceFormat::Npy, SequenceFormat::Csv] {
            for obs in &sets {
                let dir = tempfile::tempdir().unwrap();
                write_folder(dir.path(), obs, Some(&names), format).unwrap();
                let opts = crate::FolderOptions {
                    classes: Some(names.clone()),
                    read_ahead: 0,
                };
                let ds = FolderDatastore::open_with(dir.path(), opts).unwrap();
                let back: Vec<Observation> = (0..ds.len()).map(|i| ds.read(i).unwrap()).collect();
                assert_eq!(&back, obs, "{format:?}");
            }
        }
    }

    #[test]
    fn refuses_what_a_folder_cannot_hold() {
        let dir = tempfile::tempdir().unwrap();
        let none = [Observation::new(feat(2, 0.), Target::None)];
        let e = write_folder(dir.path(), &none, None, SequenceFormat::Npy).unwrap_err();
        assert!(matches!(e, Error::Observation { index: 0, .. }), "{e}");
        let cls = [Observation::new(
            feat(2, 0.),
            Target::ClassSequence(vec![0, 0]),
        )];
        assert!(write_folder(dir.path(), &cls, None, SequenceFormat::Npy).is_err());
        let bad = vec![" x".to_string()];
        assert!(write_folder(dir.path(), &cls, Some(&bad), SequenceFormat::Npy).is_err());
        let img = [Observation::new(
            Sequence::Images(ndarray::Array4::zeros((1, 2, 2, 1))),
            Target::Class(0),
        )];
        let one = vec!["a".to_string()];
        assert!(write_folder(dir.path(), &img, Some(&one), SequenceFormat::Csv).is_err());
        assert!(write_folder(dir.path(), &[], None, SequenceFormat::Npy).is_err());
    }
}
