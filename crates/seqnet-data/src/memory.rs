//! [`InMemoryDatastore`]: observations held in memory.

use crate::datastore::Datastore;
use crate::error::{Error, Result};
use crate::observation::{FrameShape, Observation, Sequence, Signature, Target, TargetKind};
use crate::ts::{TsDataset, TsLabels};

/// Observations held in memory, checked once when built: every sequence
/// has at least one step and finite values, all have the same frame shape
/// (`[T, C]` with the same `C`, or `[T, H, W, C]` with the same `H, W, C`)
/// and the same kind of target, and class indices are below the class count.
#[derive(Debug, Clone)]
pub struct InMemoryDatastore {
    observations: Vec<Observation>,
    classes: Option<Vec<String>>,
}

impl InMemoryDatastore {
    /// A datastore of `observations`; `classes` names the class indices of
    /// class targets (needed when the targets are classes).
    pub fn new(observations: Vec<Observation>, classes: Option<Vec<String>>) -> Result<Self> {
        check(&observations, classes.as_deref())?;
        Ok(InMemoryDatastore {
            observations,
            classes,
        })
    }

    /// The observations of a `.ts` file: `[T, C]` series with class targets
    /// (the header's classes, in header order) or response targets `[R]`.
    /// Errors name the file's line of the offending observation.
    pub fn from_ts(ts: TsDataset, file: &str) -> Result<Self> {
        let n = ts.series.len();
        let (targets, classes): (Vec<Target>, _) = match ts.labels {
            TsLabels::None => (vec![Target::None; n], None),
            TsLabels::Classes { names, labels } => {
                (labels.into_iter().map(Target::Class).collect(), Some(names))
            }
            TsLabels::Targets(t) => (
                t.outer_iter()
                    .map(|r| Target::Response(r.to_owned()))
                    .collect(),
                None,
            ),
        };
        if targets.len() != n {
            return Err(Error::Parse {
                file: file.to_string(),
                line: 0,
                message: format!("{n} series but {} targets", targets.len()),
            });
        }
        let observations: Vec<Observation> = ts
            .series
            .into_iter()
            .zip(targets)
            .map(|(s, t)| Observation::new(Sequence::Features(s), t))
            .collect();
        match check(&observations, classes.as_deref()) {
            Ok(()) => Ok(InMemoryDatastore {
                observations,
                classes,
            }),
            Err(e) => {
                let i = match e {
                    Error::Observation { index, .. } => index,
                    _ => 0,
                };
                Err(Error::Parse {
                    file: file.to_string(),
                    line: ts.lines.get(i).copied().unwrap_or(0),
                    message: e.to_string(),
                })
            }
        }
    }

    /// Reads a `.ts` file ([`crate::read_ts`]) into a datastore ([`InMemoryDatastore::from_ts`]).
    pub fn open_ts(
        path: impl AsRef<std::path::Path>,
        options: &crate::ts::TsOptions,
    ) -> Result<Self> {
        let path = path.as_ref();
        let ts = crate::ts::read_ts(path, options)?;
        Self::from_ts(ts, &path.display().to_string())
    }

    /// All observations, in index order.
    pub fn observations(&self) -> &[Observation] {
        &self.observations
    }

    /// The datastore's observations as a vector.
    pub fn into_observations(self) -> Vec<Observation> {
        self.observations
    }
}

/// Checks observations as [`InMemoryDatastore::new`] documents; the error
/// is an [`Error::Observation`] naming the offending observation.
fn check(observations: &[Observation], classes: Option<&[String]>) -> Result<()> {
    let mut sig = None;
    let k = classes.map(<[String]>::len);
    for (i, o) in observations.iter().enumerate() {
        let bad = |message: String| Error::Observation { index: i, message };
        o.validate(i, k)?;
        Signature::check(&mut sig, o).map_err(bad)?;
        if matches!(o.target, Target::Class(_) | Target::ClassSequence(_)) && classes.is_none() {
            return Err(bad("class targets need the list of class names".into()));
        }
    }
    Ok(())
}

impl Datastore for InMemoryDatastore {
    fn len(&self) -> usize {
        self.observations.len()
    }

    fn read(&self, i: usize) -> Result<Observation> {
        self.observations.get(i).cloned().ok_or(Error::Index {
            index: i,
            len: self.observations.len(),
        })
    }

    fn classes(&self) -> Option<&[String]> {
        self.classes.as_deref()
    }

    fn sequence_lengths(&self) -> Result<Vec<usize>> {
        Ok(self.observations.iter().map(Observation::len).collect())
    }

    fn frame_shape(&self) -> Result<Option<FrameShape>> {
        Ok(self.observations.first().map(|o| o.data.frame_shape()))
    }

    fn target_kind(&self) -> Result<Option<TargetKind>> {
        Ok(self.observations.first().map(|o| o.target.kind()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ts::{parse_ts, TsOptions};
    use ndarray::{Array2, Array4};

    #[test]
    fn from_ts_keeps_classes_in_header_order() {
        let ts = parse_ts(
            "@classLabel true z a\n@data\n1,2:3,4:a\n5:6:z\n",
            "x.ts",
            &TsOptions::default(),
        )
        .unwrap();
        let ds = InMemoryDatastore::from_ts(ts, "x.ts").unwrap();
        assert_eq!(ds.len(), 2);
        assert_eq!(ds.classes().unwrap(), ["z", "a"]);
        assert_eq!(ds.read(0).unwrap().target, Target::Class(1));
        assert_eq!(ds.read(1).unwrap().target, Target::Class(0));
        assert_eq!(ds.sequence_lengths().unwrap(), vec![2, 1]);
        assert_eq!(ds.frame_shape().unwrap(), Some(FrameShape::Features(2)));
        assert_eq!(ds.target_kind().unwrap(), Some(TargetKind::Class));
        assert!(ds.read(2).is_err());
    }

    #[test]
    fn rejects_mixed_observations() {
        let f = |t: usize, c: usize| {
            Observation::new(Sequence::Features(Array2::zeros((t, c))), Target::None)
        };
        assert!(InMemoryDatastore::new(vec![f(2, 3), f(4, 3)], None).is_ok());
        let e = InMemoryDatastore::new(vec![f(2, 3), f(4, 2)], None).unwrap_err();
        assert!(e.to_string().contains("observation 1"), "{e}");
        let img = Observation::new(Sequence::Images(Array4::zeros((2, 4, 4, 1))), Target::None);
        assert!(InMemoryDatastore::new(vec![f(2, 3), img], None).is_err());
        let cls = Observation::classified(Array2::zeros((2, 3)), 0);
        assert!(InMemoryDatastore::new(vec![cls.clone()], None).is_err());
        assert!(
            InMemoryDatastore::new(vec![cls.clone(), f(2, 3)], Some(vec!["a".into()])).is_err()
        );
        assert!(InMemoryDatastore::new(vec![f(0, 3)], None).is_err());
    }
}
