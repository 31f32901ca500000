//! One observation: a sequence and its target.
//!
//! A sequence keeps the layout users and files have: `[T, C]` for a feature
//! sequence, `[T, H, W, C]` for an image sequence (MATLAB's `C×S` and
//! `H×W×C×S` with time first). The [`crate::Batcher`] turns observations into
//! seqnet's mini-batch layouts (`[T, B, C]`, `[T, B, C, H, W]`).

use crate::error::{Error, Result};
use ndarray::{Array1, Array2, Array4, Axis};
use std::fmt;
use std::ops::Range;

/// The shape of one time step of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FrameShape {
    /// A feature vector of `C` channels.
    Features(usize),
    /// An image of `[H, W]` pixels with `C` channels.
    Image {
        /// `H`.
        height: usize,
        /// `W`.
        width: usize,
        /// `C`.
        channels: usize,
    },
}

impl FrameShape {
    /// The channel count `C`.
    pub fn channels(&self) -> usize {
        match *self {
            FrameShape::Features(c) => c,
            FrameShape::Image { channels, .. } => channels,
        }
    }

    /// Values per time step: `C`, or `H·W·C`.
    pub fn elements(&self) -> usize {
        match *self {
            FrameShape::Features(c) => c,
            FrameShape::Image {
                height,
                width,
                channels,
            } => height * width * channels,
        }
    }
}

impl fmt::Display for FrameShape {
    /// `C features` or `H×W×C images`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FrameShape::Features(c) => write!(f, "{c} features"),
            FrameShape::Image {
                height,
                width,
                channels,
            } => write!(f, "{height}×{width}×{channels} images"),
        }
    }
}

/// The input data of one observation.
#[derive(Debug, Clone, PartialEq)]
pub enum Sequence {
    /// A feature sequence, `[T, C]`.
    Features(Array2<f32>),
    /// An image sequence, `[T, H, W, C]` (channels last, as in `.npy` files;
    /// the batcher moves channels first: `[T, B, C, H, W]`).
    Images(Array4<f32>),
}

impl Sequence {
    /// The number of time steps `T`.
    pub fn len(&self) -> usize {
        match self {
            Sequence::Features(a) => a.shape()[0],
            Sequence::Images(a) => a.shape()[0],
        }
    }

    /// Whether the sequence has no time step.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The shape of one time step.
    pub fn frame_shape(&self) -> FrameShape {
        match self {
            Sequence::Features(a) => FrameShape::Features(a.shape()[1]),
            Sequence::Images(a) => FrameShape::Image {
                height: a.shape()[1],
                width: a.shape()[2],
                channels: a.shape()[3],
            },
        }
    }

    /// The time steps `range` (clamped to `0..T`) as a new sequence of the same kind.
    pub fn steps(&self, range: Range<usize>) -> Sequence {
        let t = self.len();
        let (a, b) = (range.start.min(t), range.end.min(t));
        let b = b.max(a);
        match self {
            Sequence::Features(x) => {
                Sequence::Features(x.slice_axis(Axis(0), (a..b).into()).to_owned())
            }
            Sequence::Images(x) => {
                Sequence::Images(x.slice_axis(Axis(0), (a..b).into()).to_owned())
            }
        }
    }

    /// Whether every value is finite.
    pub fn is_finite(&self) -> bool {
        match self {
            Sequence::Features(a) => a.iter().all(|v| v.is_finite()),
            Sequence::Images(a) => a.iter().all(|v| v.is_finite()),
        }
    }
}

/// What a network should predict for one observation.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Target {
    /// No target (data for prediction only).
    #[default]
    None,
    /// A class index for sequence-to-label classification (one-hot `[B, K]` in a batch).
    Class(usize),
    /// A class index per time step, `[T]`, for sequence-to-sequence classification
    /// (one-hot `[T, B, K]` in a batch).
    ClassSequence(Vec<usize>),
    /// A response vector `[R]` for sequence-to-one regression (`[B, R]` in a batch).
    Response(Array1<f32>),
    /// Responses per time step, `[T, R]`, for sequence-to-sequence regression
    /// (`[T, B, R]` in a batch).
    ResponseSequence(Array2<f32>),
}

/// The kind of a [`Target`] with its response count `R`; all observations of
/// a datastore or mini-batch have the same kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TargetKind {
    /// [`Target::None`].
    None,
    /// [`Target::Class`].
    Class,
    /// [`Target::ClassSequence`].
    ClassSequence,
    /// `R` responses.
    Response(usize),
    /// `R` responses per step.
    ResponseSequence(usize),
}

impl fmt::Display for TargetKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetKind::None => f.write_str("no target"),
            TargetKind::Class => f.write_str("a class label"),
            TargetKind::ClassSequence => f.write_str("a class label per time step"),
            TargetKind::Response(r) => write!(f, "{r} responses"),
            TargetKind::ResponseSequence(r) => write!(f, "{r} responses per time step"),
        }
    }
}

impl Target {
    /// The kind of this target.
    pub fn kind(&self) -> TargetKind {
        match self {
            Target::None => TargetKind::None,
            Target::Class(_) => TargetKind::Class,
            Target::ClassSequence(_) => TargetKind::ClassSequence,
            Target::Response(r) => TargetKind::Response(r.len()),
            Target::ResponseSequence(r) => TargetKind::ResponseSequence(r.shape()[1]),
        }
    }

    /// The number of time steps of a per-step target, `None` otherwise.
    pub fn steps(&self) -> Option<usize> {
        match self {
            Target::ClassSequence(c) => Some(c.len()),
            Target::ResponseSequence(r) => Some(r.shape()[0]),
            _ => None,
        }
    }

    /// The time steps `range` (clamped) of a per-step target; other targets are cloned.
    pub fn steps_range(&self, range: Range<usize>) -> Target {
        let clamp = |t: usize| {
            let (a, b) = (range.start.min(t), range.end.min(t));
            a..b.max(a)
        };
        match self {
            Target::ClassSequence(c) => Target::ClassSequence(c[clamp(c.len())].to_vec()),
            Target::ResponseSequence(r) => {
                let rg = clamp(r.shape()[0]);
                Target::ResponseSequence(r.slice_axis(Axis(0), rg.into()).to_owned())
            }
            other => other.clone(),
        }
    }
}

/// One observation: input data and target.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The input sequence, `[T, C]` or `[T, H, W, C]`.
    pub data: Sequence,
    /// What to predict from it.
    pub target: Target,
}

impl Observation {
    /// An observation from its parts (not checked; see [`Observation::validate`]).
    pub fn new(data: Sequence, target: Target) -> Self {
        Observation { data, target }
    }

    /// A feature sequence `[T, C]` with a class index.
    pub fn classified(data: Array2<f32>, class: usize) -> Self {
        Observation::new(Sequence::Features(data), Target::Class(class))
    }

    /// The number of time steps `T`.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the sequence has no time step.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Checks the observation on its own: at least one time step and at
    /// least one value per step, finite values, a per-step target as long as
    /// the data, class indices below `num_classes` (when known) and finite
    /// responses. `index` names the observation in the error
    /// ([`Error::Observation`]).
    pub fn validate(&self, index: usize, num_classes: Option<usize>) -> Result<()> {
        self.problem(num_classes)
            .map_or(Ok(()), |message| Err(Error::Observation { index, message }))
    }

    /// What [`Observation::validate`] finds wrong, if anything.
    fn problem(&self, num_classes: Option<usize>) -> Option<String> {
        if self.data.is_empty() {
            return Some("the sequence has no time step".into());
        }
        let frame = self.data.frame_shape();
        if frame.elements() == 0 {
            return Some(format!("a time step has no value ({frame})"));
        }
        if !self.data.is_finite() {
            return Some("the sequence has a NaN or infinite value".into());
        }
        if let Some(t) = self.target.steps() {
            if t != self.data.len() {
                return Some(format!(
                    "the per-step target has {t} time steps, the sequence {}",
                    self.data.len()
                ));
            }
        }
        let class_ok = |c: usize| num_classes.is_none_or(|k| c < k);
        let k = num_classes.unwrap_or(0);
        match &self.target {
            Target::Class(c) if !class_ok(*c) => {
                Some(format!("class index {c} is not below the class count {k}"))
            }
            Target::ClassSequence(cs) => cs.iter().position(|&c| !class_ok(c)).map(|t| {
                format!(
                    "class index {} at time step {} is not below the class count {k}",
                    cs[t],
                    t + 1
                )
            }),
            Target::Response(r) if r.is_empty() => Some("the response vector is empty".into()),
            Target::ResponseSequence(r) if r.shape()[1] == 0 => {
                Some("the per-step responses have no column".into())
            }
            Target::Response(r) if !r.iter().all(|v| v.is_finite()) => {
                Some("a response is NaN or infinite".into())
            }
            Target::ResponseSequence(r) if !r.iter().all(|v| v.is_finite()) => {
                Some("a per-step response is NaN or infinite".into())
            }
            _ => None,
        }
    }
}

/// What all observations of one datastore or mini-batch share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Signature {
    pub frame: FrameShape,
    pub target: TargetKind,
}

impl Signature {
    pub fn of(o: &Observation) -> Self {
        Signature {
            frame: o.data.frame_shape(),
            target: o.target.kind(),
        }
    }

    /// Checks that `o` matches `expected` (set from the first observation);
    /// the error is the message for the caller to place.
    pub fn check(expected: &mut Option<Signature>, o: &Observation) -> Result<(), String> {
        let sig = Signature::of(o);
        match expected {
            None => {
                *expected = Some(sig);
                Ok(())
            }
            Some(e) if e.frame != sig.frame => Err(format!(
                "time steps of {}, but earlier observations have {}",
                sig.frame, e.frame
            )),
            Some(e) if e.target != sig.target => Err(format!(
                "{}, but earlier observations have {}",
                sig.target, e.target
            )),
            Some(_) => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array;

    #[test]
    fn validate_catches_each_problem() {
        let data = Array2::<f32>::zeros((3, 2));
        let ok = Observation::classified(data.clone(), 1);
        assert!(ok.validate(0, Some(2)).is_ok());
        assert!(ok.validate(0, Some(1)).is_err());
        let empty = Observation::classified(Array2::zeros((0, 2)), 0);
        assert!(empty.validate(0, None).is_err());
        let mut nan = data.clone();
        nan[[1, 1]] = f32::NAN;
        assert!(Observation::classified(nan, 0).validate(0, None).is_err());
        let short = Observation::new(
            Sequence::Features(data.clone()),
            Target::ClassSequence(vec![0, 1]),
        );
        let e = short.validate(7, None).unwrap_err().to_string();
        assert!(
            e.contains("observation 7") && e.contains("2 time steps"),
            "{e}"
        );
        let resp = Observation::new(
            Sequence::Features(data),
            Target::Response(Array::from_vec(vec![])),
        );
        assert!(resp.validate(0, None).is_err());
    }

    #[test]
    fn steps_clamp() {
        let x = Sequence::Features(Array2::from_shape_fn((5, 1), |(t, _)| t as f32));
        assert_eq!(x.steps(3..9).len(), 2);
        assert_eq!(x.steps(7..9).len(), 0);
        let t = Target::ClassSequence(vec![0, 1, 2, 3, 4]);
        assert_eq!(t.steps_range(1..3), Target::ClassSequence(vec![1, 2]));
    }
}
